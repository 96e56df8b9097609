//! `probe collect`: the operator's collector. Agents post signed reports; the collector
//! stores them durably and shows the whole VPC at a glance.

pub mod alerts;
pub mod cache;
pub mod console;
pub mod dashboard;
pub mod db;
pub mod enrich;
pub mod enrol;
mod enrolment;
pub mod entry;
pub mod history;
pub mod identities;
mod invalid;
pub mod limit;
pub mod listen;
pub mod metrics;
pub mod nonce;
pub mod relay;
mod repeated;
pub mod retention;
pub mod server;
mod signed;
pub mod store;
pub mod uptime;

pub use invalid::CollectError;

use crate::auth::Token;
use crate::error::{Error, exit};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const EXAMPLES: &str = "Examples:
  probe collect --listen 0.0.0.0:7878 --allow-account 123456789012
  probe collect forget i-0123456789abcdef0
  probe collect export --data probe-data > reports.jsonl
  PROBE_DATABASE=postgres://probe:PASSWORD@db.internal/probe probe collect --listen 0.0.0.0:7878 --token-file probe.token
  probe collect --listen 0.0.0.0:7878 --token-file probe.token
  probe collect --listen 0.0.0.0:7878 --token-file probe.token --forward https://laptop:7878
  probe collect --stack probe-lab1 --region ap-northeast-2";

/// Whether the collector labels reports with its own EC2 API (`--ec2`).
// The option's help describes both values; documented variants would turn the whole help
// into clap's long layout.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Labelling {
    Auto,
    Off,
}

/// Which proofs a report must carry (`--require`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Require {
    Either,
    Both,
}

/// `probe collect`'s subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Forget an instance's enrolled key, so that its agent can enrol a new one (an older
    /// identity document still cannot).
    Forget {
        /// The instance, as i-0123456789abcdef0.
        instance: String,
        /// Where the enrolled keys are.
        #[command(flatten)]
        store: Stored,
    },
    /// Write every stored report to standard output, one JSON document a line, in the order
    /// they were stored (a backup, or a way out of the database).
    Export {
        /// Where the reports are.
        #[command(flatten)]
        store: Stored,
    },
}

/// Where a collector's store is, for the subcommands that read or change it.
#[derive(Debug, Clone, clap::Args)]
pub struct Stored {
    /// The collector's data directory (its SQLite database).
    #[arg(long, value_name = "DIR", default_value = "probe-data")]
    pub data: PathBuf,
    /// The collector's PostgreSQL database instead.
    #[arg(
        long,
        value_name = "URL",
        env = "PROBE_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

impl Stored {
    /// The database, which must exist already unless `or` (a file of an older collector to
    /// import) does.
    fn existing(&self, or: Option<&str>) -> Result<db::Database, Error> {
        let database = db::Database::choose(&self.data, self.database.as_deref())
            .map_err(|e| Error::usage(CollectError::Database(e)))?;
        if let db::Database::Sqlite(file) = &database {
            if !file.exists() && !or.is_some_and(|name| self.data.join(name).exists()) {
                return Err(Error::usage(CollectError::NoDatabase(file.clone())));
            }
        }
        Ok(database)
    }
}

/// Arguments of `probe collect`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// What to do instead of collecting.
    #[command(subcommand)]
    pub action: Option<Action>,

    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7878", value_parser = crate::values::listen)]
    pub listen: SocketAddr,

    /// File holding the shared token agents sign reports with (beyond loopback, this or
    /// --allow-account is required).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Accept agents proven by their instance's AWS identity from this account (repeatable).
    #[arg(long = "allow-account", value_name = "ID")]
    pub allow_accounts: Vec<String>,

    /// Accept instance identities only from this region (repeatable) [default: any].
    #[arg(long = "allow-region", value_name = "REGION")]
    pub allow_regions: Vec<String>,

    /// Accept reports of enrolled instances only from this VPC (repeatable) [default: any].
    #[arg(long = "allow-vpc", value_name = "VPC_ID")]
    pub allow_vpcs: Vec<String>,

