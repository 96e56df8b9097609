//! The signals that ask a long-running command to stop: SIGTERM (what systemd sends on
//! `systemctl stop`) and SIGINT (Ctrl-C). Both mean the same: finish what was promised, then
//! exit 0.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves when SIGTERM or SIGINT arrives. The handlers are installed when this is called,
/// not when it is first awaited: a signal that comes while the command is still busy (the
/// first check of `--every`) waits for it instead of killing the process.
pub fn requested() -> impl std::future::Future<Output = ()> {
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        match (term, int) {
            (Some(mut term), Some(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Some(mut one), None) | (None, Some(mut one)) => {
                one.recv().await;
            }
            // No handler could be installed: the default (the process ends) stands.
            (None, None) => std::future::pending::<()>().await,
        }
    }
}
