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

/// What is wrong with the command line or a file it names, by where it was found: each
/// command's own error types, composed here at the crate's root (above every layer), and
/// rendered by `main` as one line with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Usage {
    /// The metadata service's endpoint in the environment.
    #[error(transparent)]
    Endpoint(#[from] context::BadEndpoint),
    /// `probe check`'s command line.
    #[error(transparent)]
    Check(#[from] check::plan::PlanError),
    /// A token file.
    #[error(transparent)]
    Token(#[from] auth::TokenError),
    /// A CA file (`--ca-file`).
    #[error(transparent)]
    Ca(#[from] net::tls::TrustError),
    /// An instance identity certificate (`--identity-ca`).
    #[error(transparent)]
    IdentityCa(#[from] identity::TrustError),
    /// The region (`--region`, `AWS_REGION`).
    #[error(transparent)]
    Region(#[from] model::region::BadRegion),
    /// A delivery that cannot be set up, named by the command's flags for the collector's URL
    /// and the spool.
    #[error("{}", error.with_flags(url, spool))]
    Delivery {
        /// What is wrong.
        error: deliver::SetupError,
        /// The flag of the collector's URL (`--report-to`, `--forward`).
        url: &'static str,
        /// The flag of the spool (`--spool`, `--data`).
        spool: &'static str,
    },
    /// `probe collect`'s command line.
    #[error(transparent)]
    Collect(#[from] collect::CollectError),
    /// An alert destination (`--alert`).
    #[error(transparent)]
    Alert(#[from] collect::alerts::AlertError),
    /// The collector's certificate and key (`--tls-cert`, `--tls-key`).
    #[error(transparent)]
    Tls(#[from] collect::listen::TlsSetupError),
    /// `probe userdata`'s command line and the files it embeds.
    #[error(transparent)]
    UserData(#[from] userdata::UserDataError),
    /// `probe install`'s command line.
    #[error(transparent)]
    Install(#[from] install::InstallError),
}

/// Why the machine cannot run a command (a file, a port, a program, a service it needs), by
/// where it was found: each command's own error types, composed here as [`Usage`]'s are, and
/// rendered by `main` as one line with exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum Environment {
    /// A file, folder, socket or stream: what was being done, the system's answer, and the
    /// fix where there is one.
    #[error("{doing}: {source}{}", fix.map(|f| format!("; {f}")).unwrap_or_default())]
    Io {
        /// What was being done, with what (`cannot write /etc/...`).
        doing: String,
        /// The system's answer.
        #[source]
        source: std::io::Error,
        /// What to do.
        fix: Option<&'static str>,
    },
    /// A program probe runs answered with a failure.
    #[error("{command} failed: {said}")]
    Program {
        /// The command line.
        command: String,
        /// The first line it wrote to stderr.
        said: String,
    },
    /// `--ec2 required`, and the EC2 API was not read: why.
    #[error("--ec2 required: {0}")]
    Ec2Required(model::SourceStatus),
    /// The system's DNS resolver.
    #[error(transparent)]
    Resolver(#[from] net::dns::SetupError),
    /// The EC2 API client that reads consoles (`--from-console`, `--stack`).
    #[error("--from-console/--stack: {0}")]
    Console(#[source] context::ec2::Ec2Error),
    /// The collector's store.
    #[error(transparent)]
    Store(#[from] collect::store::StoreError),
    /// The alerts' part of the store.
    #[error(transparent)]
    Alerts(collect::alerts::AlertError),
    /// The collector's enrolled keys.
    #[error(transparent)]
    Registry(#[from] collect::identities::RegistryError),
    /// The executable a relay serves to its instances.
    #[error(transparent)]
    Executable(#[from] collect::server::ExecutableError),
    /// A worker thread that panicked or was cancelled.
    #[error("a worker thread stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

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
            .map_err(|e| Error::io("cannot write the man page", e, None)),
    }
}
