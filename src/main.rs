//! The probe binary: builds the runtime, parses the command line, runs it, maps the result
//! to an exit code. Everything else lives in the library.

use clap::Parser;
use probe::cli::Cli;
use probe::error::{Error, exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // Checks are I/O bound; one thread keeps memory small and timing honest.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("probe: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ENVIRONMENT);
        }
    };
    match runtime.block_on(probe::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::from(match e {
                Error::Usage(_) => exit::USAGE,
                Error::Environment(_) => exit::ENVIRONMENT,
            })
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // The AWS SDK's own warnings repeat what the report says about the EC2 API.
    let default = match verbose {
        0 => "error,probe=warn",
        1 => "warn,probe=info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
