//! The probe service's unit, rendered from `userdata/probe.service` for an agent command
//! line. Pure: no file is read or written here.

use std::fmt::{self, Write as _};

/// The unit template: hardening and layout live in the file, reviewed as a unit file.
const TEMPLATE: &str = include_str!("../../userdata/probe.service");

/// Where the service keeps its spool: its `StateDirectory` (`%S` is /var/lib).
pub const SPOOL: &str = "%S/probe/spool";
/// The period of the service's checks when the command line gives none.
pub const DEFAULT_EVERY: &str = "60s";

/// Why an agent command line cannot run as the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An option the service sets itself.
    #[error("{flag} is set by the service ({why}): drop it")]
    SetByService {
        /// The option.
        flag: &'static str,
        /// What the service does instead.
        why: &'static str,
    },
    /// A file the service reads must be named by an absolute path.
    #[error("{flag} {path:?}: the service needs an absolute path")]
    RelativePath {
        /// The option.
        flag: &'static str,
        /// The path given.
        path: String,
    },
    /// `--console` and an explicit output format both claim the service's stdout.
    #[error(
        "--console with -o {0}: under the service the verdict lines are its output (journal and serial console); drop -o"
    )]
    ConsoleAndOutput(String),
    /// A flag's value is missing at the end of the line.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// The relay cannot be set up as asked.
    #[error("{0}")]
    Relay(String),
}

/// What the service runs, and the files systemd hands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCommand {
    /// `probe check` arguments as the service passes them.
    pub args: Vec<String>,
    /// `LoadCredential=` pairs: credential name, file on the host.
    pub credentials: Vec<(String, String)>,
    /// Verdict lines go to the serial console too.
    pub console: bool,
}

/// Turns an agent command line (what runs by hand) into the service's: files it reads
/// become systemd credentials (root-owned 0600 files the service user may read), the spool
/// moves to the service's state directory, `--console` becomes verdict lines on stdout
/// (which systemd copies to the serial console), and `--every` is added when missing.
///
/// # Errors
/// A [`Refusal`] naming the option.
pub fn service_command(agent: &[String]) -> Result<ServiceCommand, Refusal> {
    let mut out = ServiceCommand {
        args: Vec::with_capacity(agent.len() + 6),
        credentials: Vec::new(),
        console: false,
    };
    let mut output: Option<String> = None;
    let mut every = false;
    let mut reports = false;
    let mut words = agent.iter();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (word.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, Refusal> {
            inline
                .clone()
                .or_else(|| words.next().cloned())
                .ok_or_else(|| Refusal::MissingValue(name.to_string()))
        };
        match flag {
            "--token-file" => {
                let path = absolute("--token-file", value(flag)?)?;
                out.credentials.push(("token".into(), path));
                out.args.extend(["--token-file".into(), "%d/token".into()]);
            }
            "--ca-file" => {
                let path = absolute("--ca-file", value(flag)?)?;
                let n = out.credentials.iter().filter(|(k, _)| k != "token").count();
                let name = format!("ca-{}", n + 1);
                out.args.extend(["--ca-file".into(), format!("%d/{name}")]);
                out.credentials.push((name, path));
            }
            "--spool" => {
                return Err(Refusal::SetByService {
                    flag: "--spool",
                    why: "reports wait in its state directory, /var/lib/probe/spool",
                });
            }
            "--console" => out.console = true,
            "-o" | "--output" => output = Some(value(flag)?),
            w if w.starts_with("-o") && w.len() > 2 => output = Some(w[2..].to_string()),
            _ => {
                every |= flag == "--every";
                reports |= flag == "--report-to";
                out.args.push(word.clone());
            }
        }
    }
    match (out.console, output) {
        (true, Some(o)) => return Err(Refusal::ConsoleAndOutput(o)),
        (true, None) => out.args.extend(["-o".into(), "console".into()]),
        (false, Some(o)) => out.args.extend(["-o".into(), o]),
        // The journal is read by people: a table is what `journalctl -u probe` should show.
        (false, None) => out.args.extend(["-o".into(), "table".into()]),
    }
    if !every {
        out.args.extend(["--every".into(), DEFAULT_EVERY.into()]);
    }
    if reports {
        out.args.extend(["--spool".into(), SPOOL.into()]);
    }
    Ok(out)
}

