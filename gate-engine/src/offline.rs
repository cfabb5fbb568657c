//! What the CLI does with a store file directly, while no daemon has to serve it: requeue
//! dead-lettered webhook events (`gate outbox redrive --db`), read the stored trains
//! (`gate replay --db`), make the monthly review (`gate report --db`) and prune old history
//! (`gate store prune --db`).
//!
//! A redrive writes, so it takes the store's writer lock and is refused while a daemon runs
//! on the file; reading the trains does not.
//!
//! All refuse a path that does not exist rather than create an empty store there, so a typo
//! in `--db` is an error and not a silent "nothing to do". The trains come back as the API
//! lists them ([`gate_api::Train`]), so the CLI reads one vocabulary whether it asked a daemon
//! or a file.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use gate_rules::{PromDuration, TrainId};

use crate::daemon::state::{is_evaluated, train_with};
use crate::store::{Store, StoreAt, StoreError, TrainFilter};

/// Why a store file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// Nothing at the path.
    #[error("{}: no such file (point --db at the store `gate serve` uses)", .0.display())]
    Missing(PathBuf),
    /// The file is not a gate store, or reading it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Requeues the dead letters of `train` (or every train's) in the store at `db`, due at
/// `now`; returns how many. Refused while a `gate serve` writes the store
/// ([`StoreError::InUse`]): a running daemon redrives through its API
/// (`POST /v1/outbox/redrive`).
pub fn redrive(
    db: &Path,
    train: Option<&TrainId>,
    now: DateTime<Utc>,
) -> Result<u64, OfflineError> {
    let db = existing(db)?;
    apart(|| Ok(Store::open_exclusive(db)?.redrive_dead(train, now)?))
}

/// Every train in the store at `db`, without evaluations. `evaluating` says whether the
/// train's state is one the daemon evaluates (the config is not consulted).
pub fn trains(db: &Path) -> Result<Vec<gate_api::Train>, OfflineError> {
    let db = existing(db)?;
    let records = apart(|| Store::open(db)?.trains(TrainFilter::All))?;
    Ok(records
        .iter()
        .map(|r| train_with(r, is_evaluated(r.lifecycle), None))
        .collect())
}

/// The monthly review of the store at `db` over the trains started from `now − since` to
/// `now` (only `gate`'s when given), as `GET /v1/report` answers it.
pub fn report(
    db: &Path,
    since: PromDuration,
    gate: Option<&str>,
    now: DateTime<Utc>,
) -> Result<gate_api::Report, OfflineError> {
    let from = crate::review::range_start(since, now);
    let db = existing(db)?;
    let histories = apart(|| Store::open(db)?.histories(from, now))?;
    Ok(crate::review::build(
        &histories,
        &since.to_string(),
        from,
        now,
        gate,
    ))
}

/// Prunes the store at `db` of what is older than `cutoff` ([`Store::prune`]). Works while a
/// daemon runs on the file: SQLite serializes the two writers.
pub fn prune(db: &Path, cutoff: DateTime<Utc>) -> Result<crate::store::Pruned, OfflineError> {
    let db = existing(db)?;
    apart(|| Ok(Store::open(db)?.prune(cutoff)?))
}

/// Runs `f` on a thread of its own: PostgreSQL's blocking client runs a runtime of its own,
/// which cannot start on a thread that drives async tasks (the CLI's commands are async).
fn apart<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `db`, if there is a file there (opening a store creates a missing one), or a PostgreSQL
/// URL.
fn existing(db: &Path) -> Result<&Path, OfflineError> {
    if db.exists() || matches!(StoreAt::from(db), StoreAt::Postgres(_)) {
        Ok(db)
    } else {
        Err(OfflineError::Missing(db.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{change, event, new_train, t, temp_store, tid};
    use crate::store::DeliveryState;
    use gate_rules::Decision;

    /// A store where trains `a` and `b` each have one dead-lettered event.
    fn store_with_dead_letters() -> (tempfile::TempDir, PathBuf) {
        let (dir, store) = temp_store();
        for train in ["a", "b"] {
            store.register(&new_train(train), t(0)).unwrap();
            let event_id = format!("{train}-1");
            change(
                &store,
                train,
                0,
                Decision::Rollback,
                t(10),
                vec![event(&event_id, "deployer")],
            );
            store
                .mark_dead(&event_id, "HTTP 500", Some(500), t(20))
                .unwrap();
        }
        let path = dir.path().join("gate.db");
        assert!(path.exists(), "temp_store keeps its file at gate.db");
        (dir, path)
    }

    fn state(path: &Path, train: &str) -> DeliveryState {
        Store::open(path)
            .unwrap()
            .delivery_states(&tid(train))
            .unwrap()[0]
            .state
    }

    #[test]
    fn redrive_requeues_one_train_or_all() {
        let (_dir, path) = store_with_dead_letters();
        assert_eq!(redrive(&path, Some(&tid("a")), t(30)).unwrap(), 1);
        assert_eq!(state(&path, "a"), DeliveryState::Pending);
        assert_eq!(state(&path, "b"), DeliveryState::Dead);
        assert_eq!(redrive(&path, None, t(40)).unwrap(), 1);
        assert_eq!(state(&path, "b"), DeliveryState::Pending);
        assert_eq!(redrive(&path, None, t(50)).unwrap(), 0);
    }

    #[test]
    fn a_missing_store_is_refused_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.db");
        let err = redrive(&missing, None, t(0)).unwrap_err();
        assert!(err.to_string().contains("nope.db"), "{err}");
        assert!(matches!(trains(&missing), Err(OfflineError::Missing(_))));
        assert!(!missing.exists(), "no store is created by a typo");
    }

    #[test]
    fn a_redrive_is_refused_while_a_daemon_writes_the_store() {
        let (_dir, path) = store_with_dead_letters();
        let daemon = Store::open_exclusive(&path).unwrap();
        let err = redrive(&path, None, t(30)).unwrap_err();
        assert!(
            matches!(err, OfflineError::Store(StoreError::InUse { .. })),
            "{err:?}"
        );
        assert_eq!(state(&path, "a"), DeliveryState::Dead, "nothing written");
        assert_eq!(trains(&path).unwrap().len(), 2, "reads still work");
        drop(daemon);
        assert_eq!(redrive(&path, None, t(30)).unwrap(), 2);
    }

    #[test]
    fn trains_are_listed_as_the_api_lists_them() {
        let (_dir, path) = store_with_dead_letters();
        let listed = trains(&path).unwrap();
        let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(listed.iter().all(|t| t.decision == Decision::Rollback));
        assert!(listed
            .iter()
            .all(|t| !t.evaluating && t.evaluation.is_none()));
    }
}