    /// Also trust this certificate (PEM, RSA) to sign instance identity documents, for any
    /// region: a lab, or a partition whose certificate probe does not ship (repeatable).
    #[arg(long = "identity-ca", value_name = "FILE")]
    pub identity_cas: Vec<PathBuf>,

    /// Which proofs a report must carry: either the token or an enrolled identity, or both.
    #[arg(long, value_name = "WHICH", value_enum, default_value_t = Require::Either)]
    pub require: Require,

    /// Directory of the collector's files: its SQLite database (unless --database) and a
    /// relay's queue.
    #[arg(long, value_name = "DIR", default_value = "probe-data")]
    pub data: PathBuf,

    /// Keep reports and enrolled keys in this PostgreSQL database, which several collectors
    /// may share (postgres://USER:PASSWORD@HOST:PORT/NAME; best given in PROBE_DATABASE,
    /// which `ps` does not show) [default: SQLite in --data]. TLS as libpq's URLs ask:
    /// ?sslmode=verify-full&sslrootcert=CA.pem checks the server's certificate; sslcert and
    /// sslkey give a client certificate.
    #[arg(
        long,
        value_name = "URL",
        env = "PROBE_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Also forward every stored report to this collector (a relay): signed with the same
    /// --token-file, and with the agent's own proof when it enrolled an identity (enrolments
    /// pass through to the collector); the relay then serves its executable at /v1/probe.
    #[arg(long, value_name = "URL")]
    pub forward: Option<String>,

    /// Extra trusted CA certificates for --forward over HTTPS, PEM (repeatable).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,

    /// Require this token (a file, as --token-file's; it may be the same one) to read the
    /// dashboard, the API and the metrics: as `Authorization: Bearer TOKEN`, or a browser's
    /// password. Without it a collector's reads are open, and a relay's are closed.
    #[arg(long, value_name = "FILE")]
    pub read_token_file: Option<PathBuf>,

    /// Delete reports made longer ago than this (as 7d), keeping the latest of every
    /// instance and target [default: keep everything].
    #[arg(long, value_name = "DURATION", value_parser = crate::values::duration)]
    pub retain: Option<Duration>,

    /// Keep the stored reports' documents under this size (as 500MB or 2GiB), deleting the
    /// oldest first but never the latest of an instance and target [default: no limit].
    #[arg(long, value_name = "SIZE", value_parser = crate::values::size)]
    pub retain_size: Option<u64>,

    /// Sends a message when a cell's verdict changes and when it recovers: webhook=URL (the
    /// alert as JSON) or slack=URL (a Slack incoming webhook); repeat for more.
    #[arg(long, value_name = "KIND=URL")]
    pub alert: Vec<String>,

    /// Reports in a row a new verdict needs before it is alerted (1 alerts at once).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub alert_after: u32,

    /// Reports per second one source may post (bursts of twice that); 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub rate_limit: u32,

    /// Label the reports of agents that had no EC2 API with this machine's AWS credentials
    /// (auto: when it has some), or never (off).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Labelling::Auto)]
    pub ec2: Labelling,

    /// How long what the EC2 API said of a subnet is reused for other reports; a change to
    /// the VPC shows in labels after at most this long.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = crate::values::duration_or_zero)]
    pub ec2_max_age: Duration,

    /// Also read verdicts from these instances' serial consoles (EC2 GetConsoleOutput); for
    /// agents run with --console.
    #[arg(long = "from-console", value_name = "INSTANCE_ID", num_args = 1..)]
    pub from_console: Vec<String>,

    /// Also read the serial consoles of this CloudFormation stack's instances.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,

    /// Region of the consoles' instances (default: AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Time between two readings of the consoles.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::values::period)]
    pub console_every: Duration,
}