fn absolute(flag: &'static str, path: String) -> Result<String, Refusal> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(Refusal::RelativePath { flag, path })
    }
}

/// What a unit runs and how: everything that differs between the agent and the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `Description=`.
    pub description: &'static str,
    /// The probe subcommand and its arguments.
    pub args: Vec<String>,
    /// `LoadCredential=` pairs.
    pub credentials: Vec<(String, String)>,
    /// `StateDirectory=`, under /var/lib.
    pub state: &'static str,
    /// Capabilities kept (empty: none).
    pub capabilities: &'static str,
    /// Its stdout goes to the serial console too.
    pub console: bool,
}

impl ServiceCommand {
    /// The agent's unit: `probe check ... --every`, with raw sockets for ICMP echo.
    #[must_use]
    pub fn unit(&self) -> Unit {
        Unit {
            description: "probe: VPC connectivity checks, reported to a collector",
            args: std::iter::once("check".to_string())
                .chain(self.args.iter().cloned())
                .collect(),
            credentials: self.credentials.clone(),
            state: "probe",
            capabilities: "CAP_NET_RAW",
            console: self.console,
        }
    }

    /// The relay's unit: `probe collect --forward`, storing what the VPC's agents post and
    /// forwarding it to the operator's collector, and serving probe itself at /v1/probe to
    /// instances with no other source. It signs with the agent's token when there is one, passes
    /// on the agents' own proofs, and trusts the agent's CAs.
    ///
    /// # Errors
    /// When `forward` is not a URL.
    pub fn relay(&self, forward: &str, listen: &str) -> Result<Unit, Refusal> {
        if !(forward.starts_with("http://") || forward.starts_with("https://")) {
            return Err(Refusal::Relay(format!(
                "--relay {forward:?}: give the operator's collector URL, as https://collector.example:7878"
            )));
        }
        let mut args: Vec<String> = ["collect", "--listen", listen].map(String::from).to_vec();
        // Without a token the relay forwards only what agents proved with their identity.
        if self.credentials.iter().any(|(k, _)| k == "token") {
            args.extend(["--token-file".into(), "%d/token".into()]);
        }
        args.extend(["--data", "%S/probe-relay", "--forward", forward].map(String::from));
        for (name, _) in self.credentials.iter().filter(|(k, _)| k != "token") {
            args.extend(["--ca-file".into(), format!("%d/{name}")]);
        }
        Ok(Unit {
            description: "probe relay: keeps the VPC's reports and forwards them to the operator's collector",
            args,
            credentials: self.credentials.clone(),
            state: "probe-relay",
            capabilities: "",
            console: false,
        })
    }
}

