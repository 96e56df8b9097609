//! `probe install` and `probe uninstall`: the hardened systemd service that runs an agent
//! command line at boot and on a period. The bootstrap that `probe userdata` renders calls
//! `probe install` once it has verified the binary; people can call it by hand too.

pub mod unit;

use crate::error::{Error, exit};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The agent's unit file, relative to the root.
pub const UNIT: &str = "etc/systemd/system/probe.service";
/// The relay's unit file, relative to the root.
pub const RELAY_UNIT: &str = "etc/systemd/system/probe-relay.service";
/// What the bootstrap writes besides the binary, relative to the root; `uninstall` removes
/// these too.
pub const BOOTSTRAP_FILES: [&str; 6] = [
    "etc/systemd/system/probe-fetch.service",
    "usr/local/lib/probe/fetch.sh",
    "etc/probe/bootstrap.env",
    "etc/probe/args",
    "etc/probe/token",
    "etc/probe/ca.pem",
];

const EXAMPLES: &str = "Examples:
  probe install -- s3 --report-to http://10.10.0.10:7878 --token-file /etc/probe/token --console
  probe install --dry-run -- s3 --expect s3=gateway-endpoint
  probe install --relay https://laptop:7878 -- s3 --report-to http://127.0.0.1:7878 \\
      --token-file /etc/probe/token";

const UNINSTALL_EXAMPLES: &str = "Examples:
  probe uninstall
  probe uninstall --root pkg/";

/// Arguments of `probe install`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Print the files it would write, and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Write under this directory instead of / (for packaging and tests); systemd is not
    /// asked to start anything.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// The probe binary the service runs [default: this one].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,

    /// The relay beside the agent, when asked for.
    #[command(flatten)]
    pub relay: Relay,

    /// The agent's probe check command line, as it runs by hand.
    #[arg(last = true, required = true, value_name = "CHECK_ARGS")]
    pub check: Vec<String>,
}

/// A relay on the instance, for `probe install` and `probe userdata`.
#[derive(Debug, Clone, clap::Args)]
pub struct Relay {
    /// Also run a relay (probe-relay.service): it stores what the VPC's agents post,
    /// forwards it to this collector, and serves probe at /v1/probe to private instances.
    #[arg(long = "relay", value_name = "URL")]
    pub forward: Option<String>,

    /// Where the relay listens.
    #[arg(
        long = "relay-listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:7878",
        requires = "forward"
    )]
    pub listen: String,
}

impl Relay {
    /// The relay's unit for the agent's `command`, when one is asked for.
    ///
    /// # Errors
    /// A bad --relay-listen, or what [`unit::ServiceCommand::relay`] refuses.
    pub fn unit(&self, command: &unit::ServiceCommand) -> Result<Option<unit::Unit>, InstallError> {
        let Some(forward) = &self.forward else {
            return Ok(None);
        };
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| InstallError::RelayListen(self.listen.clone()))?;
        Ok(Some(command.relay(forward, &self.listen)?))
    }
}