/// Runs the collector until interrupted.
///
/// # Errors
/// Usage errors (address, token) and environment errors (data directory, port in use).
pub async fn execute(args: &Args) -> Result<u8, Error> {
    if let Some(action) = &args.action {
        // The database clients block: off the async threads.
        let action = action.clone();
        return tokio::task::spawn_blocking(move || act(&action))
            .await
            .map_err(Error::environment)?;
    }
    // Before anything is said to be listening: a stop asked from then on is a clean one.
    let stop = crate::stop::requested();
    let addr = args.listen;
    let token = args
        .token_file
        .as_deref()
        .map(Token::load)
        .transpose()
        .map_err(Error::usage)?;
    let identities = identities(args)?;
    proofs(args, addr, token.is_some(), identities.is_some())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(listen::tls(cert, key).map_err(Error::usage)?),
        _ => None,
    };
    let relay = relay(args)?;
    let alerts = alerts_of(args)?;
    let consoles = console_sources(args, &|k| std::env::var(k).ok())?;
    let ec2_max_age = args.ec2_max_age;
    let retention = retention::Retention {
        age: args.retain,
        bytes: args.retain_size,
    };
    let database = db::Database::choose(&args.data, args.database.as_deref())
        .map_err(|e| Error::usage(CollectError::Database(e)))?;
    let store = {
        let data = args.data.clone();
        tokio::task::spawn_blocking(move || store::Store::open_with(&data, database, retention))
            .await
            .map_err(Error::environment)?
            .map_err(Error::environment)?
    };
    let identities = match identities {
        Some((trust, policy)) => Some(open_identities(trust, policy, &store, &args.data).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {addr}"), e, None))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the address listened on", e, None))?;
    eprintln!(
        "probe collect: listening on {}://{local}, storing in {}{}",
        if tls.is_some() { "https" } else { "http" },
        store.database(),
        if token.is_some() {
            ""
        } else {
            " (no token: loopback only)"
        }
    );
    let reads = reads(args.read_token_file.as_deref(), relay.is_some())?;
    let exe = match &relay {
        Some(_) => Some(
            server::this_executable()
                .await
                .map_err(Error::environment)?,
        ),
        None => None,
    };
    // Other collectors' reports count towards this one's streaks: followed from before the
    // reading that resumes them, so none falls between the two (one seen twice counts once).
    let followed = alerts.as_ref().and_then(|_| store.follow());
    let alerts = match alerts {
        Some(plan) => Some(resume(plan, &args.data, &store).await?),
        None => None,
    };
    let app = Arc::new(server::App {
        alerts,
        scans: tokio::sync::Semaphore::new(history::SCANS),
        store,
        token,
        limit: (args.rate_limit > 0).then(|| limit::RateLimit::new(args.rate_limit)),
        relay: relay.clone(),
        enricher: (args.ec2 == Labelling::Auto).then(|| enrich::Enricher::new(ec2_max_age)),
        exe,
        page: dashboard::Cache::default(),
        reads,
        identities,
        require_both: args.require == Require::Both,
    });
    serve_until_stopped(app, relay, consoles, followed, (listener, tls), stop).await
}

