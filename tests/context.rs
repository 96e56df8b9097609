//! Where probe stands: IMDSv2 (the lab's metadata server, on 127.0.0.1) and the EC2 API (a
//! moto server seeded like the lab, on 127.0.0.1), answering well and badly.

mod support;

use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use support::servers::{self, Behavior};
use support::{Helper, probe, run_within, seeded_moto};

const REGION: &str = "ap-northeast-2";

fn metadata_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mac = "02:00:00:00:00:01";
    let net = format!("network/interfaces/macs/{mac}");
    let data = json!({
        "placement/region": REGION,
        "placement/availability-zone": "ap-northeast-2c",
        "instance-id": "i-0123456789abcdef0",
        "tags/instance/Name": "private-ec2",
        "local-ipv4": "10.10.1.10",
        "mac": mac,
        format!("{net}/vpc-id"): "vpc-0123",
        format!("{net}/subnet-id"): "subnet-0456",
        format!("{net}/vpc-ipv4-cidr-blocks"): "10.10.0.0/16\n100.64.0.0/16",
        format!("{net}/subnet-ipv4-cidr-block"): "10.10.1.0/24",
    });
    let path = dir.join("imds.json");
    std::fs::write(&path, data.to_string()).unwrap();
    path
}

fn imds(mode: &str, data: &std::path::Path) -> Helper {
    Helper::start(
        "servers.py",
        &[
            "imds",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--mode",
            mode,
        ],
    )
}

/// `probe ARGS` with the metadata service at `imds_url`.
fn with_imds(imds_url: &str, args: &[&str]) -> Command {
    let mut cmd = probe();
    cmd.args(args)
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_url);
    cmd
}

fn json_of(out: &support::Run) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {} {}", out.stdout, out.stderr))
}

