#!/usr/bin/env python3
"""The lab's EC2 API: a moto server seeded to match the emulated VPC, step by step.

  ec2_fixture.py serve HOST PORT
      moto (PyPI moto[server] 5.2.5) in the foreground until SIGTERM; prints "listening PORT".
      While the file $LAB_EC2_DELAY_FILE holds a number N, every answer waits N ms first
      (each on its own thread, so calls made at once wait at once): the benchmark's stand-in
      for AWS's latency.
  ec2_fixture.py pages HOST PORT UPSTREAM
      a proxy in front of moto at UPSTREAM that answers every Describe call one item per page,
      with a NextToken to the next, as AWS pages a large VPC's answers; prints "listening PORT".
  ec2_fixture.py seed URL STEP STATE_DIR
      makes moto's VPC match a tutorial step (idempotent), then writes STATE_DIR/ec2.json
      (the ids moto chose) and STATE_DIR/imds-pub.json, imds-priv.json (metadata per instance).

moto gets some things wrong; each is worked around here, never in probe:
- its AWS-managed S3 prefix list holds real AWS ranges and cannot be modified: the server
  patches the list it creates so it holds the lab's S3 prefix (S3_PREFIX in names.env);
- interface endpoint ENIs get addresses outside their subnet and an empty description: the
  server deletes them, and the seed creates endpoint-like ENIs with CreateNetworkInterface, at
  the lab's ENI addresses and with the description AWS gives them ("VPC Endpoint Interface
  vpce-...");
- ModifyVpcEndpoint ignores PrivateDnsEnabled: the seed deletes and re-creates the endpoint;
- every endpoint is "available" (moto has no acceptance): the server gives an endpoint
  created with the tag lab:state the state it names, and the seed re-creates the endpoint to
  change it;
- an interface endpoint's DNS names are moto's own making, which no resolver answers: the
  server gives the lab's endpoints the names the lab's resolver answers (names.env);
- a VPC's IPv6 block is one moto chooses: the metadata carries the lab's, which is what probe
  classifies by (the lab's only IPv6 target lies outside the VPC);
- DescribeVpcPeeringConnections ignores its filters and lists every peering: probe keeps only
  those of its own VPC, so nothing is worked around here.
"""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def names():
    out = {}
    with open(os.path.join(HERE, "names.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                out[k] = v.strip('"')
    return out


N = names()
STEPS = N["STEPS"].split()


def serve(host, port):
    from moto.ec2.models import managed_prefixes, route_tables, vpcs
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    original = managed_prefixes.ManagedPrefixListBackend._create_aws_managed_prefix_list

    def lab_prefix_lists(self, name, address_family, entries):
        if name.endswith(".s3"):
            entries = [{"Cidr": N["S3_PREFIX"], "Description": "lab S3"}]
        return original(self, name, address_family, entries)

    managed_prefixes.ManagedPrefixListBackend._create_aws_managed_prefix_list = lab_prefix_lists

    endpoint_init = vpcs.VPCEndPoint.__init__
    lab_names = {
        ".cloudformation": [N["CF_VPCE_NAME"], N["CF_VPCE_A_NAME"], N["CF_VPCE_C_NAME"]],
        ".vpce-svc-": [N["SVC_VPCE_NAME"]],
    }

    def lab_endpoint(self, *args, **kwargs):
        endpoint_init(self, *args, **kwargs)
        tags = kwargs.get("tags") or {}
        self.state = tags.get("lab:state", self.state)
        # moto keeps no IpAddressType or DnsOptions: the tag lab:ip-type names both.
        if "lab:ip-type" in tags:
            self.ip_address_type = tags["lab:ip-type"]
            self.dns_options = {"DnsRecordIpType": tags["lab:ip-type"]}
        if self.vpc_endpoint_type == "Interface":
            # The seed makes the ENIs, at the lab's addresses; moto's own sit outside their
            # subnets, where no packet of the lab goes.
            for eni in self.network_interface_ids:
                self.ec2_backend.delete_network_interface(eni)
            self.network_interface_ids = []
            for part, dns_names in lab_names.items():
                if part in self.service_name:
                    self.dns_entries = [{"dns_name": n, "hosted_zone_id": "Z0LABLABLAB0"} for n in dns_names]

    vpcs.VPCEndPoint.__init__ = lab_endpoint

    # moto calls every route active: a route to a deleted NAT gateway is a blackhole, as AWS
    # says it is.
    def route_state(self):
        nat = self.nat_gateway
        return "blackhole" if nat is not None and nat.state == "deleted" else "active"

    route_tables.Route.state = property(route_state)
    moto = DomainDispatcherApplication(create_backend_app)
    delay_file = os.environ.get("LAB_EC2_DELAY_FILE")

    def app(environ, start_response):
        try:
            with open(delay_file) as f:
                time.sleep(int(f.read().strip()) / 1000)
        except (TypeError, OSError, ValueError):
            pass
        return moto(environ, start_response)

    server = make_server(host, int(port), app, True, request_handler=MotoRequestHandler)
    print(f"listening {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def client(url, service="ec2"):
    import boto3

    return boto3.client(
        service,
        region_name=N["REGION"],
        endpoint_url=url,
        aws_access_key_id="lab",
        aws_secret_access_key="lab",
    )


def base(ec2, state):
    if "vpc" in state:
        return
    vpc = ec2.create_vpc(CidrBlock=N["VPC_CIDR"])["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    pub = ec2.create_subnet(VpcId=vpc, CidrBlock=N["PUB_SUBNET"], AvailabilityZone=N["REGION"] + "a")
    priv = ec2.create_subnet(VpcId=vpc, CidrBlock=N["PRIV_SUBNET"], AvailabilityZone=N["REGION"] + "c")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    pub_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=pub_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=pub_rt, SubnetId=pub["Subnet"]["SubnetId"])
    priv_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=priv_rt, SubnetId=priv["Subnet"]["SubnetId"])
    # The groups of the tutorial's stacks: the endpoints take HTTPS from the VPC, the
    # instances take the relay's port from the VPC and send anything anywhere.
    # (The endpoints' rules follow the step: endpoint_ingress.)
    sg = ec2.create_security_group(GroupName="endpoints", Description="endpoint ENIs", VpcId=vpc)["GroupId"]
    web_sg = ec2.create_security_group(GroupName="web", Description="endpoint service ENIs", VpcId=vpc)["GroupId"]
    instance_sg = ec2.create_security_group(GroupName="instances", Description="probe instances", VpcId=vpc)[
        "GroupId"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=instance_sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 7878, "ToPort": 7878, "IpRanges": [{"CidrIp": N["VPC_CIDR"]}]}],
    )
    # The tutorial's two instances, named and tagged as its CloudFormation stack tags them.
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instances = {}
    for role, name, subnet, ip in [
        ("pub", "public-ec2", pub, N["PUB_IP"]),
        ("priv", "private-ec2", priv, N["PRIV_IP"]),
    ]:
        tags = [{"Key": "Name", "Value": name}, {"Key": "aws:cloudformation:stack-name", "Value": N["STACK"]}]
        instances[role] = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet["Subnet"]["SubnetId"],
            PrivateIpAddress=ip,
            SecurityGroupIds=[instance_sg],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]["InstanceId"]
    state.update(
        instances=instances,
        vpc=vpc,
        pub_subnet=pub["Subnet"]["SubnetId"],
        priv_subnet=priv["Subnet"]["SubnetId"],
        igw=igw,
        pub_rt=pub_rt,
        priv_rt=priv_rt,
        sg=sg,
        instance_sg=instance_sg,
        web_sg=web_sg,
    )


