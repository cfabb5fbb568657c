//! Helpers shared by the end-to-end tests in `tests/`: a real Prometheus backfilled with
//! synthetic telemetry ([`prometheus`]), the generator of that telemetry ([`fixtures`]), a
//! `gate serve` process and its API client ([`daemon`]) and paths to the committed fixtures.
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod daemon;
pub mod fixtures;
pub mod live;
pub mod postgres;
pub mod prometheus;
pub mod victoriametrics;
pub mod webdriver;

use std::path::{Path, PathBuf};

/// The repository root (the root package's manifest directory).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/prometheus/<name>`.
pub fn prometheus_fixture(name: &str) -> PathBuf {
    repo_root().join("fixtures").join("prometheus").join(name)
}

/// The committed OpenMetrics fixtures, in the order of [`fixtures::committed_fixtures`].
pub fn committed_om_files() -> Vec<PathBuf> {
    fixtures::committed_fixtures()
        .into_iter()
        .map(|(name, _)| prometheus_fixture(name))
        .collect()
}

/// Writes `fixtures/prometheus/gate-test.yaml` into `dir` with its Prometheus URL replaced by
/// `prometheus_url`, and returns the new file's path.
pub fn gate_test_config(dir: &Path, prometheus_url: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(prometheus_fixture("gate-test.yaml")).expect("read gate-test.yaml");
    let placeholder = "url: http://127.0.0.1:9090";
    assert!(
        text.contains(placeholder),
        "gate-test.yaml must contain `{placeholder}`"
    );
    let path = dir.join("gate-test.yaml");
    std::fs::write(
        &path,
        text.replacen(placeholder, &format!("url: {prometheus_url}"), 1),
    )
    .expect("write the test config");
    path
}
