//! When a cell (an instance and a target) is worth a message: its verdict (the path, and
//! whether the expectation was met) differs from the one last told for `after` reports in a
//! row. The first verdict seen of a cell is told to no one: it is where the cell starts.

use crate::collect::store::{Cell, instance_key, instance_label};
use crate::model::{Path, Report};
use std::collections::HashMap;

/// A cell's verdict, as alerts compare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// The path the packets took.
    pub path: Path,
    /// The expectation was met.
    pub pass: bool,
}

/// What happened to the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// It passed, and no longer does.
    Failing,
    /// It failed, and passes again.
    Recovered,
    /// Its path moved, passing or failing as before.
    Changed,
}

/// One message: the same for every destination, rendered for each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// What happened.
    pub event: Event,
    /// The instance as shown (Name tag, else host name, with its id).
    pub instance: String,
    /// The instance's id, else its host name.
    pub instance_key: String,
    /// The target as the agent named it.
    pub target: String,
    /// The verdict told before.
    pub from: State,
    /// The verdict now.
    pub to: State,
    /// The reason the report that completed the count gives (the newest, unless an older
    /// one came late).
    pub reason: String,
    /// When the newest report was made (RFC 3339).
    pub at: String,
    /// Reports in a row that gave the new verdict.
    pub reports: u32,
}

impl Alert {
    /// The same for every send of this message, from any collector, to any destination: a
    /// receiver drops a repeat by it (a collector that dies while sending sends again).
    #[must_use]
    pub fn id(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            self.instance_key.as_str(),
            &self.target,
            &self.at,
            self.from.path.as_str(),
            if self.from.pass { "pass" } else { "fail" },
            self.to.path.as_str(),
            if self.to.pass { "pass" } else { "fail" },
        ] {
            // Each part's length first, so no two cells' parts run into the same bytes.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        crate::auth::hex(&ctx.finish().as_ref()[..16])
    }
}

/// What a move from `from` to `to` is.
#[must_use]
pub fn event(from: State, to: State) -> Event {
    match (from.pass, to.pass) {
        (true, false) => Event::Failing,
        (false, true) => Event::Recovered,
        _ => Event::Changed,
    }
}

struct Streak {
    told: State,
    seen: State,
    count: u32,
    /// When the newest report was made.
    at: String,
    /// When each report of the run counted here was made (none for a run read back at a
    /// start): a report that comes late is counted once, or splits the run.
    run: Vec<String>,
    /// When the newest report before the run was made, while there is a run (`count` > 0;
    /// without one, the newest report is that report): older ones come too late to matter.
    before: String,
}

/// Every cell's last told verdict and the run of reports that differ from it.
pub struct Streaks {
    after: u32,
    cells: HashMap<(String, String), Streak>,
    /// Cells seen for the first time since last taken: where they start is to be kept.
    started: Vec<((String, String), State)>,
}

impl Streaks {
    /// Alerting after `after` reports in a row (at least 1).
    #[must_use]
    pub fn new(after: u32) -> Self {
        Self {
            after: after.max(1),
            cells: HashMap::new(),
            started: Vec::new(),
        }
    }

    /// Reports in a row a new verdict needs.
    #[must_use]
    pub fn after(&self) -> u32 {
        self.after
    }

    /// Starts a cell where a restart found it: told `told`, with the newest `count` reports
    /// (made at `at` and before) giving `seen`.
    pub fn resume(
        &mut self,
        key: &(String, String),
        told: State,
        (seen, count): (State, u32),
        at: &str,
    ) {
        self.cells.insert(
            key.clone(),
            Streak {
                told,
                seen,
                count,
                at: at.to_string(),
                run: Vec::new(),
                before: at.to_string(),
            },
        );
    }

    /// The cells seen for the first time since the last call, with where they start.
    pub fn take_started(&mut self) -> Vec<((String, String), State)> {
        std::mem::take(&mut self.started)
    }

