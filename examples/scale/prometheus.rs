//! A real Prometheus on the backfilled TSDB, on a free loopback port.

use super::*;

/// A Prometheus serving the backfilled TSDB on a free loopback port; killed on drop.
pub(crate) struct Prometheus {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Prometheus {
    pub(crate) fn start(dir: &Path, data: &Path) -> anyhow::Result<Prometheus> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = File::create(dir.join("prometheus.log"))?;
        let child = Command::new(binary("PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let ready = format!("{}/-/ready", prometheus.url);
        loop {
            if let Some(status) = prometheus.child.try_wait()? {
                anyhow::bail!(
                    "Prometheus exited ({status}); see {}",
                    dir.join("prometheus.log").display()
                );
            }
            if blocking_get_ok(&ready) {
                return Ok(prometheus);
            }
            anyhow::ensure!(Instant::now() < deadline, "Prometheus not ready in 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET answered 200.
pub(crate) fn blocking_get_ok(url: &str) -> bool {
    use std::io::Read;
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

pub(crate) fn binary(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name))
}
