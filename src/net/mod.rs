//! Outside systems, each behind one small trait in one file: only that file imports the
//! crate that talks to it, so tests swap in fakes and API churn stays contained.

pub mod dns;
pub mod ping;
pub mod tls;
