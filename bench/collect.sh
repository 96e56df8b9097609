#!/usr/bin/env bash
# Benchmark of `probe collect` on loopback: signed reports with unique ids (every one a
# durable, fsynced write) from examples/collect_load.rs, then longer rounds past the
# collector's deduplication window to show its memory stays bounded. Writes about 1 GB to /tmp. Prints throughput, latency and memory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
probe=${PROBE:-$target/x86_64-unknown-linux-musl/release/probe}
[[ -x $probe ]] || { echo "bench: no $probe: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
# Built for the musl target too, so it reuses the release build of probe's dependencies.
cargo build --release --quiet --example collect_load --target x86_64-unknown-linux-musl --manifest-path "$root/Cargo.toml"
load=$target/x86_64-unknown-linux-musl/release/examples/collect_load
dir=$(mktemp -d)
(umask 077; head -c 32 /dev/urandom | base64 >"$dir/token")
# One load generator is one source: the per-source rate limit is off for the measurement.
# --ec2 off: no credential lookup (the SDK would ask the metadata address, off this machine).
"$probe" collect --listen 127.0.0.1:0 --token-file "$dir/token" --data "$dir/data" --rate-limit 0 --ec2 off 2>"$dir/err" >/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q listening "$dir/err" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/err")
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status"; }
echo "probe collect on $url, $(nproc) cores; report body $(wc -c <"$root/tests/fixtures/report.json") bytes"
"$load" "$url" "$dir/token" 20000 32
echo "  collector memory after 20000 reports: $(rss)"
"$load" "$url" "$dir/token" 60000 32
echo "  collector memory after 80000 reports: $(rss)"
# Past the 250,000 ids the collector remembers for deduplication, memory stops growing.
"$load" "$url" "$dir/token" 220000 32
echo "  collector memory after 300000 reports: $(rss)"
"$load" "$url" "$dir/token" 100000 32
echo "  collector memory after 400000 reports: $(rss)"
echo "  on disk: $(wc -l <"$dir/data/reports.jsonl") lines, $(du -h "$dir/data/reports.jsonl" | cut -f1)"
echo "targets: at least 5000 reports/s with durable acknowledgement, p99 under 50 ms, memory bounded"
