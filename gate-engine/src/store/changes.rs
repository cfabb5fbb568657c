//! How a replica learns of the changes other replicas made to the shared store.
//!
//! Several `gate serve` replicas on one PostgreSQL database each hold the trains in memory
//! for the API. A registration, override, approval or stop lands on whichever replica the
//! load balancer picked, and the leader's evaluations land in the store, so every replica
//! brings its views up to date from the store:
//!
//! * [`Store::train_marks`] lists every active train with what tells a change apart (its
//!   `seq`, lifecycle and last evaluation time), a few dozen bytes a train, so a replica loads
//!   in full only the trains that differ from what it holds;
//! * [`Store::listen_changes`] (PostgreSQL) wakes the replica as soon as a train row changes:
//!   a trigger on `trains` sends `NOTIFY gate_trains` with the train's ID (schema step 3),
//!   and the listener hands each ID to the caller. A notification can be missed while the
//!   listener's connection is down, so after every (re)connect the caller is told to compare
//!   everything ([`Heard::Missed`]), and it compares everything periodically anyway.
//!
//! On SQLite one daemon is the only writer, so there is nothing to listen to.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gate_rules::TrainId;
use postgres::fallible_iterator::FallibleIterator as _;

use super::error::StoreError;
use super::model::Lifecycle;
use super::sql::pg_error;
use super::{pg, Backend, Field, Store};

/// The NOTIFY channel of train changes.
pub(crate) const CHANNEL: &str = "gate_trains";

/// What [`Store::listen_changes`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// This train's row changed.
    Train(&'a str),
    /// Changes may have been missed (the listener just connected): compare every train.
    Missed,
    /// Nothing for a while (the listener checks whether to go on).
    Quiet,
}

/// What tells one stored train's versions apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainMark {
    /// The train.
    pub id: TrainId,
    /// Its seq (moves with every decision change, override, approval).
    pub seq: u64,
    /// Its lifecycle (a stop moves it without a new seq).
    pub lifecycle: Lifecycle,
    /// Its last evaluation (moves every cycle the leader writes).
    pub evaluated_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every active train's [`TrainMark`].
    pub fn train_marks(&self) -> Result<Vec<TrainMark>, StoreError> {
        self.read("list train marks", |tx| {
            tx.query(
                "list train marks",
                "SELECT id, seq, lifecycle, evaluated_at FROM trains \
                 WHERE lifecycle NOT IN ('done', 'stopped')",
                &[],
            )?
            .iter()
            .map(|row| {
                let id: String = row.get(0)?;
                let field = |column| Field { column, key: &id };
                Ok(TrainMark {
                    id: field("trains.id").parse(&id)?,
                    seq: field("trains.seq").count(row.get::<i64>(1)?)?,
                    lifecycle: field("trains.lifecycle").parse(&row.get::<String>(2)?)?,
                    evaluated_at: field("trains.evaluated_at").opt_time(row.get(3)?)?,
                })
            })
            .collect()
        })
    }

    /// Whether other processes may write this store (PostgreSQL), so that a daemon has to
    /// follow their changes.
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres { .. })
    }

    /// Listens for train changes until `on` returns `false` (blocking: run it on a thread of
    /// its own). A lost connection is opened again after `retry`; `on` hears
    /// [`Heard::Quiet`] at least every `retry` meanwhile, so it can stop the listener.
    /// Returns at once on SQLite.
    pub fn listen_changes(&self, retry: Duration, mut on: impl FnMut(Heard<'_>) -> bool) {
        let Backend::Postgres { url, .. } = &self.inner.backend else {
            return;
        };
        loop {
            let listening = pg::connect(url).and_then(|mut client| {
                client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .map_err(|e| pg_error("listen for train changes", e))?;
                Ok(client)
            });
            let mut client = match listening {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!("cannot listen for train changes: {e}");
                    std::thread::sleep(retry);
                    if !on(Heard::Quiet) {
                        return;
                    }
                    continue;
                }
            };
            if !on(Heard::Missed) {
                return;
            }
            loop {
                let next = client.notifications().timeout_iter(retry).next();
                let go_on = match next {
                    Ok(Some(n)) => on(Heard::Train(n.payload())),
                    Ok(None) if client.is_valid(retry).is_ok() => on(Heard::Quiet),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("listening for train changes: {e}; connecting again");
                        break;
                    }
                };
                if !go_on {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::store::testing::{new_train, on_both_stores, t, tid};
    use crate::store::StoreAt;

    on_both_stores!(marks_list_active_trains_and_move_with_their_changes);
    fn marks_list_active_trains_and_move_with_their_changes(store: Store) {
        store.register(&new_train("t-1"), t(0)).unwrap();
        store.register(&new_train("t-2"), t(0)).unwrap();
        let marks = store.train_marks().unwrap();
        let mut ids: Vec<_> = marks.iter().map(|m| m.id.to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["t-1", "t-2"]);
        assert!(marks.iter().all(|m| m.seq == 0
            && m.lifecycle == Lifecycle::Verifying
            && m.evaluated_at.is_none()));
        store.stop(&tid("t-2"), t(1)).unwrap();
        let marks = store.train_marks().unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].id, tid("t-1"));
    }

    #[test]
    fn sqlite_is_not_shared_and_has_nothing_to_listen_to() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("gate.db")).unwrap();
        assert!(!store.is_shared());
        let mut heard = 0;
        store.listen_changes(Duration::from_millis(10), |_| {
            heard += 1;
            true
        });
        assert_eq!(heard, 0);
    }

    /// A second handle (another replica) hears registrations and stops as they commit.
    #[test]
    fn postgres_replicas_hear_train_changes() {
        let (_db, url) = crate::store::testing::pg_database();
        let writer = Store::open(StoreAt::Postgres(url.clone())).unwrap();
        let listener = Store::open(StoreAt::Postgres(url)).unwrap();
        assert!(listener.is_shared());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            listener.listen_changes(Duration::from_millis(50), |heard| {
                let heard = match heard {
                    Heard::Train(id) => format!("train {id}"),
                    Heard::Missed => "missed".to_string(),
                    Heard::Quiet => return true,
                };
                let last = heard.ends_with("stop-me");
                tx.send(heard).is_ok() && !last
            });
        });
        assert_eq!(rx.recv().unwrap(), "missed");
        writer.register(&new_train("t-1"), t(0)).unwrap();
        assert_eq!(rx.recv().unwrap(), "train t-1");
        writer.stop(&tid("t-1"), t(1)).unwrap();
        assert_eq!(rx.recv().unwrap(), "train t-1");
        writer.register(&new_train("stop-me"), t(2)).unwrap();
        assert_eq!(rx.recv().unwrap(), "train stop-me");
        thread.join().unwrap();
    }
}
