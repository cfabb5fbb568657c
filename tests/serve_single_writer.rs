//! One `gate serve` per SQLite store: a second daemon on the same file refuses to start
//! (exit 1, naming the first one's pid) instead of evaluating every train and sending every
//! webhook a second time; `gate outbox redrive --db` is refused the same way while the daemon
//! runs; and a daemon killed with SIGKILL leaves no stale lock behind.

mod common;

use std::process::{Command, Output, Stdio};

use common::daemon::Daemon;

/// Nothing listens here: the daemon starts without Prometheus (its readiness says so).
const UNREACHABLE: &str = "http://127.0.0.1:9";

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(args)
        .env_remove("GATE_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run gate")
}

#[test]
fn a_second_daemon_on_one_store_is_refused_and_a_killed_one_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::gate_test_config(dir.path(), UNREACHABLE);
    let db = dir.path().join("gate.db");
    let mut first = Daemon::start(&config, &db, dir.path().join("first.log"));

    let second = gate(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "store {} is in use by another gate serve, pid {}",
            db.display(),
            first.pid()
        )),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("listening"),
        "the second daemon never served"
    );

    let redrive = gate(&["outbox", "redrive", "--db", db.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&redrive.stderr);
    assert_eq!(redrive.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another gate serve"), "{stderr}");

    first.sigkill();
    let mut third = Daemon::start(&config, &db, dir.path().join("third.log"));
    assert_eq!(third.sigterm(), 0, "{}", third.log());
    let redrive = gate(&["outbox", "redrive", "--db", db.to_str().unwrap()]);
    assert_eq!(
        redrive.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&redrive.stderr)
    );
}
