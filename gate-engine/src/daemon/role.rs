//! Leader and followers: which replica evaluates trains and delivers webhooks, and how every
//! replica keeps its views of the trains up to date from the shared store.
//!
//! Several `gate serve` replicas may share one PostgreSQL store. Exactly one of them leads:
//! it holds the store's lease ([`crate::store::Store::claim_lease`]), renews it every third
//! of its TTL, runs the gate tasks, the webhook deliverer and the retention. The others
//! follow: they serve the API (reads from memory, writes to the store) and claim the lease
//! at the same pace, taking it over once it lapses — a dead leader is replaced within
//! `lease_ttl` plus one renewal. Every write only the leader makes is fenced by the lease's
//! epoch in the store, so a leader that stalled past its lease (GC, SIGSTOP, a partition)
//! and wakes up writes nothing; it learns at its next claim that it follows.
//!
//! A leader that cannot renew (the store does not answer) stops leading once its lease has
//! run out by its own monotonic clock, whatever the store would say: it would be fenced
//! anyway, and it stops querying Prometheus for writes that cannot land.
//!
//! On SQLite the daemon is the store's only writer ([`crate::store::WriterLock`]): it leads
//! from the start, with no lease to claim.
//!
//! **Following the store** ([`follow`]): a replica compares what it holds with the store's
//! [`crate::store::TrainMark`]s (a few dozen bytes a train) and loads only the trains that moved — a registration,
//! override, approval or stop made through another replica, or the leader's evaluations —
//! when PostgreSQL notifies a change (a long-poll on a follower returns as soon as the
//! leader's decision is committed), and every third of the lease TTL in case a
//! notification was missed. The leader follows too: that is how it picks up the trains
//! registered through followers before its next cycle. On SQLite nothing else writes, so
//! nothing is followed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gate_rules::TrainId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::state::TrainView;
use super::Shared;
use chrono::{DateTime, Utc};

use crate::store::{Claim, Fence, Heard, Lifecycle, TrainMark, TrainRecord};

/// The lease TTL unless `--lease-ttl` says otherwise.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// This replica's identity and lease.
#[derive(Debug, Clone)]
pub struct HaOptions {
    /// The replica's ID (unique among the replicas of one store).
    pub replica: String,
    /// How long a lease lasts unless renewed (renewed every third of it).
    pub lease_ttl: Duration,
}

