//! The daemon's retention task: every hour (and once at start), the store forgets what is
//! older than the config's `store.retention` ([`crate::store::Store::prune`]), and the
//! in-memory views of the trains it pruned are dropped with them.
//!
//! The retention is read from the config in force at each run, so a reload changes it. A
//! failed prune is logged and tried again at the next run; it never stops the daemon.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How often the store is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes the store every [`PRUNE_EVERY`] until shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut ticks = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|down| *down) => break,
            _ = ticks.tick() => {}
        }
        prune_once(&shared).await;
    }
}

/// One prune as of the clock's now.
pub(crate) async fn prune_once(shared: &Shared) -> Option<crate::store::Pruned> {
    let retention = shared.runtime().config.store.retention.as_duration();
    let cutoff = shared.clock.now()
        - chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
    let _lock = shared.write_lock.lock().await;
    match shared.blocking(move |store| store.prune(cutoff)).await {
        Ok(pruned) => {
            if pruned != crate::store::Pruned::default() {
                tracing::info!(
                    trains = pruned.trains,
                    events = pruned.events,
                    "pruned {} finished train(s) and {} delivered webhook event(s) older than {}",
                    pruned.trains,
                    pruned.events,
                    shared.runtime().config.store.retention
                );
            }
            let gone = shared.trains.filter(|v| !v.record.lifecycle.is_active());
            for view in gone {
                let id = view.record.id.clone();
                let held = shared.blocking(move |store| store.train(&id)).await;
                if matches!(held, Ok(None)) {
                    shared.trains.remove(&view.record.id);
                }
            }
            Some(pruned)
        }
        Err(e) => {
            tracing::error!("cannot prune the store: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;
    use crate::daemon::api::tests::{train, UNREACHABLE};
    use crate::daemon::tests::{config_yaml, harness, tid};
    use crate::daemon::ApiOptions;

    #[tokio::test]
    async fn the_daemon_prunes_stopped_trains_past_the_retention_and_forgets_their_views() {
        let yaml = format!("{}\nstore:\n  retention: 1d\n", config_yaml(UNREACHABLE));
        let h = harness(&yaml, ApiOptions::default()).await;
        for id in ["t-1", "t-2"] {
            let (status, _) = h.call("POST", "/v1/trains", Some(train(id)), None).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, _) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            prune_once(h.shared()).await.unwrap().trains,
            0,
            "not old yet"
        );
        h.clock.advance(Duration::from_secs(86_400 + 60));
        let pruned = prune_once(h.shared()).await.unwrap();
        assert_eq!(pruned.trains, 1);
        assert!(
            h.shared().trains.get(&tid("t-1")).is_none(),
            "its view is gone"
        );
        let (status, _) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = h.call("GET", "/v1/trains/t-2", None, None).await;
        assert_eq!(status, StatusCode::OK, "an active train is never pruned");
    }
}
