//! The example configs of `fixtures/examples/` load, with the values and defaults SPEC §3 gives.

use std::path::{Path, PathBuf};

use gate_rules::config::{
    effective_yaml, load_file, load_str, BadOrGood, BaselineKind, Config, WebhookFormat, REDACTED,
};
use gate_rules::{Counter, Decision, HoldDecision, PromDuration};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/examples")
        .join(name)
}

fn load(name: &str) -> Config {
    load_file(&example(name)).unwrap_or_else(|e| panic!("{name}:\n{}", e.render_plain()))
}

#[test]
fn the_spec_example_loads_as_written() {
    let config = load("gate.yaml");
    assert_eq!(config.prometheus.url, "http://127.0.0.1:9090");
    assert_eq!(config.prometheus.headers["X-Scope-OrgID"], "team-a");
    assert_eq!(
        config.prometheus.bearer_token_env.as_deref(),
        Some("PROM_TOKEN")
    );
    assert_eq!(config.train_label, "train_id");

    let slo = config.slo("checkout-availability").expect("SLO");
    assert_eq!(slo.objective, 99.9);
    assert!((slo.budget() - 0.001).abs() < 1e-12);
    assert_eq!(slo.period, PromDuration::from_secs(30 * 86_400));
    assert_eq!(slo.counts, BadOrGood::Errors);
    assert_eq!(
        slo.events,
        Counter::Selector(r#"http_requests_total{service="checkout", code=~"5.."}"#.into())
    );
    assert_eq!(
        slo.total,
        Counter::Selector(r#"http_requests_total{service="checkout"}"#.into())
    );

    let gate = config.gate("checkout").expect("gate");
    assert_eq!(gate.slos, ["checkout-availability"]);
    assert_eq!(gate.min_requests, 500);
    let rules: Vec<(&str, Decision, u32)> = gate
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.then, r.for_evaluations))
        .collect();
    assert_eq!(
        rules,
        [
            ("fast-burn", Decision::Rollback, 1),
            ("slow-burn", Decision::Pause, 1),
            ("regression", Decision::Rollback, 1),
            ("budget-exhausted", Decision::Pause, 2),
        ]
    );
    assert_eq!(gate.rules[0].expr.source, gate.rules[0].when);
    assert_eq!(gate.rules[0].expr.signals.len(), 2);

    let hook = &config.webhooks[0];
    assert_eq!(
        hook.on,
        [Decision::Rollback, Decision::Pause, Decision::Promote]
    );
    assert_eq!(hook.format, WebhookFormat::Json);
    assert_eq!(hook.secret_env.as_deref(), Some("GATE_WEBHOOK_SECRET"));
}

#[test]
fn the_minimal_example_gets_every_default() {
    let config = load("minimal.yaml");
    assert_eq!(config.prometheus.url, "http://127.0.0.1:9090");
    assert_eq!(config.prometheus.timeout, PromDuration::from_secs(10));
    assert_eq!(config.train_label, "train_id");
    assert_eq!(config.slos[0].period, PromDuration::from_secs(30 * 86_400));
    let gate = &config.gates[0];
    // A gate without `slos` reads the SLOs its rules name.
    assert_eq!(gate.slos, ["api-availability"]);
    assert_eq!(gate.interval, PromDuration::from_secs(30));
    assert_eq!(gate.verify_for, PromDuration::from_secs(30 * 60));
    assert_eq!(gate.watch_for, PromDuration::from_secs(2 * 3600));
    assert_eq!(gate.min_requests, 100);
    assert_eq!(gate.baseline, BaselineKind::PreviousTrain);
    assert_eq!(gate.on_inconclusive, HoldDecision::Pause);
    assert_eq!(gate.on_telemetry_error, HoldDecision::Pause);
    assert_eq!(gate.max_consecutive_errors, 3);
    assert_eq!(gate.resume_after, 4);
    assert_eq!(gate.alpha, 0.01);
    assert_eq!(gate.rules[0].for_evaluations, 1);
    assert!(config.webhooks.is_empty());
}

#[test]
fn the_effective_config_loads_back_to_the_same_config() {
    for name in ["gate.yaml", "minimal.yaml", "service-policy.yaml"] {
        let config = load(name);
        let yaml = effective_yaml(&config);
        let again = load_str("effective.yaml", &yaml)
            .unwrap_or_else(|e| panic!("{name} effective:\n{yaml}\n{}", e.render_plain()));
        assert_eq!(effective_yaml(&again), yaml, "{name}");
        // The model's own JSON shape is equal too (rules compare by their source), but for
        // the header values, which the effective config never shows.
        let mut shown = config.clone();
        for value in shown.prometheus.headers.values_mut() {
            *value = REDACTED.to_string();
        }
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&shown).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn the_service_policy_example_pauses_on_the_service_wide_burn_rate() {
    let config = load("service-policy.yaml");
    let gate = config.gate("checkout").expect("gate");
    let rule = gate
        .rules
        .iter()
        .find(|r| r.name == "service-burning")
        .expect("the service-burning rule");
    assert_eq!(rule.then, Decision::Pause);
    assert_eq!(
        rule.expr.signals,
        [gate_rules::SignalRef::ServiceBurnRate {
            slo: "checkout-availability".into(),
            window: PromDuration::from_secs(3600),
        }]
    );
}
