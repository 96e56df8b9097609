#!/usr/bin/env bash
# The tutorial's two VPCs, emulated with Linux network namespaces that have no link to the
# host namespace. Needs root, iproute2, dnsmasq, openssl, python3 and dig.
#
#   lab.sh up ID          build the hosts, links, routes, resolver and servers; step "base"
#   lab.sh step ID STEP   switch to a step: the tutorial's (base gateway interface
#                         private-dns-off privatelink), then faults on top of privatelink
#                         (endpoint-sg network-acl pending-acceptance service-down sg-forms
#                         multi-eni endpoint-policy), then other routes on top of it
#                         (nat-gateway nat-instance instance-route peering transit-gateway
#                         vpn-gateway blackhole),
#                         then IPv6 (dual-stack dual-stack-endpoint), then a spoke that sends
#                         everything to the transit gateway (transit-egress)
#   lab.sh exec ID ROLE CMD...   run CMD on a lab host (pub, priv, router, vpce, inet, vpc2, nat, tgw)
#   lab.sh start ID ROLE NAME CMD...   start CMD in the background on a lab host; its PID is
#                         recorded (ended by down), its output goes to /tmp/probe-lab-ID/log/NAME.log
#   lab.sh down ID        end the lab's processes (by recorded PID) and delete its namespaces
#
# Hosts (one namespace each, names pl<ID>-<role>):
#   pub     public-subnet instance 10.10.0.10, default route to the VPC router
#   priv    private-subnet instance 10.10.1.10, default route to the VPC router
#   router  VPC router: one bridge per subnet, the public route table (main: local +
#           0.0.0.0/0 -> internet) and the private one (table 101: local only, the rest
#           dropped silently as AWS does); the VPC resolver (dnsmasq) at 10.10.0.2
#   vpce    interface endpoint ENIs 10.10.0.100 / 10.10.1.100 (HTTPS for CloudFormation,
#           no answer to ping), the PrivateLink ENI 10.10.0.200 (TCP 80 -> the NLB), and the
#           EC2 API (moto, seeded per step by ec2_fixture.py) at 10.10.0.150:5000
# pub and priv each have an IMDSv2 server at 169.254.169.254 on their own loopback.
#   inet    the internet: public S3 and CloudFormation front ends, and the operator's laptop
#           (203.0.113.50), where probe collect runs
#   vpc2    the second VPC: two web servers behind an NLB (public 203.0.113.30, private 20.20.0.50);
#           reached from the VPC router over a peering link in step peering, through tgw in
#           step transit-gateway, and never from the internet by its private addresses
#   nat     the NAT gateway, 10.10.0.20 in the public subnet: it forwards what the private route
#           table sends it (step nat-gateway) from its Elastic IP 192.0.2.88 (nftables SNAT); in
#           step nat-instance the same host is a NAT instance's network interface
#   tgw     the transit gateway between the VPC router and the second VPC; in step
#           transit-egress the second VPC is also the egress VPC (it NATs to the internet)
# The internet routes back to the public subnet and the NAT's Elastic IP only; the S3 front end
# answers the whole VPC (the way back of its gateway endpoint).
#
# Firewalls are enforced as AWS does, by silent drops: policy routing rules of type blackhole
# at preference FAULT (a network ACL's rule number works the same way: ordered, first match).
# The endpoints' security group is on the vpce host, the private subnet's network ACL on the
# router; the hosts that drop traffic to their own addresses look up the local table after
# those rules (at LOCAL), not before them.
set -euo pipefail
# The project's Python is its own .venv (scripts/python-env.sh): a caller's PYTHONPATH or
# PYTHONHOME (other versions of moto or cfn-lint, say) would be read before it.
unset PYTHONPATH PYTHONHOME

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=names.env
source "$here/names.env"
ROLES=(router pub priv vpce inet vpc2 nat tgw)

