#!/usr/bin/env bash
# Benchmark of `probe check` against the tutorial's sequential dig/ping/curl, in the lab.
#   1. private instance, no endpoint: S3, CloudFormation and the NLB all time out
#   2. public instance, interface-endpoint step: everything answers
# Prints wall times, their ratio, the targets, peak memory and the release binary's size.
# Run as root after `cargo build --release --target x86_64-unknown-linux-musl`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
probe=${PROBE:-${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-musl/release/probe}
runs=${RUNS:-5}
[[ -x $probe ]] || { echo "bench: no $probe: cargo build --release --target x86_64-unknown-linux-musl" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench: /usr/bin/time is missing: apt-get install time" >&2; exit 1; }
"$root/lab/packages.sh"
# shellcheck source=../lab/names.env
source "$root/lab/names.env"
id=bench$((RANDOM % 100))
trap '"$root/lab/lab.sh" down "$id"' EXIT
"$root/lab/lab.sh" up "$id" >/dev/null
ca=/tmp/probe-lab-$id/ca.pem
lab() { "$root/lab/lab.sh" exec "$id" "$@"; }
urls=("https://$S3_NAME/" "https://$CF_NAME/" "http://$NLB_NAME/")

# The tutorial's manual loop, as a script run on the instance; prints milliseconds.
sequential() {
  lab "$1" bash -c '
    start=$(date +%s%N)
    for url in "$@"; do
      host=${url#*://}; host=${host%%/*}
      dig +short "$host" >/dev/null
      ping -c 2 -W 2 "$host" >/dev/null 2>&1 || true
      curl -s -o /dev/null -m 2 --cacert '"$ca"' "$url" || true
    done
    echo $(( ($(date +%s%N) - start) / 1000000 ))' _ "${urls[@]}"
}

# The slowest single curl of the three; prints milliseconds.
slowest_curl() {
  lab "$1" bash -c '
    worst=0
    for url in "$@"; do
      start=$(date +%s%N)
      curl -s -o /dev/null -m 2 --cacert '"$ca"' "$url" || true
      t=$(( ($(date +%s%N) - start) / 1000000 )); (( t > worst )) && worst=$t
    done
    echo $worst' _ "${urls[@]}"
}

# One probe run of the same targets; prints "milliseconds peak-KiB". Extra arguments after
# the role go to probe; PROBE_ENV adds environment variables (VAR=value ...).
probe_once() {
  local role=$1; shift
  lab "$role" env ${PROBE_ENV:-} bash -c '
    start=$(date +%s%N)
    /usr/bin/time -f %M -o /tmp/probe-bench-rss "$@" >/dev/null || true
    echo $(( ($(date +%s%N) - start) / 1000000 )) $(tail -n1 /tmp/probe-bench-rss)' _ \
    "$probe" check --ca-file "$ca" --timeout 2s -o json "$@" "${urls[@]}"
}

# Median milliseconds of probe runs; PROBE_ARGS are extra probe arguments.
probe_median() {
  local role=$1 p r
  for _ in $(seq "$runs"); do
    read -r p r < <(probe_once "$role" ${PROBE_ARGS:-})
    echo "$p"
  done | median
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # role label
  local role=$1 label=$2 seq probes=() rss=0 p r curl
  seq=$(for _ in $(seq "$runs"); do sequential "$role"; done | median)
  curl=$(for _ in $(seq "$runs"); do slowest_curl "$role"; done | median)
  for _ in $(seq "$runs"); do
    read -r p r < <(probe_once "$role" ${PROBE_ARGS:-})
    probes+=("$p"); (( r > rss )) && rss=$r
  done
  p=$(printf '%s\n' "${probes[@]}" | median)
  printf '%s\n' "$label"
  printf '  sequential dig + ping -c 2 -W 2 + curl -m 2, 3 names: %6d ms (median of %d)\n' "$seq" "$runs"
  printf '  probe check, same 3 targets, --timeout 2s%s: %6d ms (median of %d)\n' "${PROBE_ARGS:+ $PROBE_ARGS}" "$p" "$runs"
  printf '  speed-up: %.1fx\n' "$(echo "$seq / $p" | bc -l)"
  printf '  slowest single curl: %d ms; probe minus that: %d ms\n' "$curl" $(( p - curl ))
  printf '  probe peak memory: %.1f MB (max RSS over %d runs)\n' "$(echo "$rss / 1024" | bc -l)" "$runs"
  LAST_PROBE=$p LAST_CURL=$curl LAST_RSS=$rss
}

echo "probe $("$probe" --version | cut -d' ' -f2), $(nproc) cores, $runs runs each"
echo
measure priv "1. private instance, before any endpoint (everything times out; metadata and EC2 API answer)"
echo "  target: probe <= 1.25 x the longest stage (ping: 10 ms + 2 s = 2010 ms) = 2512 ms: $( ((LAST_PROBE <= 2512)) && echo met || echo MISSED)"
rss1=$LAST_RSS
base1=$LAST_PROBE
# No metadata service and no EC2 API: the metadata endpoint is an address of the private
# subnet that no host answers (inside the lab), so the request waits out its timeout.
none=$(PROBE_ENV="AWS_EC2_METADATA_SERVICE_ENDPOINT=http://10.10.1.99" PROBE_ARGS="--region $REGION --vpc-cidr $VPC_CIDR" probe_median priv)
echo "  the same with no metadata service and no EC2 API: $none ms; context cost $((none - base1)) ms (target: at most one short timeout, 500 ms): $( ((none - base1 <= 500 + 50)) && echo met || echo MISSED)"
"$root/lab/lab.sh" step "$id" interface >/dev/null
echo
PROBE_ARGS="--ec2 off" measure pub "2. public instance, interface endpoint step (everything answers)"
echo "  target: probe <= slowest curl + 50 ms: $( ((LAST_PROBE <= LAST_CURL + 50)) && echo met || echo MISSED)"
with=$(probe_median pub)
echo "  with the metadata and the EC2 API (moto) read as well: $with ms; context cost $((with - LAST_PROBE)) ms (metadata: 3 round trips; EC2: 10 calls at once, alongside the checks)"
# AWS answers in tens of milliseconds; moto in Python on these two cores answers one call
# after another. With every answer held 100 ms (each on its own thread), the EC2 API's cost
# is its round trips: the 10 calls at once, then the prefix lists' entries.
echo 100 >"/tmp/probe-lab-$id/ec2-delay-ms"
slow=$(probe_median pub)
rm -f "/tmp/probe-lab-$id/ec2-delay-ms"
echo "  with every EC2 API answer held 100 ms: $slow ms; EC2 cost $((slow - with)) ms more (target: 2 round trips, 200 ms + 10 %; 11 calls one after another would add 1100 ms): $( ((slow - with <= 220)) && echo met || echo MISSED)"
echo
peak=$(( rss1 > LAST_RSS ? rss1 : LAST_RSS ))
size=$(stat -c %s "$probe")
printf 'peak memory %.1f MB (target < 12 MB): %s\n' "$(echo "$peak / 1024" | bc -l)" "$( ((peak < 12 * 1024)) && echo met || echo MISSED)"
printf 'static musl release binary %.2f MB (target < 7 MB): %s\n' "$(echo "$size / 1048576" | bc -l)" "$( ((size < 7 * 1048576)) && echo met || echo MISSED)"
