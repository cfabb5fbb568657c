//! `gate serve`'s secure defaults and `gate token hash`, run as the real binary: a
//! non-loopback `--listen` without a token is refused unless `--allow-unauthenticated`, a bad
//! tokens file is refused with its positions, and the tokens file line for a token is the
//! SHA-256 the server compares against.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CONFIG: &str = "fixtures/examples/minimal.yaml";

fn serve(args: &[&str], db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gate"));
    command
        .args(["serve", "--config", CONFIG, "--db"])
        .arg(db)
        .args(args)
        .env_remove("GATE_API_TOKEN")
        .env_remove("GATE_TOKENS_FILE")
        .stdin(Stdio::null());
    command
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_non_loopback_listen_without_a_token_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let out = serve(&["--listen", "0.0.0.0:0"], &db).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for hint in ["GATE_API_TOKEN", "--tokens", "--allow-unauthenticated"] {
        assert!(err.contains(hint), "the hint names {hint}: {err}");
    }
    assert!(!db.exists(), "refused before the store is created");

    // A token makes it start; so does --allow-unauthenticated.
    for (args, env) in [
        (vec!["--listen", "0.0.0.0:0"], Some("s3cret")),
        (
            vec!["--listen", "0.0.0.0:0", "--allow-unauthenticated"],
            None,
        ),
    ] {
        let mut command = serve(&args, &db);
        if let Some(token) = env {
            command.env("GATE_API_TOKEN", token);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            line.starts_with("gate serve: listening on http://0.0.0.0:"),
            "{args:?}: {line:?}"
        );
    }
}

#[test]
fn a_bad_tokens_file_is_refused_with_every_problem_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        "- name: pipeline\n  sha256: not-a-digest\n  scopes: [read, registr]\n",
    )
    .unwrap();
    let out = serve(&[], &dir.path().join("gate.db"))
        .env("GATE_TOKENS_FILE", &tokens)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let file = tokens.display();
    assert!(
        err.contains(&format!(
            "{file}:2:11: `sha256` must be 64 hexadecimal digits"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:3:18: unknown scope")),
        "{err}"
    );
    assert!(err.contains("did you mean `register`?"), "{err}");
}

#[test]
fn token_hash_prints_the_tokens_file_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"test\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // SHA-256("test").
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_gate"))
        .args(["token", "hash"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an empty stdin is no token");
}