#[test]
fn the_metadata_gives_instance_region_vpc_and_every_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let server = imds("normal", &metadata_file(dir.path()));
    let out = run_within(
        &mut with_imds(&server.url(), &["context", "--ec2", "off", "-o", "json"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = json_of(&out);
    assert_eq!(r["imds"], "ok");
    assert_eq!(r["ec2"], "off");
    let i = &r["instance"];
    assert_eq!(i["instance_id"], "i-0123456789abcdef0");
    assert_eq!(
        i["name"], "private-ec2",
        "the Name tag, where the instance allows tags in its metadata"
    );
    assert_eq!(i["region"], REGION);
    assert_eq!(i["availability_zone"], "ap-northeast-2c");
    assert_eq!(i["vpc_id"], "vpc-0123");
    assert_eq!(i["subnet_id"], "subnet-0456");
    assert_eq!(i["vpc_cidrs"], json!(["10.10.0.0/16", "100.64.0.0/16"]));
    assert_eq!(i["subnet_cidr"], "10.10.1.0/24");
    assert_eq!(i["public_ipv4"], Value::Null, "404 means no public address");
}

#[test]
fn check_takes_region_and_cidrs_from_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let server = imds("normal", &metadata_file(dir.path()));
    let dns = support::dns::FakeDns::start(&[]);
    let mut cmd = with_imds(
        &server.url(),
        &[
            "check",
            "sts",
            "--ec2",
            "off",
            "--resolver",
            &dns.addr.to_string(),
            "-o",
            "json",
        ],
    );
    let out = run_within(&mut cmd, Duration::from_secs(10));
    let r = json_of(&out);
    support::assert_valid(&r);
    assert_eq!(r["targets"][0]["host"], "sts.ap-northeast-2.amazonaws.com");
    assert_eq!(r["agent"]["region"], REGION);
    assert_eq!(
        r["agent"]["vpc_cidrs"],
        json!(["10.10.0.0/16", "100.64.0.0/16"])
    );
    assert_eq!(r["agent"]["instance"]["instance_id"], "i-0123456789abcdef0");
    assert_eq!(r["agent"]["context"]["imds"], "ok");
}

#[test]
fn bad_metadata_answers_leave_one_clear_line_and_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let data = metadata_file(dir.path());
    let closed = format!("http://127.0.0.1:{}", servers::refused_port());
    for (mode, needle) in [
        ("forbidden", "turned off for this instance (403)"),
        ("unauthorized", "refused the session token (401)"),
        ("error500", "answered HTTP 500"),
        ("garbage", "malformed"),
        ("stall", "no instance metadata at"),
        ("closed", "no instance metadata at"),
    ] {
        let server = (mode != "closed").then(|| imds(mode, &data));
        let url = server.as_ref().map_or(closed.clone(), Helper::url);
        let out = run_within(
            &mut with_imds(&url, &["context", "--ec2", "off", "-o", "json"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.code, 0, "{mode}: {}", out.stderr);
        let r = json_of(&out);
        let status = r["imds"].as_str().unwrap();
        assert!(status.contains(needle), "{mode}: {status}");
        assert!(!status.contains('\n'), "{mode}: one line");
        assert_eq!(r["instance"], Value::Null);
    }
}

#[test]
fn a_service_name_without_region_says_what_the_metadata_said() {
    let dir = tempfile::tempdir().unwrap();
    let server = imds("forbidden", &metadata_file(dir.path()));
    let out = run_within(
        &mut with_imds(&server.url(), &["check", "s3", "--ec2", "off"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--region") && out.stderr.contains("turned off"),
        "{}",
        out.stderr
    );
}

/// moto seeded like the lab's gateway step, and the metadata of the private instance.
struct Ec2Lab {
    _dir: tempfile::TempDir,
    moto: Helper,
    imds: Helper,
    state: Value,
}

impl Ec2Lab {
    fn start(step: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (moto, state) = seeded_moto(dir.path(), step);
        let imds = imds("normal", &dir.path().join("imds-priv.json"));
        Self {
            _dir: dir,
            moto,
            imds,
            state,
        }
    }

    /// `probe context -o json` against this lab's moto, which must exit 0.
    fn context_json(&self) -> Value {
        let out = run_within(
            &mut self.probe(&self.moto.url(), &["context", "-o", "json"]),
            Duration::from_secs(20),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        json_of(&out)
    }

    fn probe(&self, ec2_url: &str, args: &[&str]) -> Command {
        let mut cmd = with_imds(&self.imds.url(), args);
        cmd.env("AWS_ENDPOINT_URL_EC2", ec2_url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        cmd
    }
}

#[test]
fn the_ec2_api_gives_route_table_gateway_routes_and_endpoints() {
    let lab = Ec2Lab::start("interface");
    let r = lab.context_json();
    assert_eq!(r["ec2"], "ok", "{r:#}");
    let vpc = &r["vpc"];
    assert_eq!(vpc["vpc_id"], lab.state["vpc"]);
    assert_eq!(vpc["dns_support"], true);
    let table = &vpc["route_table"];
    assert_eq!(table["id"], lab.state["priv_rt"]);
    assert_eq!(
        table["default_route"],
        Value::Null,
        "the private subnet has no internet route"
    );
    assert_eq!(
        table["gateway_routes"][0]["endpoint_id"],
        lab.state["s3"]["id"]
    );
    assert_eq!(
        table["gateway_routes"][0]["cidrs"],
        json!(["198.51.100.0/24"])
    );
    let endpoints = vpc["endpoints"].as_array().unwrap();
    let cf = endpoints
        .iter()
        .find(|e| e["id"] == lab.state["cloudformation"]["id"])
        .expect("the interface endpoint");
    assert_eq!(cf["private_dns"], true);
    assert_eq!(cf["kind"], "Interface");
    let ips: Vec<&Value> = cf["enis"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["ips"].as_array().unwrap())
        .collect();
    assert!(
        ips.contains(&&json!("10.10.0.100")) && ips.contains(&&json!("10.10.1.100")),
        "{cf:#}"
    );
}

#[test]
fn the_ec2_api_gives_the_security_groups_and_network_acls_of_the_instance_and_endpoints() {
    let lab = Ec2Lab::start("interface");
    let r = lab.context_json();
    assert_eq!(
        r["instance"]["security_groups"],
        json!([lab.state["instance_sg"]]),
        "the metadata's security-group-ids: {r:#}"
    );
    let vpc = &r["vpc"];
    assert_eq!(vpc["firewalls"], "ok", "{vpc:#}");
    let group = |id: &Value| {
        vpc["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == *id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {vpc:#}"))
    };
    let endpoints = group(&lab.state["sg"]);
    assert_eq!(
        endpoints["ingress"],
        json!([{"protocol": "tcp", "ports": {"from": 443, "to": 443},
                "cidrs": ["10.10.0.0/16"], "groups": [], "prefix_lists": []}]),
        "{endpoints:#}"
    );
    let instances = group(&lab.state["instance_sg"]);
    assert_eq!(instances["egress"][0]["protocol"], "all", "{instances:#}");
    let acl = vpc["network_acls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["default"] == true)
        .expect("the VPC's default network ACL");
    assert!(
        acl["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["rule"] == 32767 && e["allow"] == false),
        "the final deny: {acl:#}"
    );
    assert_eq!(
        vpc["route_table"]["routes"][0],
        json!({"cidr": "10.10.0.0/16", "prefix_list": null, "target": "local", "state": "active"})
    );

    // Shown for people too: the groups with their rules, the subnet's ACL.
    let out = run_within(
        &mut lab.probe(&lab.moto.url(), &["context", "-o", "table"]),
        Duration::from_secs(20),
    );
    let sg = lab.state["sg"].as_str().unwrap();
    for want in [
        format!("security group     {sg} (endpoints), on "),
        "  in: tcp 443 from 10.10.0.0/16".to_string(),
        "network ACL        acl-".to_string(),
        "  out * deny all to 0.0.0.0/0".to_string(),
    ] {
        assert!(out.stdout.contains(&want), "{want:?} not in {}", out.stdout);
    }
}

#[test]
fn bad_ec2_answers_leave_one_clear_line_and_never_hang() {
    let lab = Ec2Lab::start("base");
    let throttled = servers::http(Behavior::Respond {
        status: 503,
        headers: "Content-Type: text/xml\r\n",
        body: "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>",
    });
    let broken = servers::http(Behavior::Respond {
        status: 500,
        headers: "",
        body: "oops",
    });
    let garbage = servers::http(Behavior::Respond {
        status: 200,
        headers: "Content-Type: text/xml\r\n",
        body: "<<<not xml",
    });
    let stalled = servers::http(Behavior::StallAfterHandshake);
    let closed = format!("http://127.0.0.1:{}", servers::refused_port());
    for (name, url) in [
        ("throttled", format!("http://{}", throttled.addr)),
        ("500", format!("http://{}", broken.addr)),
        ("garbage", format!("http://{}", garbage.addr)),
        ("stalled", format!("http://{}", stalled.addr)),
        ("closed", closed),
    ] {
        let args = ["context", "--ec2-timeout", "1s", "-o", "json"];
        let out = run_within(&mut lab.probe(&url, &args), Duration::from_secs(10));
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let r = json_of(&out);
        let status = r["ec2"].as_str().unwrap();
        assert!(status.starts_with("EC2 API"), "{name}: {status}");
        assert!(!status.contains('\n'), "{name}: {status}");
        if name == "throttled" {
            assert!(status.contains("RequestLimitExceeded"), "{status}");
        }
        assert_eq!(r["vpc"], Value::Null);
        let required = run_within(
            &mut lab.probe(
                &url,
                &["context", "--ec2", "required", "--ec2-timeout", "1s"],
            ),
            Duration::from_secs(10),
        );
        assert_eq!(required.code, 3, "{name}: --ec2 required exits 3");
        assert!(
            required.stderr.contains("--ec2 required: EC2 API"),
            "{name}: {}",
            required.stderr
        );
    }
}

#[test]
fn every_page_of_a_large_vpcs_answers_is_read() {
    let lab = Ec2Lab::start("peering");
    let whole = lab.context_json();
    let paged = Helper::start(
        "ec2_fixture.py",
        &["pages", "127.0.0.1", "0", &lab.moto.url()],
    );
    let out = run_within(
        &mut lab.probe(&paged.url(), &["context", "-o", "json"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = json_of(&out);
    assert_eq!(r["ec2"], "ok", "{r:#}");
    for list in [
        "interfaces",
        "endpoints",
        "security_groups",
        "network_acls",
        "peerings",
    ] {
        let n = whole["vpc"][list].as_array().map_or(0, Vec::len);
        assert!(
            n > 1 || list == "peerings" && n == 1,
            "{list}: {n} in {whole:#}"
        );
    }
    assert_eq!(
        r["vpc"], whole["vpc"],
        "one item a page, the VPC reads the same"
    );
}
