//! A clean stop: SIGTERM (systemd's stop) and SIGINT end `probe collect` under load with exit
//! 0 within its drain deadline; a request in flight when the signal comes is finished and
//! acknowledged, nothing is acknowledged that a restart does not find, and new connections
//! are refused once it stops accepting.

mod support;

use rustix::process::Signal;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::collector::{Collector, TOKEN, sample_report, signed, stored_ids, token_file};

/// The collector's drain deadline (10 s) and time to exit.
const STOP_LIMIT: Duration = Duration::from_secs(13);

/// The collector's `host:port`.
fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Sends the head of a signed POST of report `id`; the body follows with [`finish`].
fn start_post(addr: &str, id: &str) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let body = sample_report(id);
    let token = probe::auth::Token::new(TOKEN).unwrap();
    let mut head = format!(
        "POST /v1/reports HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in signed(&token, probe::auth::now(), &body) {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(head.as_bytes())?;
    Ok((stream, body))
}

/// Sends the body and reads the status code of the answer.
fn finish(mut stream: TcpStream, body: &[u8]) -> std::io::Result<u16> {
    stream.write_all(body)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))
}

fn post(addr: &str, id: &str) -> std::io::Result<u16> {
    let (stream, body) = start_post(addr, id)?;
    finish(stream, &body)
}

#[test]
fn sigterm_under_load_finishes_what_is_in_flight_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let data = dir.path().join("data");
    let mut collector = Collector::start(&data, &token, "127.0.0.1:0");
    let addr = address(&collector.url);

    // Four clients posting as fast as they can, each noting what was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (addr, acked, refused) = (addr.clone(), acked.clone(), refused.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                for n in 0.. {
                    let id = format!("load-{c}-{n}");
                    match post(&addr, &id) {
                        Ok(200 | 201) => acked.lock().unwrap().push(id),
                        Ok(_) => {}
                        // Refused: the collector stopped accepting.
                        Err(_) => {
                            refused.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                    assert!(Instant::now() < deadline, "the collector never stopped");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // A request whose body is still to come when the signal arrives.
    let (slow, slow_body) = start_post(&addr, "in-flight").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    collector.signal(Signal::TERM);
    std::thread::sleep(Duration::from_millis(500));
    let slow_status = finish(slow, &slow_body).unwrap();
    assert_eq!(slow_status, 201, "the request in flight was not finished");

    let status = collector
        .wait_exit(STOP_LIMIT)
        .expect("the collector did not exit within its drain deadline");
    assert!(
        status.success(),
        "exit {status:?}: {:#?}",
        collector.lines()
    );
    for c in clients {
        c.join().unwrap();
    }
    assert!(refused.load(Ordering::Relaxed));
    assert!(
        collector
            .lines()
            .iter()
            .any(|l| l.contains("stopped after finishing every request in flight")),
        "{:#?}",
        collector.lines()
    );
    let mut acked = acked.lock().unwrap().clone();
    acked.push("in-flight".into());
    assert!(acked.len() > 20, "too little load: {}", acked.len());

    // Every acknowledged report is there after a restart.
    let again = Collector::start(&data, &token, "127.0.0.1:0");
    let (_, body) = support::collector::get(&format!("{}/v1/reports?limit=1000", again.url));
    let stored: std::collections::HashSet<String> = if acked.len() <= 1000 {
        stored_ids(&again.url).into_iter().collect()
    } else {
        // More than the API lists: read the database itself.
        support::collector::exported(&data, None)
            .into_iter()
            .collect()
    };
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged, then lost: {lost:?} ({body})"
    );
}

#[test]
fn sigint_stops_an_idle_collector_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let mut collector = Collector::start(&dir.path().join("data"), &token, "127.0.0.1:0");
    // An idle keep-alive connection does not hold the stop.
    let idle = TcpStream::connect(address(&collector.url)).unwrap();
    let started = Instant::now();
    collector.signal(Signal::INT);
    let status = collector
        .wait_exit(STOP_LIMIT)
        .expect("the collector did not exit");
    assert!(status.success(), "exit {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle connection held the stop for {:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn sigterm_ends_an_agent_run_with_every_after_its_check() {
    let mut agent = support::probe()
        .args([
            "check",
            &format!("http://127.0.0.1:{}/", support::servers::refused_port()),
            "--every",
            "1s",
            "--no-imds",
            "--ec2",
            "off",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    support::signal(agent.id(), Signal::TERM);
    let deadline = Instant::now() + STOP_LIMIT;
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            let _ = agent.wait();
            panic!("the agent did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit {status:?}");
    let mut out = String::new();
    agent
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains("\"schema\""),
        "no report before the stop: {out}"
    );
}