def interface_endpoint(
    ec2, state, key, service, private_dns, enis, group="sg", status="available", ipv6=None
):
    """Creates (or re-creates, when Private DNS, the state or the address families differ) an
    interface endpoint and its ENIs, in the security group state[group]; `ipv6`, one IPv6
    address an ENI, makes it dual-stack."""
    current = state.get(key)
    if (
        current
        and current["private_dns"] == private_dns
        and current.get("state", "available") == status
        and current.get("ipv6") == ipv6
    ):
        return
    if current:
        remove(ec2, state, key)
    subnets = sorted({subnet for subnet, _ in enis})
    vpce = ec2.create_vpc_endpoint(
        VpcId=state["vpc"],
        ServiceName=service,
        VpcEndpointType="Interface",
        SubnetIds=subnets,
        SecurityGroupIds=[state[group]],
        PrivateDnsEnabled=private_dns,
        TagSpecifications=[
            {
                "ResourceType": "vpc-endpoint",
                "Tags": [{"Key": "lab:state", "Value": status}]
                + ([{"Key": "lab:ip-type", "Value": "dualstack"}] if ipv6 else []),
            }
        ],
    )["VpcEndpoint"]["VpcEndpointId"]
    ids = []
    for i, (subnet, ip) in enumerate(enis):
        six = {"Ipv6Addresses": [{"Ipv6Address": ipv6[i]}]} if ipv6 else {}
        ids.append(
            ec2.create_network_interface(
                SubnetId=subnet,
                PrivateIpAddress=ip,
                Groups=[state[group]],
                Description=f"VPC Endpoint Interface {vpce}",
                **six,
            )["NetworkInterface"]["NetworkInterfaceId"]
        )
    state[key] = {"id": vpce, "enis": ids, "private_dns": private_dns, "state": status, "ipv6": ipv6}