/// Starts the background tasks, serves until SIGTERM or SIGINT, then stops cleanly.
async fn serve_until_stopped(
    app: Arc<server::App>,
    relay: Option<Arc<relay::Relay>>,
    consoles: Option<console::Sources>,
    followed: Option<tokio::sync::mpsc::Receiver<crate::model::Report>>,
    (listener, tls): (tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
    stop: impl std::future::Future<Output = ()>,
) -> Result<u8, Error> {
    // Every task this command starts is owned here and ended at the stop.
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(relay) = relay {
        tasks.spawn(relay.run());
    }
    if let Some(ids) = &app.identities {
        tasks.spawn(ids.clone().watch());
    }
    if let Some(alerts) = &app.alerts {
        alerts.spawn(&mut tasks);
        if let Some(mut followed) = followed {
            let alerts = alerts.clone();
            tasks.spawn(async move {
                while let Some(report) = followed.recv().await {
                    if let Err(e) = alerts.observe(&report).await {
                        tracing::error!("an alert is not written: {e}; the next start writes it");
                    }
                }
            });
        }
    }
    if app.enricher.is_some() {
        let app = app.clone();
        tasks.spawn(async move {
            if let Some(e) = &app.enricher {
                e.check_credentials().await;
            }
        });
    }
    if let Some(sources) = consoles {
        let ec2 = crate::context::ec2::SdkEc2::load(&sources.region, Duration::from_secs(10))
            .await
            .map_err(|e| Error::environment(crate::Environment::Console(e)))?;
        tasks.spawn(console::poll(
            ec2,
            sources,
            app.store.clone(),
            app.alerts.clone(),
        ));
    }
    let finished = listen::serve(
        listener,
        tls,
        server::router(app.clone()),
        listen::Gate::for_this_process(),
        stop,
    )
    .await;
    // What was acknowledged is on disk already (the store and the relay's queue answer only
    // after fsync); what the background tasks were doing is redone at the next start.
    tasks.shutdown().await;
    eprintln!(
        "probe collect: stopped{}; every acknowledged report is stored ({})",
        if finished {
            " after finishing every request in flight"
        } else {
            ", cutting the connections still open"
        },
        app.store.database()
    );
    Ok(exit::PASS)
}

/// Whether the proofs given suffice: beyond loopback some proof is needed, and `--require
/// both` needs both.
fn proofs(args: &Args, addr: SocketAddr, token: bool, identities: bool) -> Result<(), Error> {
    if !token && !identities && !addr.ip().is_loopback() {
        return Err(Error::usage(CollectError::Unprotected(addr)));
    }
    if args.require == Require::Both && !(token && identities) {
        return Err(Error::usage(CollectError::BothNeeded));
    }
    Ok(())
}

/// `probe collect forget` or `probe collect export`. Blocking.
fn act(action: &Action) -> Result<u8, Error> {
    match action {
        Action::Forget { instance, store } => forget(instance, store),
        Action::Export { store } => export(store),
    }
}

/// The identities' registry, in the store's database.
async fn open_identities(
    trust: crate::identity::Trust,
    policy: enrol::Policy,
    store: &store::Store,
    data: &std::path::Path,
) -> Result<Arc<enrol::Identities>, Error> {
    let (database, data) = (store.database().clone(), data.to_path_buf());
    let registry =
        tokio::task::spawn_blocking(move || identities::Registry::open(&database, Some(&data)))
            .await
            .map_err(Error::environment)?
            .map_err(Error::environment)?;
    Ok(Arc::new(enrol::Identities::new(trust, policy, registry)))
}

/// `probe collect export`.
fn export(stored: &Stored) -> Result<u8, Error> {
    use std::io::Write;
    let database = stored.existing(None)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = None;
    store::each(&database, &mut |entry| {
        if failed.is_none() {
            failed = writeln!(out, "{}", entry.doc()).err();
        }
    })
    .map_err(Error::environment)?;
    match failed.map_or_else(|| out.flush(), Err) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io(
            "export: cannot write to stdout",
            e,
            Some("check where stdout goes"),
        )),
        _ => Ok(exit::PASS),
    }
}

/// `probe collect forget`.
fn forget(instance: &str, stored: &Stored) -> Result<u8, Error> {
    let database = stored.existing(Some(identities::FILE))?;
    // Brought to this probe's version first, as the collector's start would.
    let migrated = database
        .connect()
        .map_err(|source| Error::environment(identities::RegistryError::db(&database, source)))?;
    drop(migrated);
    // An older collector's file in --data is imported into its own SQLite database, as that
    // collector's start would; never into a shared one, which --data has no part in here.
    let import = (!database.shared()).then_some(stored.data.as_path());
    let registry = identities::Registry::open(&database, import).map_err(Error::environment)?;
    if registry.forget(instance).map_err(Error::environment)? {
        eprintln!(
            "probe collect: forgot the key of {instance}; its agent enrols a new one on its next report"
        );
        return Ok(exit::PASS);
    }
    Err(Error::usage(CollectError::NotEnrolled {
        instance: instance.to_string(),
        database: database.to_string(),
        enrolled: registry.instances().into_keys().collect(),
    }))
}