    /// Starts a cell at the verdict last told (at a restart, from the store), before the
    /// next reports go through [`Streaks::observe`].
    pub fn seed(&mut self, key: &(String, String), told: State) {
        self.resume(key, told, (told, 0), "");
    }

    /// Every cell's verdict last told.
    #[must_use]
    pub fn told(&self) -> HashMap<(String, String), State> {
        self.cells
            .iter()
            .map(|(key, s)| (key.clone(), s.told))
            .collect()
    }

    /// Starts a cell at the verdict the store holds (alerts new to a store where nothing
    /// was told): what happened before is not told.
    pub fn start(&mut self, key: &(String, String), cell: &Cell) {
        let state = State {
            path: cell.path,
            pass: cell.pass,
        };
        self.resume(key, state, (state, 0), &cell.at);
    }

    /// Takes a stored report; returns the messages it makes.
    pub fn observe(&mut self, report: &Report) -> Vec<Alert> {
        let key = instance_key(report);
        let mut alerts = Vec::new();
        for t in &report.targets {
            let state = State {
                path: t.verdict.path,
                pass: t.verdict.pass,
            };
            let cell = (key.clone(), t.target.clone());
            let Some(streak) = self.cells.get_mut(&cell) else {
                self.started.push((cell.clone(), state));
                self.cells.insert(
                    cell,
                    Streak {
                        told: state,
                        seen: state,
                        count: 0,
                        at: report.started_at.clone(),
                        run: Vec::new(),
                        before: report.started_at.clone(),
                    },
                );
                continue;
            };
            let at = &report.started_at;
            if *at == streak.at {
                // Seen twice (read back at the start, then followed from a shared store).
                continue;
            }
            if crate::collect::store::older(at, &streak.at) {
                // Made before the newest (another collector's report followed from the
                // store after this one's newer report, a spool flushed late): it counts
                // where it falls in time, once.
                if !late(streak, at, state) || streak.count < self.after {
                    continue;
                }
            } else {
                let previous = std::mem::replace(&mut streak.at, at.clone());
                if state == streak.told {
                    streak.seen = state;
                    streak.count = 0;
                    streak.run.clear();
                    continue;
                }
                if state == streak.seen {
                    streak.count += 1;
                } else {
                    streak.seen = state;
                    streak.count = 1;
                    streak.run.clear();
                    streak.before = previous;
                }
                streak.run.push(at.clone());
                if streak.count < self.after {
                    continue;
                }
            }
            alerts.push(Alert {
                event: event(streak.told, state),
                instance: instance_label(report),
                instance_key: key.clone(),
                target: t.target.clone(),
                from: streak.told,
                to: state,
                reason: t.verdict.reason.clone(),
                at: streak.at.clone(),
                reports: streak.count,
            });
            streak.told = state;
            streak.count = 0;
            streak.run.clear();
        }
        alerts
    }
}

