//! The daemon's retention task: every hour (and once at start), the store forgets what is
//! older than the config's `store.retention` ([`crate::store::Store::prune`]), and the
//! in-memory views of the trains it pruned are dropped with them. Every minute, the views of
//! finished trains nobody watches are dropped from memory ([`super::state::Trains::evict_finished`]):
//! the store keeps them, and a read loads them again, so memory follows the active trains,
//! not the daemon's history.
//!
//! The retention is read from the config in force at each run, so a reload changes it. A
//! failed prune is logged and tried again at the next run; it never stops the daemon.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How often the store is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the views of finished trains are dropped from memory.
pub const EVICT_EVERY: Duration = Duration::from_secs(60);

/// Prunes the store every [`PRUNE_EVERY`] and evicts finished views every [`EVICT_EVERY`]
/// until shutdown.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut prunes = tokio::time::interval(PRUNE_EVERY);
    let mut evictions = tokio::time::interval(EVICT_EVERY);
    loop {
        let prune = tokio::select! {
            _ = shutdown.wait_for(|down| *down) => break,
            _ = prunes.tick() => true,
            _ = evictions.tick() => false,
        };
        if prune {
            // Only the leader prunes (its deletes are fenced like its other writes).
            if shared.role.borrow().leading {
                prune_once(&shared).await;
            }
        } else {
            evict_once(&shared);
        }
    }
}

/// Drops the views of finished trains nobody watches; returns how many.
pub(crate) fn evict_once(shared: &Shared) -> usize {
    let evicted = shared.trains.evict_finished();
    if evicted > 0 {
        shared.metrics.views_evicted(evicted as u64);
        tracing::debug!(evicted, "dropped the in-memory views of finished trains");
    }
    evicted
}

/// One prune as of the clock's now.
pub(crate) async fn prune_once(shared: &Shared) -> Option<crate::store::Pruned> {
    let retention = shared.runtime().config.store.retention.as_duration();
    let cutoff = shared.clock.now()
        - chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
    let _lock = shared.write_lock.lock().await;
    match shared.blocking(move |store| store.prune(cutoff)).await {
        Ok(pruned) => {
            shared.metrics.pruned(&pruned);
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
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        assert!(
            text.contains("gate_pruned_total{kind=\"trains\"} 1\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn finished_views_nobody_watches_are_evicted_and_read_back_from_the_store() {
        let h = harness(&config_yaml(UNREACHABLE), ApiOptions::default()).await;
        for id in ["t-1", "t-2", "t-3"] {
            let (status, _) = h.call("POST", "/v1/trains", Some(train(id)), None).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        for id in ["t-1", "t-2"] {
            let (status, _) = h
                .call("DELETE", &format!("/v1/trains/{id}"), None, None)
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        // Someone watches t-2: its view stays while they do.
        let watching = h.shared().trains.subscribe(&tid("t-2")).unwrap();
        assert_eq!(evict_once(h.shared()), 1);
        assert!(h.shared().trains.get(&tid("t-1")).is_none(), "evicted");
        assert!(h.shared().trains.get(&tid("t-2")).is_some(), "watched");
        assert!(h.shared().trains.get(&tid("t-3")).is_some(), "active");
        drop(watching);
        assert_eq!(evict_once(h.shared()), 1);
        // An evicted train is still served, from the store.
        let (status, body) = h.call("GET", "/v1/trains/t-1", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["state"], "stopped");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        assert!(
            text.contains("gate_train_views_evicted_total 2\n"),
            "{text}"
        );
    }
}
