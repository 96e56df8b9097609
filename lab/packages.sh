#!/usr/bin/env bash
# Installs what the lab needs when any is missing (run as root): Debian packages, then the
# project's Python environment (pinned moto, in .venv). Checked before anything is built.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v nft >/dev/null || need+=(nftables)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v ping >/dev/null || need+=(iputils-ping)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  command -v apt-get >/dev/null || { echo "packages.sh: missing ${need[*]}, and no apt-get to install them" >&2; exit 1; }
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
"$root/scripts/python-env.sh" >/dev/null