def remove(ec2, state, key):
    current = state.pop(key, None)
    if not current:
        return
    ec2.delete_vpc_endpoints(VpcEndpointIds=[current["id"]])
    for eni in current.get("enis", []):
        ec2.delete_network_interface(NetworkInterfaceId=eni)


def ingress(ec2, group, permissions):
    """Group `group` admits exactly `permissions` (a list of IpPermissions)."""
    current = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    if current:
        ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=current)
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=permissions)


def tcp(port, **peers):
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **peers}


def firewall_forms(ec2, state, step):
    """The endpoints' group admits HTTPS from the VPC (from the public subnet only in step
    endpoint-sg, from the instances' group in sg-forms); the PrivateLink ENI's group admits
    tcp 80 from the VPC, or in sg-forms from a customer-managed prefix list holding the public
    subnet and from ::/0. In the dual-stack steps the endpoints' group admits the VPC's IPv6
    block too."""
    if step == "sg-forms":
        if "prefix_list" not in state:
            state["prefix_list"] = ec2.create_managed_prefix_list(
                PrefixListName=N["SG_FORMS_LIST"],
                MaxEntries=5,
                AddressFamily="IPv4",
                Entries=[{"Cidr": N["PUB_SUBNET"], "Description": "the public subnet"}],
            )["PrefixList"]["PrefixListId"]
        ingress(ec2, state["sg"], [tcp(443, UserIdGroupPairs=[{"GroupId": state["instance_sg"]}])])
        ingress(
            ec2,
            state["web_sg"],
            [
                tcp(80, PrefixListIds=[{"PrefixListId": state["prefix_list"]}]),
                tcp(80, Ipv6Ranges=[{"CidrIpv6": "::/0"}]),
            ],
        )
        return
    cidr = N["PUB_SUBNET"] if step == "endpoint-sg" else N["VPC_CIDR"]
    six = {"Ipv6Ranges": [{"CidrIpv6": N["VPC_CIDR6"]}]} if step.startswith("dual-stack") else {}
    ingress(ec2, state["sg"], [tcp(443, IpRanges=[{"CidrIp": cidr}], **six)])
    ingress(ec2, state["web_sg"], [tcp(80, IpRanges=[{"CidrIp": N["VPC_CIDR"]}])])


