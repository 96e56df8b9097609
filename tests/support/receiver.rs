//! A loopback HTTP receiver of alert messages (a webhook or a Slack endpoint) that answers
//! as the test says.

use serde_json::Value;
use std::io::{BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a receiver answers.
#[derive(Clone, Copy)]
pub enum Mode {
    /// This status to every message.
    Answer(u16),
    /// 500 to the first `n` messages, then 200.
    FailFirst(usize),
    /// Reads the message and never answers.
    Hang,
}

/// A loopback HTTP receiver; `got` holds the messages it acknowledged, `tries` counts all.
pub struct Receiver {
    pub url: String,
    pub mode: Arc<Mutex<Mode>>,
    pub got: Arc<Mutex<Vec<Value>>>,
    pub tries: Arc<Mutex<usize>>,
}

pub fn receiver(mode: Mode) -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(mode));
    let got = Arc::new(Mutex::new(Vec::new()));
    let tries = Arc::new(Mutex::new(0usize));
    let (modes, acked, counted) = (mode.clone(), got.clone(), tries.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (modes, acked, counted) = (modes.clone(), acked.clone(), counted.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let Some(body) = super::servers::read_request(&mut reader) else {
                    return;
                };
                let nth = {
                    let mut tries = counted.lock().unwrap();
                    *tries += 1;
                    *tries
                };
                let status = match *modes.lock().unwrap() {
                    Mode::Answer(status) => status,
                    Mode::FailFirst(first) if nth <= first => 500,
                    Mode::FailFirst(_) => 200,
                    Mode::Hang => {
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                };
                if (200..300).contains(&status) {
                    acked
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                }
                let _ = write!(
                    reader.into_inner(),
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            });
        }
    });
    Receiver {
        url,
        mode,
        got,
        tries,
    }
}

impl Receiver {
    /// Waits up to 30 s for `n` acknowledged messages; returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
