#!/usr/bin/env bash
# Walks the tutorial "AWS - VPC (2): Endpoint" in the emulated VPCs: builds probe, builds the
# lab, and at every step runs `probe check` on the public and the private instance, with the
# verdicts the tutorial observed as expectations. Run as root: sudo lab/tutorial.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "tutorial.sh: the lab builds network namespaces and needs root: sudo $0" >&2; exit 1; }
"$root/lab/packages.sh"
# shellcheck source=names.env
source "$root/lab/names.env"

echo "Building probe (the first build takes a few minutes)..." >&2
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
probe="${CARGO_TARGET_DIR:-$root/target}/release/probe"

id=demo$((RANDOM % 1000))
trap '"$root/lab/lab.sh" down "$id"' EXIT
"$root/lab/lab.sh" up "$id"
ca=/tmp/probe-lab-$id/ca.pem

run() { # step role expectations...
  local role=$1; shift
  echo
  echo "--- on the $role instance ($([[ $role == pub ]] && echo "$PUB_IP" || echo "$PRIV_IP")):"
  # No --region or --vpc-cidr: probe reads them from the instance metadata, and the route
  # table and endpoints from the lab's EC2 API.
  "$root/lab/lab.sh" exec "$id" "$role" "$probe" check --ca-file "$ca" --timeout 1s -o table "$@" || true
}

nlb="http://$NLB_NAME/"
svc="http://$SVC_VPCE_NAME/"
step() {
  "$root/lab/lab.sh" step "$id" "$1"
  echo
  echo "================================================================================"
  echo "STEP $1: $2"
  echo "================================================================================"
}

step base "no endpoint yet; the private subnet's route table has only the local route"
run pub s3 cloudformation "$nlb" --expect s3=public --expect cloudformation=public --expect "$nlb=public"
run priv s3 cloudformation "$nlb" --expect s3=unreachable --expect cloudformation=unreachable --expect "$nlb=unreachable"

step gateway "S3 gateway endpoint: a prefix-list route to the vpce in both route tables; DNS unchanged"
run priv s3 cloudformation --expect s3=gateway-endpoint --expect cloudformation=unreachable

step interface "CloudFormation interface endpoint, Private DNS on: the service name now answers with the ENIs"
run pub cloudformation "$CF_VPCE_A_NAME" --expect cloudformation=interface-endpoint --expect "$CF_VPCE_A_NAME=interface-endpoint"
run priv s3 cloudformation --expect s3=gateway-endpoint --expect cloudformation=interface-endpoint

step private-dns-off "the same endpoint with Private DNS off: only the vpce names are private"
run priv cloudformation "$CF_VPCE_NAME" --expect cloudformation=unreachable --expect "$CF_VPCE_NAME=interface-endpoint"

step privatelink "endpoint service (PrivateLink) for the NLB in the second VPC, accepted"
run pub "$nlb" "$svc" --expect "$nlb=public" --expect "$svc=interface-endpoint"
run priv "$nlb" "$svc" --expect "$nlb=unreachable" --expect "$svc=interface-endpoint"
