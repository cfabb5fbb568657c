//! The scenario's data: the config, the trains and their OpenMetrics counters.

use super::*;

/// One query's samples, or why it failed.
pub(crate) type Answer = Result<Vec<ResultSample>, String>;

pub(crate) fn samples(data: QueryData, label: &str) -> Answer {
    match data {
        QueryData::Vector(v) => Ok(v
            .into_iter()
            .map(|mut s| ResultSample {
                train: s.metric.remove(label),
                value: s.value,
            })
            .collect()),
        QueryData::Scalar(p) => Ok(vec![ResultSample {
            train: None,
            value: p.value,
        }]),
        other => Err(format!("unexpected {}", other.kind())),
    }
}

/// The config of the scenario: one SLO, one gate reading 5m, 30m and 1h burn rates.
pub(crate) fn config_text(url: &str, baseline: &str, interval_secs: i64) -> String {
    let delta_rule = if baseline == "none" {
        ""
    } else {
        r#"
      - name: regression
        when: error_delta("checkout-availability").significant && error_delta("checkout-availability").relative > 0.5
        then: rollback"#
    };
    format!(
        r#"
prometheus:
  url: {url}
  timeout: 120s
train_label: train_id
slos:
  - name: checkout-availability
    objective: 99.9
    period: 30d
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total:  http_requests_total{{service="checkout"}}
gates:
  - name: checkout
    slos: [checkout-availability]
    interval: {interval_secs}s
    verify_for: 30m
    min_requests: 500
    baseline: {baseline}
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
      - name: slow-burn
        when: burn_rate("checkout-availability", "1h") > 6 && burn_rate("checkout-availability", "30m") > 6
        then: pause{delta_rule}
"#
    )
}

/// Train `i` is `t-<i>`, started `5 + i mod 66` minutes before `now`; its baseline train is
/// the next one, a minute older.
pub(crate) fn trains(n: usize, now: i64) -> Vec<TrainSpec> {
    (0..n)
        .map(|i| TrainSpec {
            id: train_name(i).parse().expect("valid train ID"),
            started_at: DateTime::from_timestamp(now - age_secs(i), 0).expect("valid time"),
            baseline: Some(train_name(i + 1).parse().expect("valid train ID")),
        })
        .collect()
}

pub(crate) fn train_name(i: usize) -> String {
    format!("t-{i:05}")
}

pub(crate) fn age_secs(i: usize) -> i64 {
    60 * (MIN_AGE_MIN + (i as i64) % (MAX_AGE_MIN - MIN_AGE_MIN + 1))
}

/// Writes the counters of `n` trains (and of train `n`, the last one's baseline) as
/// OpenMetrics: train `i` started `age_secs(i)` before `now` and runs until `end`.
/// Returns (series, samples).
pub(crate) fn write_openmetrics(
    path: &Path,
    n: usize,
    now: i64,
    end: i64,
) -> std::io::Result<(usize, usize)> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(out, "# HELP http_requests Requests served.")?;
    writeln!(out, "# TYPE http_requests counter")?;
    let (mut series, mut samples) = (0, 0);
    for i in 0..=n {
        let start = now - age_secs(i);
        // Requests per minute by code; rates are multiples of 4, so 15 s steps are whole.
        let codes: [(u16, i64); 2] = if i % 100 == 7 {
            [(200, 1900), (500, 100)]
        } else {
            [(200, 1996), (500, 4)]
        };
        let train = train_name(i);
        for (code, per_minute) in codes {
            series += 1;
            let mut t = start;
            while t <= end {
                let value = per_minute * (t - start) / 60;
                writeln!(
                    out,
                    "http_requests_total{{code=\"{code}\",instance=\"checkout-0:8080\",service=\"checkout\",train_id=\"{train}\"}} {value} {t}"
                )?;
                samples += 1;
                t += STEP;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    Ok((series, samples))
}
