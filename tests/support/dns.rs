//! A DNS server on 127.0.0.1 that answers from a script: addresses, CNAMEs, any rcode, or
//! silence. Unknown names get NXDOMAIN.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the server answers one name.
#[derive(Clone, Debug)]
pub enum Zone {
    /// A records.
    A(Vec<Ipv4Addr>),
    /// A CNAME to another scripted name.
    Cname(&'static str),
    /// An answer with this rcode and no records.
    Rcode(ResponseCode),
    /// NOERROR with no records.
    NoData,
    /// No answer at all.
    Silent,
}

pub struct FakeDns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    pub fn start(zone: &[(&'static str, Zone)]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let zone: Vec<(Name, Zone)> = zone
            .iter()
            .map(|(n, z)| (Name::from_str(&format!("{n}.")).unwrap(), z.clone()))
            .collect();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if let Some(reply) = answer(&query, &zone) {
                    let _ = socket.send_to(&reply.to_vec().unwrap(), peer);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lookup<'a>(zone: &'a [(Name, Zone)], name: &Name) -> Option<&'a Zone> {
    zone.iter()
        .find(|(n, _)| n.eq_case(name) || n == name)
        .map(|(_, z)| z)
}

fn answer(query: &Message, zone: &[(Name, Zone)]) -> Option<Message> {
    let q = query.queries.first()?.clone();
    let mut reply = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let mut name = q.name.clone();
    for _ in 0..8 {
        match lookup(zone, &name) {
            None => {
                reply.metadata.response_code = ResponseCode::NXDomain;
                return Some(reply);
            }
            Some(Zone::Silent) => return None,
            Some(Zone::Rcode(code)) => {
                reply.metadata.response_code = *code;
                return Some(reply);
            }
            Some(Zone::NoData) => return Some(reply),
            Some(Zone::Cname(target)) => {
                let target = Name::from_str(&format!("{target}.")).unwrap();
                reply.add_answer(Record::from_rdata(
                    name.clone(),
                    60,
                    RData::CNAME(CNAME(target.clone())),
                ));
                name = target;
            }
            Some(Zone::A(ips)) => {
                if q.query_type == RecordType::A {
                    for ip in ips {
                        reply.add_answer(Record::from_rdata(name.clone(), 300, RData::A(A(*ip))));
                    }
                }
                return Some(reply);
            }
        }
    }
    Some(reply)
}
