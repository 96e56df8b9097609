//! The connection stages of one address in order, TCP then TLS then HTTP over one
//! connection, so each stage's time and failure are its own; the run's deadline blames the
//! stage in progress.

use super::engine::Ctx;
use super::{http, tcp, tls};
use crate::model::{
    CheckError, HttpReport, Kind, Phase, StageReport, Status, TlsReport, connection_stages,
};
use crate::target::Target;
use std::net::IpAddr;
use tokio::time::timeout_at;

/// The connection stages' results.
pub(super) struct Conn {
    pub tcp: StageReport,
    pub tls: TlsReport,
    pub http: HttpReport,
    /// The stage in progress, to blame when the deadline cuts it short.
    current: Option<Phase>,
}

impl Conn {
    /// Every stage that applies completed.
    pub fn completed(&self) -> bool {
        crate::model::completed(&connection_stages(&self.tcp, &self.tls, &self.http))
    }
}

pub(super) async fn run<R, P>(ctx: &Ctx<R, P>, target: &Target, ip: IpAddr) -> Conn {
    let skipped_unless = |applies: bool| {
        if applies {
            Status::NotRun
        } else {
            Status::Skipped
        }
    };
    let mut conn = Conn {
        tcp: StageReport::default(),
        tls: TlsReport {
            status: skipped_unless(target.scheme.uses_tls()),
            ..TlsReport::default()
        },
        http: HttpReport {
            status: skipped_unless(target.scheme.uses_http()),
            ..HttpReport::default()
        },
        current: None,
    };
    if timeout_at(ctx.deadline, stages(ctx, target, ip, &mut conn))
        .await
        .is_err()
    {
        let error = |phase| {
            Some(CheckError::new(
                phase,
                Kind::Deadline,
                "the run's deadline passed during this stage",
            ))
        };
        match conn.current {
            Some(Phase::Tcp) => {
                (conn.tcp.status, conn.tcp.error) = (Status::Fail, error(Phase::Tcp));
            }
            Some(Phase::Tls) => {
                (conn.tls.status, conn.tls.error) = (Status::Fail, error(Phase::Tls));
            }
            Some(Phase::Http) => {
                (conn.http.status, conn.http.error) = (Status::Fail, error(Phase::Http));
            }
            _ => {}
        }
    }
    conn
}

async fn stages<R, P>(ctx: &Ctx<R, P>, target: &Target, ip: IpAddr, conn: &mut Conn) {
    conn.current = Some(Phase::Tcp);
    let Some(stream) = tcp::connect(ctx, ip, target.port, &mut conn.tcp).await else {
        return;
    };
    if !target.scheme.uses_tls() {
        if target.scheme.uses_http() {
            conn.current = Some(Phase::Http);
            http::request(ctx, target, stream, &mut conn.http).await;
        }
        return;
    }
    conn.current = Some(Phase::Tls);
    let uses_http = target.scheme.uses_http();
    let Some(stream) = tls::handshake(ctx, &target.host, stream, uses_http, &mut conn.tls).await
    else {
        return;
    };
    if uses_http {
        conn.current = Some(Phase::Http);
        http::request(ctx, target, stream, &mut conn.http).await;
    }
}
