//! Outside systems the checks talk to, one file each: only that file imports the crate that
//! talks to it, and each returns its own results (records, a certificate, an echo), which the
//! check stage that called it turns into report types. Resolvers and pingers are traits, so
//! the engine's tests swap in fakes; TLS is tested against real servers on loopback instead.

pub mod dns;
pub mod ping;
pub mod tls;