die() { echo "lab.sh: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || die "usage: lab.sh up|step|exec|start|down ID [...]"
cmd=$1 ID=$2
shift 2
[[ $ID =~ ^[a-z0-9]{1,8}$ ]] || die "lab id '$ID': use 1 to 8 lowercase letters or digits"
DIR=/tmp/probe-lab-$ID
EC2_URL=http://$EC2_API_IP:$EC2_API_PORT
# The project's own Python environment (pinned moto): never the system's packages.
py=$("$here/../scripts/python-env.sh")

FAULT=90 LOCAL=1000
ns() { echo "pl$ID-$1"; }
on() { local role=$1; shift; ip netns exec "$(ns "$role")" "$@"; }
R() { ip -n "$(ns router)" "$@"; }

# A source NAT on host $1, in nftables table $2: what matches $3 leaves from address $4.
snat() {
  on "$1" nft -f - <<EOF
table ip $2 {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    $3 snat to $4
  }
}
EOF
}

# A veth pair created inside lab namespaces: the host namespace never holds either end.
link() {
  ip -n "$(ns "$1")" link add "$2" type veth peer name "$4" netns "$(ns "$3")"
  ip -n "$(ns "$1")" link set "$2" up
  ip -n "$(ns "$3")" link set "$4" up
}

# Starts a long-running process on a lab host and records its PID, role and name.
start() {
  local role=$1 name=$2; shift 2
  ip netns exec "$(ns "$role")" "$@" >"$DIR/log/$name.log" 2>&1 &
  echo "$! $role $name" >>"$DIR/pids"
}

