"""CloudFormation helpers for tests/templates.rs, run with the project's Python (.venv).

  cfn.py dump TEMPLATE          the template as JSON (cfn-lint's loader, which reads !Ref and
                                the other short forms)
  cfn.py lab1 TEMPLATE PARAMS   creates lab 1 in moto (in this process: no server, no network)
                                with the JSON object PARAMS, then updates it through each
                                tutorial step; prints what the EC2 API shows after each step
"""
import base64
import json
import sys

REGION = "ap-northeast-2"
STEPS = [
    ("base", {"S3GatewayEndpoint": "false", "CloudFormationEndpoint": "none"}),
    ("gateway", {"S3GatewayEndpoint": "true", "CloudFormationEndpoint": "none"}),
    ("interface", {"S3GatewayEndpoint": "true", "CloudFormationEndpoint": "private-dns"}),
    ("private-dns-off", {"S3GatewayEndpoint": "true", "CloudFormationEndpoint": "no-private-dns"}),
]


def dump(path):
    from cfnlint.decode import decode

    template, problems = decode(path)
    if problems:
        sys.exit(f"{path}: {problems[0]}")
    print(json.dumps(template, default=str))


def facts(ec2, vpc_id):
    """What probe would read: the VPC, its subnets, route tables, endpoints, instances."""
    flt = [{"Name": "vpc-id", "Values": [vpc_id]}]
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    attr = lambda a: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=a)
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(Filters=flt)["Subnets"]}
    tables = []
    for t in ec2.describe_route_tables(Filters=flt)["RouteTables"]:
        routes = [
            {
                "to": r.get("DestinationCidrBlock") or r.get("DestinationPrefixListId"),
                "via": r.get("GatewayId") or r.get("VpcEndpointId") or r.get("NatGatewayId"),
            }
            for r in t["Routes"]
        ]
        tables.append({"id": t["RouteTableId"], "routes": routes})
    endpoints = [
        {
            "id": e["VpcEndpointId"],
            "type": e["VpcEndpointType"],
            "service": e["ServiceName"],
            "private_dns": e.get("PrivateDnsEnabled"),
            "route_tables": sorted(e.get("RouteTableIds") or []),
            "subnets": sorted(subnets[s]["CidrBlock"] for s in e.get("SubnetIds") or []),
            "state": e.get("State"),
        }
        for e in ec2.describe_vpc_endpoints(Filters=flt)["VpcEndpoints"]
    ]
    instances = {}
    for r in ec2.describe_instances(Filters=flt)["Reservations"]:
        for i in r["Instances"]:
            name = next((t["Value"] for t in i.get("Tags", []) if t["Key"] == "Name"), i["InstanceId"])
            data = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData")
            value = (data.get("UserData") or {}).get("Value")
            instances[name] = {
                "id": i["InstanceId"],
                "subnet": subnets[i["SubnetId"]]["CidrBlock"],
                "private_ip": i.get("PrivateIpAddress"),
                "public_ip": i.get("PublicIpAddress"),
                "user_data": base64.b64decode(value).decode() if value else None,
            }
    return {
        "cidr": vpc["CidrBlock"],
        "dns_support": attr("enableDnsSupport")["EnableDnsSupport"]["Value"],
        "dns_hostnames": attr("enableDnsHostnames")["EnableDnsHostnames"]["Value"],
        "subnets": sorted((s["CidrBlock"], s["AvailabilityZone"], s.get("MapPublicIpOnLaunch", False)) for s in subnets.values()),
        "route_tables": tables,
        "endpoints": endpoints,
        "instances": instances,
    }


def lab1(path, params):
    import boto3
    from moto import mock_aws

    with mock_aws():
        cfn = boto3.client("cloudformation", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        body = open(path).read()
        out = {}
        for i, (step, endpoints) in enumerate(STEPS):
            values = dict(params, **endpoints)
            call = cfn.create_stack if i == 0 else cfn.update_stack
            call(
                StackName="probe-lab1",
                TemplateBody=body,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
                Capabilities=["CAPABILITY_IAM"],
            )
            stack = cfn.describe_stacks(StackName="probe-lab1")["Stacks"][0]
            if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
                sys.exit(f"{step}: the stack is {stack['StackStatus']}: {stack.get('StackStatusReason')}")
            resources = {
                r["LogicalResourceId"]: r.get("PhysicalResourceId")
                for r in cfn.describe_stack_resources(StackName="probe-lab1")["StackResources"]
                if "LogicalResourceId" in r
            }
            out[step] = dict(facts(ec2, resources["VPC"]), resources=resources)
        print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "lab1":
        lab1(sys.argv[2], json.loads(sys.argv[3]))
    else:
        sys.exit(__doc__)
