//! The signals that ask a long-running command to stop: SIGTERM (what systemd sends on
//! `systemctl stop`) and SIGINT (Ctrl-C). Both mean the same: finish what was promised, then
//! exit 0.

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        // No SIGTERM handler could be installed: Ctrl-C still stops cleanly.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
