#!/usr/bin/env bash
# Benchmark of a cell's history (`GET /v1/history`, `GET /cell`) on loopback: a log of
# N reports (default 100,000: INSTANCES instances, default 1,000, x N/INSTANCES runs, about
# 240 MB) is written straight into a data directory, the collector replays it, and each query
# is timed, then the dashboard (`GET /`, every instance x target). Until the store is a
# database a history query is one pass over the log, so its time grows with the log's size;
# the dashboard is drawn from memory. `INSTANCES=50000 bench/history.sh 50000` times the
# dashboard of 50,000 instances. Writes the log to /tmp. Prints the log's size, the
# collector's start time and the queries'.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
probe=${PROBE:-$target/x86_64-unknown-linux-musl/release/probe}
[[ -x $probe ]] || { echo "bench: no $probe: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
n=${1:-100000}
instances=${INSTANCES:-1000}
dir=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null; wait "${pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkdir -p "$dir/data"
python3 - "$root/tests/fixtures/report.json" "$n" "$instances" >"$dir/data/reports.jsonl" <<'PY'
import json, sys
base = json.load(open(sys.argv[1]))
n, instances = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    host, run = i % instances, i // instances
    base["id"] = f"bench-{i}"
    base["agent"]["hostname"] = f"host-{host}"
    base["started_at"] = f"2026-12-0{1 + run // 1440 % 9}T{run // 60 % 24:02}:{run % 60:02}:00Z"
    print(json.dumps(base, separators=(",", ":")))
PY
echo "log: $n reports of $instances instances, $(du -h "$dir/data/reports.jsonl" | cut -f1); $(nproc) cores"
start=$(date +%s.%N)
"$probe" collect --listen 127.0.0.1:0 --data "$dir/data" --ec2 off 2>"$dir/err" >/dev/null &
pid=$!
for _ in $(seq 600); do grep -q listening "$dir/err" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/err")
echo "collector listening after $(echo "$(date +%s.%N) - $start" | bc) s (the log replayed)"
for q in "/v1/history?instance=host-7&target=cloudformation" \
         "/v1/history?instance=host-7&target=cloudformation&since=2026-12-01T01:00:00Z" \
         "/cell?instance=host-7&target=cloudformation"; do
  for _ in 1 2 3; do
    curl -s -o /dev/null -w "  %{time_total} s  %{size_download} bytes  $q\n" "$url$q"
  done
done
for _ in 1 2 3; do
  curl -s -o /dev/null -w "  %{time_total} s  %{size_download} bytes  / (the dashboard)\n" "$url/"
done
