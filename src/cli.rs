//! The command line: global options and one subcommand per module.

use clap::{CommandFactory, Parser, Subcommand};

/// `probe --version`: the version, the commit and the target it was built for.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PROBE_COMMIT"),
    ", ",
    env!("PROBE_TARGET"),
    ")"
);

const EXAMPLES: &str = "Examples:
  probe check s3 cloudformation --expect s3=gateway-endpoint
  probe collect --listen 0.0.0.0:7878 --token-file probe.token
  probe userdata --source http://10.10.0.10:7878/v1/probe --sums SHA256SUMS -- s3 --console";

/// Verifies, from inside a VPC, what a host can reach and by which path.
#[derive(Debug, Parser)]
#[command(name = "probe", version = VERSION, about, long_about = None, propagate_version = true, after_help = EXAMPLES)]
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
    /// Print EC2 UserData that fetches probe, verifies it and installs the service at boot.
    Userdata(Box<crate::userdata::Args>),
    /// Install the hardened systemd service that runs a check command line on a period.
    Install(Box<crate::install::Args>),
    /// Remove the service and what the UserData's bootstrap wrote.
    Uninstall(crate::install::UninstallArgs),
    /// Print shell completions.
    Completions(Completions),
    /// Print the man page (roff).
    Man,
}

/// Arguments of `probe completions`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  probe completions bash > /etc/bash_completion.d/probe\n  probe completions zsh > ~/.zfunc/_probe"
)]
pub struct Completions {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completions for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "probe", out);
}

/// Writes the man page to `out`.
///
/// # Errors
/// When `out` cannot be written.
pub fn man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}
