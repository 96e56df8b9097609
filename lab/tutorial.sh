#!/usr/bin/env bash
# Walks the tutorial "AWS - VPC (2): Endpoint" in the emulated VPCs: builds probe, builds the
# lab, and at every step runs `probe check` on the public and the private instance, with the
# verdicts the tutorial observed as expectations; then four faults, where the VPC's
# configuration (read from the lab's EC2 API) is the expectation. Every report goes through a relay on the
# public instance to `probe collect` on the operator's laptop (on the lab's internet), whose
# view of the changes is printed at the end. Needs root (network namespaces): from a user
# account it asks sudo.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "tutorial.sh: $*" >&2; exit 1; }
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || die "the lab builds network namespaces and needs root: run this as root"
  # root's HOME is not the user's: name the user's Rust toolchain for root to use.
  export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,CARGO_TARGET_DIR,PROBE_VENV "$0" "$@"
fi
# Everything it needs, before the long build.
command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
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
token=/tmp/probe-lab-$id/collector.token
(umask 077 && head -c 32 /dev/urandom | base64 >"$token")
"$root/lab/lab.sh" start "$id" inet operator "$probe" collect --listen "$OPERATOR_IP:7878" \
  --token-file "$token" --data "/tmp/probe-lab-$id/operator" --ec2 off
"$root/lab/lab.sh" start "$id" pub relay "$probe" collect --listen "$PUB_IP:7878" \
  --token-file "$token" --data "/tmp/probe-lab-$id/relay" --forward "http://$OPERATOR_IP:7878"

run() { # step role expectations...
  local role=$1; shift
  echo
  echo "--- on the $role instance ($([[ $role == pub ]] && echo "$PUB_IP" || echo "$PRIV_IP")):"
  # No --region or --vpc-cidr: probe reads them from the instance metadata, and the route
  # table and endpoints from the lab's EC2 API.
  "$root/lab/lab.sh" exec "$id" "$role" "$probe" check --ca-file "$ca" --timeout 1s -o table \
    --report-to "http://$PUB_IP:7878" --token-file "$token" --spool "/tmp/probe-lab-$id/spool-$role" "$@" || true
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

# Faults on top of the last step, each in the packets and in the EC2 API alike. With
# --expect auto the configuration's prediction is the expectation.
step endpoint-sg "the endpoints' security group admits HTTPS from the public subnet only"
run priv "$CF_VPCE_NAME" --expect auto
step network-acl "the private subnet's network ACL denies HTTPS to the S3 prefix (rule $NACL_DENY_RULE) and the PrivateLink ENI's answers (rule $NACL_ANSWER_RULE)"
run priv s3 "$svc" --expect auto
step pending-acceptance "the PrivateLink endpoint awaits the service owner's acceptance"
run pub "$svc" --expect auto
step service-down "the NLB behind the endpoint service stops answering: the configuration cannot show it"
run pub "$svc" --expect auto

echo
echo "================================================================================"
echo "The operator's collector ($OPERATOR_IP:7878, reports relayed by the public instance):"
echo "================================================================================"
sleep 1
cat "/tmp/probe-lab-$id/log/operator.log"
