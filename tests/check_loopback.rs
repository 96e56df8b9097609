//! `probe check` against servers on 127.0.0.1 that behave and misbehave on purpose. Every
//! JSON report is also validated against schema/report-v1.json.

mod support;

use hickory_proto::op::ResponseCode;
use serde_json::Value;
use std::net::Ipv4Addr;
use support::dns::{FakeDns, Zone};
use support::servers::{self, Behavior, Pki};
use support::{check_json, first_address};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn target<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {report:#}"))
}

#[test]
fn dns_failures_have_distinct_kinds() {
    let dns = FakeDns::start(&[
        ("nodata.test", Zone::NoData),
        ("servfail.test", Zone::Rcode(ResponseCode::ServFail)),
        ("refused.test", Zone::Rcode(ResponseCode::Refused)),
        ("silent.test", Zone::Silent),
    ]);
    let (code, report) = check_json(
        Some(dns.addr),
        &[
            "missing.test",
            "nodata.test",
            "servfail.test",
            "refused.test",
            "silent.test",
            "--timeout",
            "500ms",
        ],
    );
    assert_eq!(code, 1, "no target is reachable");
    for (name, kind, rcode) in [
        ("missing.test", "nxdomain", Some("NXDOMAIN")),
        ("nodata.test", "no-data", Some("NOERROR")),
        ("servfail.test", "servfail", Some("SERVFAIL")),
        ("refused.test", "refused", Some("REFUSED")),
        ("silent.test", "timeout", None),
    ] {
        let t = target(&report, name);
        assert_eq!(t["dns"]["ok"], false, "{name}");
        assert_eq!(t["dns"]["error"]["phase"], "dns", "{name}");
        assert_eq!(t["dns"]["error"]["kind"], kind, "{name}: {t:#}");
        assert_eq!(t["dns"]["rcode"].as_str(), rcode, "{name}");
        assert_eq!(t["dns"]["server"], dns.addr.to_string(), "{name}");
        assert_eq!(t["verdict"]["path"], "dns-failed", "{name}");
        assert_eq!(t["verdict"]["reachable"], false, "{name}");
    }
}

#[test]
fn cname_chain_ttls_and_an_http_answer() {
    let web = servers::http(Behavior::Respond {
        status: 200,
        headers: "Server: lab\r\nx-amz-request-id: REQ123\r\n",
        body: "hello world",
    });
    let dns = FakeDns::start(&[
        ("alias.test", Zone::Cname("www.test")),
        ("www.test", Zone::A(vec![LOCAL])),
    ]);
    let url = format!("http://alias.test:{}/index.html", web.addr.port());
    let (code, report) = check_json(Some(dns.addr), &[&url, "--expect-body", "world"]);
    assert_eq!(code, 0, "{report:#}");
    let t = &report["targets"][0];
    assert_eq!(t["dns"]["addresses"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(t["dns"]["cname"], serde_json::json!(["www.test"]));
    assert_eq!(t["dns"]["rcode"], "NOERROR");
    let records = t["dns"]["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "CNAME" && r["ttl"] == 60 && r["data"] == "www.test")
    );
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "A" && r["ttl"] == 300 && r["name"] == "www.test")
    );
    let a = first_address(&report);
    assert_eq!(a["class"], "special");
    assert_eq!(a["tcp"]["status"], "ok");
    assert_eq!(a["tls"]["status"], "skipped");
    assert_eq!(a["http"]["code"], 200);
    assert_eq!(a["http"]["bytes"], 11);
    assert_eq!(a["http"]["server"], "lab");
    assert_eq!(a["http"]["request_id"], "REQ123");
    assert_eq!(t["verdict"]["reachable"], true);
    assert_eq!(t["verdict"]["path"], "special");
}

#[test]
fn a_missing_body_text_fails_the_http_stage() {
    let web = servers::http(Behavior::Respond {
        status: 404,
        headers: "",
        body: "not here",
    });
    let url = format!("http://127.0.0.1:{}/", web.addr.port());
    let (code, report) = check_json(None, &[&url, "--expect-body", "welcome"]);
    assert_eq!(code, 1);
    let a = first_address(&report);
    assert_eq!(a["http"]["status"], "fail");
    assert_eq!(a["http"]["code"], 404);
    assert_eq!(a["http"]["error"]["kind"], "body-mismatch");
    assert_eq!(report["targets"][0]["verdict"]["path"], "unreachable");
}

