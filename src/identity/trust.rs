//! AWS's public certificates for the instance identity document's `signature` (base64
//! RSA-SHA256), shipped in the binary, and any a collector adds with `--identity-ca` (a lab, or
//! a partition probe does not ship). Only the public key is used: AWS renews these
//! certificates with the same key, and a document signed by that key is AWS's whatever the
//! certificate's dates say. AWS's keys for this signature are 1024-bit RSA, which ring checks
//! only with its legacy verification algorithm.

use super::document::{Document, DocumentError};
use ring::signature::{RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, UnparsedPublicKey};
use std::path::PathBuf;

/// The regions of the commercial partition that share AWS's 2024 key.
const COMMERCIAL: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
];

/// The shipped certificates and the regions each signs for, from
/// <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/regions-certs.html> ("RSA").
const SHIPPED: &[(&[&str], &str)] = &[
    (COMMERCIAL, include_str!("aws/commercial.pem")),
    (
        &["us-gov-east-1", "us-gov-west-1"],
        include_str!("aws/us-gov.pem"),
    ),
    (
        &["cn-north-1", "cn-northwest-1"],
        include_str!("aws/cn.pem"),
    ),
    (&["af-south-1"], include_str!("aws/af-south-1.pem")),
    (&["ap-east-1"], include_str!("aws/ap-east-1.pem")),
];

/// Where the certificates of the regions probe does not ship are published.
pub const CERTS_URL: &str =
    "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/regions-certs.html";

/// One trusted RSA key.
struct Key {
    /// The regions it signs for; `None` for any (`--identity-ca`).
    regions: Option<&'static [&'static str]>,
    /// PKCS#1 RSAPublicKey, as ring reads it.
    rsa: Vec<u8>,
}

/// The keys a collector trusts to sign identity documents.
pub struct Trust {
    keys: Vec<Key>,
}

/// A certificate that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read.
    #[error("--identity-ca {}: {source}; give the PEM certificate that signs the documents", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a PEM certificate with an RSA key.
    #[error("--identity-ca {}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: NotRsaCertificate,
    },
}

/// Why a file holds no RSA certificate.
#[derive(Debug, thiserror::Error)]
pub enum NotRsaCertificate {
    /// No PEM block.
    #[error("not a PEM certificate ({0})")]
    NotPem(String),
    /// A PEM block, but no X.509 certificate in it.
    #[error("not an X.509 certificate ({0})")]
    NotX509(String),
    /// A certificate with another kind of key.
    #[error("its key is not RSA: use the RSA certificate (not DSA) of the region")]
    NotRsa,
}

/// Why a document and its signature are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// The document itself is malformed.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// No trusted key for the document's region.
    #[error(
        "no AWS certificate for region {0} is shipped: give the collector --identity-ca with its RSA certificate from {CERTS_URL}"
    )]
    Region(String),
    /// The signature is not base64.
    #[error("the signature is not base64")]
    Encoding,
    /// No trusted key made this signature over this document.
    #[error("the document's signature does not verify with AWS's certificate for {0}")]
    Signature(String),
}

impl Trust {
    /// The shipped certificates, and those in `extra` for any region.
    ///
    /// # Errors
    /// A file that cannot be read or holds no RSA certificate.
    ///
    /// # Panics
    /// Never: the shipped certificates are parsed by this module's tests.
    pub fn new(extra: &[PathBuf]) -> Result<Self, TrustError> {
        let mut keys: Vec<Key> = SHIPPED
            .iter()
            .map(|(regions, pem)| Key {
                regions: Some(regions),
                rsa: rsa_key(pem.as_bytes()).expect("a shipped certificate parses"),
            })
            .collect();
        for path in extra {
            let pem = std::fs::read(path).map_err(|source| TrustError::Unreadable {
                path: path.clone(),
                source,
            })?;
            let rsa = rsa_key(&pem).map_err(|why| TrustError::Invalid {
                path: path.clone(),
                why,
            })?;
            keys.push(Key { regions: None, rsa });
        }
        Ok(Self { keys })
    }

    /// Checks `signature` (base64, as IMDS serves it) over the exact bytes of `document`, and
    /// returns the document.
    ///
    /// # Errors
    /// What does not hold.
    pub fn verify(&self, document: &[u8], signature: &str) -> Result<Document, Unverified> {
        use base64::Engine as _;
        let doc = Document::parse(document)?;
        let compact: String = signature.split_whitespace().collect();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| Unverified::Encoding)?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.regions.is_none_or(|r| r.contains(&doc.region.as_str())))
            .peekable();
        if candidates.peek().is_none() {
            return Err(Unverified::Region(doc.region));
        }
        let verified = candidates.any(|k| {
            UnparsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, &k.rsa)
                .verify(document, &signature)
                .is_ok()
        });
        if verified {
            Ok(doc)
        } else {
            Err(Unverified::Signature(doc.region))
        }
    }
}

/// The RSA public key of the first certificate in `pem`.
fn rsa_key(pem: &[u8]) -> Result<Vec<u8>, NotRsaCertificate> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| NotRsaCertificate::NotPem(e.to_string()))?;
    let cert = block
        .parse_x509()
        .map_err(|e| NotRsaCertificate::NotX509(e.to_string()))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(NotRsaCertificate::NotRsa);
    }
    Ok(spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_certificate_holds_an_rsa_key() {
        let trust = Trust::new(&[]).unwrap();
        assert_eq!(trust.keys.len(), SHIPPED.len());
        // 1024-bit keys: a DER RSAPublicKey of about 140 bytes.
        assert!(trust.keys.iter().all(|k| (130..150).contains(&k.rsa.len())));
    }

    #[test]
    fn a_region_without_a_certificate_names_the_fix() {
        let trust = Trust::new(&[]).unwrap();
        let doc = r#"{"accountId":"123456789012","region":"me-south-1","instanceId":"i-1","pendingTime":"2026-12-01T09:00:00Z"}"#;
        let e = trust.verify(doc.as_bytes(), "AAAA").unwrap_err();
        assert_eq!(e, Unverified::Region("me-south-1".into()));
        assert!(e.to_string().contains("--identity-ca"));
    }

    #[test]
    fn a_signature_no_aws_key_made_is_refused() {
        use base64::Engine as _;
        let trust = Trust::new(&[]).unwrap();
        let doc = r#"{"accountId":"123456789012","region":"us-east-1","instanceId":"i-1","pendingTime":"2026-12-01T09:00:00Z"}"#;
        let forged = base64::engine::general_purpose::STANDARD.encode([7u8; 128]);
        assert_eq!(
            trust.verify(doc.as_bytes(), &forged),
            Err(Unverified::Signature("us-east-1".into()))
        );
        assert_eq!(
            trust.verify(doc.as_bytes(), "%%%"),
            Err(Unverified::Encoding)
        );
    }
}
