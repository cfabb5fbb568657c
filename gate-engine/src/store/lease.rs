//! The leader lease: which replica evaluates trains and delivers webhooks, and the fence that
//! keeps a replica that lost the lease from writing.
//!
//! One row, `lease` named `leader`: the holder (a replica's ID), an epoch and an expiry. A
//! replica claims it with [`Store::claim_lease`]: it renews the lease it holds, takes a free
//! or expired one with the epoch incremented, and otherwise learns who leads. The epoch is the
//! **fencing token**: once a replica leads, it sets [`Store::set_fence`], and every write only
//! the leader makes (evaluations, webhook delivery outcomes, pruning) first checks, inside its
//! own transaction, that the lease still has that holder and epoch. A leader that was paused
//! past its expiry (GC, SIGSTOP, a partition) and wakes up after another replica took the
//! lease finds a newer epoch and writes nothing ([`StoreError::Fenced`]); expiry decides when
//! another replica may take over (liveness), the epoch whether a write lands (safety), so
//! clocks that disagree can delay a takeover but never let two leaders write.
//!
//! On PostgreSQL the check takes the lease row `FOR SHARE`, and a takeover updates it, so a
//! takeover waits for the old leader's transaction in flight and that transaction either
//! commits before the epoch moves or sees the new epoch and rolls back. On SQLite one process
//! writes the file anyway ([`super::WriterLock`]); the lease is the same row there.
//!
//! Writes any replica makes for the API (registrations, overrides, approvals, stops) are not
//! fenced: followers write them and the leader picks them up.

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::sql::Tx;
use super::{ms, Field, Store};

/// A replica's right to lead, as [`Store::set_fence`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The replica's ID.
    pub holder: String,
    /// The lease's epoch when the replica took it.
    pub epoch: u64,
}

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The replica holding it (empty before anyone did).
    pub holder: String,
    /// Incremented at each change of holder.
    pub epoch: u64,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// What [`Store::claim_lease`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claiming replica leads until `lease.expires_at`: it renewed its lease (same epoch)
    /// or took it (a new epoch).
    Leader(Lease),
    /// Another replica leads.
    Follower(Lease),
}

impl Store {
    /// Claims the lease for `replica` until `now + ttl` (see the module docs). `held` is the
    /// epoch the replica believes it holds: a lease it held in an earlier life (same ID, other
    /// epoch) is taken over with a new epoch, which fences that earlier life.
    pub fn claim_lease(
        &self,
        replica: &str,
        held: Option<u64>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Claim, StoreError> {
        let until = ms(now + ttl);
        self.write("claim the leader lease", |tx| {
            let current = read(tx, true)?;
            let (epoch, claim) = if current.holder == replica && held == Some(current.epoch) {
                (current.epoch, true)
            } else if current.holder == replica || current.expires_at <= now {
                (current.epoch + 1, true)
            } else {
                (current.epoch, false)
            };
            if !claim {
                return Ok(Claim::Follower(current));
            }
            tx.execute(
                "claim the leader lease",
                "UPDATE lease SET holder = ?1, epoch = ?2, expires_at = ?3 WHERE name = 'leader'",
                &[&replica, &super::seq_sql(epoch), &until],
            )?;
            Ok(Claim::Leader(Lease {
                holder: replica.to_string(),
                epoch,
                expires_at: Field {
                    column: "lease.expires_at",
                    key: "leader",
                }
                .time(until)?,
            }))
        })
    }

    /// Gives the lease up at once (a leader shutting down), if `fence` still holds it.
    pub fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        self.write("release the leader lease", |tx| {
            tx.execute(
                "release the leader lease",
                "UPDATE lease SET expires_at = 0 \
                 WHERE name = 'leader' AND holder = ?1 AND epoch = ?2",
                &[&fence.holder, &super::seq_sql(fence.epoch)],
            )?;
            Ok(())
        })
    }

    /// The lease as stored.
    pub fn lease(&self) -> Result<Lease, StoreError> {
        self.read("read the leader lease", |tx| read(tx, false))
    }

    /// Makes every leader-only write check `fence` first (`None`: no check; a replica that
    /// is not the leader does not make those writes).
    pub fn set_fence(&self, fence: Option<Fence>) {
        *super::lock(&self.inner.fence) = fence;
    }

    /// The fence set, if any.
    pub fn fence(&self) -> Option<Fence> {
        super::lock(&self.inner.fence).clone()
    }

    /// [`Store::write`] for a write only the leader makes: refused with
    /// [`StoreError::Fenced`] unless the lease still has the fence's holder and epoch.
    pub(crate) fn leader_write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let fence = self.fence();
        self.write(context, |tx| {
            if let Some(fence) = &fence {
                check(tx, fence)?;
            }
            f(tx)
        })
    }
}

fn read(tx: &Tx<'_>, for_update: bool) -> Result<Lease, StoreError> {
    let lock = if for_update {
        tx.dialect().for_update()
    } else {
        ""
    };
    let row = tx.query_one(
        "read the leader lease",
        &format!("SELECT holder, epoch, expires_at FROM lease WHERE name = 'leader'{lock}"),
        &[],
    )?;
    let field = |column| Field {
        column,
        key: "leader",
    };
    Ok(Lease {
        holder: row.get(0)?,
        epoch: field("lease.epoch").count(row.get::<i64>(1)?)?,
        expires_at: field("lease.expires_at").time(row.get(2)?)?,
    })
}