/// The unit file text for `bin` running `unit`.
#[must_use]
pub fn render(bin: &str, unit: &Unit) -> String {
    let exec = std::iter::once(bin)
        .chain(unit.args.iter().map(String::as_str))
        .map(|w| Quoted(w).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mut credentials = String::new();
    for (name, path) in &unit.credentials {
        let _ = writeln!(
            credentials,
            "LoadCredential={name}:{}",
            escape_specifiers(path)
        );
    }
    TEMPLATE
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@DESCRIPTION@", unit.description)
        .replace("@EXEC_START@", &exec)
        .replace("@CREDENTIALS@\n", &credentials)
        .replace("@STATE@", unit.state)
        .replace("@CAPABILITIES@", unit.capabilities)
        .replace(
            "@STDOUT@",
            if unit.console {
                "journal+console"
            } else {
                "journal"
            },
        )
}

/// `%` starts a systemd specifier; a path or argument of ours must not.
fn escape_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// One `ExecStart=` word: quoted when it holds anything systemd would split or expand. Our
/// own `%d`/`%S` specifiers pass through; a user's `%` is doubled.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.0;
        let ours = word.starts_with("%d/") || word.starts_with("%S/");
        let escaped = if ours {
            word.replace('$', "$$")
        } else {
            escape_specifiers(word).replace('$', "$$")
        };
        let plain = !escaped.is_empty()
            && escaped
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,%@+".contains(&b));
        if plain {
            return f.write_str(&escaped);
        }
        f.write_str("\"")?;
        for c in escaped.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                _ => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn files_become_credentials_and_the_spool_the_state_directory() {
        let c = service_command(&words(
            "s3 --report-to http://10.10.0.10:7878 --token-file /etc/probe/token --ca-file=/etc/probe/ca.pem --console",
        ))
        .unwrap();
        assert_eq!(
            c.args,
            words(
                "s3 --report-to http://10.10.0.10:7878 --token-file %d/token --ca-file %d/ca-1 -o console --every 60s --spool %S/probe/spool"
            )
        );
        assert_eq!(
            c.credentials,
            vec![
                ("token".into(), "/etc/probe/token".into()),
                ("ca-1".into(), "/etc/probe/ca.pem".into())
            ]
        );
        assert!(c.console);
        let unit = render("/usr/local/bin/probe", &c.unit());
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/probe check s3 --report-to http://10.10.0.10:7878 --token-file %d/token"
        ));
        assert!(unit.contains(
            "LoadCredential=token:/etc/probe/token\nLoadCredential=ca-1:/etc/probe/ca.pem\n"
        ));
        assert!(unit.contains("StandardOutput=journal+console"));
        assert!(
            !unit.contains("@DESC") && !unit.contains("@STATE"),
            "{unit}"
        );
        assert!(unit.contains("CapabilityBoundingSet=CAP_NET_RAW\n"));

        let relay = render(
            "/usr/local/bin/probe",
            &c.relay("https://laptop.example:7878", "0.0.0.0:7878")
                .unwrap(),
        );
        assert!(relay.contains(
            "ExecStart=/usr/local/bin/probe collect --listen 0.0.0.0:7878 --token-file %d/token --data %S/probe-relay --forward https://laptop.example:7878 --ca-file %d/ca-1\n"
        ), "{relay}");
        assert!(relay.contains("CapabilityBoundingSet=\n"));
        assert!(relay.contains("StateDirectory=probe-relay\n"));
        assert!(relay.contains("StandardOutput=journal\n"));
    }

    #[test]
    fn the_service_keeps_a_given_period_and_output() {
        let c = service_command(&words("s3 --every 5m -ojson")).unwrap();
        assert_eq!(c.args, words("s3 --every 5m -o json"));
        let unit = render("/usr/local/bin/probe", &c.unit());
        assert!(unit.contains("StandardOutput=journal\n"));
        assert!(!unit.contains("LoadCredential"));
    }

    #[test]
    fn words_systemd_would_split_or_expand_are_quoted() {
        let c = service_command(&[
            "http://web/".into(),
            "--expect-body".into(),
            "Web Server \"1\" 100% $HOME".into(),
        ])
        .unwrap();
        let unit = render("/opt/my probe/probe", &c.unit());
        assert!(
            unit.contains(
                r#"ExecStart="/opt/my probe/probe" check http://web/ --expect-body "Web Server \"1\" 100%% $$HOME" -o table"#
            ),
            "{unit}"
        );
    }

    #[test]
    fn what_the_service_sets_itself_is_refused() {
        for (line, want) in [
            ("s3 --spool /tmp/x", "--spool is set by the service"),
            (
                "s3 --token-file probe.token",
                "--token-file \"probe.token\": the service needs an absolute path",
            ),
            ("s3 --console -o json", "--console with -o json"),
            ("s3 --ca-file", "--ca-file needs a value"),
        ] {
            let e = service_command(&words(line)).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
        let c = service_command(&words("s3")).unwrap();
        let relay = c.relay("https://x:7878", "0.0.0.0:7878").unwrap();
        assert!(
            !relay.args.iter().any(|a| a == "--token-file"),
            "no token to give: {:?}",
            relay.args
        );
        let e = c.relay("x:7878", "0.0.0.0:7878").unwrap_err();
        assert!(e.to_string().contains("give the operator's collector URL"));
    }
}
