//! Writing a command's document: the choice of form every command shares, and the one place
//! that writes to stdout (a closed pipe, as in `probe check | head`, is not an error).

pub mod json;
pub mod table;

use crate::error::Error;
use std::io::{IsTerminal, Write};

/// The form a document takes, as the operator asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table on a terminal, JSON otherwise.
    Auto,
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
}

/// The two forms every document has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// For people.
    Table,
    /// For programs.
    Json,
}

impl Output {
    /// The form for this output, `tty` telling whether stdout is a terminal.
    #[must_use]
    pub fn form(self, tty: bool) -> Form {
        match (self, tty) {
            (Self::Table, _) | (Self::Auto, true) => Form::Table,
            (Self::Json, _) | (Self::Auto, false) => Form::Json,
        }
    }
}

/// Whether stdout is a terminal.
#[must_use]
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Writes `text` to stdout and flushes it.
///
/// # Errors
/// An environment error when stdout cannot be written, but for a closed pipe.
pub fn emit(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io(
            "cannot write to stdout",
            e,
            Some("check where stdout goes"),
        )),
        _ => Ok(()),
    }
}

/// The terminal's width in columns when stdout is one (`COLUMNS` first, as shells set it),
/// else `None`: a file or a pipe gets whole lines.
#[must_use]
pub fn terminal_width() -> Option<usize> {
    if !stdout_is_terminal() {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .or_else(|| {
            rustix::termios::tcgetwinsize(std::io::stdout())
                .ok()
                .map(|w| usize::from(w.ws_col))
        })
        .filter(|c| *c > 0)
}
