//! A real `gate serve` for end-to-end tests, and a small JSON client for its API.
//!
//! [`Daemon::start`] runs the binary Cargo built for this test (`CARGO_BIN_EXE_gate`) as a
//! separate process on `127.0.0.1:0` and returns once it has printed its listen address —
//! `gate serve` prints it only when the API answers. Dropping a [`Daemon`] kills the process;
//! [`Daemon::sigkill`] does it on purpose, to test what survives a crash.
//!
//! [`Api`] wraps `reqwest` for the JSON endpoints; [`Api::until`] polls an endpoint until a
//! predicate holds, with a deadline, because the daemon acts on its own clock and a test
//! must not guess how long that takes with a fixed sleep.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long `gate serve` may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A `gate serve` process; killed on drop.
pub struct Daemon {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Daemon {
    /// `gate serve --config <config> --db <db> --listen 127.0.0.1:0`, its stderr in `log`.
    pub fn start(config: &Path, db: &Path, log: PathBuf) -> Daemon {
        Self::start_with_env(config, db, log, &[])
    }

    /// [`Daemon::start`] with extra environment variables (webhook secrets, …).
    pub fn start_with_env(config: &Path, db: &Path, log: PathBuf, env: &[(&str, &str)]) -> Daemon {
        Self::start_with(config, db, log, env, &[])
    }

    /// [`Daemon::start`] with extra environment variables and extra arguments of
    /// `gate serve` (`--auth-reads`, …).
    pub fn start_with(
        config: &Path,
        db: &Path,
        log: PathBuf,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Daemon {
        let stderr = std::fs::File::create(&log).expect("create the daemon log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_gate"));
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--db")
            .arg(db)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("GATE_API_TOKEN")
            .env_remove("GATE_TOKENS_FILE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("run gate serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("gate serve: listening on http://") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(START_DEADLINE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gate serve did not print its address; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Daemon { child, addr, log }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The listen address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no shutdown work at all) and reaps it.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }

    /// SIGTERM, then the exit code (within a deadline).
    pub fn sigterm(&mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the daemon") {
                return status.code().expect("exited, not killed by a signal");
            }
            assert!(
                Instant::now() < deadline,
                "gate serve did not stop within 30 s of SIGTERM; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON client for the daemon's API.
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("build an HTTP client"),
        }
    }
}

impl Api {
    /// Sends `req`; the status and the body as JSON (`Null` when it is not JSON).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let response = req.send().await.expect("request to gate serve");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("response body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// `GET url`, which must answer 200.
    pub async fn get(&self, url: &str) -> Value {
        let (status, body) = self.send(self.http.get(url)).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        body
    }

    /// `GET url` as text, which must answer 200.
    pub async fn get_text(&self, url: &str) -> String {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .expect("request to gate serve");
        assert_eq!(response.status().as_u16(), 200, "GET {url}");
        response.text().await.expect("response body")
    }

    /// `POST url` with a JSON body.
    pub async fn post(&self, url: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(url).json(&body)).await
    }

    /// `DELETE url`.
    pub async fn delete(&self, url: &str) -> (u16, Value) {
        self.send(self.http.delete(url)).await
    }

    /// Polls `GET url` until `done` holds for its body, or panics after `within`.
    pub async fn until(
        &self,
        url: &str,
        what: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let body = self.get(url).await;
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; still {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
