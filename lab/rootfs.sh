#!/usr/bin/env bash
# Builds, once, the Debian root filesystem that tests/boot.rs boots as an EC2 instance with
# systemd-nspawn: systemd, cloud-init (NoCloud seed only, no network configuration of its
# own: the lab's namespace already has it) and curl, as an Amazon Linux or Debian cloud image
# has them. It is kept outside the clone and rebuilt only when this file changes; prints its
# path. Needs root and mmdebstrap (Debian's package), and reaches Debian's package mirror.
set -euo pipefail
die() { echo "rootfs.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "building a root filesystem needs root"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"
key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
dir=${PROBE_ROOTFS:-/var/cache/probe-lab/rootfs-bookworm-$key}
if [[ -f $dir/.probe-rootfs ]]; then
  echo "$dir"
  exit 0
fi
echo "rootfs.sh: building $dir with mmdebstrap (about a minute)" >&2
mkdir -p "$(dirname "$dir")"
rm -rf "$dir.tmp"
# shellcheck disable=SC2016 # mmdebstrap gives each hook the root as $1
mmdebstrap --quiet --variant=minbase \
  --include=systemd,systemd-sysv,cloud-init,curl,ca-certificates,dbus,iproute2 \
  --customize-hook='printf "%s\n" "datasource_list: [ NoCloud, None ]" "network: {config: disabled}" "locale: C.UTF-8" >"$1/etc/cloud/cloud.cfg.d/90-probe-lab.cfg"' \
  --customize-hook='chroot "$1" systemctl mask console-getty.service getty@.service' \
  bookworm "$dir.tmp" >&2
touch "$dir.tmp/.probe-rootfs"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