def private_acl(ec2, state, deny_s3):
    """The private subnet's network ACL: the VPC's default (allow all), or one whose egress
    rule NACL_DENY_RULE denies HTTPS to the S3 prefix and whose ingress rule NACL_ANSWER_RULE
    denies the PrivateLink ENI's answers, above rules 100 allowing the rest."""
    if "nacl" not in state:
        acl = ec2.create_network_acl(VpcId=state["vpc"])["NetworkAcl"]["NetworkAclId"]
        entries = [
            (int(N["NACL_DENY_RULE"]), True, "6", "deny", N["S3_PREFIX"], {"From": 443, "To": 443}),
            (int(N["NACL_ANSWER_RULE"]), False, "6", "deny", N["SVC_ENI_IP"] + "/32", {"From": 1024, "To": 65535}),
            (100, True, "-1", "allow", "0.0.0.0/0", None),
            (100, False, "-1", "allow", "0.0.0.0/0", None),
        ]
        for rule, egress, protocol, action, cidr, ports in entries:
            entry = dict(
                NetworkAclId=acl, RuleNumber=rule, Egress=egress, Protocol=protocol, RuleAction=action, CidrBlock=cidr
            )
            if ports:
                entry["PortRange"] = ports
            ec2.create_network_acl_entry(**entry)
        default = ec2.describe_network_acls(
            Filters=[{"Name": "vpc-id", "Values": [state["vpc"]]}, {"Name": "default", "Values": ["true"]}]
        )["NetworkAcls"][0]["NetworkAclId"]
        state.update(nacl=acl, default_nacl=default)
    want = state["nacl"] if deny_s3 else state["default_nacl"]
    current = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [state["priv_subnet"]]}])
    for acl in current["NetworkAcls"]:
        for a in acl["Associations"]:
            if a["SubnetId"] == state["priv_subnet"] and acl["NetworkAclId"] != want:
                ec2.replace_network_acl_association(AssociationId=a["NetworkAclAssociationId"], NetworkAclId=want)


def nlb(url, ec2, state):
    """The second VPC (jhCustomVPC) and its internet-facing NLB, which the endpoint service
    fronts."""
    vpc = ec2.create_vpc(CidrBlock=N["VPC2_CIDR"])["Vpc"]["VpcId"]
    state["vpc2"] = vpc
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="20.20.1.0/24", AvailabilityZone=N["REGION"] + "a")
    lb = client(url, "elbv2").create_load_balancer(
        Name="cloudneta-nlb", Subnets=[subnet["Subnet"]["SubnetId"]], Type="network", Scheme="internet-facing"
    )
    return lb["LoadBalancers"][0]["LoadBalancerArn"]


def route(ec2, table, cidr, key="DestinationCidrBlock", **target):
    """Makes destination `cidr` (a `key`: DestinationCidrBlock, DestinationIpv6CidrBlock or
    DestinationPrefixListId) of route table `table` go to `target` (GatewayId=...,
    NatGatewayId=...), or removes it when no target is given."""
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    current = next((r for r in routes if r.get(key) == cidr), None)
    if current and target and all(current.get(k) == v for k, v in target.items()):
        return
    if current:
        ec2.delete_route(RouteTableId=table, **{key: cidr})
    if target:
        ec2.create_route(RouteTableId=table, **{key: cidr}, **target)


