#!/usr/bin/env bash
# Builds the static release artifacts (x86_64 and aarch64 musl, or the targets named as
# arguments) and checks each: statically linked, under 9 MiB, `--version` names its commit
# and target, and it runs (aarch64 under qemu-user): a check of a closed loopback port, with
# no metadata service and no AWS API (169.254.169.254 is the build machine's platform, not
# ours). Writes to dist/ (or $DIST_DIR):
#   probe-TARGET                    the bare binary (what `probe userdata --source PREFIX/` fetches)
#   probe-VERSION-TARGET.tar.gz     the binary, completions, the man page, README, licences
#   SHA256SUMS                      sha256sum -c format (what `probe userdata --sums` reads)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${CARGO_TARGET_DIR:-$root/target}
dist=${DIST_DIR:-$root/dist}
targets=("$@")
((${#targets[@]})) || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
die() { echo "release: $*" >&2; exit 1; }

# Everything the build needs, before the build.
# shellcheck source=cross-env.sh
source "$root/scripts/cross-env.sh"
for target in "${targets[@]}"; do
  case $target in
    x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) ;;
    *) die "unknown target $target: x86_64-unknown-linux-musl or aarch64-unknown-linux-musl" ;;
  esac
  rustup target list --installed 2>/dev/null | grep -qx "$target" || die "rustup target add $target"
  cc=CC_${target//-/_}
  command -v "${!cc}" >/dev/null || die "${!cc} is missing: apt-get install musl-tools gcc-aarch64-linux-gnu"
  if [[ $target == aarch64-* && $(uname -m) != aarch64 ]]; then
    command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 is missing: apt-get install qemu-user"
  fi
done
command -v file >/dev/null || die "file is missing: apt-get install file"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$dist"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
for target in "${targets[@]}"; do
  cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --target "$target"
  bin=$out/$target/release/probe
  commit=${PROBE_COMMIT:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
  file -b "$bin" | grep -Eq 'statically linked|static-pie linked' || die "$bin is not static: $(file -b "$bin")"
  size=$(stat -c %s "$bin")
  ((size < 9 * 1024 * 1024)) || die "$bin is $size bytes, over 9 MiB"
  runner=()
  [[ $target == aarch64-* && $(uname -m) != aarch64 ]] && runner=(qemu-aarch64)
  v=$("${runner[@]}" "$bin" --version)
  [[ $v == "probe $version (commit $commit, $target)" ]] || die "--version says '$v'"
  code=0
  report=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "${runner[@]}" "$bin" check "127.0.0.1:$port" --no-imds --ec2 off --ping-count 0 -o json) || code=$?
  [[ $code == 1 && $report == *'"kind": "refused"'* ]] || die "$target check of a closed port gave exit $code: $report"

  name=probe-$version-$target
  mkdir -p "$staging/$name/completions"
  cp "$bin" "$staging/$name/probe"
  cp "$root/README.md" "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$staging/$name/"
  "${runner[@]}" "$bin" man >"$staging/$name/probe.1"
  "${runner[@]}" "$bin" completions bash >"$staging/$name/completions/probe.bash"
  "${runner[@]}" "$bin" completions zsh >"$staging/$name/completions/_probe"
  "${runner[@]}" "$bin" completions fish >"$staging/$name/completions/probe.fish"
  tar -C "$staging" --owner=0 --group=0 -czf "$dist/$name.tar.gz" "$name"
  cp "$bin" "$dist/probe-$target"
  echo "release: $target ok, $size bytes, static, runs: $v"
done
(cd "$dist" && sha256sum probe-* >SHA256SUMS && cat SHA256SUMS)
