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

/// Each try's `Idempotency-Key` header, if any, and its message.
pub type Tries = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A loopback HTTP receiver; `got` holds the messages it acknowledged, `tries` counts all,
/// `keys` holds every try's `Idempotency-Key` with its message, acknowledged or not.
pub struct Receiver {
    pub url: String,
    pub mode: Arc<Mutex<Mode>>,
    pub got: Arc<Mutex<Vec<Value>>>,
    pub tries: Arc<Mutex<usize>>,
    pub keys: Tries,
}

pub fn receiver(mode: Mode) -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(mode));
    let got = Arc::new(Mutex::new(Vec::new()));
    let tries = Arc::new(Mutex::new(0usize));
    let keys = Arc::new(Mutex::new(Vec::new()));
    let (modes, acked, counted, keyed) = (mode.clone(), got.clone(), tries.clone(), keys.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (modes, acked, counted, keyed) =
                (modes.clone(), acked.clone(), counted.clone(), keyed.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let Some((headers, body)) = super::servers::read_message(&mut reader) else {
                    return;
                };
                let key = headers
                    .into_iter()
                    .find(|(name, _)| name == "idempotency-key")
                    .map(|(_, v)| v);
                keyed
                    .lock()
                    .unwrap()
                    .push((key, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let nth = {
                    let mut tries = counted.lock().unwrap();
                    *tries += 1;
                    *tries
                };
                // Copied out: a guard kept through the match would hold the mode while
                // hanging, and the test could not change it.
                let mode = *modes.lock().unwrap();
                let status = match mode {
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
        keys,
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