# Ends one recorded process, only while it still runs inside this lab's namespace.
stop_pid() {
  local pid=$1 role=$2
  [[ "$(ip netns identify "$pid" 2>/dev/null)" == "$(ns "$role")" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  [[ "$(ip netns identify "$pid" 2>/dev/null)" == "$(ns "$role")" ]] && kill -KILL "$pid" 2>/dev/null
  return 0
}

wait_tcp() {
  local role=$1 ip=$2 port=$3
  for _ in $(seq 200); do
    on "$role" bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null && return 0
    sleep 0.05
  done
  die "nothing listens on $ip:$port in $(ns "$role"); see $DIR/log"
}

cert() {
  local name=$1 sans=$2
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$DIR/$name.key" \
    -out "$DIR/$name.csr" -subj "/CN=${sans%%,*}" 2>/dev/null
  local dns="" s
  IFS=, read -ra list <<<"$sans"
  for s in "${list[@]}"; do dns+="${dns:+,}DNS:$s"; done
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$dns" >"$DIR/$name.ext"
  openssl x509 -req -in "$DIR/$name.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 7 -extfile "$DIR/$name.ext" -out "$DIR/$name.pem" 2>/dev/null
}

up() {
  [[ $(id -u) == 0 ]] || die "the lab builds network namespaces and needs root: run it with sudo"
  local t
  for t in ip dnsmasq openssl python3 dig nft; do
    command -v "$t" >/dev/null || die "$t is missing: run .ci/run, or apt-get install iproute2 dnsmasq-base openssl bind9-dnsutils nftables"
  done
  for t in "${ROLES[@]}"; do
    ! ip netns list | grep -qw "$(ns "$t")" || die "lab $ID exists already: run lab.sh down $ID first"
  done
  rm -rf "$DIR"
  mkdir -p "$DIR/log"
  : >"$DIR/pids"

  for t in "${ROLES[@]}"; do
    ip netns add "$(ns "$t")"
    ip -n "$(ns "$t")" link set lo up
    # No duplicate address detection: an IPv6 address is usable the moment it is added.
    on "$t" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  # ip netns exec mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf: every lab host
  # asks the VPC resolver, none ever reads the host's.
  for t in "${ROLES[@]}"; do
    mkdir -p "/etc/netns/$(ns "$t")"
    echo "nameserver $RESOLVER_IP" >"/etc/netns/$(ns "$t")/resolv.conf"
  done

  # VPC router: a bridge per subnet.
  on router sysctl -qw net.ipv4.ip_forward=1
  # Fixed addresses: a bridge otherwise takes its lowest port's, and would change it (and leave
  # the hosts' neighbour caches stale) when a port comes or goes, as in step multi-eni.
  R link add br-pub address 02:10:10:00:00:01 type bridge && R link set br-pub up
  R link add br-priv address 02:10:10:01:00:01 type bridge && R link set br-priv up
  link router p-pub pub eth0 && R link set p-pub master br-pub
  link router p-priv priv eth0 && R link set p-priv master br-priv
  link router p-vpce0 vpce eth0 && R link set p-vpce0 master br-pub
  link router p-vpce1 vpce eth1 && R link set p-vpce1 master br-priv
  link router p-nat nat eth0 && R link set p-nat master br-pub
  link router to-inet inet to-vpc
  link router to-pcx vpc2 to-pcx
  link router to-tgw tgw to-vpc
  link tgw to-vpc2 vpc2 to-tgw
  R addr add 10.10.0.1/24 dev br-pub
  R addr add "$RESOLVER_IP/24" dev br-pub
  R addr add 10.10.1.1/24 dev br-priv
  R addr add 100.64.0.1/30 dev to-inet
  R addr add 100.64.3.1/30 dev to-pcx
  R addr add 100.64.4.1/30 dev to-tgw
  # Public subnet's route table: local + 0.0.0.0/0 -> IGW.
  R route add default via 100.64.0.2
  # What comes back to the NAT gateway's Elastic IP goes to it.
  R route add "$NAT_PUBLIC_IP/32" via "$NAT_IP"
  # Private subnet's route table: local only; everything else is dropped without a word.
  R route add "$PUB_SUBNET" dev br-pub table 101
  R route add "$PRIV_SUBNET" dev br-priv table 101
  R route add blackhole default table 101
  R rule add iif br-priv lookup 101 pref 100
  # IPv6, the same tables: the public one's ::/0 to the internet gateway, the private one's
  # local only (steps dual-stack*: ::/0 to the egress-only gateway).
  on router sysctl -qw net.ipv6.conf.all.forwarding=1
  R -6 addr add 2001:db8:1010::1/64 dev br-pub nodad
  R -6 addr add 2001:db8:1010:1::1/64 dev br-priv nodad
  R -6 addr add fd00:64::1/64 dev to-inet nodad
  R -6 route add default via fd00:64::2
  R -6 route add "$PUB_SUBNET6" dev br-pub table 101
  R -6 route add "$PRIV_SUBNET6" dev br-priv table 101
  R -6 route add blackhole default table 101
  R -6 rule add iif br-priv lookup 101 pref 100

  # Instances.
  ip -n "$(ns pub)" addr add "$PUB_IP/24" dev eth0
  ip -n "$(ns pub)" route add default via 10.10.0.1
  ip -n "$(ns priv)" addr add "$PRIV_IP/24" dev eth0
  ip -n "$(ns priv)" route add default via 10.10.1.1
  ip -n "$(ns pub)" -6 addr add "$PUB_IP6/64" dev eth0 nodad
  ip -n "$(ns pub)" -6 route add default via 2001:db8:1010::1
  ip -n "$(ns priv)" -6 addr add "$PRIV_IP6/64" dev eth0 nodad
  ip -n "$(ns priv)" -6 route add default via 2001:db8:1010:1::1

  # The NAT gateway: it rewrites the private subnet's traffic to its Elastic IP (conntrack
  # takes the answers back), and forwards both ways through the VPC router.
  ip -n "$(ns nat)" addr add "$NAT_IP/24" dev eth0
  ip -n "$(ns nat)" route add default via 10.10.0.1
  on nat sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
  snat nat nat "ip saddr $VPC_CIDR ip daddr != $VPC_CIDR" "$NAT_PUBLIC_IP"

  # The transit gateway between the VPC and the second VPC.
  on tgw sysctl -qw net.ipv4.ip_forward=1
  ip -n "$(ns tgw)" addr add 100.64.4.2/30 dev to-vpc
  ip -n "$(ns tgw)" addr add 100.64.5.1/30 dev to-vpc2
  ip -n "$(ns tgw)" route add "$VPC_CIDR" via 100.64.4.1
  ip -n "$(ns tgw)" route add "$VPC2_CIDR" via 100.64.5.2

  # Endpoint ENIs: TCP only, like AWS's.
  ip -n "$(ns vpce)" addr add "$ENI_A_IP/24" dev eth0
  ip -n "$(ns vpce)" addr add "$SVC_ENI_IP/24" dev eth0
  ip -n "$(ns vpce)" addr add "$ENI_C_IP/24" dev eth1
  ip -n "$(ns vpce)" addr add "$EC2_API_IP/24" dev eth0
  ip -n "$(ns vpce)" -6 addr add "$ENI_A_IP6/64" dev eth0 nodad
  ip -n "$(ns vpce)" -6 addr add "$ENI_C_IP6/64" dev eth1 nodad
  on vpce sysctl -qw net.ipv4.icmp_echo_ignore_all=1 net.ipv6.icmp.echo_ignore_all=1
  # Each ENI answers through its own subnet's router, as an ENI does: never straight across
  # to the other subnet, which would skip the private subnet's network ACL.
  local dev subnet gw table=200
  for dev in "eth0 $PUB_SUBNET 10.10.0.1" "eth1 $PRIV_SUBNET 10.10.1.1"; do
    read -r dev subnet gw <<<"$dev"
    ip -n "$(ns vpce)" route add "$subnet" dev "$dev" table "$table"
    ip -n "$(ns vpce)" route add default via "$gw" dev "$dev" table "$table"
    ip -n "$(ns vpce)" rule add pref $((LOCAL + table)) from "$subnet" lookup "$table"
    table=$((table + 1))
  done
  link vpce to-vpc2 vpc2 to-vpce
  ip -n "$(ns vpce)" addr add 100.64.1.1/30 dev to-vpc2
  ip -n "$(ns vpce)" route add 20.20.0.0/16 via 100.64.1.2

  # The internet: it routes between the VPC and the second VPC.
  on inet sysctl -qw net.ipv4.ip_forward=1
  ip -n "$(ns inet)" addr add 100.64.0.2/30 dev to-vpc
  ip -n "$(ns inet)" addr add "$S3_IP/32" dev lo
  ip -n "$(ns inet)" addr add "$CF_PUBLIC_IP/32" dev lo
  ip -n "$(ns inet)" addr add "$OPERATOR_IP/32" dev lo
  on inet sysctl -qw net.ipv6.conf.all.forwarding=1
  ip -n "$(ns inet)" -6 addr add "$S3_IP6/128" dev lo
  ip -n "$(ns inet)" -6 addr add fd00:64::2/64 dev to-vpc nodad
  ip -n "$(ns inet)" -6 route add "$VPC_CIDR6" via fd00:64::1
  # Back to the public subnet (its instances' public addresses, which the lab keeps private)
  # and the NAT's Elastic IP; S3 answers the whole VPC, through its gateway endpoint.
  ip -n "$(ns inet)" route add "$PUB_SUBNET" via 100.64.0.1
  ip -n "$(ns inet)" route add "$NAT_PUBLIC_IP/32" via 100.64.0.1
  ip -n "$(ns inet)" route add "$VPC_CIDR" via 100.64.0.1 table 102
  ip -n "$(ns inet)" rule add pref 100 from "$S3_PREFIX" lookup 102
  link inet to-vpc2 vpc2 to-inet
  ip -n "$(ns inet)" addr add 100.64.2.1/30 dev to-vpc2
  ip -n "$(ns inet)" route add "$NLB_PUBLIC_IP/32" via 100.64.2.2

  # The second VPC: web servers and the NLB's public and private addresses.
  local a
  for a in "$NLB_PUBLIC_IP" "$NLB_PRIVATE_IP" "$WEB1_IP" "$WEB2_IP"; do
    ip -n "$(ns vpc2)" addr add "$a/32" dev lo
  done
  ip -n "$(ns vpc2)" addr add 100.64.2.2/30 dev to-inet
  ip -n "$(ns vpc2)" addr add 100.64.1.2/30 dev to-vpce
  ip -n "$(ns vpc2)" addr add 100.64.3.2/30 dev to-pcx
  ip -n "$(ns vpc2)" addr add 100.64.5.2/30 dev to-tgw
  ip -n "$(ns vpc2)" route add default via 100.64.2.1
  for t in vpce vpc2; do
    ip -n "$(ns "$t")" rule add pref "$LOCAL" lookup local
    ip -n "$(ns "$t")" rule del pref 0 lookup local
  done

  # A test CA and the certificates AWS front ends would present.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -keyout "$DIR/ca.key" -out "$DIR/ca.pem" -subj "/CN=probe lab CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  # The lab's stand-in for AWS's instance identity certificate: 1024-bit RSA, as AWS's own,
  # made here for each lab and never committed. IMDS serves documents it signs; a collector
  # trusts it with --identity-ca "$DIR/identity-ca.pem".
  openssl req -x509 -newkey rsa:1024 -nodes -days 7 -keyout "$DIR/identity-ca.key" \
    -out "$DIR/identity-ca.pem" -subj "/CN=probe lab instance identity" 2>/dev/null
  cert s3 "$S3_NAME,*.$S3_NAME,$S3_DUALSTACK_NAME"
  cert cf "$CF_NAME,*.${CF_NAME%.amazonaws.com}.vpce.amazonaws.com"

  local s3_body='<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
  start inet s3 "$py" "$here/servers.py" https --listen "$S3_IP:443" --listen "[$S3_IP6]:443" \
    --cert "$DIR/s3.pem" --key "$DIR/s3.key" \
    --status 403 --header "Server:AmazonS3" --header "x-amz-request-id:LAB0S3REQUEST0001" --body "$s3_body"
  start inet cloudformation "$py" "$here/servers.py" https --listen "$CF_PUBLIC_IP:443" --cert "$DIR/cf.pem" \
    --key "$DIR/cf.key" --status 404 --header "x-amzn-RequestId:lab-cf-public" --body "<UnknownOperationException/>"
  start vpce cloudformation-eni "$py" "$here/servers.py" https --listen "$ENI_A_IP:443" --listen "$ENI_C_IP:443" \
    --listen "[$ENI_A_IP6]:443" --listen "[$ENI_C_IP6]:443" \
    --cert "$DIR/cf.pem" --key "$DIR/cf.key" --status 404 --header "x-amzn-RequestId:lab-cf-endpoint" \
    --body "<UnknownOperationException/>" --deny-file "$DIR/cloudformation-policy-denies"
  start vpce privatelink "$py" "$here/servers.py" tcpfwd --listen "$SVC_ENI_IP:80" --to "$NLB_PRIVATE_IP:80"
  start vpc2 web1 "$py" "$here/servers.py" http --listen "$WEB1_IP:80" --body "<html><h1>$WEB_PAGE 1</h1></html>"
  start vpc2 web2 "$py" "$here/servers.py" http --listen "$WEB2_IP:80" --body "<html><h1>$WEB_PAGE 2</h1></html>"
  start vpc2 nlb "$py" "$here/servers.py" tcpfwd --listen "$NLB_PUBLIC_IP:80" --listen "$NLB_PRIVATE_IP:80" \
    --to "$WEB1_IP:80" --to "$WEB2_IP:80"
  # The EC2 API, seeded before the metadata servers start: they serve the ids moto chose.
  start vpce ec2-api env LAB_EC2_DELAY_FILE="$DIR/ec2-delay-ms" "$py" "$here/ec2_fixture.py" serve "$EC2_API_IP" "$EC2_API_PORT"
  wait_tcp vpce "$EC2_API_IP" "$EC2_API_PORT"
  on pub "$py" "$here/ec2_fixture.py" seed "$EC2_URL" base "$DIR"
  local role
  for role in pub priv; do
    ip -n "$(ns "$role")" addr add "$IMDS_IP/32" dev lo
    start "$role" imds "$py" "$here/servers.py" imds --listen "$IMDS_IP:80" --data "$DIR/imds-$role.json"
  done
  wait_tcp pub "$IMDS_IP" 80
  wait_tcp priv "$IMDS_IP" 80
  wait_tcp inet "$S3_IP" 443
  wait_tcp inet "$CF_PUBLIC_IP" 443
  wait_tcp vpce "$ENI_A_IP" 443
  wait_tcp vpce "$SVC_ENI_IP" 80
  wait_tcp vpc2 "$WEB1_IP" 80
  wait_tcp vpc2 "$WEB2_IP" 80
  wait_tcp vpc2 "$NLB_PUBLIC_IP" 80
  step base
}

# The place of a step in STEPS, and whether step $1 is $2 or comes after it.
place() {
  local i=0 s
  for s in $STEPS; do [[ $s == "$1" ]] && echo "$i" && return; i=$((i + 1)); done
  echo -1
}
after() { (($(place "$1") >= $(place "$2"))); }

# The private instance's second interface, in the public subnet, for step multi-eni only: its
# group ("mgmt") lets out SSH, the EC2 API's endpoint and the relay, and drops the rest of TCP
# as a security group does (DNS to the VPC resolver is not filtered by groups).
second_interface() {
  ip -n "$(ns router)" link del p-priv1 2>/dev/null || true
  on priv nft delete table inet mgmt 2>/dev/null || true
  [[ $1 == multi-eni ]] || return 0
  link router p-priv1 priv eth1
  R link set p-priv1 master br-pub
  ip -n "$(ns priv)" link set eth1 address "$PRIV_ENI2_MAC"
  ip -n "$(ns priv)" addr add "$PRIV_ENI2_IP/24" dev eth1
  on priv nft -f - <<EOF
table inet mgmt {
  chain output {
    type filter hook output priority filter; policy accept;
    oifname "eth1" ct state established,related accept
    oifname "eth1" tcp dport 22 accept
    oifname "eth1" ip daddr $EC2_API_IP tcp dport $EC2_API_PORT accept
    oifname "eth1" ip daddr $PUB_IP tcp dport 7878 accept
    oifname "eth1" meta l4proto tcp drop
  }
}
EOF
}

# Step transit-egress: the transit gateway sends what is not a VPC's to the second VPC, which
# forwards it to the internet from its own address (an egress VPC's NAT).
egress() {
  ip -n "$(ns tgw)" route del default 2>/dev/null || true
  on vpc2 nft delete table ip egress 2>/dev/null || true
  if [[ $1 != transit-egress ]]; then
    on vpc2 sysctl -qw net.ipv4.ip_forward=0
    return 0
  fi
  ip -n "$(ns tgw)" route add default via 100.64.5.2
  on vpc2 sysctl -qw net.ipv4.ip_forward=1
  snat vpc2 egress "ip saddr $VPC_CIDR oifname \"to-inet\"" "$EGRESS_NAT_IP"
}

# Step instance-route: the public instance forwards the private subnet's traffic out of the
# VPC from its own address, as a NAT instance does (its source/destination check off).
appliance() {
  on pub nft delete table ip appliance 2>/dev/null || true
  if [[ $1 != instance-route ]]; then
    on pub sysctl -qw net.ipv4.ip_forward=0
    return 0
  fi
  on pub sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
  snat pub appliance "ip saddr $PRIV_SUBNET ip daddr != $VPC_CIDR" "$PUB_IP"
}

# The step's routes beyond the VPC: the private table's 0.0.0.0/0 to the NAT gateway, the
# second VPC over the peering link or through the transit gateway (both subnets' tables),
# and the second VPC's way back.
routes() {
  local step=$1 table
  second_interface "$step"
  egress "$step"
  appliance "$step"
  if [[ $step == nat-gateway || $step == nat-instance ]]; then
    R route replace default via "$NAT_IP" table 101
  elif [[ $step == instance-route ]]; then
    R route replace default via "$PUB_IP" table 101
  elif [[ $step == transit-egress ]]; then
    R route replace default via 100.64.4.2 table 101
  else
    R route replace blackhole default table 101
  fi
  # IPv6: the egress-only internet gateway, and S3's IPv6 prefix list by its gateway endpoint.
  R -6 route del "$S3_PREFIX6" table 101 2>/dev/null || true
  if [[ $step == dual-stack* ]]; then
    R -6 route replace default via fd00:64::2 table 101
  else
    R -6 route replace blackhole default table 101
  fi
  [[ $step != dual-stack-endpoint ]] || R -6 route add "$S3_PREFIX6" via fd00:64::2 table 101
  for table in main 101; do
    R route del "$VPC2_CIDR" table "$table" 2>/dev/null || true
  done
  ip -n "$(ns vpc2)" route del "$VPC_CIDR" 2>/dev/null || true
  local via back
  case $step in
    peering) via=100.64.3.2 back=100.64.3.1 ;;
    transit-gateway | transit-egress | vpn-gateway) via=100.64.4.2 back=100.64.5.1 ;;
    *) return 0 ;;
  esac
  for table in main 101; do
    R route add "$VPC2_CIDR" via "$via" table "$table"
  done
  ip -n "$(ns vpc2)" route add "$VPC_CIDR" via "$back"
}

