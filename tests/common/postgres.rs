//! A private PostgreSQL cluster for the tests of this process: `initdb` and `pg_ctl` in a
//! temporary directory, on a free loopback port, with trust authentication for the user
//! `gate`; each test takes a database of its own ([`pg_database`]). A watcher process stops
//! the cluster and removes its directory once the test process is gone, however it ends.
//!
//! Included by the end-to-end tests (`tests/common`) and by the store's unit tests
//! (`gate-engine/src/store/testing.rs`), so both use one cluster implementation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A private PostgreSQL cluster for this test process: `initdb` and `pg_ctl` in a temporary
/// directory, listening on a free loopback port, stopped and removed by a watcher when the
/// process ends (however it ends). As root, the cluster runs as the `postgres` user (initdb
/// refuses root). Needs PostgreSQL's server binaries: on PATH, or Debian's
/// `/usr/lib/postgresql/<version>/bin` (`apt-get install postgresql`; scripts/test does).
pub struct PgCluster {
    port: u16,
    data: PathBuf,
    options: String,
    log: PathBuf,
}

impl PgCluster {
    /// A URL for database `db` of the cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://gate@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are cut, as in a restart).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&self) {
        self.pg_ctl(&[
            "-o",
            &self.options,
            "-l",
            &self.log.display().to_string(),
            "start",
        ]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut cmd = if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(pg_bin("pg_ctl"));
            cmd
        } else {
            Command::new(pg_bin("pg_ctl"))
        };
        let out = cmd
            .arg("-D")
            .arg(&self.data)
            .arg("-w")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> PgCluster {
        let initdb = pg_bin("initdb");
        let pg_ctl = pg_bin("pg_ctl");
        let dir = tempfile::Builder::new()
            .prefix("gate-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let as_root = running_as_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let data = dir.join("data");
        let run = |program: &Path, args: &[&std::ffi::OsStr]| {
            let mut cmd = if as_root {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            } else {
                Command::new(program)
            };
            cmd.args(args);
            cmd
        };
        let out = run(
            &initdb,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "gate".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            dir.display()
        );
        let log = dir.join("postgres.log");
        let out = run(
            &pg_ctl,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // The watcher: once this process is gone, stop the cluster and remove its directory.
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             '{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = data.display(),
            dir = dir.display(),
        );
        run(Path::new("/bin/sh"), &["-c".as_ref(), script.as_ref()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        PgCluster {
            port,
            data,
            options,
            log,
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// A PostgreSQL server binary: on PATH, else the newest Debian installation.
pub fn pg_bin(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
    {
        return path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.components()
            .nth(3)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
    });
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's `{name}` is neither on PATH nor in /usr/lib/postgresql/*/bin: \
             install Debian's `postgresql` (scripts/test does)"
        )
    })
}

/// The cluster of this test process, started on first use.
pub fn pg_cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

/// A database of its own, dropped with the guard.
pub struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = admin(&sql);
    }
}

/// Runs `sql` as the cluster's superuser, on a thread of its own: the blocking client runs a
/// runtime of its own, which may not start on a thread that drives async tests.
pub fn admin(sql: &str) -> Result<(), postgres::Error> {
    let url = pg_cluster().url("postgres");
    let sql = sql.to_string();
    std::thread::spawn(move || {
        postgres::Client::connect(&url, postgres::NoTls)?.batch_execute(&sql)
    })
    .join()
    .expect("the admin thread does not panic")
}

/// A new, empty database on [`pg_cluster`] and its URL.
pub fn pg_database() -> (PgDatabase, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    admin(&format!("CREATE DATABASE {name}")).expect("create a test database");
    let url = pg_cluster().url(&name);
    (PgDatabase { name }, url)
}