impl Default for HaOptions {
    fn default() -> Self {
        HaOptions {
            replica: "gate".to_string(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// The replica's role as it last learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Whether this replica leads.
    pub leading: bool,
    /// The replica that leads, if one is known.
    pub leader: Option<String>,
    /// The lease's epoch as last seen.
    pub epoch: u64,
}

impl Role {
    /// Before the first claim: nobody is known to lead.
    pub(crate) fn unknown() -> Role {
        Role {
            leading: false,
            leader: None,
            epoch: 0,
        }
    }
}

/// On a shared store: claims the lease every third of its TTL until shutdown, publishing the role in
/// `shared.role`; a leader that shuts down gives the lease up (after its gate tasks
/// finished, see [`super::Daemon::shutdown`]).
pub(crate) async fn run(shared: Arc<Shared>) {
    let replica = shared.ha.replica.clone();
    let ttl = shared.ha.lease_ttl;
    let chrono_ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(15));
    let mut shutdown = shared.shutdown.subscribe();
    // The epoch held and when it was last renewed (monotonic).
    let mut held: Option<(u64, Instant)> = None;
    shared.store.set_fence(Some(Fence {
        holder: replica.clone(),
        epoch: 0,
    }));
    loop {
        if shared.shutting_down() {
            return;
        }
        let now = shared.clock.now();
        let asked = Instant::now();
        let epoch = held.map(|(e, _)| e);
        let who = replica.clone();
        let claim = shared
            .blocking(move |store| store.claim_lease(&who, epoch, now, chrono_ttl))
            .await;
        match claim {
            Ok(Claim::Leader(lease)) => {
                shared.metrics.lease_claimed(true);
                if epoch != Some(lease.epoch) {
                    shared.store.set_fence(Some(Fence {
                        holder: replica.clone(),
                        epoch: lease.epoch,
                    }));
                    // Catch up with what other replicas wrote before evaluating anything.
                    catch_up(&shared).await;
                    tracing::info!(
                        replica = %replica,
                        epoch = lease.epoch,
                        "replica {replica} leads (lease epoch {})",
                        lease.epoch
                    );
                }
                held = Some((lease.epoch, asked));
                set_role(&shared, true, Some(lease.holder), lease.epoch);
            }
            Ok(Claim::Follower(lease)) => {
                if held.take().is_some() {
                    // Its checkpoint would be refused: the new leader evaluates the trains.
                    shared.store.discard_deferred();
                    tracing::warn!(
                        replica = %replica,
                        leader = %lease.holder,
                        epoch = lease.epoch,
                        "replica {replica} lost the lease to {} (epoch {}): following",
                        lease.holder,
                        lease.epoch
                    );
                }
                let leader =
                    (lease.expires_at > now && !lease.holder.is_empty()).then_some(lease.holder);
                set_role(&shared, false, leader, lease.epoch);
            }
            Err(e) => {
                shared.metrics.lease_claimed(false);
                if let Some((epoch, renewed)) = held {
                    if renewed.elapsed() >= ttl {
                        held = None;
                        shared.store.discard_deferred();
                        tracing::error!(
                            replica = %replica,
                            "replica {replica} could not renew its lease (epoch {epoch}) for \
                             {}s: it stops leading: {}",
                            ttl.as_secs(),
                            gate_rules::error_chain(&e)
                        );
                        set_role(&shared, false, None, epoch);
                    } else {
                        tracing::warn!(
                            replica = %replica,
                            "cannot renew the lease: {}",
                            gate_rules::error_chain(&e)
                        );
                    }
                } else {
                    tracing::warn!(
                        replica = %replica,
                        "cannot claim the lease: {}",
                        gate_rules::error_chain(&e)
                    );
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ttl / 3) => {}
            _ = shutdown.wait_for(|down| *down) => return,
        }
    }
}

fn set_role(shared: &Shared, leading: bool, leader: Option<String>, epoch: u64) {
    let role = Role {
        leading,
        leader,
        epoch,
    };
    shared.metrics.set_leader(&shared.ha.replica, leading);
    shared.role.send_if_modified(|old| {
        let changed = *old != role;
        *old = role;
        changed
    });
}

/// Gives the lease up if this replica leads (at shutdown, once its gate tasks and deliverer
/// stopped), so another replica takes over at once rather than after the TTL.
pub(crate) async fn release(shared: &Arc<Shared>) {
    let role = shared.role.borrow().clone();
    if !role.leading {
        return;
    }
    shared.role.send_modify(|r| r.leading = false);
    shared.metrics.set_leader(&shared.ha.replica, false);
    let fence = Fence {
        holder: shared.ha.replica.clone(),
        epoch: role.epoch,
    };
    if let Err(e) = shared
        .blocking(move |store| store.release_lease(&fence))
        .await
    {
        tracing::warn!("cannot release the lease: {e}");
    }
}

/// Waits until this replica leads (or shutdown begins: `false`).
pub(crate) async fn leading(
    role: &mut watch::Receiver<Role>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        led = role.wait_for(|r| r.leading) => led.is_ok(),
        _ = shutdown.wait_for(|down| *down) => false,
    }
}

/// Follows the store's train changes until shutdown (a shared store only; see the module
/// docs): a comparison when a change is heard, and every third of the lease TTL.
pub(crate) async fn follow(shared: Arc<Shared>) {
    if !shared.store.is_shared() {
        return;
    }
    // A wake-up per change heard; a burst of them (a leader's cycle that changed many
    // decisions) costs one comparison.
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let store = shared.store.clone();
    let mut shutdown = shared.shutdown.subscribe();
    let stop = shared.shutdown.subscribe();
    std::thread::Builder::new()
        .name("gate-listen".to_string())
        .spawn(move || {
            store.listen_changes(Duration::from_secs(1), |heard| {
                let sent = match heard {
                    Heard::Train(_) | Heard::Missed => tx.send(()),
                    Heard::Quiet => Ok(()),
                };
                sent.is_ok() && !*stop.borrow()
            })
        })
        .ok();
    let mut every = tokio::time::interval(shared.ha.lease_ttl / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listening = true;
    loop {
        let heard = async {
            if listening {
                rx.recv().await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = every.tick() => {}
            heard = heard => {
                if heard.is_none() {
                    // The listener stopped: keep comparing on the timer.
                    listening = false;
                    continue;
                }
                while rx.try_recv().is_ok() {}
            }
            _ = shutdown.changed() => if *shutdown.borrow() { return } else { continue },
        }
        catch_up(&shared).await;
    }
}

/// Brings the held views up to date with the store, under the write lock so that a view
/// never goes back: the store's [`TrainMark`]s say which trains are newer there (a higher
/// seq; or the same seq with another lifecycle or a later evaluation), and only those are
/// loaded — the leader's own writes, which it already holds, cost a comparison.
pub(crate) async fn catch_up(shared: &Arc<Shared>) {
    let _lock = shared.write_lock.lock().await;
    let stale = match shared.blocking(|store| store.train_marks()).await {
        Ok(marks) => moved(shared, &marks),
        Err(e) => {
            tracing::warn!("cannot follow the store: {e}");
            return;
        }
    };
    if stale.is_empty() {
        return;
    }
    let records = shared
        .blocking(move |store| {
            stale
                .iter()
                .map(|id| store.train(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match records {
        Ok(records) => {
            for record in records.into_iter().flatten() {
                let newer = match shared.trains.get(&record.id) {
                    None => true,
                    Some(held) => newer_than(&record, &held.record),
                };
                if newer {
                    shared.publish(TrainView::new(record));
                }
            }
        }
        Err(e) => tracing::warn!("cannot follow the store: {e}"),
    }
}

/// The trains whose stored mark differs from the held view, and the held active trains the
/// store no longer lists as active.
fn moved(shared: &Shared, marks: &[TrainMark]) -> Vec<TrainId> {
    let mut listed = HashSet::with_capacity(marks.len());
    let mut ids = Vec::new();
    for mark in marks {
        listed.insert(&mark.id);
        let differs = match shared.trains.get(&mark.id) {
            None => true,
            Some(view) => newer(
                (mark.seq, mark.lifecycle, mark.evaluated_at),
                (
                    view.record.seq,
                    view.record.lifecycle,
                    view.record.evaluated_at,
                ),
            ),
        };
        if differs {
            ids.push(mark.id.clone());
        }
    }
    for view in shared.trains.filter(|v| v.record.lifecycle.is_active()) {
        if !listed.contains(view.id()) {
            ids.push(view.id().clone());
        }
    }
    ids
}

type Version = (u64, Lifecycle, Option<DateTime<Utc>>);

/// Whether the stored version (seq, lifecycle, last evaluation) of a train is newer than the
/// held one: a view held from a later evaluation than the store has (the leader's own) is not
/// replaced.
fn newer(stored: Version, held: Version) -> bool {
    stored.0 > held.0 || (stored.0 == held.0 && (stored.1 != held.1 || stored.2 > held.2))
}

fn newer_than(stored: &TrainRecord, held: &TrainRecord) -> bool {
    newer(
        (stored.seq, stored.lifecycle, stored.evaluated_at),
        (held.seq, held.lifecycle, held.evaluated_at),
    )
}