/// What is wrong with a `probe install` command line.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The agent's check command line.
    #[error("the check command line: {0}")]
    CheckLine(#[source] crate::check::plan::PlanError),
    /// What the service cannot run.
    #[error(transparent)]
    Service(#[from] unit::Refusal),
    /// A credential file the service reads at start, missing.
    #[error("{0}: no such file; the service reads it at start (write it first)")]
    Credential(String),
    /// A relative `--bin`.
    #[error("--bin {}: give an absolute path", .0.display())]
    RelativeBin(PathBuf),
    /// A `--relay-listen` that is no address.
    #[error("--relay-listen {0:?}: give ADDR:PORT, as 0.0.0.0:7878")]
    RelayListen(String),
}

/// Arguments of `probe uninstall`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = UNINSTALL_EXAMPLES)]
pub struct UninstallArgs {
    /// Print the files it would remove, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Remove under this directory instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// Runs `probe install`.
///
/// # Errors
/// Usage errors (the check command line, a relative path, a missing file) and environment
/// errors (a file that cannot be written, systemd refusing).
pub fn execute(args: &Args) -> Result<u8, Error> {
    let live = args.root == Path::new("/") && !args.dry_run;
    crate::check::plan::validate_line(&args.check, live)
        .map_err(|e| Error::usage(InstallError::CheckLine(e)))?;
    let command =
        unit::service_command(&args.check).map_err(|e| Error::usage(InstallError::from(e)))?;
    if live {
        for (_, file) in &command.credentials {
            if !Path::new(file).is_file() {
                return Err(Error::usage(InstallError::Credential(file.clone())));
            }
        }
    }
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(|e| Error::io("cannot tell where this probe is", e, Some("give --bin")))?,
    };
    let Some(bin) = bin.to_str().filter(|b| b.starts_with('/')) else {
        return Err(Error::usage(InstallError::RelativeBin(bin)));
    };
    let mut units = vec![(UNIT, "probe.service", command.unit())];
    if let Some(relay) = args.relay.unit(&command).map_err(Error::usage)? {
        units.push((RELAY_UNIT, "probe-relay.service", relay));
    }
    if args.relay.forward.is_none() && !args.dry_run {
        remove_stale_relay(&args.root, live)?;
    }
    for (rel, name, unit) in &units {
        let text = unit::render(bin, unit);
        if args.dry_run {
            print!("# /{rel}\n{text}");
            continue;
        }
        let path = args.root.join(rel);
        let changed = write_if_changed(&path, &text)?;
        eprintln!(
            "probe install: {} {}",
            if changed { "wrote" } else { "unchanged" },
            path.display()
        );
        if live {
            start(name, changed)?;
        }
    }
    Ok(exit::PASS)
}

/// Runs `probe uninstall`.
///
/// # Errors
/// Environment errors: a file that cannot be removed.
pub fn execute_uninstall(args: &UninstallArgs) -> Result<u8, Error> {
    let live = args.root == Path::new("/") && !args.dry_run;
    if live && systemd_running() {
        // Stopped first: a running service would otherwise keep its old unit in memory.
        let _ = systemctl(&[
            "disable",
            "--now",
            "probe.service",
            "probe-relay.service",
            "probe-fetch.service",
        ]);
    }
    for rel in [UNIT, RELAY_UNIT].into_iter().chain(BOOTSTRAP_FILES) {
        let path = args.root.join(rel);
        if !path.exists() {
            continue;
        }
        if args.dry_run {
            println!("{}", path.display());
            continue;
        }
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e, None))?;
        eprintln!("probe uninstall: removed {}", path.display());
    }
    if live && systemd_running() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(exit::PASS)
}

/// A relay installed before, by a command line that no longer asks for one, is stopped and
/// removed: what runs is what the latest install said.
fn remove_stale_relay(root: &Path, live: bool) -> Result<(), Error> {
    let path = root.join(RELAY_UNIT);
    if !path.exists() {
        return Ok(());
    }
    if live && systemd_running() {
        systemctl(&["disable", "--now", "probe-relay.service"])?;
    }
    std::fs::remove_file(&path)
        .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e, None))?;
    eprintln!("probe install: removed {} (no --relay now)", path.display());
    Ok(())
}

/// Writes `text` to `path` (0644, through a temporary file) unless it holds it already.
fn write_if_changed(path: &Path, text: &str) -> Result<bool, Error> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let fail = |e: std::io::Error| {
        Error::io(
            format!("cannot write {}", path.display()),
            e,
            Some("run as root, or give --root DIR"),
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("service.new");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(true)
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Enables a service and starts it; restarts it when its unit changed.
fn start(name: &str, changed: bool) -> Result<(), Error> {
    if !systemd_running() {
        eprintln!(
            "probe install: systemd is not running here: start the service with your init system"
        );
        return Ok(());
    }
    if changed {
        systemctl(&["daemon-reload"])?;
    }
    systemctl(&["enable", name])?;
    systemctl(&[if changed { "restart" } else { "start" }, name])
}

fn systemctl(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| Error::io("cannot run systemctl", e, None))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(Error::environment(crate::Environment::Program {
        command: format!("systemctl {}", args.join(" ")),
        said: why.lines().next().unwrap_or("no message").to_string(),
    }))
}
