#!/usr/bin/env bash
# Benchmark of `probe collect` on loopback: signed reports with unique ids (every one a
# durable, committed write) from examples/collect_load.rs, in rounds, on the database named
# by DATABASE: sqlite (the default, in --data) or postgres (a server of the benchmark's own,
# bench/postgres.sh). Writes about 1 GB to /tmp. Prints throughput, latency and memory.
# ALERTS=1 turns the alerts on (a webhook on loopback's discard port: the report's cell never
# changes, so nothing is due; each commit also reads and writes what the cell was told).
# INSTANCES=N spreads the reports over N host names (default 1): each report of a transaction
# then moves a cell and an hour of its own.
#   bench/collect.sh                  SQLite
#   DATABASE=postgres bench/collect.sh
#   ALERTS=1 bench/collect.sh
#   INSTANCES=1000 bench/collect.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
probe=${PROBE:-$target/x86_64-unknown-linux-musl/release/probe}
engine=${DATABASE:-sqlite}
[[ -x $probe ]] || { echo "bench: no $probe: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
[[ $engine == sqlite || $engine == postgres ]] || { echo "bench: DATABASE=sqlite or DATABASE=postgres" >&2; exit 1; }
instances=${INSTANCES:-1}
[[ $instances =~ ^[1-9][0-9]*$ ]] || { echo "bench: INSTANCES=$instances: give a number from 1" >&2; exit 1; }
# shellcheck source=bench/postgres.sh
source "$root/bench/postgres.sh"
# Built for the musl target too, so it reuses the release build of probe's dependencies.
cargo build --release --quiet --example collect_load --target x86_64-unknown-linux-musl --manifest-path "$root/Cargo.toml"
load=$target/x86_64-unknown-linux-musl/release/examples/collect_load
# shellcheck source=bench/scratch.sh
source "$root/bench/scratch.sh"
dir=$(scratch)
chmod 755 "$dir"
trap 'kill "${pid:-}" 2>/dev/null; wait "${pid:-}" 2>/dev/null || true; pg_stop; rm -rf "$dir"' EXIT
(umask 077; head -c 32 /dev/urandom | base64 >"$dir/token")
database=()
alerts=()
[[ ${ALERTS:-0} == 1 ]] && alerts=(--alert webhook=http://127.0.0.1:9/ --alert-after 3)
if [[ $engine == postgres ]]; then
  pg_start "$dir/pg"
  database=(--database "$PG_URL")
fi
# One load generator is one source: the per-source rate limit is off for the measurement.
# --ec2 off: no credential lookup (the SDK would ask the metadata address, off this machine).
"$probe" collect --listen 127.0.0.1:0 --token-file "$dir/token" --data "$dir/data" "${database[@]}" \
  "${alerts[@]}" --rate-limit 0 --ec2 off 2>"$dir/err" >/dev/null &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/err" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/err") || { cat "$dir/err" >&2; exit 1; }
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status"; }
echo "probe collect on $url, $engine${alerts:+ with --alert}, $(nproc) cores; report body $(wc -c <"$root/tests/fixtures/report.json") bytes; $instances instance(s)"
"$load" "$url" "$dir/token" 20000 32 "$instances"
echo "  collector memory after 20000 reports: $(rss)"
"$load" "$url" "$dir/token" 60000 32 "$instances"
echo "  collector memory after 80000 reports: $(rss)"
"$load" "$url" "$dir/token" 220000 32 "$instances"
echo "  collector memory after 300000 reports: $(rss)"
"$load" "$url" "$dir/token" 100000 32 "$instances"
echo "  collector memory after 400000 reports: $(rss)"
stored=$("$probe" collect export --data "$dir/data" "${database[@]}" | wc -l)
if [[ $engine == sqlite ]]; then
  echo "  stored: $stored reports; $(du -ch "$dir"/data/probe.db* | tail -n 1 | cut -f1) on disk"
else
  echo "  stored: $stored reports; $(du -sh "$dir/pg/data" | cut -f1) on disk (the server's files)"
fi
echo "targets: at least 5000 reports/s with durable acknowledgement (SQLite), p99 under 50 ms, memory bounded"