/// Instance identities' trust and policy, when accepted: a collector's (`--allow-account`),
/// or a relay's, which passes enrolments on and keeps what its collector accepted. Their
/// registry is opened in the store's database once the store is.
fn identities(args: &Args) -> Result<Option<(crate::identity::Trust, enrol::Policy)>, Error> {
    if args.allow_accounts.is_empty() && args.forward.is_none() {
        if !(args.allow_regions.is_empty()
            && args.allow_vpcs.is_empty()
            && args.identity_cas.is_empty())
        {
            return Err(Error::usage(CollectError::IdentityAlone));
        }
        return Ok(None);
    }
    if let Some(bad) = args
        .allow_accounts
        .iter()
        .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::usage(CollectError::Account(bad.clone())));
    }
    if let Some(bad) = args
        .allow_regions
        .iter()
        .find(|r| !crate::model::region::is_valid(r))
    {
        return Err(Error::usage(CollectError::Region(bad.clone())));
    }
    if let Some(bad) = args.allow_vpcs.iter().find(|v| !v.starts_with("vpc-")) {
        return Err(Error::usage(CollectError::Vpc(bad.clone())));
    }
    let trust = crate::identity::Trust::new(&args.identity_cas).map_err(Error::usage)?;
    let policy = enrol::Policy {
        accounts: args.allow_accounts.clone(),
        regions: args.allow_regions.clone(),
        vpcs: args.allow_vpcs.clone(),
    };
    Ok(Some((trust, policy)))
}

/// Starts the alerts' cells where they stood at the stop, and writes what was due then.
async fn resume(
    plan: alerts::Plan,
    data: &std::path::Path,
    store: &store::Store,
) -> Result<Arc<alerts::Alerts>, Error> {
    let (data, database, matrix) = (
        data.to_path_buf(),
        store.database().clone(),
        store.views().matrix.clone(),
    );
    let (alerts, due) = tokio::task::spawn_blocking(move || plan.open(&database, &data, &matrix))
        .await
        .map_err(Error::environment)?
        .map_err(|e| Error::environment(crate::Environment::Alerts(e)))?;
    if let Err(e) = alerts.write(due).await {
        tracing::error!("an alert is not written: {e}; the next start writes it");
    }
    Ok(Arc::new(alerts))
}

/// The alerts' destinations, when asked for.
fn alerts_of(args: &Args) -> Result<Option<alerts::Plan>, Error> {
    if args.alert.is_empty() {
        return Ok(None);
    }
    let trust = crate::net::tls::Trust::new(&args.ca_files).map_err(Error::usage)?;
    let plan = alerts::Plan::new(&args.alert, args.alert_after, trust.client_config())
        .map_err(Error::usage)?;
    Ok(Some(plan))
}

/// The forwarding queue, when this collector is a relay.
fn relay(args: &Args) -> Result<Option<Arc<relay::Relay>>, Error> {
    let Some(url) = &args.forward else {
        return Ok(None);
    };
    let trust = crate::net::tls::Trust::new(&args.ca_files).map_err(Error::usage)?;
    let relay = relay::Relay::new(
        url,
        args.token_file.as_deref(),
        &args.data,
        trust.client_config(),
    )
    .map_err(|error| {
        Error::Usage(crate::Usage::Delivery {
            error,
            url: "--forward",
            spool: "--data",
        })
    })?;
    Ok(Some(Arc::new(relay)))
}

/// Who may read the dashboard, the API and the metrics.
fn reads(file: Option<&std::path::Path>, relay: bool) -> Result<server::Reads, Error> {
    let Some(file) = file else {
        return Ok(if relay {
            server::Reads::Closed
        } else {
            server::Reads::Open
        });
    };
    let token =
        crate::auth::read_secret(file).map_err(|e| Error::usage(CollectError::ReadToken(e)))?;
    Ok(server::Reads::Token(token))
}

/// The consoles to read, when asked.
fn console_sources(
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<console::Sources>, Error> {
    if args.from_console.is_empty() && args.stack.is_none() {
        return Ok(None);
    }
    if let Some(bad) = args
        .from_console
        .iter()
        .find(|id| !id.starts_with("i-") || id.len() > 32 || id.contains(char::is_whitespace))
    {
        return Err(Error::usage(CollectError::ConsoleInstance(bad.clone())));
    }
    let region = crate::model::region::choose(args.region.as_deref(), &env, None)
        .map_err(Error::usage)?
        .map(|(r, _)| r)
        .ok_or_else(|| Error::usage(CollectError::ConsoleRegion))?;
    let every = args.console_every;
    Ok(Some(console::Sources {
        ids: args.from_console.clone(),
        stack: args.stack.clone(),
        region,
        every,
    }))
}
