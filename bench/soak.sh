#!/usr/bin/env bash
# Soak of `probe collect` under hostile clients, on loopback, for a bounded time: from 40
# loopback addresses (127.0.0.2 to 127.0.0.41), clients hold connections idle, send headers
# at one byte a second and declare bodies they never send, reconnecting whenever cut off,
# while examples/collect_load.rs posts signed reports from 127.0.0.1. Prints the signed
# reports' throughput and latency in rounds, and the collector's memory after each: the
# targets are p99 under 50 ms and memory flat. Run after `scripts/test.sh` or a release build
# for x86_64-unknown-linux-musl. SECONDS_PER_ROUND (default 15) x 3 rounds.
# The collector's memory grows until the 250,000 report ids it keeps for deduplication are
# in (bench/collect.sh shows it flat after that); the rounds here stay under that count.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
probe=${PROBE:-$target/x86_64-unknown-linux-musl/release/probe}
round=${SECONDS_PER_ROUND:-15}
[[ -x $probe ]] || { echo "soak: no $probe: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "soak: python3 is missing" >&2; exit 1; }
# shellcheck source=../scripts/cross-env.sh
source "$root/scripts/cross-env.sh"
cargo build --release --quiet --example collect_load --target x86_64-unknown-linux-musl --manifest-path "$root/Cargo.toml"
load=$target/x86_64-unknown-linux-musl/release/examples/collect_load
# shellcheck source=bench/scratch.sh
source "$root/bench/scratch.sh"
dir=$(scratch)
(umask 077; head -c 32 /dev/urandom | base64 >"$dir/token")
"$probe" collect --listen 127.0.0.1:0 --token-file "$dir/token" --data "$dir/data" --rate-limit 0 --ec2 off 2>"$dir/err" >/dev/null &
pid=$!
attackers=
trap 'kill "$pid" $attackers 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q listening "$dir/err" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$dir/err")
port=${url##*:}
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status"; }
echo "probe collect on $url, $(nproc) cores; memory at start: $(rss)"

# The hostile clients: per address 40 connections, a third idle, a third slow headers, a
# third declaring 1 MiB of signed-looking body and sending a byte a second. Each stops at
# the deadline by itself.
python3 - "$port" $((round * 3 + 5)) >"$dir/attack.log" 2>&1 <<'PY' &
import socket, sys, threading, time
port, deadline = int(sys.argv[1]), time.time() + int(sys.argv[2])
cut = [0]
def client(source, kind):
    while time.time() < deadline:
        try:
            s = socket.socket()
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            s.settimeout(1.0)
            if kind == 2:
                ts = int(time.time())
                s.sendall((f"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                           f"x-probe-timestamp: {ts}\r\nx-probe-signature: {'0' * 64}\r\n\r\n").encode())
                trickle = b"{" * 1000
            elif kind == 1:
                trickle = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
            else:
                trickle = b""
            for i in range(1000):
                if time.time() > deadline:
                    break
                if trickle:
                    s.sendall(trickle[i:i + 1])
                try:
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    pass
            s.close()
            cut[0] += 1
        except OSError:
            cut[0] += 1
            time.sleep(0.5)
threads = [threading.Thread(target=client, args=(f"127.0.0.{2 + a}", n % 3), daemon=True)
           for a in range(40) for n in range(40)]
for t in threads:
    t.start()
while time.time() < deadline:
    time.sleep(1)
print(f"hostile clients: {len(threads)} from 40 addresses, each cut off and back again; {cut[0]} connections ended")
PY
attackers=$!
sleep 3
fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
echo "hostile clients started: $(fds) descriptors open in the collector"
for n in 1 2 3; do
  # About SECONDS_PER_ROUND at 5,000 reports/s.
  "$load" "$url" "$dir/token" $((round * 5000)) 8 | sed "s/^/  round $n: /"
  echo "  round $n: collector memory $(rss), $(fds) descriptors open"
done
wait "$attackers" 2>/dev/null || true
attackers=
cat "$dir/attack.log"
echo "targets: signed reports' p99 under 50 ms while the hostile clients hold on; memory flat"
