//! Load generator for `probe collect`: signed reports, each with its own id (so every one is
//! a durable write, not a duplicate), over keep-alive HTTP/1.1 connections. wrk and oha cannot
//! sign each request, hence this. Prints throughput and latency percentiles.
//!
//!   cargo run --release --example collect_load -- URL TOKEN_FILE [REPORTS] [CONNECTIONS] [INSTANCES]
//!
//! INSTANCES (default 1) spreads the reports over that many host names, so each report of a
//! transaction moves a cell and an hour of its own, as a fleet's do.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use probe::auth::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Token};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: collect_load URL TOKEN_FILE [REPORTS] [CONNECTIONS] [INSTANCES]");
        std::process::exit(2);
    }
    let url = args[1].trim_end_matches('/').to_string();
    let token = Arc::new(
        Token::load(std::path::Path::new(&args[2])).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
    );
    let total: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let connections: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(32);
    let instances: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let authority = url.trim_start_matches("http://").to_string();
    let template: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/report.json")).expect("sample report");
    // Unique per run, even for two runs in one second: every report is a new id.
    let run = format!("{:x}-{:x}", probe::auth::now(), std::process::id());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (token, next, template, authority, run) = (
            token.clone(),
            next.clone(),
            template.clone(),
            authority.clone(),
            run.clone(),
        );
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&authority)
                .await
                .expect("connect");
            stream.set_nodelay(true).ok();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let mut report = template.clone();
                report["id"] = format!("load-{run}-{n}").into();
                if instances > 1 {
                    report["agent"]["hostname"] = format!("vm-{}", n % instances).into();
                }
                let body = serde_json::to_vec(&report).expect("json");
                let now = probe::auth::now();
                let request = Request::post("/v1/reports")
                    .header("host", &authority)
                    .header("content-type", "application/json")
                    .header(TIMESTAMP_HEADER, now.to_string())
                    .header(SIGNATURE_HEADER, token.sign(now, &body))
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let t0 = Instant::now();
                let Ok(response) = sender.send_request(request).await else {
                    errors += 1;
                    break;
                };
                let ok = response.status().as_u16() == 201;
                let _ = response.into_body().collect().await;
                if ok {
                    latencies.push(t0.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |permille: usize| {
        latencies
            .get((latencies.len() * permille / 1000).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let stored = u32::try_from(latencies.len()).unwrap_or(u32::MAX);
    println!(
        "{} reports stored in {:.2} s over {connections} connections: {:.0} reports/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {errors} errors",
        stored,
        elapsed.as_secs_f64(),
        f64::from(stored) / elapsed.as_secs_f64(),
        pct(500),
        pct(990),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
}
