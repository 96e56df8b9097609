//! A test CA and TCP, TLS and HTTP servers on 127.0.0.1 that behave or misbehave on purpose.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A test certificate authority, its PEM written to a temporary file for `--ca-file`.
pub struct Pki {
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The certificate and the key as PEM, for servers that read files.
    pub pem: (String, String),
}

impl Pki {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "probe test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Self {
            ca_file,
            _dir: dir,
            ca,
        }
    }

    /// A certificate for `names`, signed by this CA, valid now.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A certificate for `names` that expired in 2020.
    pub fn expired(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = date_time_ymd(2019, 1, 1);
            p.not_after = date_time_ymd(2020, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            pem: (cert.pem(), key.serialize_pem()),
        }
    }
}

/// A self-signed certificate no CA file vouches for.
pub fn self_signed(names: &[&str]) -> Leaf {
    let names: Vec<String> = names.iter().map(|s| (*s).to_string()).collect();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Leaf {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        pem: (cert.pem(), key.serialize_pem()),
    }
}

/// What a server does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Behavior {
    /// Answers every request with this status, these extra headers and body.
    Respond {
        status: u16,
        headers: &'static str,
        body: &'static str,
    },
    /// Completes the TLS handshake (if any), reads the request, then never answers.
    StallAfterHandshake,
    /// Accepts TCP and never says a word.
    Silent,
}

/// Answers every request with `status` and an empty body.
pub fn status(code: u16) -> Behavior {
    Behavior::Respond {
        status: code,
        headers: "",
        body: "",
    }
}

/// A running server; stops and joins its threads when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTPS server presenting `leaf`.
pub fn https(leaf: Leaf, behavior: Behavior) -> Server {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(leaf.chain, leaf.key)
    .unwrap();
    serve(Some(Arc::new(config)), behavior)
}

/// A plain HTTP server.
pub fn http(behavior: Behavior) -> Server {
    serve(None, behavior)
}

/// A port on 127.0.0.1 where nothing listens: connecting is refused.
pub fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn serve(tls: Option<Arc<rustls::ServerConfig>>, behavior: Behavior) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut workers = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((tcp, _)) => {
                    let (tls, flag) = (tls.clone(), flag.clone());
                    workers.push(std::thread::spawn(move || {
                        handle(tcp, tls, behavior, &flag);
                    }));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        for w in workers {
            let _ = w.join();
        }
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

fn wait_for_stop(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn handle(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    behavior: Behavior,
    flag: &AtomicBool,
) {
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if let Behavior::Silent = behavior {
        let _keep = tcp;
        return wait_for_stop(flag);
    }
    if let Some(config) = tls {
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut stream, behavior, flag);
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, behavior, flag);
    }
}

fn exchange(stream: &mut impl ReadWrite, behavior: Behavior, flag: &AtomicBool) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    match behavior {
        Behavior::Respond {
            status,
            headers,
            body,
        } => {
            let reply = format!(
                "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
            let _ = stream.flush();
        }
        Behavior::StallAfterHandshake | Behavior::Silent => wait_for_stop(flag),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads one HTTP/1.1 request's head and its body (by its content-length) from `reader`;
/// `None` when the peer closed before the body was whole.
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    read_message(reader).map(|(_, body)| body)
}

/// A request's headers: names in lower case, values trimmed.
pub type Headers = Vec<(String, String)>;

/// Reads one HTTP request: its headers and its body.
pub fn read_message(reader: &mut impl std::io::BufRead) -> Option<(Headers, Vec<u8>)> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}
