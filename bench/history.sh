#!/usr/bin/env bash
# Benchmark of the collector over a long history, on SQLite: a database is made by probe (its
# migrations), then filled straight from Python's sqlite3 with
#   - HOSTS instances (default 50,000) with one report each, and
#   - DEEP of them (default 1,000) with a history of RUNS reports each (default 1,000: one
#     per 30 s, 8 h 20 min; RUNS=2880 is a day, RUNS=1051200 a year), the fixture report
#     with its own id and time, ending now,
#   - the hours probe counts those reports into, and with YEAR=1, for each of the DEEP, the
#     hours of the year before its reports (8,760, of 120 reports each: a year at one report
#     per 30 s as the store keeps it once --retain has taken the reports themselves),
# and the collector is started on it. Prints the database's size, the collector's start (it
# reads each cell's newest report and the last 20,000, not the whole history), the
# dashboard's time, the history and uptime queries' (by index, newest first) and the start
# with --alert. Writes to /tmp.
#   bench/history.sh
#   RUNS=2880 bench/history.sh
#   DEEP=1 RUNS=1051200 bench/history.sh     (one instance with a year of reports)
#   YEAR=1 bench/history.sh                  (1,000 instances with a year of hours)
# The history queries ask for host-0, one of the instances with a history.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
probe=${PROBE:-$target/x86_64-unknown-linux-musl/release/probe}
[[ -x $probe ]] || { echo "bench: no $probe: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: curl is missing: apt-get install curl" >&2; exit 1; }
hosts=${HOSTS:-50000}
runs=${RUNS:-1000}
deep=${DEEP:-1000}
year=${YEAR:-0}
[[ $year == 0 || $year == 1 ]] || { echo "bench: YEAR=$year: give 0 or 1" >&2; exit 1; }
# The reports end now, so the cell page's last 365 days hold the year of hours.
first=$(( ($(date +%s) - runs * 30) / 3600 * 3600 ))
(( deep >= 1 && deep <= hosts )) || { echo "bench: DEEP=$deep: give 1 to HOSTS ($hosts)" >&2; exit 1; }
# shellcheck source=bench/scratch.sh
source "$root/bench/scratch.sh"
dir=$(scratch)
trap 'if [[ -n ${pid:-} ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT

start_collector() {
  "$probe" collect --listen 127.0.0.1:0 --data "$dir/data" --ec2 off "$@" 2>"$dir/err" >/dev/null &
  pid=$!
  for _ in $(seq 6000); do grep -q listening "$dir/err" && break; sleep 0.01; done
  url=$(grep -o 'http://[0-9.:]*' "$dir/err") || { cat "$dir/err" >&2; exit 1; }
}
stop_collector() { kill "$pid"; wait "$pid" || true; pid=; }

# The tables, as this probe's migrations make them.
start_collector
stop_collector
python3 - "$root/tests/fixtures/report.json" "$dir/data/probe.db" "$hosts" "$runs" "$deep" "$first" "$year" <<'PY'
import json, sqlite3, sys, time
base = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
hosts, runs, deep, start, year = (int(a) for a in sys.argv[3:8])
def rows():
    n = 0
    # The history of DEEP instances, a report each 30 s, then one report of every instance.
    for run in range(runs):
        for host in range(deep):
            yield n, host, start + run * 30
            n += 1
    for host in range(hosts):
        yield n, host, start + runs * 30 + host % 30
        n += 1
def docs():
    for n, host, at in rows():
        base["id"] = f"bench-{n}"
        base["agent"]["hostname"] = f"host-{host}"
        base["agent"]["instance"] = None
        base["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        doc = json.dumps(base, separators=(",", ":"))
        yield base["id"], f"host-{host}", at * 1000, len(doc), doc
db.execute("PRAGMA journal_mode = WAL")
db.executemany("INSERT INTO reports (id, instance, at_ms, bytes, doc) VALUES (?, ?, ?, ?, ?)", docs())
db.execute("""INSERT INTO cells (instance, target, at_ms, seq)
    SELECT instance, 'cloudformation', MAX(at_ms), MAX(seq) FROM reports GROUP BY instance""")
db.execute("UPDATE counters SET value = (SELECT COUNT(*) FROM reports) WHERE name = 'stored'")
# The fixture's one target passes through an interface endpoint, as probe counts it.
db.execute("""INSERT INTO hours (instance, target, hour_ms, reports, passed, parted, path, newest_ms)
    SELECT instance, 'cloudformation', at_ms / 3600000 * 3600000, COUNT(*), COUNT(*), 0,
    'interface-endpoint', MAX(at_ms) FROM reports GROUP BY instance, at_ms / 3600000""")
def year_of_hours():
    # Each 97th hour had a report fail its expectation.
    for host in range(deep):
        for h in range(8760):
            at = (start - (8760 - h) * 3600) * 1000
            yield f"host-{host}", at, 120, 120 - (h % 97 == 0), at + 3570000
if year:
    db.executemany("""INSERT INTO hours (instance, target, hour_ms, reports, passed, parted, path,
        newest_ms) VALUES (?, 'cloudformation', ?, ?, ?, 0, 'interface-endpoint', ?)""", year_of_hours())
db.commit()
PY
n=$(( runs * deep + hosts ))
hours=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM hours').fetchone()[0])" "$dir/data/probe.db")
echo "database: $n reports ($hosts instances, $deep of them with $runs each), $hours hours, $(du -ch "$dir"/data/probe.db* | tail -n 1 | cut -f1); $(nproc) cores"
t0=$(date +%s.%N)
start_collector
echo "collector listening after $(echo "$(date +%s.%N) - $t0" | bc) s"
# The last day of host-0's history (all of it when shorter): 2,880 reports at most.
at() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
since=$(( first + runs * 30 - 86400 ))
last_day=$(at $(( since > first ? since : first )))
for q in "/v1/history?instance=host-0&target=cloudformation&limit=1000" \
         "/v1/history?instance=host-0&target=cloudformation&limit=100" \
         "/v1/history?instance=host-0&target=cloudformation&since=$(at $(( first + 3600 )))&limit=10" \
         "/v1/history?instance=host-0&target=cloudformation&since=$last_day&limit=10000" \
         "/v1/uptime?instance=host-0&target=cloudformation" \
         "/v1/uptime?instance=host-0&target=cloudformation&since=$last_day" \
         "/cell?instance=host-0&target=cloudformation" \
         "/cell?instance=host-40000&target=cloudformation"; do
  for _ in 1 2 3; do
    curl -s -o /dev/null -w "  %{time_total} s  %{size_download} bytes  $q\n" "$url$q"
  done
done
for _ in 1 2 3; do
  curl -s -o /dev/null -w "  %{time_total} s  %{size_download} bytes  / (the dashboard)\n" "$url/"
done
# With alerts (a receiver on the discard port: nothing is due, nothing is sent): the first
# start records where every cell starts; a later one reads each instance's newest reports
# to find where each cell stood, not the history.
stop_collector
for start in first later; do
  t0=$(date +%s.%N)
  start_collector --alert webhook=http://127.0.0.1:9/ --alert-after 3
  # It listens first, and answers once the alerts have resumed.
  until curl -s -o /dev/null "$url/"; do sleep 0.01; done
  echo "collector with --alert answering after $(echo "$(date +%s.%N) - $t0" | bc) s ($start start)"
  stop_collector
done
