//! A real VictoriaMetrics single-node server for end-to-end tests, loaded with the same
//! OpenMetrics fixtures the Prometheus tests backfill.
//!
//! [`TestVictoriaMetrics::start`] runs `victoria-metrics` on a free port of 127.0.0.1 with a
//! fresh data directory, imports each file through `/api/v1/import/prometheus` (the text
//! exposition format with millisecond timestamps: the OpenMetrics seconds are converted),
//! flushes the in-memory buffers and returns once the data is searchable. Dropping it kills
//! the server and removes the directory.
//!
//! VictoriaMetrics answers the Prometheus query API with its own semantics (`increase()`
//! does not extrapolate; a counter's first sample counts from zero; answers carry extra
//! fields such as `stats`), which is exactly what these tests are for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_DEADLINE: Duration = Duration::from_secs(60);
const INSTALL_HINT: &str = "install VictoriaMetrics with `apt-get install -y victoria-metrics` \
     (or set VICTORIA_METRICS_BIN to the binary)";

/// A running VictoriaMetrics holding the imported fixtures; killed on drop.
pub struct TestVictoriaMetrics {
    child: Child,
    url: String,
    addr: SocketAddr,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestVictoriaMetrics {
    /// Starts VictoriaMetrics and imports `om_files` into it.
    pub fn start(om_files: &[&Path]) -> TestVictoriaMetrics {
        let binary = std::env::var_os("VICTORIA_METRICS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("victoria-metrics"));
        let dir = tempfile::Builder::new()
            .prefix("gate-test-victoriametrics-")
            .tempdir()
            .expect("create a temporary directory for VictoriaMetrics");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log_path = dir.path().join("victoria-metrics.log");
        let log = std::fs::File::create(&log_path).expect("create the log");
        let child = Command::new(&binary)
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", binary.display()));
        let mut server = TestVictoriaMetrics {
            child,
            url: format!("http://127.0.0.1:{port}"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path,
            _dir: dir,
        };
        server.wait_ready();
        for file in om_files {
            let text = std::fs::read_to_string(file).expect("read an OpenMetrics fixture");
            let status = server.request("POST", "/api/v1/import/prometheus", &exposition(&text));
            assert_eq!(
                status,
                204,
                "import of {}: {}",
                file.display(),
                server.log()
            );
        }
        let status = server.request("GET", "/internal/force_flush", "");
        assert_eq!(status, 200, "force_flush: {}", server.log());
        server
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "VictoriaMetrics exited ({status}); its log:\n{}",
                    self.log()
                );
            }
            if TcpStream::connect(self.addr).is_ok() && self.request("GET", "/health", "") == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "VictoriaMetrics did not become ready within {READY_DEADLINE:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One HTTP/1.0 request; the status code, 0 when the server could not be reached.
    fn request(&self, method: &str, path: &str, body: &str) -> u16 {
        let Ok(mut stream) = TcpStream::connect(self.addr) else {
            return 0;
        };
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return 0;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TestVictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenMetrics samples (`name{labels} value seconds`) as exposition-format lines with
/// millisecond timestamps; comments and `# EOF` dropped.
fn exposition(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (sample, seconds) = line.rsplit_once(' ').expect("a sample with a timestamp");
        let seconds: f64 = seconds.parse().expect("a timestamp in seconds");
        out.push_str(sample);
        out.push(' ');
        out.push_str(&format!("{}", (seconds * 1000.0).round() as i64));
        out.push('\n');
    }
    out
}