/// Places a report made at `at`, before the cell's newest, in `streak`'s run: counted when it
/// gives the run's verdict and falls after the report before the run; a split of the run
/// when it gives another and falls within it. Says whether it was counted.
fn late(streak: &mut Streak, at: &str, state: State) -> bool {
    use crate::collect::store::older;
    if streak.count == 0 || !older(&streak.before, at) || streak.run.iter().any(|t| t == at) {
        return false;
    }
    if state == streak.seen && state != streak.told {
        streak.count += 1;
        streak.run.push(at.to_string());
        return true;
    }
    // Another verdict: only the run's reports made after it are still in a row.
    streak.run.retain(|t| older(at, t));
    streak.count = u32::try_from(streak.run.len()).unwrap_or(u32::MAX);
    streak.before = at.to_string();
    false
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Report `n` of one instance, its one target passing through the gateway endpoint or
    /// failing through the internet.
    pub(in crate::collect::alerts) fn report(n: u32, pass: bool) -> Report {
        let mut r: Report =
            serde_json::from_str(include_str!("../../../tests/fixtures/report.json")).unwrap();
        r.id = format!("r-{n}");
        r.started_at = format!("2026-12-04T10:{n:02}:00Z");
        let t = &mut r.targets[0];
        t.verdict.pass = pass;
        t.verdict.path = if pass {
            Path::GatewayEndpoint
        } else {
            Path::Public
        };
        r.targets.truncate(1);
        r
    }

    #[test]
    fn a_change_is_told_once_after_n_reports_and_again_when_it_recovers() {
        let mut s = Streaks::new(2);
        let mut told = Vec::new();
        // pass (the start), fail once (a blip), pass, fail, fail (told), fail, pass, pass (told).
        for (n, pass) in [true, false, true, false, false, false, true, true]
            .into_iter()
            .enumerate()
        {
            for a in s.observe(&report(u32::try_from(n).unwrap(), pass)) {
                told.push((n, a.event, a.reports));
            }
        }
        assert_eq!(told, vec![(4, Event::Failing, 2), (7, Event::Recovered, 2)]);
    }

    #[test]
    fn an_alerts_id_is_its_cell_time_and_move_alone() {
        let mut s = Streaks::new(1);
        s.observe(&report(1, true));
        let told = s.observe(&report(2, false)).remove(0);
        let mut again = told.clone();
        again.instance = "renamed".into();
        again.reason = "another reason".into();
        again.reports = 7;
        assert_eq!(told.id(), again.id(), "what is shown is not what it is");
        assert_eq!(told.id().len(), 32);
        for other in [
            Alert {
                at: "2026-12-04T10:03:00Z".into(),
                ..told.clone()
            },
            Alert {
                target: format!("{}x", told.target),
                ..told.clone()
            },
            Alert {
                to: State {
                    pass: true,
                    ..told.to
                },
                ..told.clone()
            },
        ] {
            assert_ne!(told.id(), other.id(), "{other:?}");
        }
    }

    #[test]
    fn a_late_report_counts_where_it_falls_in_time_once() {
        let mut s = Streaks::new(3);
        s.observe(&report(0, true));
        assert!(s.observe(&report(1, false)).is_empty());
        assert!(s.observe(&report(3, false)).is_empty());
        assert!(s.observe(&report(1, false)).is_empty(), "seen twice");
        // Another collector's report of 10:02, followed after this one's of 10:03.
        let told = s.observe(&report(2, false));
        assert_eq!(told.len(), 1, "three in a row: 10:01, 10:02, 10:03");
        assert_eq!(
            (told[0].reports, told[0].at.as_str()),
            (3, "2026-12-04T10:03:00Z")
        );

        // A late pass within a run of failures splits it: only what came after it counts.
        let mut s = Streaks::new(3);
        s.observe(&report(0, true));
        s.observe(&report(1, false));
        s.observe(&report(3, false));
        assert!(s.observe(&report(2, true)).is_empty());
        assert!(
            s.observe(&report(4, false)).is_empty(),
            "10:03 and 10:04 only"
        );
        let told = s.observe(&report(5, false));
        assert_eq!((told.len(), told[0].reports), (1, 3));
        // A run of passes from 10:06: a report from before 10:05 is too late to matter.
        assert!(s.observe(&report(6, true)).is_empty());
        assert!(s.observe(&report(1, false)).is_empty());
    }

    #[test]
    fn a_report_older_than_the_cells_start_changes_nothing_and_a_restart_starts_from_the_store() {
        let mut s = Streaks::new(1);
        assert!(s.observe(&report(10, true)).is_empty());
        assert!(s.observe(&report(5, false)).is_empty(), "an older report");
        let mut again = Streaks::new(1);
        let r = report(10, true);
        let cell = Cell {
            path: Path::GatewayEndpoint,
            reachable: true,
            pass: true,
            at: r.started_at.clone(),
            parted: None,
        };
        again.start(&(instance_key(&r), r.targets[0].target.clone()), &cell);
        let a = again.observe(&report(11, false));
        assert_eq!(
            a.len(),
            1,
            "the first report after a restart is compared with the store"
        );
        assert_eq!(a[0].from.path, Path::GatewayEndpoint);
    }
}
