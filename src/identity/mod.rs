//! Each agent's own identity, with no shared secret: the instance identity document AWS
//! signs for every EC2 instance, and an ed25519 key the agent makes on first run. The key is
//! enrolled once with the collector (document, AWS's signature, the public key, and a proof of
//! possession over the collector's nonce); every report is then signed with it.
//!
//! What lives here is pure: the document, the AWS certificates and their check, the key, and
//! the messages both sides sign. The HTTP sides are the agent's delivery and the collector.

pub mod document;
pub mod key;
pub mod trust;
pub mod wire;

pub use document::Document;
pub use key::{AgentKey, KeyError};
pub use trust::{Trust, TrustError};
