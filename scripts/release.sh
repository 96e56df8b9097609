#!/usr/bin/env bash
# Builds the static release artifacts (x86_64 and aarch64 musl) and checks each one: statically
# linked, under 7 MB, and it runs (aarch64 under qemu-user): --version and a check of a closed
# loopback port. Copies them to $CARGO_TARGET_DIR/dist with their sha256.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$out/dist"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --target "$target"
  bin=$out/$target/release/probe
  file -b "$bin" | grep -Eq 'statically linked|static-pie linked' || { echo "release: $bin is not static: $(file -b "$bin")" >&2; exit 1; }
  size=$(stat -c %s "$bin")
  ((size < 7 * 1024 * 1024)) || { echo "release: $bin is $size bytes, over 7 MB" >&2; exit 1; }
  runner=()
  [[ $target == aarch64-* && $(uname -m) != aarch64 ]] && runner=(qemu-aarch64)
  "${runner[@]}" "$bin" --version >/dev/null
  code=0
  report=$("${runner[@]}" "$bin" check "127.0.0.1:$port" --ping-count 0 -o json) || code=$?
  [[ $code == 1 && $report == *'"kind": "refused"'* ]] || { echo "release: $target check of a closed port gave exit $code: $report" >&2; exit 1; }
  cp "$bin" "$out/dist/probe-$target"
  echo "release: $target ok, $size bytes, static, runs"
done
(cd "$out/dist" && sha256sum probe-* >SHA256SUMS && cat SHA256SUMS)
