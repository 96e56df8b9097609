//! probe: a connectivity verification agent for AWS VPCs.
//!
//! The library holds everything; `main.rs` only builds the runtime and maps the result to
//! an exit code, so tests drive the same code the binary runs.

// The model at the bottom; the verdict logic above it; the outside systems (net, context's
// adapters) beside the logic; the commands on top. README "Layout" draws the map.
pub mod model;
pub mod verdict;

pub mod net;
pub mod target;

pub mod auth;
pub mod error;
pub mod limits;
pub mod output;
pub mod stop;
pub mod terminal;
pub mod values;

pub mod check;
pub mod cli;
pub mod collect;
pub mod context;
pub mod deliver;
pub mod identity;
pub mod install;
pub mod userdata;

use cli::{Cli, Command};
use error::Error;

/// Runs the parsed command line and returns the process exit code.
///
/// # Errors
/// Usage and environment errors, each one line naming the problem and the fix.
pub async fn run(cli: Cli) -> Result<u8, Error> {
    net::tls::install_default_provider();
    match cli.command {
        Command::Check(args) => check::execute(&args).await,
        Command::Context(args) => context::command::execute(&args).await,
        Command::Collect(args) => collect::execute(&args).await,
        Command::Userdata(args) => userdata::execute(&args),
        Command::Install(args) => install::execute(&args),
        Command::Uninstall(args) => install::execute_uninstall(&args),
        Command::Completions(c) => {
            cli::completions(c.shell, &mut std::io::stdout());
            Ok(error::exit::PASS)
        }
        Command::Man => cli::man(&mut std::io::stdout())
            .map(|()| error::exit::PASS)
            .map_err(|e| Error::Environment(format!("cannot write the man page: {e}"))),
    }
}
