//! TLS to PostgreSQL as libpq's URLs ask for it: `sslmode` (disable, prefer, require,
//! verify-ca, verify-full), `sslrootcert` (a PEM file of the CAs to trust, or `system` for
//! the Mozilla roots), and `sslcert` with `sslkey` (a client certificate, for the server's
//! `cert` authentication). The driver knows only disable, prefer and require, and none of the
//! files: this module takes them out of the URL and makes the rustls configuration they
//! mean. As in libpq, prefer and require without a CA file encrypt but check no
//! certificate, and a CA file makes them check the chain (verify-ca).

use super::DbError;
use crate::net::tls::{Trust, Verifier};
use postgres::config::SslMode;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CertificateError, ClientConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the URL asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The CAs a certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// None named: the Mozilla set.
    Default,
    /// `sslrootcert=system`: the Mozilla set, and the host name checked.
    System,
    /// `sslrootcert=FILE`.
    File(PathBuf),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing: the session is encrypted, but anyone on the path could answer.
    Nothing,
    /// Signed by a trusted CA, whatever host it names.
    Chain,
    /// Signed by a trusted CA, for the host the URL names.
    Full,
}

/// The URL's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    mode: Mode,
    roots: Roots,
    /// A client certificate (chain) and its key, PEM files.
    client: Option<(PathBuf, PathBuf)>,
}

/// The URL without `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, and what they asked for;
/// `shown` names the database in errors.
pub fn split(url: &str, shown: &dyn Fn() -> String) -> Result<(String, Wanted), DbError> {
    let bad = |detail: String| DbError::Tls {
        what: shown(),
        detail,
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut mode, mut root, mut cert, mut cert_key) = (None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| {
                bad(format!(
                    "{}: not UTF-8 once decoded",
                    crate::terminal::safe(key)
                ))
            })?
            .into_owned();
        match key {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            "sslcert" => cert = Some(PathBuf::from(value)),
            "sslkey" => cert_key = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    let roots = match root.as_deref() {
        None => Roots::Default,
        Some("system") => Roots::System,
        Some("") => {
            return Err(bad(
                "sslrootcert is empty: give a PEM file of the CAs to trust, or system".into(),
            ));
        }
        Some(path) => Roots::File(path.into()),
    };
    let default = if roots == Roots::System {
        "verify-full"
    } else {
        "prefer"
    };
    let mode = match mode.as_deref().unwrap_or(default) {
        "disable" => Mode::Disable,
        "prefer" => Mode::Prefer,
        "require" => Mode::Require,
        "verify-ca" => Mode::VerifyCa,
        "verify-full" => Mode::VerifyFull,
        other => {
            return Err(bad(format!(
                "sslmode={}: give disable, prefer, require, verify-ca or verify-full",
                crate::terminal::safe(other)
            )));
        }
    };
    if roots == Roots::System && mode != Mode::VerifyFull {
        return Err(bad(
            "sslrootcert=system checks the host name too: give sslmode=verify-full, or leave sslmode out"
                .into(),
        ));
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let client = match (cert, cert_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(bad(
                "sslcert and sslkey go together: give both (the client certificate and its key), or neither"
                    .into(),
            ));
        }
    };
    if client.is_some() && mode == Mode::Disable {
        return Err(bad(
            "sslcert with sslmode=disable: a client certificate needs TLS; drop one".into(),
        ));
    }
    Ok((
        rest,
        Wanted {
            mode,
            roots,
            client,
        },
    ))
}

impl Wanted {
    /// The driver's own setting: it sends no TLS request, asks for one, or insists.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (Mode::VerifyFull, _) => Check::Full,
            (Mode::VerifyCa, _) | (Mode::Prefer | Mode::Require, Roots::File(_)) => Check::Chain,
            _ => Check::Nothing,
        }
    }

    /// The rustls configuration of these settings: none when TLS is off. Reads the CA file
    /// and the client certificate's.
    pub fn client(&self, shown: &str) -> Result<Option<Arc<ClientConfig>>, DbError> {
        if self.mode == Mode::Disable {
            return Ok(None);
        }
        let files: Vec<PathBuf> = match &self.roots {
            Roots::File(path) => vec![path.clone()],
            Roots::Default | Roots::System => Vec::new(),
        };
        let bad = |detail: String| DbError::Tls {
            what: shown.to_string(),
            detail,
        };
        let trust = Trust::from_files(files.is_empty(), &files, "sslrootcert in --database")
            .map_err(|e| bad(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.check() {
            Check::Full => trust.verifier(),
            // webpki checks the chain before the name: a wrong name means the chain held.
            Check::Chain => Arc::new(Verifier::new(
                trust.verifier(),
                |verdict, _| match verdict {
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    )) => Ok(ServerCertVerified::assertion()),
                    other => other,
                },
            )),
            // As libpq without a CA file: encrypted to whoever holds the key (the handshake's
            // signatures are still checked).
            Check::Nothing => Arc::new(Verifier::new(trust.verifier(), |_, _| {
                Ok(ServerCertVerified::assertion())
            })),
        };
        let builder = ClientConfig::builder_with_provider(trust.provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let (chain, key) = client_identity(cert, key).map_err(|e| bad(e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(format!("sslcert and sslkey: {e}")))?
            }
        };
        Ok(Some(Arc::new(config)))
    }

    /// How the settings are shown beside the database: what a certificate must be.
    pub fn describe(&self) -> &'static str {
        match (self.mode, self.check()) {
            (Mode::Disable, _) => "without TLS",
            (_, Check::Nothing) => "TLS, certificate not checked",
            (_, Check::Chain) => "TLS, certificate's CA checked",
            (_, Check::Full) => "TLS, certificate checked",
        }
    }
}

