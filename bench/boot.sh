#!/usr/bin/env bash
# Benchmark of the delivery: the time from an instance's start to its first report at the
# operator's collector, with the relay already up. The lab's private instance is booted for
# real (systemd, cloud-init, the UserData `probe userdata` renders) with systemd-nspawn in the
# lab's private-instance namespace; the relay on the public instance serves probe. Prints the
# time to cloud-init's end, to the verified download, to the install and to the first report,
# per run and their medians. Run as root after scripts/test.sh (or `cargo build --release
# --target x86_64-unknown-linux-musl`). Target: the first report within 15 s.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
probe=${PROBE:-$target/x86_64-unknown-linux-musl/release/probe}
runs=${RUNS:-3}
die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "the lab and the boot need root"
[[ -x $probe ]] || die "no $probe: cargo build --release --target x86_64-unknown-linux-musl"
for t in systemd-nspawn curl python3; do command -v "$t" >/dev/null || die "$t is missing: run .ci/run"; done
"$root/lab/packages.sh"
rootfs=$("$root/lab/rootfs.sh")
# shellcheck source=../lab/names.env
source "$root/lab/names.env"

id=boot$((RANDOM % 100))
dir=/tmp/probe-lab-$id
nspawn=
cleanup() {
  if [[ -n $nspawn ]] && kill -0 "$nspawn" 2>/dev/null; then
    leader=$(cat /proc/"$nspawn"/task/*/children 2>/dev/null | awk '{print $1}' | head -n 1)
    [[ -n $leader ]] && kill -KILL "$leader" 2>/dev/null
    wait "$nspawn" 2>/dev/null || true
  fi
  "$root/lab/lab.sh" down "$id"
}
trap cleanup EXIT
"$root/lab/lab.sh" up "$id" >/dev/null
token=$dir/collector.token
head -c 32 /dev/urandom | base64 >"$token"
"$root/lab/lab.sh" start "$id" inet operator "$probe" collect --listen "$OPERATOR_IP:7878" \
  --token-file "$token" --data "$dir/operator" --ec2 off
"$root/lab/lab.sh" start "$id" pub relay "$probe" collect --listen "$PUB_IP:7878" \
  --token-file "$token" --data "$dir/relay" --forward "http://$OPERATOR_IP:7878"
for _ in $(seq 100); do
  [[ $("$root/lab/lab.sh" exec "$id" priv curl -s -o /dev/null -w "%{http_code}" "http://$PUB_IP:7878/v1/reports") != 000 ]] && break
  sleep 0.1
done
sha=$(sha256sum "$probe" | cut -d' ' -f1)
mkdir -p "$dir/seed"
"$probe" userdata --source "http://$PUB_IP:7878/v1/probe" --sha256 "x86_64=$sha" --token-file "$token" \
  --ca-file "$dir/ca.pem" -- s3 cloudformation --report-to "http://$PUB_IP:7878" --every 60s --console \
  --timeout 1s --ec2 off >"$dir/seed/user-data" 2>/dev/null
printf 'instance-id: i-bench\nlocal-hostname: private-ec2\n' >"$dir/seed/meta-data"
instance=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["instances"]["priv"])' "$dir/ec2.json")

ms() { echo $((($(date +%s%N) - start) / 1000000)); }
# Milliseconds since start when the console first shows $1, or "-" after 60 s.
when() {
  while ((($(date +%s%N) - start) / 1000000000 < 60)); do
    grep -q "$1" "$dir/console.log" 2>/dev/null && { ms; return; }
    sleep 0.05
  done
  echo -
}
results=()
for run in $(seq "$runs"); do
  : >"$dir/console.log"
  start=$(date +%s%N)
  systemd-nspawn --quiet --register=no --keep-unit --boot --console=read-only --volatile=overlay \
    --resolv-conf=off --timezone=off --directory="$rootfs" --machine="probe-$id" \
    --network-namespace-path="/run/netns/pl$id-priv" \
    --bind-ro="$dir/seed:/var/lib/cloud/seed/nocloud" \
    --bind-ro="/etc/netns/pl$id-priv/resolv.conf:/etc/resolv.conf" \
    </dev/null >"$dir/console.log" 2>&1 &
  nspawn=$!
  cloud=$(when 'Cloud-init v. .* finished')
  fetched=$(when '"result":"ok"')
  installed=$(when '"result":"installed"')
  first=-
  while ((($(date +%s%N) - start) / 1000000000 < 60)); do
    count=$("$root/lab/lab.sh" exec "$id" inet curl -sf "http://$OPERATOR_IP:7878/v1/reports?instance=$instance&limit=1000" |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)["reports"]))' 2>/dev/null || echo 0)
    # Each boot is a fresh disk with the same instance id: its own first report is the run-th.
    if ((count >= run)); then first=$(ms); break; fi
    sleep 0.1
  done
  echo "run $run: cloud-init done ${cloud} ms, probe verified ${fetched} ms, service installed ${installed} ms, first report at the laptop ${first} ms"
  results+=("$first")
  leader=$(cat /proc/"$nspawn"/task/*/children 2>/dev/null | awk '{print $1}' | head -n 1)
  [[ -n $leader ]] && kill -s RTMIN+4 "$leader" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$nspawn" 2>/dev/null && { leader=$(cat /proc/"$nspawn"/task/*/children 2>/dev/null | awk '{print $1}' | head -n 1); [[ -n $leader ]] && kill -KILL "$leader"; }
  wait "$nspawn" 2>/dev/null || true
  nspawn=
done
median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
echo "instance start -> first report at the laptop, relay up: median ${median} ms over $runs runs (target: under 15000 ms)"
