//! One writing process per store file.
//!
//! SQLite lets several processes write one file, so a second `gate serve` on the same store
//! would start without a word, evaluate every train a second time and send every webhook
//! event twice. [`WriterLock`] prevents that: an exclusive `flock` on `<store>.lock`, held for
//! the life of the process that writes (the daemon, `gate outbox redrive --db`), with that
//! process's ID written inside so the refusal can name it. The kernel releases the lock when
//! the process exits, however it exits, so a SIGKILLed daemon never leaves a stale lock
//! behind; the file itself stays and is reused.
//!
//! The lock is a separate file, not the database: SQLite's own (POSIX) locks on the database
//! file are released when any descriptor of it in the process is closed, so the store never
//! opens the database file outside SQLite.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The exclusive right to write a store file, held until dropped.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

/// The lock file of the store at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl WriterLock {
    /// Takes the lock of the store at `db`, or says which process holds it.
    pub fn acquire(db: &Path) -> Result<WriterLock, StoreError> {
        let path = lock_path(db);
        let io = |source| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::InUse {
                    path: db.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(io)?;
        Ok(WriterLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gate.db");
        let first = WriterLock::acquire(&db).unwrap();
        match WriterLock::acquire(&db) {
            Err(e @ StoreError::InUse { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
                let text = e.to_string();
                assert!(
                    text.contains("gate.db")
                        && text.contains(&format!("pid {}", std::process::id())),
                    "{text}"
                );
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        WriterLock::acquire(&db).expect("free again once the holder is gone");
    }
}
