#!/usr/bin/env bash
# Benchmark of the check engine's concurrency: N addresses whose packets are silently
# dropped, checked in one run. With every address in flight at once the run takes one
# --timeout however many there are; in waves of 64 it took one timeout per wave.
# Prints the wall time (median of RUNS) for 200 and 1,000 addresses, and the same with
# --concurrency 64 for comparison. Run as root: it builds two network namespaces with no
# link to the host's, and removes them on exit.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
probe=${PROBE:-${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-musl/release/probe}
runs=${RUNS:-3}
timeout=${TIMEOUT:-1s}
[[ -x $probe ]] || { echo "bench: no $probe: cargo build --release --target x86_64-unknown-linux-musl, or set PROBE" >&2; exit 1; }
[[ $EUID -eq 0 ]] || { echo "bench: run as root: it builds network namespaces" >&2; exit 1; }
command -v ip >/dev/null || { echo "bench: ip is missing: apt-get install iproute2" >&2; exit 1; }

agent=probe-unreach-$$-a sink=probe-unreach-$$-b
cleanup() { ip netns del "$agent" 2>/dev/null || true; ip netns del "$sink" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$agent"
ip netns add "$sink"
ip link add va netns "$agent" type veth peer name vb netns "$sink"
ip -n "$agent" link set lo up
ip -n "$agent" addr add 10.98.0.1/24 dev va
ip -n "$agent" link set va up
ip -n "$sink" addr add 10.98.0.2/24 dev vb
ip -n "$sink" link set vb up
# The sink does not forward (a new namespace has ip_forward off): whatever is routed to it
# for 10.99.0.0/16 is dropped without an answer, as a security group drops it.
ip -n "$agent" route add 10.99.0.0/16 via 10.98.0.2

targets() { # n
  local i
  for ((i = 0; i < $1; i++)); do echo "tcp://10.99.$((i / 250)).$((i % 250 + 1)):443"; done
}

once() { # n extra-args... ; prints milliseconds
  local n=$1; shift
  mapfile -t t < <(targets "$n")
  ip netns exec "$agent" bash -c '
    start=$(date +%s%N)
    "$@" >/dev/null || true
    echo $(( ($(date +%s%N) - start) / 1000000 ))' _ \
    "$probe" check --no-imds --ec2 off --timeout "$timeout" -o json "$@" "${t[@]}"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # n label extra-args...
  local n=$1 label=$2; shift 2
  local ms
  ms=$(for _ in $(seq "$runs"); do once "$n" "$@"; done | median)
  printf '  %-34s %5d addresses: %6d ms (median of %d)\n' "$label" "$n" "$ms" "$runs"
}

echo "unreachable addresses, --timeout $timeout, $(basename "$probe") $("$probe" --version | cut -d' ' -f2-)"
for n in 200 1000; do
  measure "$n" "default (open-file limit)"
done
for n in 200 1000; do
  measure "$n" "--concurrency 64 (the old fixed)" --concurrency 64
done
