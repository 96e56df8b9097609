#!/usr/bin/env bash
# The whole test suite, as root (the lab builds network namespaces; the boot test boots an
# instance with systemd-nspawn). Checks what the tests need before the long build, builds the
# static binary the boot test serves from its relay, the boot test's root filesystem (cached
# outside the clone) and the Python tools (pinned, in .venv), then runs `cargo test`.
# .ci/run installs the packages first and then calls this.
set -euo pipefail
# The project's Python is its own .venv (scripts/python-env.sh): a caller's PYTHONPATH or
# PYTHONHOME (other versions of moto or cfn-lint, say) would be read before it.
unset PYTHONPATH PYTHONHOME
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "test.sh: $*" >&2; exit 1; }
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || die "the tests build network namespaces and need root: run this as root"
  # root's HOME is not the user's: name the user's Rust toolchain for root to use.
  export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,CARGO_TARGET_DIR,PROBE_VENV,PROBE_REQUIRE_ALL "$0" "$@"
fi
missing=()
for tool in cargo ip dnsmasq nft dig ping curl openssl python3 systemd-nspawn mmdebstrap nsenter unshare mount kill musl-gcc chromium chromedriver shellcheck dash systemd-analyze; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
((${#missing[@]} == 0)) || die "missing ${missing[*]}: run .ci/run once (it installs them), or apt-get install them"
arch=$(uname -m)
rustup target list --installed | grep -qx "$arch-unknown-linux-musl" || die "rustup target add $arch-unknown-linux-musl"

"$root/scripts/python-env.sh" >/dev/null
"$root/lab/rootfs.sh" >/dev/null
# shellcheck source=cross-env.sh
source "$root/scripts/cross-env.sh"
echo "test.sh: building the static $arch binary the boot test serves" >&2
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --target "$arch-unknown-linux-musl"
cd "$root"
cargo test --locked "$@"