/// The fence check, inside the write's transaction.
pub(super) fn check(tx: &Tx<'_>, fence: &Fence) -> Result<(), StoreError> {
    let held = tx.query_opt(
        "check the leader lease",
        &format!(
            "SELECT epoch FROM lease WHERE name = 'leader' AND holder = ?1 AND epoch = ?2{}",
            tx.dialect().for_share()
        ),
        &[&fence.holder, &super::seq_sql(fence.epoch)],
    )?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced {
            replica: fence.holder.clone(),
            epoch: fence.epoch,
        }),
    }
}

#[cfg(test)]
mod tests {
    use gate_rules::Decision;

    use super::*;
    use crate::store::testing::{change, eval, event, new_train, on_both_stores, t, tid};
    use crate::store::{StoreAt, WriteOutcome};

    fn ttl() -> chrono::Duration {
        chrono::Duration::seconds(15)
    }

    fn leader(claim: Claim) -> Lease {
        match claim {
            Claim::Leader(lease) => lease,
            other => panic!("expected to lead, got {other:?}"),
        }
    }

    on_both_stores!(one_replica_leads_until_its_lease_lapses);
    fn one_replica_leads_until_its_lease_lapses(store: Store) {
        let first = leader(store.claim_lease("r1", None, t(0), ttl()).unwrap());
        assert_eq!((first.holder.as_str(), first.epoch), ("r1", 1));
        assert_eq!(first.expires_at, t(15));
        // Another replica follows while the lease runs.
        assert_eq!(
            store.claim_lease("r2", None, t(5), ttl()).unwrap(),
            Claim::Follower(first.clone())
        );
        // Renewed: the same epoch, a later expiry.
        let renewed = leader(store.claim_lease("r1", Some(1), t(10), ttl()).unwrap());
        assert_eq!((renewed.epoch, renewed.expires_at), (1, t(25)));
        assert_eq!(store.lease().unwrap(), renewed);
        // Lapsed (r1 stopped renewing): r2 takes it with a new epoch, and r1 follows.
        let taken = leader(store.claim_lease("r2", None, t(25), ttl()).unwrap());
        assert_eq!((taken.holder.as_str(), taken.epoch), ("r2", 2));
        assert_eq!(
            store.claim_lease("r1", Some(1), t(26), ttl()).unwrap(),
            Claim::Follower(taken.clone())
        );
        // A restarted r2 (its epoch forgotten) takes its own lease over with a new epoch.
        let again = leader(store.claim_lease("r2", None, t(27), ttl()).unwrap());
        assert_eq!(again.epoch, 3);
        // Released at shutdown: free at once.
        store
            .release_lease(&Fence {
                holder: "r2".into(),
                epoch: 3,
            })
            .unwrap();
        assert_eq!(
            leader(store.claim_lease("r1", Some(1), t(28), ttl()).unwrap()).epoch,
            4
        );
    }

    /// Two handles on one store play two replicas: the paused leader's writes are refused
    /// once the other took the lease, and the new leader's land.
    fn a_fenced_leader_writes_nothing(old: Store, new: Store) {
        old.register(&new_train("t-1"), t(0)).unwrap();
        let lease = leader(old.claim_lease("r1", None, t(0), ttl()).unwrap());
        old.set_fence(Some(Fence {
            holder: "r1".into(),
            epoch: lease.epoch,
        }));
        change(
            &old,
            "t-1",
            0,
            Decision::Pause,
            t(5),
            vec![event("e1", "deployer")],
        );

        // r1 pauses past its lease; r2 takes over.
        let taken = leader(new.claim_lease("r2", None, t(20), ttl()).unwrap());
        new.set_fence(Some(Fence {
            holder: "r2".into(),
            epoch: taken.epoch,
        }));

        // r1 wakes up: a decision change, a delivery outcome, a prune: all refused.
        let stale = eval(
            "t-1",
            1,
            Decision::Rollback,
            t(21),
            vec![event("e2", "deployer")],
        );
        let err = old.record_evaluation(&stale).unwrap_err();
        assert!(
            matches!(&err, StoreError::Fenced { replica, epoch: 1 } if replica == "r1"),
            "{err:?}"
        );
        assert!(matches!(
            old.mark_delivered("e1", 200, t(21)),
            Err(StoreError::Fenced { .. })
        ));
        assert!(matches!(old.prune(t(21)), Err(StoreError::Fenced { .. })));
        let rec = new.train(&tid("t-1")).unwrap().unwrap();
        assert_eq!((rec.decision, rec.seq), (Decision::Pause, 1));
        assert_eq!(new.due_events(t(21), 10).unwrap()[0].event_id, "e1");
        // Writes for the API are anyone's: r1 still serves registrations as a follower.
        old.register(&new_train("t-2"), t(21)).unwrap();

        // The new leader's writes land.
        assert_eq!(
            new.record_evaluation(&stale).unwrap(),
            WriteOutcome::Changed { seq: 2 }
        );
        new.mark_delivered("e1", 200, t(22)).unwrap();
        // r1, told it follows, stops fencing itself and no longer makes leader writes.
        assert!(matches!(
            old.claim_lease("r1", Some(1), t(23), ttl()).unwrap(),
            Claim::Follower(_)
        ));
    }

    #[test]
    fn a_fenced_leader_writes_nothing_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.db");
        a_fenced_leader_writes_nothing(
            Store::open(path.as_path()).unwrap(),
            Store::open(path.as_path()).unwrap(),
        );
    }

    #[test]
    fn a_fenced_leader_writes_nothing_on_postgres() {
        let (_db, url) = crate::store::testing::pg_database();
        let old = Store::open(url.as_str()).unwrap();
        assert_eq!(old.at(), &StoreAt::Postgres(url.clone()));
        a_fenced_leader_writes_nothing(old, Store::open(url.as_str()).unwrap());
    }
}