# The step's fault, in the packets (the EC2 API says the same: ec2_fixture.py).
faults() {
  local step=$1 t eni pref
  rm -f "$DIR/cloudformation-policy-denies"
  for t in router vpce vpc2; do
    for pref in "$NACL_ANSWER_RULE" "$((FAULT - 1))" "$FAULT"; do
      while ip -n "$(ns "$t")" rule del pref "$pref" 2>/dev/null; do :; done
    done
  done
  case $step in
    endpoint-sg)
      # The endpoints' group admits HTTPS from the public subnet only; the rest is dropped.
      for eni in "$ENI_A_IP" "$ENI_C_IP"; do
        ip -n "$(ns vpce)" rule add pref "$((FAULT - 1))" from "$PUB_SUBNET" to "$eni" ipproto tcp dport 443 lookup local
        ip -n "$(ns vpce)" rule add pref "$FAULT" to "$eni" ipproto tcp dport 443 blackhole
      done
      ;;
    network-acl)
      # The private subnet's network ACL: egress rule 90 denies tcp 443 to the S3 prefix, and
      # ingress rule 80 the PrivateLink ENI's answers, whichever connection they belong to.
      R rule add pref "$FAULT" iif br-priv to "$S3_PREFIX" ipproto tcp dport 443 blackhole
      # (ip rule cannot name port 65535; Linux's ephemeral ports end at 60999.)
      R rule add pref "$NACL_ANSWER_RULE" iif br-pub from "$SVC_ENI_IP" to "$PRIV_SUBNET" ipproto tcp dport 1024-65534 blackhole
      ;;
    endpoint-policy)
      # The CloudFormation endpoint's policy denies everything: its ENIs answer 403.
      touch "$DIR/cloudformation-policy-denies"
      ;;
    sg-forms)
      # The PrivateLink ENI's group admits tcp 80 from its prefix list (the public subnet) only.
      ip -n "$(ns vpce)" rule add pref "$((FAULT - 1))" from "$PUB_SUBNET" to "$SVC_ENI_IP" ipproto tcp dport 80 lookup local
      ip -n "$(ns vpce)" rule add pref "$FAULT" to "$SVC_ENI_IP" ipproto tcp dport 80 blackhole
      ;;
    pending-acceptance)
      # The endpoint's ENI and names exist, but it carries nothing until it is accepted.
      ip -n "$(ns vpce)" rule add pref "$FAULT" to "$SVC_ENI_IP" blackhole
      ;;
    service-down)
      # The NLB behind the endpoint service stops answering what comes over the private link.
      ip -n "$(ns vpc2)" rule add pref "$FAULT" iif to-vpce blackhole
      ;;
  esac
}

