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

/// Spawns `gate serve` and returns it with the address it printed once ready.
fn start(command: &mut Command) -> (std::process::Child, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("gate serve: listening on http://")
        .unwrap_or_else(|| panic!("gate serve did not start: {line:?}"))
        .to_string();
    (child, addr)
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
        let (mut child, addr) = start(command.stderr(Stdio::null()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(addr.starts_with("0.0.0.0:"), "{args:?}: {addr}");
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

/// A `gate serve` on loopback with a request held in flight (a body announced and never
/// sent), so a graceful shutdown cannot finish on its own. Returns the child, its log file
/// and the held connection.
fn serve_with_a_held_request(
    dir: &Path,
    shutdown_timeout: &str,
) -> (std::process::Child, std::path::PathBuf, std::net::TcpStream) {
    let log = dir.join("serve.log");
    let (child, addr) = start(
        serve(
            &[
                "--listen",
                "127.0.0.1:0",
                "--shutdown-timeout",
                shutdown_timeout,
            ],
            &dir.join("gate.db"),
        )
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap()),
    );
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    held.write_all(
        b"POST /v1/trains HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{",
    )
    .unwrap();
    // The request is in flight once the daemon answers another one on a second connection
    // (the held one was accepted first).
    let mut probe = std::net::TcpStream::connect(&addr).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut probe, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    (child, log, held)
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `done` until it holds, for at most a minute.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn exit_code(child: &mut std::process::Child, log: &Path) -> i32 {
    let mut code = None;
    until("gate serve did not exit", || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    code.flatten().unwrap_or_else(|| {
        panic!(
            "killed by a signal; log:\n{}",
            std::fs::read_to_string(log).unwrap()
        )
    })
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log, _held) = serve_with_a_held_request(dir.path(), "10m");
    signal(&child, "TERM");
    until("the first SIGTERM was not logged", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("shutting down")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the held request keeps the graceful shutdown waiting"
    );
    signal(&child, "INT");
    assert_eq!(exit_code(&mut child, &log), 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("a second signal: exiting"), "{text}");
}

#[test]
fn shutdown_ends_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log, _held) = serve_with_a_held_request(dir.path(), "1s");
    signal(&child, "TERM");
    assert_eq!(exit_code(&mut child, &log), 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("the shutdown deadline passed"), "{text}");
}
