//! The webhook deliverer of a running daemon: the outbox worker of [`crate::webhook`], fed
//! the targets of the config in force and restarted when a reload changes them. It runs only
//! while this replica leads ([`super::role`]): a replica that loses the lease lets its
//! attempts in flight finish (their outcomes are fenced) and stops claiming events.

use std::sync::Arc;

use super::Daemon;
use crate::webhook::{Deliverer, DeliveryOptions, WebhookMetrics};

impl Daemon {
    /// Runs the webhook deliverer until shutdown, restarting it with the new targets whenever a
    /// reload puts a new config in force (attempts in flight finish first; the outbox keeps
    /// everything else).
    pub async fn deliver_webhooks(self: Arc<Self>, metrics: WebhookMetrics) {
        let daemon = self;
        let store = daemon.shared.store.clone();
        let mut runtime = daemon.runtime();
        let shutdown = daemon.shutdown_receiver();
        let mut role = daemon.shared.role.subscribe();
        loop {
            if !super::role::leading(&mut role, &mut shutdown.clone()).await {
                return;
            }
            let targets = runtime.borrow_and_update().webhooks.clone();
            let deliverer = match Deliverer::with_metrics(
                store.clone(),
                targets,
                metrics.clone(),
                DeliveryOptions::default(),
            ) {
                Ok(deliverer) => deliverer,
                Err(e) => {
                    tracing::error!(
                        "cannot start the webhook deliverer: {e}; webhooks stay queued"
                    );
                    return;
                }
            };
            daemon.set_webhook_nudger(deliverer.nudger());
            let mut changes = runtime.clone();
            let mut down = shutdown.clone();
            let mut lost = role.clone();
            deliverer
                .run(async move {
                    let reloaded = tokio::select! {
                        changed = changes.changed() => changed.is_ok(),
                        _ = down.wait_for(|d| *d) => true,
                        _ = lost.wait_for(|r| !r.leading) => true,
                    };
                    if !reloaded {
                        // The daemon is going away: deliver until its shutdown.
                        let _ = down.wait_for(|d| *d).await;
                    }
                })
                .await;
            if *shutdown.borrow() {
                return;
            }
            if !role.borrow().leading {
                tracing::info!("webhook deliverer stopped: this replica no longer leads");
                continue;
            }
            tracing::info!("config reloaded: webhook deliverer restarted with the new webhooks");
        }
    }
}
