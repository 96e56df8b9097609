//! The probe binary: builds the runtime, parses the command line, runs it, maps the result
//! to an exit code. Everything else lives in the library.

use clap::Parser;
use probe::cli::Cli;
use probe::error::{Error, exit};
use std::process::ExitCode;

/// musl's allocator maps and unmaps memory for most of the collector's allocations (a dozen
/// mmap and munmap calls per stored report, each unmap stopping every thread's TLB): a
/// quarter of its throughput. ripgrep swaps it out on musl for the same reason.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and the version, asked for or shown for a bare `probe`, are clap's to print.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("probe: {}", probe::values::one_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
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
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // The AWS SDK's own warnings repeat what the report says about the EC2 API.
    let default = match verbose {
        0 => "error,probe=warn",
        1 => "warn,probe=info",
        _ => "debug",
    };
    // RUST_LOG takes the same `target=level,...` form; Targets parses it without a regex
    // engine, which keeps the static binary small.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().unwrap_or_default());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .with(filter)
        .init();
}