# The VPC resolver's records for a step: what Route 53 Resolver would answer.
dns_records() {
  local step=$1
  echo "--host-record=$S3_NAME,$S3_IP"
  echo "--host-record=$NLB_NAME,$NLB_PUBLIC_IP"
  echo "--cname=$WWW_NAME,$NLB_NAME"
  echo "--host-record=$WEB1_NAME,$WEB1_IP"
  # S3's dual-stack name answers A and AAAA.
  echo "--host-record=$S3_DUALSTACK_NAME,$S3_IP,$S3_IP6"
  if [[ $step == interface ]]; then
    # Private DNS on: the service's own name answers with the endpoint ENIs.
    echo "--host-record=$CF_NAME,$ENI_A_IP"
    echo "--host-record=$CF_NAME,$ENI_C_IP"
  else
    echo "--host-record=$CF_NAME,$CF_PUBLIC_IP"
  fi
  if after "$step" interface; then
    echo "--host-record=$CF_VPCE_NAME,$ENI_A_IP"
    echo "--host-record=$CF_VPCE_NAME,$ENI_C_IP"
    echo "--host-record=$CF_VPCE_A_NAME,$ENI_A_IP"
    echo "--host-record=$CF_VPCE_C_NAME,$ENI_C_IP"
  fi
  if after "$step" privatelink; then
    echo "--host-record=$SVC_VPCE_NAME,$SVC_ENI_IP"
  fi
  if [[ $step == dual-stack* ]]; then
    # The dual-stack CloudFormation endpoint's names answer AAAA too.
    echo "--host-record=$CF_VPCE_NAME,$ENI_A_IP6"
    echo "--host-record=$CF_VPCE_NAME,$ENI_C_IP6"
    echo "--host-record=$CF_VPCE_A_NAME,$ENI_A_IP6"
    echo "--host-record=$CF_VPCE_C_NAME,$ENI_C_IP6"
  fi
}

