//! The live checkout gate that the tests of several `gate serve` processes share: a config
//! that decides within seconds (interval 1 s, `verify_for` 10 s), and its two kinds of train
//! traffic, rendered around the test's own clock.

use super::fixtures::Traffic;

/// Minutes, in the seconds [`Traffic`] counts in.
pub const MINUTE: i64 = 60;
/// How far the rendered telemetry runs past the test's start.
pub const AHEAD: i64 = 30 * MINUTE;

/// The `checkout` gate on `prometheus_url`: rolled back on a fast burn (1h and 5m burn rates
/// above 14.4), promoted after 10 s of verification otherwise; a webhook `deployer` at
/// `webhook_url`, when given, told of rollback, pause and promote.
pub fn checkout_config(prometheus_url: &str, webhook_url: Option<&str>) -> String {
    let mut config = format!(
        r#"
prometheus:
  url: {prometheus_url}
  timeout: 5s
train_label: train_id
slos:
  - name: checkout-availability
    objective: 99.9
    errors: http_requests_total{{service="checkout", code=~"5.."}}
    total: http_requests_total{{service="checkout"}}
gates:
  - name: checkout
    slos: [checkout-availability]
    interval: 1s
    verify_for: 10s
    watch_for: 2h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: fast-burn
        when: burn_rate("checkout-availability", "1h") > 14.4 && burn_rate("checkout-availability", "5m") > 14.4
        then: rollback
"#
    );
    if let Some(url) = webhook_url {
        config.push_str(&format!(
            "webhooks:\n  - name: deployer\n    url: {url}\n    on: [rollback, pause, promote]\n"
        ));
    }
    config
}

/// 0.05 % errors (burn 0.5), serving since half an hour before the test's start.
pub fn healthy(train: &str) -> Traffic {
    Traffic::new("checkout", train, -AHEAD - 30 * MINUTE, 0)
        .code(200, 23_988)
        .code(500, 12)
}

/// 5 % errors (burn 50), serving since half an hour before the test's start.
pub fn burning(train: &str) -> Traffic {
    Traffic::new("checkout", train, -AHEAD - 30 * MINUTE, 0)
        .code(200, 1_140)
        .code(500, 60)
}

/// A Prometheus holding `scenario` from 90 minutes before the test's start to [`AHEAD`]
/// after it, every 5 s: every window the gate reads has samples whenever a daemon looks.
pub fn prometheus(scenario: &super::fixtures::Scenario) -> super::prometheus::TestPrometheus {
    let end = chrono::Utc::now().timestamp() + AHEAD;
    super::prometheus::TestPrometheus::start_rendered(scenario, end - AHEAD - 60 * MINUTE, end, 5)
}
