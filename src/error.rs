//! Errors that stop a command, and the process exit codes.

/// Errors that stop a command before or instead of a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or an input file is wrong; the message names the fix.
    #[error(transparent)]
    Usage(#[from] crate::Usage),
    /// The machine cannot run the command (no resolver configuration, a socket denied...).
    #[error(transparent)]
    Environment(#[from] crate::Environment),
}

impl Error {
    /// The environment error `e` (a command's own error type).
    #[must_use]
    pub fn environment(e: impl Into<crate::Environment>) -> Self {
        Self::Environment(e.into())
    }

    /// A file, folder, socket or stream that cannot be used: what was being done, the
    /// system's answer, and the fix where there is one.
    #[must_use]
    pub fn io(doing: impl Into<String>, source: std::io::Error, fix: Option<&'static str>) -> Self {
        Self::Environment(crate::Environment::Io {
            doing: doing.into(),
            source,
            fix,
        })
    }

    /// The usage error `e` (a command's own error type).
    #[must_use]
    pub fn usage(e: impl Into<crate::Usage>) -> Self {
        Self::Usage(e.into())
    }
}

/// Named process exit codes, the only place they are defined.
pub mod exit {
    /// Every expectation met (with none given: every target reachable).
    pub const PASS: u8 = 0;
    /// Some expectation not met.
    pub const FAIL: u8 = 1;
    /// Bad command line or input.
    pub const USAGE: u8 = 2;
    /// The environment does not allow the command to run.
    pub const ENVIRONMENT: u8 = 3;
    /// `probe check --report-to`: every expectation met, but the collector has not
    /// acknowledged the report (it waits in the spool).
    pub const UNDELIVERED: u8 = 4;
}

/// Every error in `e`'s chain of causes, outermost first.
pub fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// The innermost cause of `e`: for a client library's error, the one that names what really
/// happened (refused, reset, a certificate).
#[must_use]
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    causes(e)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}