step() {
  local name=$1
  [[ " $STEPS " == *" $name "* ]] || die "unknown step '$name': use one of $STEPS"
  # The gateway endpoint: a prefix-list route to the vpce in the private route table.
  R route del "$S3_PREFIX" table 101 2>/dev/null || true
  # (A spoke that sends everything to the transit gateway has none of its own.)
  [[ $name == base || $name == transit-egress ]] || R route add "$S3_PREFIX" via 100.64.0.2 table 101
  routes "$name"
  faults "$name"
  # What the EC2 API says follows the step too.
  on pub "$py" "$here/ec2_fixture.py" seed "$EC2_URL" "$name" "$DIR" || die "seeding the EC2 API for step $name failed"

  local pid role pname rest=()
  while read -r pid role pname; do
    if [[ $pname == dnsmasq ]]; then stop_pid "$pid" "$role"; else rest+=("$pid $role $pname"); fi
  done <"$DIR/pids"
  printf '%s\n' "${rest[@]}" >"$DIR/pids"
  local records
  mapfile -t records < <(dns_records "$name")
  start router dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --bind-interfaces --listen-address="$RESOLVER_IP" --pid-file="$DIR/dnsmasq.pid" --user=root \
    --local=/amazonaws.com/ --local=/lab/ --log-facility=- "${records[@]}"
  for _ in $(seq 100); do
    [[ -n $(on pub dig +short +time=1 +tries=1 "@$RESOLVER_IP" "$S3_NAME" 2>/dev/null) ]] && break
    sleep 0.05
  done
  echo "$name" >"$DIR/step"
}