#[test]
fn tls_failures_have_distinct_kinds_and_show_the_certificate() {
    let pki = Pki::new();
    let good = servers::https(pki.leaf(&["good.test"]), servers::status(403));
    let wrong = servers::https(pki.leaf(&["other.test"]), servers::status(200));
    let expired = servers::https(pki.expired(&["expired.test"]), servers::status(200));
    let unknown = servers::https(
        servers::self_signed(&["unknown.test"]),
        servers::status(200),
    );
    let dns = FakeDns::start(&[
        ("good.test", Zone::A(vec![LOCAL])),
        ("wrong.test", Zone::A(vec![LOCAL])),
        ("expired.test", Zone::A(vec![LOCAL])),
        ("unknown.test", Zone::A(vec![LOCAL])),
    ]);
    let urls = [
        format!("https://good.test:{}/", good.addr.port()),
        format!("https://wrong.test:{}/", wrong.addr.port()),
        format!("https://expired.test:{}/", expired.addr.port()),
        format!("https://unknown.test:{}/", unknown.addr.port()),
    ];
    let ca = pki.ca_file.to_str().unwrap();
    let mut args: Vec<&str> = urls.iter().map(String::as_str).collect();
    args.extend(["--ca-file", ca]);
    let (code, report) = check_json(Some(dns.addr), &args);
    assert_eq!(code, 1);

    let tls = |i: usize| report["targets"][i]["addresses"][0]["tls"].clone();
    assert_eq!(tls(0)["status"], "ok");
    assert_eq!(tls(0)["version"], "TLSv1.3");
    assert_eq!(tls(0)["cert"]["names"], serde_json::json!(["good.test"]));
    assert!(
        tls(0)["cert"]["issuer"]
            .as_str()
            .unwrap()
            .contains("probe test CA")
    );
    assert_eq!(
        report["targets"][0]["addresses"][0]["http"]["code"], 403,
        "any status proves the service answered"
    );
    assert_eq!(report["targets"][0]["verdict"]["reachable"], true);

    assert_eq!(tls(1)["error"]["kind"], "name-mismatch");
    assert_eq!(tls(1)["cert"]["names"], serde_json::json!(["other.test"]));
    assert_eq!(tls(2)["error"]["kind"], "expired");
    assert!(
        tls(2)["cert"]["not_after"]
            .as_str()
            .unwrap()
            .starts_with("2020-01-01")
    );
    assert_eq!(tls(3)["error"]["kind"], "unknown-issuer");
    for i in 1..4 {
        assert_eq!(tls(i)["status"], "fail");
        assert_eq!(tls(i)["error"]["phase"], "tls");
        assert_eq!(
            report["targets"][i]["addresses"][0]["http"]["status"],
            "not-run"
        );
        assert_eq!(report["targets"][i]["verdict"]["reachable"], false);
    }
}

#[test]
fn refusals_and_stalls_fail_in_the_right_phase() {
    let pki = Pki::new();
    let stall_http = servers::https(pki.leaf(&["127.0.0.1"]), Behavior::StallAfterHandshake);
    let stall_tls = servers::http(Behavior::Silent);
    let refused = format!("127.0.0.1:{}", servers::refused_port());
    let stalled = format!("https://127.0.0.1:{}/", stall_http.addr.port());
    let silent = format!("https://127.0.0.1:{}/", stall_tls.addr.port());
    let ca = pki.ca_file.to_str().unwrap();
    let (code, report) = check_json(
        None,
        &[
            &refused,
            &stalled,
            &silent,
            "--timeout",
            "700ms",
            "--ca-file",
            ca,
        ],
    );
    assert_eq!(code, 1);
    let stage = |i: usize, s: &str| report["targets"][i]["addresses"][0][s].clone();
    assert_eq!(report["targets"][0]["scheme"], "tcp");
    assert_eq!(stage(0, "tcp")["error"]["kind"], "refused");
    assert_eq!(stage(0, "tls")["status"], "skipped");
    assert_eq!(stage(1, "tcp")["status"], "ok");
    assert_eq!(stage(1, "tls")["status"], "ok");
    assert_eq!(stage(1, "http")["error"]["phase"], "http");
    assert_eq!(stage(1, "http")["error"]["kind"], "timeout");
    assert_eq!(stage(2, "tcp")["status"], "ok");
    assert_eq!(stage(2, "tls")["error"]["kind"], "timeout");
    assert_eq!(stage(2, "http")["status"], "not-run");
    for i in 0..3 {
        assert_eq!(report["targets"][i]["verdict"]["path"], "unreachable");
    }
}

#[test]
fn expectations_decide_pass_and_the_exit_code() {
    let web = servers::http(servers::status(200));
    let up = format!("http://127.0.0.1:{}/", web.addr.port());
    let down = format!("127.0.0.1:{}", servers::refused_port());

    let (code, report) = check_json(
        None,
        &[&up, &down, "--expect", &format!("{down}=unreachable")],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["pass"], true);
    assert_eq!(report["targets"][1]["verdict"]["expected"], "unreachable");

    let (code, report) = check_json(
        None,
        &[&up, "--expect", &format!("{up}=interface-endpoint")],
    );
    assert_eq!(code, 1);
    let reason = report["targets"][0]["verdict"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("expected interface-endpoint, got special"),
        "{reason}"
    );

    let (code, _) = check_json(None, &[&down]);
    assert_eq!(
        code, 1,
        "without expectations every target must be reachable"
    );
}
