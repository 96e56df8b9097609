//! Where each cell stood at the stop, read back from the store: what it was last told
//! (`alert_told`) and the newest run of its reports that differ from it, read newest first
//! from each instance's history. A start reads a few reports per instance, not the history
//! kept.

use super::AlertError;
use super::rule::{Alert, State, Streaks, event};
use crate::collect::db::Database;
use crate::collect::store::{Cell, instance_label};
use std::collections::{BTreeMap, HashMap};

/// Reports read per instance past `--alert-after`, for targets some reports lack.
const SLACK: u32 = 16;

/// A cell's newest run of one verdict, as read newest first.
#[derive(Default)]
struct Run {
    /// The verdict told, when the store has it.
    told: Option<State>,
    /// The newest verdict, when its report was made, its reason, and its instance's label.
    newest: Option<(State, String, String, String)>,
    /// Reports in a row that gave it (0 when it is the verdict told).
    count: u32,
    /// The verdict before the run, for a cell the store has no verdict told of (its start
    /// is recorded within a second of its first report: a stop came first).
    before: Option<State>,
    /// An older verdict differs, or the run is long enough: nothing older matters.
    done: bool,
}

/// Every cell of `matrix` where it stood, given what was `told`, alerting after `after`
/// reports in a row; and the messages counted in full but never written (a stop between
/// the store and the outbox), which are due. Blocks.
///
/// # Errors
/// When the store cannot be read.
pub fn streaks(
    database: &Database,
    told: &HashMap<(String, String), State>,
    matrix: &BTreeMap<(String, String), Cell>,
    after: u32,
) -> Result<(Streaks, Vec<Alert>), AlertError> {
    let mut streaks = Streaks::new(after);
    let after = streaks.after();
    let mut db = database.attach().map_err(AlertError::Db)?;
    let mut instances: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (instance, target) in matrix.keys() {
        instances.entry(instance).or_default().push(target);
    }
    let mut due = Vec::new();
    for (instance, targets) in instances {
        let mut runs: HashMap<&str, Run> = targets
            .iter()
            .map(|t| {
                let key = (instance.to_string(), (*t).to_string());
                let told = told.get(&key).copied();
                (
                    *t,
                    Run {
                        told,
                        ..Run::default()
                    },
                )
            })
            .collect();
        let mut read = 0;
        db.history(instance, 0, &mut |doc| {
            read += 1;
            // A stored document was checked when it came: read as it is.
            if let Ok(report) = serde_json::from_str::<crate::model::Report>(doc) {
                for t in &report.targets {
                    let Some(run) = runs.get_mut(t.target.as_str()).filter(|r| !r.done) else {
                        continue;
                    };
                    let state = State {
                        path: t.verdict.path,
                        pass: t.verdict.pass,
                    };
                    match &run.newest {
                        None => {
                            run.newest = Some((
                                state,
                                report.started_at.clone(),
                                t.verdict.reason.clone(),
                                instance_label(&report),
                            ));
                            run.count = u32::from(run.told != Some(state));
                            run.done = run.count == 0;
                        }
                        Some((newest, ..)) if *newest == state => run.count += 1,
                        Some(_) => {
                            run.before = Some(state);
                            run.done = true;
                        }
                    }
                    // Without a verdict told, the one before the run is looked for.
                    run.done |= run.told.is_some() && run.count >= after;
                }
            }
            read < after + SLACK && runs.values().any(|r| !r.done)
        })
        .map_err(AlertError::Db)?;
        for (target, run) in runs {
            let Some((seen, at, reason, label)) = run.newest else {
                continue;
            };
            let key = (instance.to_string(), target.to_string());
            // A cell never told, whose reports all agree, starts at its first: told no one.
            match run.told.or(run.before) {
                None => streaks.resume(&key, seen, (seen, 0), &at),
                Some(was) if was != seen && run.count >= after => {
                    due.push(Alert {
                        event: event(was, seen),
                        instance: label,
                        instance_key: key.0.clone(),
                        target: key.1.clone(),
                        from: was,
                        to: seen,
                        reason,
                        at: at.clone(),
                        reports: after,
                    });
                    streaks.resume(&key, seen, (seen, 0), &at);
                }
                Some(was) => streaks.resume(&key, was, (seen, run.count), &at),
            }
        }
    }
    Ok((streaks, due))
}