down() {
  if [[ -f $DIR/pids ]]; then
    local pid role name
    while read -r pid role name; do
      [[ -n $pid ]] && stop_pid "$pid" "$role"
    done <"$DIR/pids"
  fi
  local t
  for t in "${ROLES[@]}"; do
    ip netns del "$(ns "$t")" 2>/dev/null || true
  done
  for t in "${ROLES[@]}"; do
    rm -rf "/etc/netns/$(ns "$t")"
  done
  rm -rf "$DIR"
}

case $cmd in
  up) up ;;
  step) [[ $# == 1 ]] || die "usage: lab.sh step ID STEP"; step "$1" ;;
  exec | start)
    if [[ $cmd == start ]]; then
      [[ $# -ge 3 ]] || die "usage: lab.sh start ID ROLE NAME CMD..."
      [[ -d $DIR/log ]] || die "no lab '$ID' here: run lab.sh up $ID first"
      [[ $2 =~ ^[a-z0-9-]{1,32}$ ]] || die "process name '$2': use letters, digits and '-'"
      launch=(start "$1" "$2")
      role=$1
      shift 2
    else
      [[ $# -ge 2 ]] || die "usage: lab.sh exec ID ROLE CMD..."
      launch=(on "$1")
      role=$1
      shift
    fi
    [[ " ${ROLES[*]} " == *" $role "* ]] || die "unknown host '$role': use one of ${ROLES[*]}"
    # The instances reach the EC2 API at its endpoint in the VPC, as with an ec2 interface
    # endpoint; credentials come from their metadata (an instance profile).
    if [[ $role == pub || $role == priv ]]; then
      "${launch[@]}" env AWS_ENDPOINT_URL_EC2="$EC2_URL" "$@"
    else
      "${launch[@]}" "$@"
    fi
    ;;
  down) down ;;
  *) die "unknown command '$cmd': use up, step, exec, start or down" ;;
esac
