#!/usr/bin/env bash
# Installs the Debian packages the lab needs, when any is missing (run as root).
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v ping >/dev/null || need+=(iputils-ping)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
if ! python3 -c 'import moto' 2>/dev/null; then
  echo "installing moto[server] 5.2.5 (the lab's EC2 API)" >&2
  python3 -m pip install --quiet --root-user-action=ignore 'moto[server]==5.2.5'
fi
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
