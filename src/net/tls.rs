//! TLS with rustls: trust roots, a verifier that keeps the server's certificate even when
//! verification fails (so the report can say what the server presented), certificate
//! details, and error kinds.

use crate::model::Kind;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Trust settings shared by every handshake of a run.
#[derive(Debug, Clone)]
pub struct Trust {
    verifier: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    /// The standard web roots plus every PEM file in `extra` (from `--ca-file` and
    /// `SSL_CERT_FILE`).
    ///
    /// # Errors
    /// A one-line message naming the file that cannot be read or holds no certificate.
    pub fn new(extra: &[PathBuf]) -> Result<Self, TrustError> {
        Self::from_files(true, extra, "--ca-file or SSL_CERT_FILE")
    }

    /// The standard web roots when `web`, and every PEM file in `files`, which the
    /// setting `given` names (for the error that says which to mend).
    ///
    /// # Errors
    /// As [`Trust::new`].
    pub fn from_files(
        web: bool,
        files: &[PathBuf],
        given: &'static str,
    ) -> Result<Self, TrustError> {
        let mut roots = RootCertStore::empty();
        if web {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for path in files {
            add_pem(&mut roots, path, given)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TrustError::Verifier(e.to_string()))?;
        Ok(Self { verifier, provider })
    }
}

impl Trust {
    /// The certificate verifier of these roots.
    #[must_use]
    pub fn verifier(&self) -> Arc<WebPkiServerVerifier> {
        self.verifier.clone()
    }

    /// The cryptography every handshake uses.
    #[must_use]
    pub fn provider(&self) -> Arc<CryptoProvider> {
        self.provider.clone()
    }

    /// A client configuration with these roots, for HTTPS clients (the collector's URL).
    #[must_use]
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_or_else(
                |_| {
                    ClientConfig::builder()
                        .with_webpki_verifier(self.verifier.clone())
                        .with_no_client_auth()
                },
                |b| {
                    b.with_webpki_verifier(self.verifier.clone())
                        .with_no_client_auth()
                },
            )
    }
}

