//! The command line: global options and one subcommand per module.

use clap::{Parser, Subcommand};

/// Verifies, from inside a VPC, what a host can reach and by which path.
#[derive(Debug, Parser)]
#[command(name = "probe", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log lines on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve, ping, connect, handshake and request each target; give a verdict per target.
    Check(Box<crate::check::Args>),
    /// Show where probe stands: instance metadata, route table, VPC endpoints.
    Context(Box<crate::context::command::Args>),
    /// Receive agents' reports, store them durably, show the whole VPC at a glance.
    Collect(Box<crate::collect::Args>),
}
