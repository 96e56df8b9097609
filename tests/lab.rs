//! The tutorial's VPCs, emulated in network namespaces by lab/lab.sh. In every step and from
//! both instances, probe's verdicts must be the tutorial's, what it observed must agree with
//! dig, ping and curl run in the same namespace, and the configuration's prediction (from the
//! lab's EC2 API, seeded as the packets are filtered) must agree with both, each fault
//! explained by the rule that causes it. Needs root; every command against a lab address
//! runs inside a lab namespace, and the lab is torn down even when a test fails.

mod support;

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Output;
use std::thread;
use support::lab::{Lab, names, start_collectors};

/// Whether `step` is `which` or comes after it in the lab's steps.
fn after(n: &HashMap<String, String>, step: &str, which: &str) -> bool {
    let place = |s: &str| n["STEPS"].split_whitespace().position(|x| x == s).unwrap();
    place(step) >= place(which)
}

/// Each step's expected path per target, from the public and the private instance. The
/// steps after privatelink each add a fault: the endpoints' security group admitting the
/// public subnet only, the private subnet's network ACL denying HTTPS to S3 and the
/// PrivateLink ENI's answers, the PrivateLink endpoint awaiting acceptance, its service not
/// answering. The next change routes: the private subnet's 0.0.0.0/0 to a NAT gateway (S3's
/// prefix list still wins) or to a NAT instance's interface, then the second VPC's web server
/// over a peering connection and through a transit gateway (a target only where a route to it
/// exists: the lab's internet, like AWS's, does not carry another VPC's private addresses,
/// which the configuration cannot know). After IPv6, transit-egress: a spoke without an S3 gateway
/// endpoint sends everything to the transit gateway, and the second VPC NATs it out.
fn expectations(
    step: &str,
    n: &HashMap<String, String>,
) -> Vec<(String, &'static str, &'static str)> {
    let (ie, public, unreachable, nodns) =
        ("interface-endpoint", "public", "unreachable", "dns-failed");
    // The spoke of transit-egress has no S3 gateway endpoint of its own.
    let gateway = after(n, step, "gateway") && step != "transit-egress";
    let s3 = if gateway { "gateway-endpoint" } else { public };
    // The private subnet reaches the internet only through the NAT gateway's step, and through
    // the transit gateway (the egress VPC's NAT) in transit-egress.
    let internet_private = match step {
        "nat-gateway" => "nat-gateway",
        // A NAT instance is an appliance: its route says where traffic goes, not beyond.
        "nat-instance" | "instance-route" => "private",
        "transit-egress" => "transit-gateway",
        _ => unreachable,
    };
    let s3_private = match step {
        "transit-egress" => internet_private,
        "network-acl" => unreachable,
        _ if gateway => s3,
        _ => unreachable,
    };
    let private_dns = step == "interface";
    let vpce = match step {
        _ if !after(n, step, "interface") => (nodns, nodns),
        "endpoint-sg" => (ie, unreachable),
        _ => (ie, ie),
    };
    // The private instance's second interface reaches the zone-a ENI on its own link, and its
    // group lets no HTTPS out; the zone-c ENI is still reached by the primary interface.
    let vpce_a = if step == "multi-eni" {
        (ie, unreachable)
    } else {
        vpce
    };
    let service = match step {
        _ if !after(n, step, "privatelink") => (nodns, nodns),
        "pending-acceptance" | "service-down" => (unreachable, unreachable),
        // The private subnet's ACL denies the answers of the PrivateLink ENI; in sg-forms its
        // group admits a prefix list that holds the public subnet only.
        "network-acl" | "sg-forms" | "multi-eni" => (ie, unreachable),
        _ => (ie, ie),
    };
    let mut targets = vec![
        ("s3".to_string(), s3, s3_private),
        (
            "cloudformation".to_string(),
            if private_dns { ie } else { public },
            if private_dns { ie } else { internet_private },
        ),
        (n["CF_VPCE_NAME"].clone(), vpce.0, vpce.1),
        (n["CF_VPCE_A_NAME"].clone(), vpce_a.0, vpce_a.1),
        (
            format!("http://{}/", n["NLB_NAME"]),
            public,
            internet_private,
        ),
        (
            format!("http://{}/", n["WWW_NAME"]),
            public,
            internet_private,
        ),
        (
            format!("http://{}/", n["SVC_VPCE_NAME"]),
            service.0,
            service.1,
        ),
    ];
    let web = format!("http://{}/", n["WEB1_NAME"]);
    match step {
        "peering" => targets.push((web, "peering", "peering")),
        "transit-gateway" | "transit-egress" => {
            targets.push((web, "transit-gateway", "transit-gateway"));
        }
        // A network on premises, by a VPN: what lies beyond the gateway is not read.
        "vpn-gateway" => targets.push((web, "private", "private")),
        // A by the gateway endpoint; AAAA by the internet (egress-only) gateway, then by the
        // endpoint too: the best path is the endpoint's either way, the families tell.
        "dual-stack" | "dual-stack-endpoint" => targets.push((
            n["S3_DUALSTACK_NAME"].clone(),
            "gateway-endpoint",
            "gateway-endpoint",
        )),
        _ => {}
    }
    targets
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What dig, ping and curl say about one target, each run on the instance.
struct Tools {
    dig_addresses: BTreeSet<String>,
    dig_cnames: Vec<String>,
    ping_received: Vec<(String, u32)>,
    curl_code: String,
}

fn tools(lab: &Lab, role: &str, t: &Value) -> Tools {
    let host = t["host"].as_str().unwrap();
    let mut dig_addresses = BTreeSet::new();
    let mut dig_cnames = Vec::new();
    for rtype in ["A", "AAAA"] {
        let out = lab.exec(role, &["dig", "+short", "+time=1", "+tries=1", host, rtype]);
        for line in text(&out).lines() {
            if line.parse::<std::net::IpAddr>().is_ok() {
                dig_addresses.insert(line.to_string());
            } else if !line.is_empty() && rtype == "A" {
                dig_cnames.push(line.trim_end_matches('.').to_string());
            }
        }
    }
    let ping_received = thread::scope(|s| {
        let pings: Vec<_> = t["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let ip = a["ip"].as_str().unwrap().to_string();
                s.spawn(move || {
                    let out = lab.exec(
                        role,
                        &["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", &ip],
                    );
                    let stats = text(&out);
                    let received = stats
                        .split(',')
                        .find_map(|part| {
                            part.trim()
                                .strip_suffix(" received")
                                .map(|n| n.parse().unwrap())
                        })
                        .unwrap_or_else(|| panic!("ping printed no statistics: {stats}"));
                    (ip, received)
                })
            })
            .collect();
        pings.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ca = lab.ca();
    let url = t["url"].as_str().unwrap();
    let out = lab.exec(
        role,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &ca,
            "--connect-timeout",
            "1",
            "-m",
            "2",
            url,
        ],
    );
    Tools {
        dig_addresses,
        dig_cnames,
        ping_received,
        curl_code: text(&out),
    }
}

/// Checks one instance in one step; returns the problems found.
fn check_instance(lab: &Lab, step: &str, role: &str, n: &HashMap<String, String>) -> Vec<String> {
    let expected = expectations(step, n);
    let ca = lab.ca();
    // No --region, no --vpc-cidr: the instance metadata gives them.
    let mut args: Vec<String> = vec!["check".into()];
    args.extend([
        "--ca-file".into(),
        ca,
        "--timeout".into(),
        "1s".into(),
        "-o".into(),
        "json".into(),
    ]);
    for (target, on_pub, on_priv) in &expected {
        args.push(target.clone());
        args.push("--expect".into());
        args.push(format!(
            "{target}={}",
            if role == "pub" { on_pub } else { on_priv }
        ));
    }
    let mut cmd = vec![env!("CARGO_BIN_EXE_probe")];
    cmd.extend(args.iter().map(String::as_str));
    let out = lab.exec(role, &cmd);
    let report: Value = serde_json::from_str(&text(&out)).unwrap_or_else(|e| {
        panic!(
            "{step}/{role}: no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    support::assert_valid(&report);
    let mut problems = Vec::new();
    for t in report["targets"].as_array().unwrap() {
        if t["verdict"]["pass"] != true {
            problems.push(format!(
                "{step}/{role} {}: {}",
                t["target"], t["verdict"]["reason"]
            ));
        }
    }
    if out.status.code() != Some(0) && problems.is_empty() {
        problems.push(format!(
            "{step}/{role}: exit {:?} though every verdict passed",
            out.status.code()
        ));
    }
    problems.extend(context_problems(step, role, &report, &lab.ec2_state(), n));
    let targets = report["targets"].as_array().unwrap();
    let observed: Vec<Tools> = thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| s.spawn(move || tools(lab, role, t)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, seen) in targets.iter().zip(observed) {
        problems.extend(disagreements(
            &format!("{step}/{role} {}", t["target"]),
            t,
            seen,
        ));
    }
    problems
}

/// The diagnoses each step should give for a target: the tutorial's failure patterns, and
/// the rule behind each fault.
fn expected_diagnoses(
    n: &HashMap<String, String>,
    step: &str,
    role: &str,
    target: &str,
) -> Vec<&'static str> {
    let service = target.contains("vpce-svc-");
    let mut want = match (target, step, role) {
        ("s3", "base", "priv") => vec!["no-gateway-route"],
        ("s3", "network-acl", "priv") => vec!["network-acl-denies"],
        ("cloudformation", _, _) if after(n, step, "private-dns-off") => {
            vec!["private-dns-disabled"]
        }
        // Issue 11: the private subnet's route table, which the configuration shows, has no
        // route to a public address.
        ("cloudformation", "base" | "gateway", "priv") => vec!["no-route"],
        (t, "blackhole", "priv") if t.contains("cloudneta") => vec!["route-blackhole"],
        (t, s, "priv")
            if t.contains("cloudneta")
                && ![
                    "nat-gateway",
                    "nat-instance",
                    "instance-route",
                    "transit-egress",
                ]
                .contains(&s) =>
        {
            vec!["no-route"]
        }
        // Advice: S3 gets through the egress VPC, never by a gateway endpoint over there.
        ("s3", "transit-egress", "priv") => vec!["gateway-endpoint-not-transitive"],
        (t, "endpoint-sg", "priv") if t.starts_with("vpce-") => vec!["security-group-ingress"],
        _ => vec![],
    };
    if service && step == "pending-acceptance" {
        want.push("endpoint-pending-acceptance");
    }
    // The PrivateLink endpoint has its only ENI in the public subnet's zone.
    if service && role == "priv" && after(n, step, "privatelink") {
        want.push("endpoint-no-eni-in-zone");
    }
    // That advice explains no failure: the rule that blocks still comes after it.
    if service && role == "priv" && step == "network-acl" {
        want.push("network-acl-denies");
    }
    if service && role == "priv" && step == "sg-forms" {
        want.push("security-group-ingress");
    }
    // The policies: S3's answer is refused by its gateway endpoint's, CloudFormation's ENIs
    // by theirs; the path works.
    let cf_vpce = target == n["CF_VPCE_NAME"] || target == n["CF_VPCE_A_NAME"];
    if step == "endpoint-policy" && (target == "s3" || cf_vpce) {
        want.push("endpoint-policy-denies");
    }
    if step == "dual-stack" && target == n["S3_DUALSTACK_NAME"] {
        want.push("ipv6-bypasses-endpoint");
    }
    let zone_a = target == n["CF_VPCE_A_NAME"];
    if (service || zone_a) && role == "priv" && step == "multi-eni" {
        want.push("security-group-egress");
    }
    want
}

/// The configuration's line for a target a fault blocks, and the id of the rule (or
/// endpoint) that blocks it; None for a target no fault touches.
fn expected_cause(
    step: &str,
    role: &str,
    target: &str,
    state: &Value,
    n: &HashMap<String, String>,
) -> Option<(String, String)> {
    let id = |key: &str| state[key].as_str().unwrap().to_string();
    let blocked = |id: String, rule: String| {
        Some((
            format!("the configuration agrees: blocked by {id}{rule}"),
            id,
        ))
    };
    match (step, role) {
        ("endpoint-sg", "priv") if target.starts_with("vpce-") => blocked(
            id("sg"),
            format!(" (ingress): no rule allows tcp 443 from {}", n["PRIV_IP"]),
        ),
        ("network-acl", "priv") if target == "s3" => blocked(
            id("nacl"),
            format!(
                " rule {}: deny tcp 443 to {} (egress)",
                n["NACL_DENY_RULE"], n["S3_PREFIX"]
            ),
        ),
        // Stateless: the request goes out, its answer is what the ACL stops.
        ("network-acl", "priv") if target.contains("vpce-svc-") => blocked(
            id("nacl"),
            format!(
                " rule {}: deny tcp 1024-65535 from {}/32 (ingress, the answer's ephemeral port)",
                n["NACL_ANSWER_RULE"], n["SVC_ENI_IP"]
            ),
        ),
        ("multi-eni", "priv") if target.contains("vpce-svc-") || target == n["CF_VPCE_A_NAME"] => {
            let (ip, port) = if target.contains("vpce-svc-") {
                (&n["SVC_ENI_IP"], 80)
            } else {
                (&n["ENI_A_IP"], 443)
            };
            blocked(
                id("mgmt_sg"),
                format!(" (egress): no rule allows tcp {port} to {ip}"),
            )
        }
        ("blackhole", "priv") if target.contains("cloudneta") => blocked(
            id("priv_rt"),
            format!(
                ": 0.0.0.0/0 -> {} (blackhole: the NAT gateway is gone)",
                id("nat_gone")
            ),
        ),
        ("sg-forms", "priv") if target.contains("vpce-svc-") => blocked(
            id("web_sg"),
            format!(" (ingress): no rule allows tcp 80 from {}", n["PRIV_IP"]),
        ),
        ("pending-acceptance", _) if target.contains("vpce-svc-") => blocked(
            state["privatelink"]["id"].as_str().unwrap().to_string(),
            ": pendingAcceptance".into(),
        ),
        _ => None,
    }
}

/// In the step where the service behind the PrivateLink endpoint stops answering, the
/// configuration still allows everything: the verdict must part from it and say so, naming
/// what allows it.
fn disagreement_problems(
    name: &str,
    v: &Value,
    role: &str,
    state: &Value,
    n: &HashMap<String, String>,
) -> Vec<String> {
    let says = v["predicted"]["says"].as_str().unwrap_or_default();
    let ip = &n[if role == "pub" { "PUB_IP" } else { "PRIV_IP" }];
    let endpoint = state["privatelink"]["id"].as_str().unwrap();
    let group = state["web_sg"].as_str().unwrap();
    let mut problems = Vec::new();
    if v["agrees"] != false || v["predicted"]["reachable"] != true {
        problems.push(format!(
            "{name}: the service does not answer, yet prediction and packets agree: {v}"
        ));
    }
    for part in [
        "the configuration allows it (".to_string(),
        format!("{endpoint}: available"),
        format!("{group} allows tcp 80 from {ip}"),
        "), the packets did not get through: look at the endpoint policy or the service"
            .to_string(),
    ] {
        if !says.contains(&part) {
            problems.push(format!("{name}: \"{part}\" not in the headline: {says}"));
        }
    }
    problems
}

/// The route behind a NAT gateway, peering or transit gateway path (`step` is `STEP/ROLE`):
/// the EC2 API's id for it on
/// every address that took it (with the NAT's Elastic IP), and S3's prefix list named as
/// the winner over the NAT's 0.0.0.0/0.
fn route_problems(
    step: &str,
    name: &str,
    t: &Value,
    state: &Value,
    n: &HashMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let label = format!("{step} {name}");
    let path = t["verdict"]["path"].as_str().unwrap();
    // The lab's private paths: the NAT instance's network interface, the public instance by
    // id, the VPN's virtual private gateway.
    let appliance = match step.split('/').next() {
        Some("instance-route") => &state["instances"]["pub"],
        Some("vpn-gateway") => &state["vgw"],
        _ => &state["nat_eni"],
    };
    let want = match path {
        "nat-gateway" => Some((&state["nat"], Some(n["NAT_PUBLIC_IP"].as_str()))),
        "peering" => Some((&state["pcx"], None)),
        "transit-gateway" => Some((&state["tgw"], None)),
        "private" => Some((appliance, None)),
        _ => None,
    };
    if let Some((id, public_ip)) = want {
        for a in t["addresses"].as_array().unwrap() {
            let r = &a["route"];
            if &r["target"] != id || r["public_ip"].as_str() != public_ip {
                problems.push(format!(
                    "{label}: {path} by route {r}, the EC2 API has {id} ({public_ip:?})"
                ));
            }
        }
        if !t["verdict"]["reason"]
            .as_str()
            .unwrap()
            .contains(id.as_str().unwrap())
        {
            problems.push(format!(
                "{label}: the reason does not name {id}: {}",
                t["verdict"]["reason"]
            ));
        }
    }
    problems.extend(dual_stack_problems(&label, step, name, t, state, n));
    let nat = match step {
        "nat-gateway/priv" => Some(&state["nat"]),
        "nat-instance/priv" | "instance-route/priv" => Some(appliance),
        _ => None,
    };
    if let (Some(nat), "s3") = (nat, name) {
        let over = format!("over 0.0.0.0/0 -> {}", nat.as_str().unwrap());
        let why = t["verdict"]["predicted"]["says"]
            .as_str()
            .unwrap_or_default();
        if !t["verdict"]["reason"].as_str().unwrap().contains(&over) || !why.contains(&over) {
            problems.push(format!(
                "{label}: the prefix list's win over the NAT is not said: {} / {why}",
                t["verdict"]["reason"]
            ));
        }
    }
    problems
}

/// The dual-stack steps: a verdict per family where they part, each family's addresses by its
/// route, and the dual-stack interface endpoint's IPv6 ENIs taken as its.
fn dual_stack_problems(
    label: &str,
    step: &str,
    name: &str,
    t: &Value,
    state: &Value,
    n: &HashMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if name.starts_with("s3.dualstack.") {
        let families: Vec<String> = t["verdict"]["families"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|v| format!("{} {}", v["family"], v["path"]))
                    .collect()
            })
            .unwrap_or_default();
        let want: &[&str] = if step.starts_with("dual-stack-endpoint/") {
            &[]
        } else {
            &["\"ipv4\" \"gateway-endpoint\"", "\"ipv6\" \"public\""]
        };
        if families != want {
            problems.push(format!("{label}: families {families:?}, expected {want:?}"));
        }
        let v6 = t["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["ip"] == n["S3_IP6"].as_str());
        let want_target = if step.starts_with("dual-stack-endpoint/") {
            state["s3"]["id"].clone()
        } else if step.ends_with("/priv") {
            state["eigw"].clone()
        } else {
            state["igw"].clone()
        };
        if v6.is_none_or(|a| a["route"]["target"] != want_target) {
            problems.push(format!(
                "{label}: the AAAA answer's route is not {want_target}: {v6:?}"
            ));
        }
    }
    // The dual-stack interface endpoint: its vpce name answers AAAA with its ENIs' IPv6, and
    // both families take the endpoint (no verdict per family).
    if step.starts_with("dual-stack") && name == n["CF_VPCE_NAME"] {
        let v6 = t["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["ip"] == n["ENI_A_IP6"].as_str());
        let ok = v6.is_some_and(|a| {
            a["class"] == "endpoint-eni" && a["endpoint"]["id"] == state["cloudformation"]["id"]
        });
        if !ok || t["verdict"]["families"].is_array() {
            problems.push(format!(
                "{label}: the endpoint's IPv6 ENI {} not taken as the endpoint's: {t}",
                n["ENI_A_IP6"]
            ));
        }
    }
    problems
}

/// What the metadata and the EC2 API should have added: the agent's place, the endpoint
/// behind each endpoint path, the diagnoses.
fn context_problems(
    step: &str,
    role: &str,
    report: &Value,
    state: &Value,
    n: &HashMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let agent = &report["agent"];
    if agent["context"] != serde_json::json!({"imds": "ok", "ec2": "ok"}) {
        problems.push(format!("{step}/{role}: context {}", agent["context"]));
    }
    let cidrs = if step.starts_with("dual-stack") {
        serde_json::json!([n["VPC_CIDR"], n["VPC_CIDR6"]])
    } else {
        serde_json::json!([n["VPC_CIDR"]])
    };
    if agent["region"] != n["REGION"].as_str() || agent["vpc_cidrs"] != cidrs {
        problems.push(format!(
            "{step}/{role}: region {} CIDRs {}",
            agent["region"], agent["vpc_cidrs"]
        ));
    }
    for t in report["targets"].as_array().unwrap() {
        let name = t["target"].as_str().unwrap();
        let key = match t["verdict"]["path"].as_str().unwrap() {
            "gateway-endpoint" => Some("s3"),
            "interface-endpoint" if name.contains("vpce-svc-") => Some("privatelink"),
            "interface-endpoint" => Some("cloudformation"),
            _ => None,
        };
        if let Some(key) = key {
            if t["verdict"]["endpoint_id"] != state[key]["id"] {
                problems.push(format!(
                    "{step}/{role} {name}: endpoint {}, the EC2 API has {}",
                    t["verdict"]["endpoint_id"], state[key]["id"]
                ));
            }
            // An endpoint path starts from the DNS answer the configuration expects: the
            // endpoint's own name, or its service's name under Private DNS.
            let dns = &t["verdict"]["predicted"]["because"][0];
            let interface = key != "s3";
            if interface && (dns["kind"] != "dns" || dns["id"] != state[key]["id"]) {
                problems.push(format!(
                    "{step}/{role} {name}: the prediction starts from {dns}, not from {}'s DNS",
                    state[key]["id"]
                ));
            }
        }
        problems.extend(route_problems(&format!("{step}/{role}"), name, t, state, n));
        // The configuration seeded in the lab's EC2 API is the one its packets follow, except
        // where the service behind the endpoint stops answering.
        let label = format!("{step}/{role} {name}");
        if step == "service-down" && name.contains("vpce-svc-") {
            problems.extend(disagreement_problems(&label, &t["verdict"], role, state, n));
        } else if t["verdict"]["agrees"] != true {
            problems.push(format!(
                "{label}: the configuration's prediction ({}) and the packets ({}) part: {}",
                t["verdict"]["predicted"]["path"],
                t["verdict"]["path"],
                t["verdict"]["predicted"]["says"]
            ));
        }
        // Each fault is explained by the rule that causes it, in the configuration's line, in
        // the blocking fact and in the diagnosis.
        if let Some((line, id)) = expected_cause(step, role, name, state, n) {
            let p = &t["verdict"]["predicted"];
            let blocking = p["because"]
                .as_array()
                .and_then(|b| b.iter().find(|f| f["allows"] == false));
            if p["says"] != line.as_str() || blocking.is_none_or(|f| f["id"] != id.as_str()) {
                problems.push(format!(
                    "{label}: expected \"{line}\" (blocked by {id}), got {p}"
                ));
            }
            let explained = t["verdict"]["diagnoses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["message"].as_str().unwrap().contains(&id));
            if !explained {
                problems.push(format!(
                    "{label}: no diagnosis names {id}: {}",
                    t["verdict"]["diagnoses"]
                ));
            }
        }
        let codes: Vec<&str> = t["verdict"]["diagnoses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        let want = expected_diagnoses(n, step, role, name);
        if codes != want {
            problems.push(format!(
                "{step}/{role} {name}: diagnoses {codes:?}, expected {want:?}: {}",
                t["verdict"]["diagnoses"]
            ));
        }
    }
    problems
}

/// Where probe's report of one target and the tools' output differ.
fn disagreements(name: &str, t: &Value, seen: Tools) -> Vec<String> {
    let mut problems = Vec::new();
    let ours: BTreeSet<String> = t["dns"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    if ours != seen.dig_addresses {
        problems.push(format!(
            "{name}: probe resolved {ours:?}, dig +short {:?}",
            seen.dig_addresses
        ));
    }
    let cnames: Vec<String> = t["dns"]["cname"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    if cnames != seen.dig_cnames {
        problems.push(format!(
            "{name}: probe CNAMEs {cnames:?}, dig {:?}",
            seen.dig_cnames
        ));
    }
    for (ip, received) in seen.ping_received {
        let a = t["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["ip"] == ip.as_str())
            .unwrap();
        // Whether any echo came back, not how many: on two busy cores one reply of either
        // tool can miss its deadline while the path is the same.
        let ours = a["icmp"]["received"].as_u64().unwrap_or(0);
        if (ours > 0) != (received > 0) {
            problems.push(format!(
                "{name} {ip}: probe got {} echo replies, ping -c 2 got {received}",
                a["icmp"]["received"]
            ));
        }
    }
    let code = t["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["http"]["status"] == "ok")
        .map_or_else(|| "000".to_string(), |a| a["http"]["code"].to_string());
    if code != seen.curl_code {
        problems.push(format!(
            "{name}: probe HTTP {code}, curl {}",
            seen.curl_code
        ));
    }
    problems
}

#[test]
fn every_step_from_both_instances_agrees_with_dig_ping_curl_and_the_configuration() {
    if !Lab::available("lab-tutorial-steps") {
        return;
    }
    let n = names();
    let lab = Lab::up();
    let mut problems = Vec::new();
    for step in n["STEPS"].split_whitespace() {
        lab.step(step);
        for role in ["pub", "priv"] {
            problems.extend(check_instance(&lab, step, role, &n));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_privatelink_endpoint_serves_the_web_page_over_the_private_path() {
    if !Lab::available("lab-privatelink") {
        return;
    }
    let n = names();
    let lab = Lab::up();
    lab.step("privatelink");
    let url = format!("http://{}/", n["SVC_VPCE_NAME"]);
    for role in ["pub", "priv"] {
        let out = lab.exec(
            role,
            &[
                env!("CARGO_BIN_EXE_probe"),
                "check",
                &url,
                "--expect-body",
                &n["WEB_PAGE"],
                "--expect",
                &format!("{url}=interface-endpoint"),
                "-o",
                "json",
            ],
        );
        let report: Value = serde_json::from_str(&text(&out)).unwrap();
        let a = &report["targets"][0]["addresses"][0];
        assert_eq!(out.status.code(), Some(0), "{role}: {report:#}");
        assert_eq!(a["ip"], n["SVC_ENI_IP"].as_str());
        assert_eq!(a["class"], "endpoint-eni");
        assert_eq!(a["icmp"]["received"], 0, "endpoint ENIs do not answer ping");
        assert_eq!(a["http"]["code"], 200);
    }
}

/// Both instances report every step through the relay; the private one has no EC2 API.
fn report_steps(lab: &Lab, relay: &str, token: &str, steps: &[&str]) {
    let probe = env!("CARGO_BIN_EXE_probe");
    let dir = lab.dir();
    let data = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ca = lab.ca();
    for step in steps {
        lab.step(step);
        for role in ["pub", "priv"] {
            let spool = data(&format!("spool-{role}"));
            let mut args = vec![
                probe,
                "check",
                "s3",
                "cloudformation",
                "--ca-file",
                &ca,
                "--timeout",
                "1s",
                "--ping-count",
                "0",
                "-o",
                "json",
                "--report-to",
            ];
            let to = format!("http://{relay}");
            args.extend([
                to.as_str(),
                "--token-file",
                token,
                "--spool",
                spool.as_str(),
            ]);
            if role == "priv" {
                // A private subnet without an ec2 endpoint: no EC2 API on the instance.
                args.extend(["--ec2", "off"]);
            }
            let out = lab.exec(role, &args);
            assert!(
                text(&out).contains("\"schema\""),
                "{role} in {step}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The picture: the operator runs `probe collect` on a laptop (on the internet), the
/// public instance relays, the private instance has no EC2 API of its own, and as the
/// tutorial creates endpoints the laptop's matrix fills in and changes.
#[test]
fn the_operators_matrix_fills_in_through_a_relay_as_endpoints_are_created() {
    if !Lab::available("lab-relay-matrix") {
        return;
    }
    let n = names();
    let lab = Lab::up();
    let (operator, relay, token) = start_collectors(&lab, &n);
    report_steps(&lab, &relay, &token, &["base", "gateway", "interface"]);
    let dir = lab.dir();
    let reports = lab.wait_for(
        "inet",
        &format!("http://{operator}/v1/reports?limit=100"),
        |b| {
            serde_json::from_str::<Value>(b)
                .is_ok_and(|v| v["reports"].as_array().is_some_and(|r| r.len() == 6))
        },
    );
    let reports: Value = serde_json::from_str(&reports).unwrap();
    let state = lab.ec2_state();
    let private_id = &state["instances"]["priv"];
    let newest_private = reports["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"]["instance"]["instance_id"] == *private_id)
        .expect("a report of the private instance");
    let context = &newest_private["agent"]["context"];
    assert_eq!(context["ec2"], "off", "{newest_private:#}");
    assert_eq!(
        context["collector_ec2"], "ok",
        "the relay labelled it: {newest_private:#}"
    );
    let path = |t: usize| newest_private["targets"][t]["verdict"]["path"].clone();
    assert_eq!(
        path(0),
        "gateway-endpoint",
        "only the route table tells: {newest_private:#}"
    );
    assert_eq!(path(1), "interface-endpoint");
    for t in newest_private["targets"].as_array().unwrap() {
        assert_eq!(
            t["verdict"]["agrees"], true,
            "the relay's EC2 API predicts what the private instance saw: {t:#}"
        );
    }
    assert_eq!(
        newest_private["targets"][1]["verdict"]["endpoint_id"],
        state["cloudformation"]["id"]
    );
    assert_eq!(newest_private["agent"]["instance"]["name"], "private-ec2");

    let page = lab
        .get("inet", &format!("http://{operator}/"))
        .expect("the dashboard");
    let label = format!("private-ec2 ({})", private_id.as_str().unwrap());
    for change in [
        format!("{label} -&gt; s3: unreachable -&gt; gateway-endpoint"),
        format!("{label} -&gt; cloudformation: unreachable -&gt; interface-endpoint"),
    ] {
        assert!(page.contains(&change), "{change} not in {page}");
    }
    assert!(page.contains("public-ec2 ("), "{page}");
    let terminal = std::fs::read_to_string(dir.join("log/operator.log")).unwrap();
    assert!(
        terminal.contains(&format!("{label} -> s3: unreachable -> gateway-endpoint")),
        "{terminal}"
    );
}
