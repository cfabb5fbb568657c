//! A real Prometheus for end-to-end tests, backfilled from OpenMetrics files.
//!
//! [`TestPrometheus::start`] backfills each file into a fresh TSDB directory with
//! `promtool tsdb create-blocks-from openmetrics`, starts `prometheus` on a free port of
//! 127.0.0.1 with no scrape jobs, and returns once `/-/ready` answers 200. Dropping it kills
//! the server and removes the directory.
//!
//! Why a real server rather than a mock: the gate's numbers depend on how Prometheus
//! evaluates `increase()` (window boundaries, extrapolation, series that start or stop inside
//! a window), and only Prometheus itself gives those answers. wiremock covers what a real
//! Prometheus will not do on demand (5xx, timeouts, garbage).
//!
//! promtool 2.42 has no `--max-block-duration` flag: it cuts the data into 2 h blocks, which
//! Prometheus reads side by side (several files backfilled into one directory are fine too).
//!
//! Everything here is synchronous (std processes, a plain TCP readiness probe), so it can be
//! used from plain `#[test]`s and from `#[tokio::test]`s alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fixtures::{self, Scenario};

/// How long Prometheus may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(90);
/// Ports tried when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

const INSTALL_HINT: &str = "install Prometheus and promtool with `apt-get install -y prometheus` \
     (or set PROMETHEUS_BIN / PROMTOOL_BIN to the binaries)";

/// A running Prometheus serving backfilled data; killed on drop.
pub struct TestPrometheus {
    child: Child,
    url: String,
    log_path: PathBuf,
    // Taken only to retry on another port; dropped after `child` is killed (see `Drop`),
    // removing the TSDB and the log.
    dir: Option<tempfile::TempDir>,
}

impl TestPrometheus {
    /// Backfills `om_files` and starts Prometheus on them.
    pub fn start(om_files: &[&Path]) -> TestPrometheus {
        let dir = tempfile::Builder::new()
            .prefix("gate-test-prometheus-")
            .tempdir()
            .expect("create a temporary directory for Prometheus");
        let files: Vec<PathBuf> = om_files.iter().map(|p| p.to_path_buf()).collect();
        Self::start_in(dir, &files)
    }

    /// Starts Prometheus on files written by `write`, which receives a scratch directory and
    /// returns the OpenMetrics files it wrote (typically [`fixtures::render`] output with an
    /// end time near the test's clock).
    pub fn start_with(write: impl FnOnce(&Path) -> Vec<PathBuf>) -> TestPrometheus {
        let dir = tempfile::Builder::new()
            .prefix("gate-test-prometheus-")
            .tempdir()
            .expect("create a temporary directory for Prometheus");
        let input = dir.path().join("input");
        std::fs::create_dir_all(&input).expect("create the input directory");
        let files = write(&input);
        Self::start_in(dir, &files)
    }

    /// Starts Prometheus on `scenario` rendered over `[start_unix, end_unix]` every
    /// `step_secs` seconds.
    pub fn start_rendered(
        scenario: &Scenario,
        start_unix: i64,
        end_unix: i64,
        step_secs: i64,
    ) -> TestPrometheus {
        Self::start_with(|dir| {
            let path = dir.join("scenario.om");
            std::fs::write(
                &path,
                fixtures::render(scenario, start_unix, end_unix, step_secs),
            )
            .expect("write the rendered scenario");
            vec![path]
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Prometheus' own log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The TSDB directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .expect("directory kept while running")
            .path()
            .join("data")
    }

    fn start_in(mut dir: tempfile::TempDir, om_files: &[PathBuf]) -> TestPrometheus {
        let promtool = find_binary("PROMTOOL_BIN", "promtool");
        let prometheus = find_binary("PROMETHEUS_BIN", "prometheus");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create the TSDB directory");
        for file in om_files {
            backfill(&promtool, file, &data);
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        )
        .expect("write the Prometheus config");
        let log_path = dir.path().join("prometheus.log");

        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("create the Prometheus log");
            let child = Command::new(&prometheus)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg("--storage.tsdb.retention.time=100y")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {}: {e}; {INSTALL_HINT}", prometheus.display())
                });
            let mut server = TestPrometheus {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log_path: log_path.clone(),
                dir: Some(dir),
            };
            match server.wait_ready(port) {
                Ok(()) => return server,
                Err(Exited) if server.log().contains("address already in use") => {
                    // Someone took the port between our probe and Prometheus' bind: try another.
                    server.stop();
                    dir = server.dir.take().expect("directory kept while running");
                }
                Err(Exited) => panic!(
                    "Prometheus exited before becoming ready; its log:\n{}",
                    server.log()
                ),
            }
        }
        panic!("Prometheus could not bind a free port in {PORT_ATTEMPTS} attempts");
    }

    /// Polls `/-/ready` until it answers 200, the process exits, or the deadline passes.
    fn wait_ready(&mut self, port: u16) -> Result<(), Exited> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(_status)) = self.child.try_wait() {
                return Err(Exited);
            }
            if http_get_status(addr, "/-/ready") == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "Prometheus did not become ready within {READY_DEADLINE:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Prometheus exited during startup.
struct Exited;

/// The binary named by `env_var`, else `name` on `PATH`, else `/usr/bin/<name>`.
fn find_binary(env_var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env_var}={} does not exist; {INSTALL_HINT}",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/usr/bin").join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found on PATH nor in /usr/bin; {INSTALL_HINT}"))
}

/// `promtool tsdb create-blocks-from openmetrics <file> <data>`.
fn backfill(promtool: &Path, file: &Path, data: &Path) {
    let output = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(file)
        .arg(data)
        .arg("--quiet")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", promtool.display()));
    assert!(
        output.status.success(),
        "promtool could not backfill {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// The status code of `GET <path>` over plain HTTP/1.0, or `None` when nothing answers.
fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}