/// A client certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
enum ClientFile {
    /// The certificate file.
    #[error("sslcert={}: {source}; give the client certificate, PEM", path.display())]
    Cert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    /// No certificate in it.
    #[error("sslcert={}: no certificate in it (-----BEGIN CERTIFICATE-----)", .0.display())]
    NoCert(PathBuf),
    /// The key file.
    #[error("sslkey={}: {source}; give the client certificate's private key, PEM", path.display())]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
}

/// The client certificate's chain and its key, read from their PEM files.
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientFile> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|source| ClientFile::Cert {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(ClientFile::NoCert(cert.to_path_buf()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|source| ClientFile::Key {
        path: key.to_path_buf(),
        source,
    })?;
    // As libpq: a key others can read is said (libpq refuses it; the token's rule here).
    if let Ok(meta) = std::fs::metadata(key) {
        if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
            tracing::warn!("sslkey={}: readable by others; chmod 600 it", key.display());
        }
    }
    Ok((chain, private))
}

/// The refusal of the server's certificate in `e`'s causes, if that is what `e` is.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    crate::error::causes(e).find_map(|cause| {
        // An I/O error's source is its inner error's source: the inner error is looked at here.
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map_or(cause, |inner| inner as &(dyn std::error::Error + 'static));
        inner
            .downcast_ref::<rustls::Error>()
            .filter(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(url: &str) -> Result<(String, Wanted), String> {
        split(url, &|| "db".into()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_settings_the_driver_does_not_know_leave_the_url() {
        let (rest, w) =
            wanted("postgres://u@h/db?application_name=x&sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=3")
                .unwrap();
        assert_eq!(
            rest,
            "postgres://u@h/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(w.mode, Mode::VerifyCa);
        assert_eq!(w.roots, Roots::File("/tmp/ca.pem".into()));
        assert_eq!(w.check(), Check::Chain);
        assert_eq!(w.ssl_mode(), SslMode::Require);
    }

    #[test]
    fn each_mode_checks_what_libpq_checks() {
        let check = |q: &str| wanted(&format!("postgres://u@h/db{q}")).unwrap().1;
        assert_eq!(check("").mode, Mode::Prefer);
        assert_eq!(check("").check(), Check::Nothing);
        assert_eq!(check("?sslmode=require").check(), Check::Nothing);
        assert_eq!(
            check("?sslmode=require&sslrootcert=ca.pem").check(),
            Check::Chain
        );
        assert_eq!(check("?sslrootcert=ca.pem").check(), Check::Chain);
        assert_eq!(check("?sslmode=verify-full").check(), Check::Full);
        assert_eq!(check("?sslrootcert=system").mode, Mode::VerifyFull);
        assert_eq!(check("?sslmode=disable").ssl_mode(), SslMode::Disable);
        assert!(check("?sslmode=disable").client("db").unwrap().is_none());
    }

    #[test]
    fn a_bad_setting_is_one_line_naming_the_fix() {
        let e = wanted("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode=allow: give disable, prefer"), "{e}");
        let e = wanted("postgres://u@h/db?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(e.contains("give sslmode=verify-full"), "{e}");
        let e = wanted("postgres://u@h/db?sslcert=c.pem").unwrap_err();
        assert!(e.contains("sslcert and sslkey go together"), "{e}");
        let e = wanted("postgres://u@h/db?sslmode=disable&sslcert=c.pem&sslkey=k.pem").unwrap_err();
        assert!(e.contains("needs TLS"), "{e}");
        let (_, w) = wanted("postgres://u@h/db?sslcert=/nonexistent/c.pem&sslkey=k.pem").unwrap();
        let e = w.client("db").unwrap_err().to_string();
        assert!(e.contains("sslcert=/nonexistent/c.pem"), "{e}");
        let e = wanted("postgres://u@h/db?sslrootcert=").unwrap_err();
        assert!(e.contains("sslrootcert is empty"), "{e}");
        let (_, w) = wanted("postgres://u@h/db?sslrootcert=/nonexistent/ca.pem").unwrap();
        let e = w.client("db").unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("sslrootcert in --database"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