def dual_stack(ec2, state, step):
    """Steps dual-stack*: the VPC's IPv6 (moto gives the VPC a block of its own choosing; the
    metadata carries the lab's), an egress-only internet gateway as the private table's ::/0,
    the internet gateway as the public one's, IPv6 rules in the default network ACL and the
    instances' group; in dual-stack-endpoint, S3's IPv6 prefix list routed to its gateway
    endpoint in both tables, as a dual-stack gateway endpoint adds it."""
    on = step.startswith("dual-stack")
    if on and "eigw" not in state:
        ec2.associate_vpc_cidr_block(VpcId=state["vpc"], AmazonProvidedIpv6CidrBlock=True)
        state["eigw"] = ec2.create_egress_only_internet_gateway(VpcId=state["vpc"])["EgressOnlyInternetGateway"][
            "EgressOnlyInternetGatewayId"
        ]
        state["s3_pl6"] = ec2.create_managed_prefix_list(
            PrefixListName=f"com.amazonaws.{N['REGION']}.ipv6.s3",
            MaxEntries=5,
            AddressFamily="IPv6",
            Entries=[{"Cidr": N["S3_PREFIX6"], "Description": "lab S3 IPv6"}],
        )["PrefixList"]["PrefixListId"]
        for egress in (True, False):
            ec2.create_network_acl_entry(
                NetworkAclId=state["default_nacl"],
                RuleNumber=101,
                Egress=egress,
                Protocol="-1",
                RuleAction="allow",
                Ipv6CidrBlock="::/0",
            )
        ec2.authorize_security_group_egress(
            GroupId=state["instance_sg"], IpPermissions=[{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
        )
    if "eigw" not in state:
        return
    six = "DestinationIpv6CidrBlock"
    route(ec2, state["priv_rt"], "::/0", six, **({"EgressOnlyInternetGatewayId": state["eigw"]} if on else {}))
    route(ec2, state["pub_rt"], "::/0", six, **({"GatewayId": state["igw"]} if on else {}))
    endpoint = {"GatewayId": state["s3"]["id"]} if step == "dual-stack-endpoint" else {}
    for table in (state["pub_rt"], state["priv_rt"]):
        route(ec2, table, state["s3_pl6"], "DestinationPrefixListId", **endpoint)


def second_interface(ec2, state, step):
    """Step multi-eni: the private instance's second interface (device 1) in the public
    subnet, in group mgmt, which lets out SSH, the EC2 API's endpoint and the relay only."""
    if step != "multi-eni":
        current = state.pop("eni2", None)
        if current:
            ec2.detach_network_interface(AttachmentId=current["attachment"], Force=True)
            ec2.delete_network_interface(NetworkInterfaceId=current["id"])
        return
    if "eni2" in state:
        return
    if "mgmt_sg" not in state:
        mgmt = ec2.create_security_group(GroupName="mgmt", Description="management interface", VpcId=state["vpc"])[
            "GroupId"
        ]
        ec2.revoke_security_group_egress(
            GroupId=mgmt, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        )
        ec2.authorize_security_group_egress(
            GroupId=mgmt,
            IpPermissions=[
                tcp(22, IpRanges=[{"CidrIp": "0.0.0.0/0"}]),
                tcp(int(N["EC2_API_PORT"]), IpRanges=[{"CidrIp": N["EC2_API_IP"] + "/32"}]),
                tcp(7878, IpRanges=[{"CidrIp": N["PUB_IP"] + "/32"}]),
            ],
        )
        state["mgmt_sg"] = mgmt
    eni = ec2.create_network_interface(
        SubnetId=state["pub_subnet"], PrivateIpAddress=N["PRIV_ENI2_IP"], Groups=[state["mgmt_sg"]]
    )["NetworkInterface"]["NetworkInterfaceId"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni, InstanceId=state["instances"]["priv"], DeviceIndex=1
    )["AttachmentId"]
    state["eni2"] = {"id": eni, "attachment": attachment}


def policies(ec2, state, step):
    """Step endpoint-policy: S3's gateway endpoint allows GetObject in POLICY_BUCKET only, and
    CloudFormation's interface endpoint denies everything; AWS's default, full access,
    elsewhere."""
    full = {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}
    s3 = [full]
    cloudformation = [full]
    if step == "endpoint-policy":
        s3 = [
            {
                "Sid": "OneBucket",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{N['POLICY_BUCKET']}/*",
            }
        ]
        cloudformation = [full, {"Sid": "NoOne", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}]
    for key, statements in (("s3", s3), ("cloudformation", cloudformation)):
        if key in state:
            ec2.modify_vpc_endpoint(
                VpcEndpointId=state[key]["id"],
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            )


def beyond(ec2, state, step):
    """The steps after the faults: a NAT gateway in the public subnet as the private table's
    0.0.0.0/0, then a NAT instance's network interface, then the public instance by its id
    (an appliance), then the second VPC over a peering
    connection, then over a transit gateway, then over a VPN's virtual private gateway, from
    both tables, then 0.0.0.0/0 to a NAT
    gateway since deleted; last, a spoke's 0.0.0.0/0 and the second VPC both to the transit
    gateway (transit-egress, where this VPC has no S3 gateway endpoint). Each is made once
    and routed to only in its step."""
    if step == "nat-gateway" and "nat" not in state:
        eip = ec2.allocate_address(Domain="vpc", Address=N["NAT_PUBLIC_IP"])["AllocationId"]
        state["nat"] = ec2.create_nat_gateway(SubnetId=state["pub_subnet"], AllocationId=eip)["NatGateway"][
            "NatGatewayId"
        ]
    if step == "nat-instance" and "nat_eni" not in state:
        state["nat_eni"] = ec2.create_network_interface(
            SubnetId=state["pub_subnet"], PrivateIpAddress=N["NAT_IP"], Description="NAT instance"
        )["NetworkInterface"]["NetworkInterfaceId"]
    if step == "peering" and "pcx" not in state:
        pcx = ec2.create_vpc_peering_connection(VpcId=state["vpc"], PeerVpcId=state["vpc2"])["VpcPeeringConnection"][
            "VpcPeeringConnectionId"
        ]
        ec2.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
        state["pcx"] = pcx
    if step in ("transit-gateway", "transit-egress") and "tgw" not in state:
        state["tgw"] = ec2.create_transit_gateway(Description="lab")["TransitGateway"]["TransitGatewayId"]
    if step == "vpn-gateway" and "vgw" not in state:
        vgw = ec2.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
        ec2.attach_vpn_gateway(VpcId=state["vpc"], VpnGatewayId=vgw)
        state["vgw"] = vgw
    if step == "blackhole" and "nat_gone" not in state:
        eip = ec2.allocate_address(Domain="vpc", Address=N["NAT_GONE_PUBLIC_IP"])["AllocationId"]
        gone = ec2.create_nat_gateway(SubnetId=state["pub_subnet"], AllocationId=eip)["NatGateway"]["NatGatewayId"]
        ec2.delete_nat_gateway(NatGatewayId=gone)
        state["nat_gone"] = gone
    default = {}
    if step == "nat-gateway":
        default = {"NatGatewayId": state["nat"]}
    elif step == "nat-instance":
        default = {"NetworkInterfaceId": state["nat_eni"]}
    elif step == "instance-route":
        default = {"InstanceId": state["instances"]["pub"]}
    elif step == "blackhole":
        default = {"NatGatewayId": state["nat_gone"]}
    elif step == "transit-egress":
        default = {"TransitGatewayId": state["tgw"]}
    route(ec2, state["priv_rt"], "0.0.0.0/0", **default)
    to_vpc2 = {}
    if step == "peering":
        to_vpc2 = {"VpcPeeringConnectionId": state["pcx"]}
    elif step in ("transit-gateway", "transit-egress"):
        to_vpc2 = {"TransitGatewayId": state["tgw"]}
    elif step == "vpn-gateway":
        to_vpc2 = {"GatewayId": state["vgw"]}
    for table in (state["pub_rt"], state["priv_rt"]):
        route(ec2, table, N["VPC2_CIDR"], **to_vpc2)


def seed(url, step, state_dir):
    if step not in STEPS:
        sys.exit(f"ec2_fixture.py: unknown step {step!r}: use one of {' '.join(STEPS)}")
    ec2 = client(url)
    path = os.path.join(state_dir, "ec2.json")
    state = json.load(open(path)) if os.path.exists(path) else {}
    base(ec2, state)
    at = STEPS.index(step)
    region = N["REGION"]
    if at < STEPS.index("gateway") or step == "transit-egress":
        remove(ec2, state, "s3")
    elif "s3" not in state:
        state["s3"] = {
            "id": ec2.create_vpc_endpoint(
                VpcId=state["vpc"],
                ServiceName=f"com.amazonaws.{region}.s3",
                VpcEndpointType="Gateway",
                RouteTableIds=[state["pub_rt"], state["priv_rt"]],
            )["VpcEndpoint"]["VpcEndpointId"]
        }
    if at >= STEPS.index("interface"):
        interface_endpoint(
            ec2,
            state,
            "cloudformation",
            f"com.amazonaws.{region}.cloudformation",
            step == "interface",
            [(state["pub_subnet"], N["ENI_A_IP"]), (state["priv_subnet"], N["ENI_C_IP"])],
            ipv6=[N["ENI_A_IP6"], N["ENI_C_IP6"]] if step.startswith("dual-stack") else None,
        )
    else:
        remove(ec2, state, "cloudformation")
    if at >= STEPS.index("privatelink"):
        if "service" not in state:
            arn = nlb(url, ec2, state)
            config = ec2.create_vpc_endpoint_service_configuration(
                NetworkLoadBalancerArns=[arn], AcceptanceRequired=True
            )["ServiceConfiguration"]
            state["service"] = {"id": config["ServiceId"], "name": config["ServiceName"]}
        interface_endpoint(
            ec2,
            state,
            "privatelink",
            state["service"]["name"],
            False,
            [(state["pub_subnet"], N["SVC_ENI_IP"])],
            group="web_sg",
            status="pendingAcceptance" if step == "pending-acceptance" else "available",
        )
    else:
        remove(ec2, state, "privatelink")
    firewall_forms(ec2, state, step)
    private_acl(ec2, state, step == "network-acl")
    beyond(ec2, state, step)
    policies(ec2, state, step)
    dual_stack(ec2, state, step)
    second_interface(ec2, state, step)
    with open(path, "w") as f:
        json.dump(state, f, indent=2)
    for role, ip, subnet, cidr, zone, public in [
        ("pub", N["PUB_IP"], state["pub_subnet"], N["PUB_SUBNET"], "a", N["PUB_PUBLIC_IP"]),
        ("priv", N["PRIV_IP"], state["priv_subnet"], N["PRIV_SUBNET"], "c", None),
    ]:
        mac = "02:10:10:00:00:0a" if role == "pub" else "02:10:10:01:00:0a"
        net = f"network/interfaces/macs/{mac}"
        data = {
            "placement/region": region,
            "placement/availability-zone": region + zone,
            "instance-id": state["instances"][role],
            "local-ipv4": ip,
            "mac": mac,
            f"{net}/vpc-id": state["vpc"],
            f"{net}/subnet-id": subnet,
            f"{net}/vpc-ipv4-cidr-blocks": N["VPC_CIDR"],
            f"{net}/subnet-ipv4-cidr-block": cidr,
            # The primary interface's groups (moto's instance lists every interface's).
            f"{net}/security-group-ids": state["instance_sg"],
        }
        if step.startswith("dual-stack"):
            data[f"{net}/vpc-ipv6-cidr-blocks"] = N["VPC_CIDR6"]
            data[f"{net}/subnet-ipv6-cidr-blocks"] = N["PUB_SUBNET6" if role == "pub" else "PRIV_SUBNET6"]
            data[f"{net}/ipv6s"] = N["PUB_IP6" if role == "pub" else "PRIV_IP6"]
        macs = [mac]
        if role == "priv" and "eni2" in state:
            mac2 = N["PRIV_ENI2_MAC"]
            net2 = f"network/interfaces/macs/{mac2}"
            macs.append(mac2)
            data.update(
                {
                    f"{net2}/device-number": "1",
                    f"{net2}/local-ipv4s": N["PRIV_ENI2_IP"],
                    f"{net2}/subnet-id": state["pub_subnet"],
                    f"{net2}/subnet-ipv4-cidr-block": N["PUB_SUBNET"],
                    f"{net2}/security-group-ids": state["mgmt_sg"],
                }
            )
        data["network/interfaces/macs/"] = "\n".join(m + "/" for m in macs)
        if public:
            data["public-ipv4"] = public
            # The public instance allows tags in its metadata; the private one does not, so
            # its name comes from the collector's EC2 API.
            data["tags/instance/Name"] = "public-ec2"
        # An instance profile: the SDK's default credential chain reads it from here.
        data["iam/security-credentials/"] = "lab-instance-role"
        data["iam/security-credentials/lab-instance-role"] = json.dumps(
            {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIALABLABLABLABLAB0",
                "SecretAccessKey": "lab-secret",
                "Token": "lab-session-token",
                "Expiration": "2099-01-01T00:00:00Z",
                "LastUpdated": "2026-01-01T00:00:00Z",
            }
        )
        data.update(identity(state_dir, state, role, region, ip))
        with open(os.path.join(state_dir, f"imds-{role}.json"), "w") as f:
            json.dump(data, f, indent=2)


def identity(state_dir, state, role, region, ip):
    """The instance identity document and its signature, as IMDS serves them, when the lab
    (or the test) made an identity CA: signed with its key the way AWS signs with its own
    (RSA PKCS#1 v1.5, SHA-256, base64). The key is made at run time, never committed."""
    key_path = os.path.join(state_dir, "identity-ca.key")
    if not os.path.exists(key_path):
        return {}
    import base64
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    # One pendingTime for every step: a step changes the VPC, it does not restart an instance.
    pending = "2026-12-01T09:00:00Z"
    document = json.dumps(
        {
            "accountId": "123456789012",
            "architecture": "x86_64",
            "availabilityZone": region + ("a" if role == "pub" else "c"),
            "imageId": "ami-0123456789abcdef0",
            "instanceId": state["instances"][role],
            "instanceType": "t3.micro",
            "pendingTime": pending,
            "privateIp": ip,
            "region": region,
            "version": "2017-09-30",
        },
        indent=2,
    )
    signature = key.sign(document.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {
        "dynamic/instance-identity/document": document,
        "dynamic/instance-identity/signature": base64.encodebytes(signature).decode(),
    }


def one_item_pages(answer, token):
    """moto's whole answer cut down to item number `token` (0 without one) of its list, with
    a nextToken when more follow; an answer without a list of items is left as it is."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(answer)
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    ET.register_namespace("", namespace)
    lists = [c for c in root if c.tag.endswith(("Set", "Info")) and len(c)]
    if not lists:
        return answer
    items = list(lists[0])
    index = int(token or 0)
    for n, item in enumerate(items):
        if n != index:
            lists[0].remove(item)
    if index + 1 < len(items):
        tag = f"{{{namespace}}}nextToken" if namespace else "nextToken"
        ET.SubElement(root, tag).text = str(index + 1)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def pages(host, port, upstream):
    import http.server
    import urllib.parse
    import urllib.request

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            form = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
            token = dict(form).get("NextToken")
            asked = [(k, v) for k, v in form if k not in ("NextToken", "MaxResults")]
            action = dict(form).get("Action", "")
            # moto picks its backend by the signature's credential scope: the headers go on
            # (the body changed, but moto does not check signatures).
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(upstream, data=urllib.parse.urlencode(asked).encode(), headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    status, answer = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, answer = e.code, e.read()
            if status == 200 and action.startswith("Describe"):
                answer = one_item_pages(answer, token)
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "pages":
        pages(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "seed":
        seed(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
