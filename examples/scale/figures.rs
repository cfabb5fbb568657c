//! The figures of a cycle: this process's CPU and peak RSS, Prometheus' CPU, medians.

use super::*;

/// Counters read before and after a cycle.
pub(crate) struct Probe {
    pub(crate) queries: u64,
    pub(crate) cpu: Duration,
    pub(crate) peak_rss_kb: u64,
    pub(crate) prometheus_cpu_ticks: u64,
}

impl Probe {
    pub(crate) fn take(client: &PrometheusClient, prometheus_pid: u32) -> Probe {
        Probe {
            queries: client.queries_sent(),
            cpu: self_cpu(),
            peak_rss_kb: status_kb("/proc/self/status", "VmHWM:"),
            prometheus_cpu_ticks: stat_cpu_ticks(&format!("/proc/{prometheus_pid}/stat")),
        }
    }
}

/// One cycle's figures.
pub(crate) struct CycleFigures {
    pub(crate) wall_s: f64,
    pub(crate) fetch_s: f64,
    pub(crate) queries: u64,
    pub(crate) cpu_ms: f64,
    pub(crate) peak_rss_mb: f64,
    pub(crate) prometheus_cpu_s: f64,
}

impl CycleFigures {
    pub(crate) fn between(
        before: &Probe,
        after: &Probe,
        wall_s: f64,
        fetch_s: f64,
    ) -> CycleFigures {
        CycleFigures {
            wall_s,
            fetch_s,
            queries: after.queries - before.queries,
            cpu_ms: (after.cpu - before.cpu).as_secs_f64() * 1e3,
            peak_rss_mb: after.peak_rss_kb as f64 / 1024.0,
            // /proc/<pid>/stat counts clock ticks: 100 a second on Linux.
            prometheus_cpu_s: (after.prometheus_cpu_ticks - before.prometheus_cpu_ticks) as f64
                / 100.0,
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "wall_s": self.wall_s,
            "fetch_s": self.fetch_s,
            "queries": self.queries,
            "cpu_ms": self.cpu_ms,
            "peak_rss_mb": self.peak_rss_mb,
            "prometheus_cpu_s": self.prometheus_cpu_s,
        })
    }
}

pub(crate) fn median_of(cycles: &[CycleFigures], f: impl Fn(&CycleFigures) -> f64) -> Option<f64> {
    let mut v: Vec<f64> = cycles.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

pub(crate) fn tally(
    decisions: &BTreeMap<gate_rules::TrainId, Decision>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in decisions.values() {
        *counts.entry(d.to_string()).or_default() += 1;
    }
    counts
}

/// `getrusage(RUSAGE_SELF)` user + system time.
pub(crate) fn self_cpu() -> Duration {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        // ru_maxrss and the 13 other longs of the Linux LP64 layout.
        rest: [i64; 14],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    let mut usage = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        rest: [0; 14],
    };
    // SAFETY: `usage` matches `struct rusage` on 64-bit Linux and outlives the call.
    let rc = unsafe { getrusage(0, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let micros = |t: &Timeval| t.sec as u64 * 1_000_000 + t.usec as u64;
    Duration::from_micros(micros(&usage.utime) + micros(&usage.stime))
}

/// Resets this process's peak RSS (VmHWM) to its current RSS.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `kB` field of a `/proc/<pid>/status` file.
pub(crate) fn status_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of a `/proc/<pid>/stat` file, in clock ticks.
pub(crate) fn stat_cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