/// A CA file that cannot be trusted, or a verifier that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read.
    #[error("cannot read CA file {}: {source}; check the path given to {given}", path.display())]
    Unreadable {
        /// The CA file.
        path: PathBuf,
        /// The setting that named it.
        given: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not PEM.
    #[error("CA file {} is not valid PEM: {detail}", path.display())]
    NotPem {
        /// The CA file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// rustls refuses a certificate in it.
    #[error("CA file {} holds a certificate rustls rejects: {detail}", path.display())]
    Rejected {
        /// The CA file.
        path: PathBuf,
        /// What rustls said.
        detail: String,
    },
    /// It holds no certificate at all.
    #[error("CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .0.display())]
    Empty(PathBuf),
    /// The verifier cannot be built from these roots.
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
}

fn add_pem(roots: &mut RootCertStore, path: &Path, given: &'static str) -> Result<(), TrustError> {
    let data = std::fs::read(path).map_err(|source| TrustError::Unreadable {
        path: path.into(),
        given,
        source,
    })?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&data) {
        let cert = cert.map_err(|e| TrustError::NotPem {
            path: path.into(),
            detail: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TrustError::Rejected {
            path: path.into(),
            detail: e.to_string(),
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(TrustError::Empty(path.into()));
    }
    Ok(())
}

/// webpki's verdict on the server's certificate, given to `check`, which keeps it or makes
/// its own of it; the handshake's signatures are webpki's to check, whatever `check` says.
pub struct Verifier<F> {
    inner: Arc<WebPkiServerVerifier>,
    check: F,
}

/// What a [`Verifier`] makes of webpki's verdict on a certificate (the end entity's).
pub type Verdict = Result<ServerCertVerified, rustls::Error>;

impl<F> Verifier<F>
where
    F: Fn(Verdict, &CertificateDer<'_>) -> Verdict + Send + Sync,
{
    /// `inner`'s checks, its verdict on the certificate passed through `check`.
    pub fn new(inner: Arc<WebPkiServerVerifier>, check: F) -> Self {
        Self { inner, check }
    }
}

impl<F> std::fmt::Debug for Verifier<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F> ServerCertVerifier for Verifier<F>
where
    F: Fn(Verdict, &CertificateDer<'_>) -> Verdict + Send + Sync,
{
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Verdict {
        let verdict =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        (self.check)(verdict, end_entity)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the server's end-entity certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Subject distinguished name.
    pub subject: String,
    /// DNS names and IP addresses in the subject alternative names.
    pub names: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// RFC 3339 start of validity.
    pub not_before: String,
    /// RFC 3339 end of validity.
    pub not_after: String,
}

/// A stream a handshake completed.
pub type Stream = TlsStream<TcpStream>;

/// What a handshake came to.
pub struct Handshake {
    /// The stream, when the handshake succeeded.
    pub result: Result<Stream, (Kind, String)>,
    /// The server's certificate, whatever the result.
    pub cert: Option<Certificate>,
    /// The negotiated version, on success.
    pub version: Option<String>,
}

/// Runs a TLS handshake over `tcp` with SNI `host`, offering HTTP/1.1 by ALPN when `http`.
pub async fn handshake(trust: &Trust, host: &str, tcp: TcpStream, http: bool) -> Handshake {
    let seen = Arc::new(Mutex::new(None));
    // webpki's verdict kept, and the certificate it was given, so the report can say what
    // the server presented even when it is refused.
    let kept = seen.clone();
    let verifier = Arc::new(Verifier::new(
        trust.verifier.clone(),
        move |verdict, cert| {
            if let Ok(mut seen) = kept.lock() {
                *seen = Some(cert.clone().into_owned());
            }
            verdict
        },
    ));
    let config = ClientConfig::builder_with_provider(trust.provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            let mut c = b
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            if http {
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
            }
            c
        });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            return Handshake {
                result: Err((Kind::Handshake, e.to_string())),
                cert: None,
                version: None,
            };
        }
    };
    let name = match ServerName::try_from(host.trim_end_matches('.').to_string()) {
        Ok(n) => n,
        Err(e) => {
            return Handshake {
                result: Err((
                    Kind::Handshake,
                    format!("{host:?} cannot be sent as SNI: {e}"),
                )),
                cert: None,
                version: None,
            };
        }
    };
    let result = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| map_error(&e));
    let version = result.as_ref().ok().and_then(|s| {
        s.get_ref()
            .1
            .protocol_version()
            .map(|v| v.as_str().unwrap_or("unknown").replace('_', "."))
    });
    let cert = seen
        .lock()
        .ok()
        .and_then(|s| s.as_ref().and_then(cert_info));
    Handshake {
        result,
        cert,
        version,
    }
}

fn map_error(err: &std::io::Error) -> (Kind, String) {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let kind = match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Kind::NameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Kind::Expired,
            CertificateError::UnknownIssuer => Kind::UnknownIssuer,
            _ => Kind::Certificate,
        },
        Some(_) => Kind::Handshake,
        None => match Kind::from_io(err) {
            Kind::Io => Kind::Handshake,
            k => k,
        },
    };
    (kind, err.to_string())
}

/// Reads the names, issuer and validity out of a DER certificate.
#[must_use]
pub fn cert_info(der: &CertificateDer<'_>) -> Option<Certificate> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    let rfc3339 = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).unwrap_or(0);
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
    };
    Some(Certificate {
        subject: cert.subject().to_string(),
        names,
        issuer: cert.issuer().to_string(),
        not_before: rfc3339(cert.validity().not_before),
        not_after: rfc3339(cert.validity().not_after),
    })
}

/// Makes ring the process's rustls provider, for clients (reqwest) that use the default.
pub fn install_default_provider() {
    // An error only means a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
