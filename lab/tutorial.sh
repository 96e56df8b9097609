#!/usr/bin/env bash
# Walks the tutorial "AWS - VPC (2): Endpoint" in the emulated VPCs: builds probe, builds the
# lab, and at every step runs `probe check` on the public and the private instance, with the
# verdicts the tutorial observed as expectations; then faults and other forms of rules, where
# the VPC's configuration (read from the lab's EC2 API) is the expectation; then routes out by
# a NAT gateway, a peering connection and a transit gateway; then IPv6. Every report goes through a
# relay on the public instance to `probe collect` on the operator's laptop (on the lab's
# internet), whose view of the changes is printed at the end. Exits 1 when any check ends
# otherwise than the tutorial says. Needs root (network namespaces): from a user account it
# asks sudo. PROBE=path runs that binary instead of building one (the tests do).
set -euo pipefail
# The project's Python is its own .venv (scripts/python-env.sh): a caller's PYTHONPATH or
# PYTHONHOME (other versions of moto or cfn-lint, say) would be read before it.
unset PYTHONPATH PYTHONHOME
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "tutorial.sh: $*" >&2; exit 1; }
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || die "the lab builds network namespaces and needs root: run this as root"
  # root's HOME is not the user's: name the user's Rust toolchain for root to use.
  export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME,CARGO_TARGET_DIR,PROBE_VENV,PROBE "$0" "$@"
fi
probe=${PROBE:-}
# Everything it needs, before the long build.
if [[ -n $probe ]]; then
  [[ -x $probe ]] || die "PROBE=$probe is not an executable: build probe, or leave PROBE unset"
else
  command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
fi
"$root/lab/packages.sh"
# shellcheck source=names.env
source "$root/lab/names.env"

if [[ -z $probe ]]; then
  echo "Building probe (the first build takes a few minutes)..." >&2
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  probe="${CARGO_TARGET_DIR:-$root/target}/release/probe"
fi

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

surprises=0
run() { # role [--fails] targets and expectations...
  local role=$1 want=0 got=0; shift
  # --fails: a verdict must fail (exit 1), where the packets part from the configuration.
  [[ $1 == --fails ]] && want=1 && shift
  echo
  echo "--- on the $role instance ($([[ $role == pub ]] && echo "$PUB_IP" || echo "$PRIV_IP")):"
  # No --region or --vpc-cidr: probe reads them from the instance metadata, and the route
  # table and endpoints from the lab's EC2 API.
  "$root/lab/lab.sh" exec "$id" "$role" "$probe" check --ca-file "$ca" --timeout 1s -o table \
    --report-to "http://$PUB_IP:7878" --token-file "$token" --spool "/tmp/probe-lab-$id/spool-$role" "$@" || got=$?
  if ((got != want)); then
    echo "tutorial.sh: this check exited $got, the tutorial expects $want" >&2
    surprises=$((surprises + 1))
  fi
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
run pub --fails "$svc" --expect auto
step sg-forms "rules that name a group (the instances'), a customer-managed prefix list (the public subnet) and an IPv6 range"
run priv "$CF_VPCE_NAME" "$svc" --expect auto
step multi-eni "the private instance gets a second interface in the public subnet, in a group that lets out SSH only"
run priv "$CF_VPCE_NAME" "$CF_VPCE_A_NAME" "$svc" --expect auto
step endpoint-policy "S3's gateway endpoint allows GetObject in one bucket; CloudFormation's denies everything: 403s from the policies"
run priv s3 "$CF_VPCE_NAME" --expect auto

# Other routes out of the VPC.
web="http://$WEB1_NAME/"
step nat-gateway "the private subnet's 0.0.0.0/0 goes to a NAT gateway in the public subnet; S3's prefix list still wins"
run priv s3 cloudformation "$nlb" --expect s3=gateway-endpoint --expect cloudformation=nat-gateway --expect "$nlb=nat-gateway"
step nat-instance "the private subnet's 0.0.0.0/0 goes to a NAT instance's network interface instead: an appliance"
run priv cloudformation --expect cloudformation=private
step instance-route "the private subnet's 0.0.0.0/0 goes to the public instance by its instance id: an appliance too"
run priv cloudformation --expect cloudformation=private
step peering "the second VPC ($VPC2_CIDR, public address space) over a peering connection, from both subnets"
run priv "$web" --expect "$web=peering"
step transit-gateway "the second VPC through a transit gateway instead"
run priv "$web" --expect "$web=transit-gateway"
step vpn-gateway "the second VPC as a network on premises, over a VPN's virtual private gateway"
run priv "$web" --expect "$web=private"
step blackhole "the private subnet's 0.0.0.0/0 goes to a NAT gateway that has been deleted"
run priv "$nlb" --expect auto

# IPv6.
step dual-stack "IPv6 everywhere; S3's dual-stack name: A by the gateway endpoint, AAAA by the egress-only internet gateway"
run priv "$S3_DUALSTACK_NAME" --expect auto
step dual-stack-endpoint "the gateway endpoint made dual-stack: S3's IPv6 prefix list is routed to it too"
run priv "$S3_DUALSTACK_NAME" --expect auto

# A spoke of a transit gateway.
step transit-egress "a spoke without an S3 gateway endpoint: 0.0.0.0/0 to the transit gateway, the second VPC NATs it out"
run priv s3 --expect s3=transit-gateway

echo
echo "================================================================================"
echo "The operator's collector ($OPERATOR_IP:7878, reports relayed by the public instance):"
echo "================================================================================"
sleep 1
cat "/tmp/probe-lab-$id/log/operator.log"
if ((surprises)); then
  die "$surprises check(s) ended otherwise than the tutorial says (see above)"
fi
echo
echo "Every check ended as the tutorial says."
