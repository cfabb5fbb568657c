//! The web page in a real browser: headless Chromium (through `chromedriver`) against a real
//! `gate serve` and a real Prometheus backfilled with telemetry around the test's start.
//!
//! It checks what the on-call engineer relies on: the overview lists every train with the
//! verdict the API gives; an override made through the API appears on the open overview
//! without a reload; the train page's chart draws the burn rates the audit trail recorded,
//! with the rules' thresholds and a marker per decision change; the console stays free of
//! errors (a CSP violation, a failed request or a script error would show there). The
//! screenshots it takes are the ones docs/web.md shows.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use common::webdriver::Browser;
use serde_json::json;

const MINUTE: i64 = 60;
const AHEAD: i64 = 30 * MINUTE;
const WAIT: Duration = Duration::from_secs(60);

fn config(prometheus_url: &str) -> String {
    format!(
        r#"
prometheus:
  url: {prometheus_url}
  external_url: https://prometheus.example.com
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
      - name: slow-burn
        when: burn_rate("checkout-availability", "6h") > 6 && burn_rate("checkout-availability", "30m") > 6
        then: pause
"#
    )
}

/// 0.05 % errors (burn 0.5) and 5 % (burn 50), both serving since 30 minutes before now;
/// `web-hold` has no series at all.
fn scenario() -> Scenario {
    Scenario::new(vec![
        Traffic::new("checkout", "web-healthy", -AHEAD - 30 * MINUTE, 0)
            .code(200, 23_988)
            .code(500, 12),
        Traffic::new("checkout", "web-fastburn", -AHEAD - 30 * MINUTE, 0)
            .code(200, 1_140)
            .code(500, 60),
    ])
}

fn millis(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_millis()
}

async fn assert_console_clean(browser: &Browser, page: &str) {
    let errors: Vec<_> = browser
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console on {page}: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_and_train_page_in_chromium() {
    let now = Utc::now();
    let end = now.timestamp() + AHEAD;
    let prometheus = TestPrometheus::start_rendered(&scenario(), end - AHEAD - 60 * MINUTE, end, 5);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    std::fs::write(&config_path, config(prometheus.url())).unwrap();
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let api = Api::default();

    let started = (now - chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true);
    for id in ["web-healthy", "web-fastburn", "web-hold"] {
        let (status, body) = api
            .post(
                &daemon.url("/v1/trains"),
                json!({"id": id, "gate": "checkout", "started_at": started}),
            )
            .await;
        assert_eq!(status, 201, "{id}: {body}");
    }
    let list = api
        .until(&daemon.url("/v1/trains"), "verdicts", WAIT, |b| {
            let d = |id: &str| {
                b["trains"]
                    .as_array()
                    .and_then(|ts| ts.iter().find(|t| t["train"] == id))
                    .map(|t| t["decision"].clone())
            };
            d("web-healthy") == Some(json!("promote"))
                && d("web-fastburn") == Some(json!("rollback"))
        })
        .await;
    let expected: BTreeMap<String, String> = list["trains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["train"].as_str().unwrap().to_string(),
                t["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 3);

    // The page's own headers: only this origin.
    let response = api.http.get(daemon.url("/")).send().await.unwrap();
    assert_eq!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap(),
        "default-src 'self'"
    );

    let browser = Browser::start(1280, 900).await;

    // Overview: every train, with the API's verdict, the verdict as a word.
    browser.goto(&daemon.url("/")).await;
    let rows = browser
        .until(
            "three rows",
            WAIT,
            "const rows = [...document.querySelectorAll('tr[data-train]')];
             return rows.length === 3 ? rows.map(r => [r.dataset.train, r.dataset.decision,
               r.querySelector('.verdict').textContent]) : null;",
        )
        .await;
    let shown: BTreeMap<String, String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r[1], r[2], "the verdict is written as a word: {r}");
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(shown, expected);
    assert_eq!(shown["web-fastburn"], "rollback");
    assert_eq!(rows[0][0], "web-fastburn", "most severe first: {rows}");
    std::fs::create_dir_all(common::repo_root().join("docs/web")).unwrap();
    browser
        .screenshot(&common::repo_root().join("docs/web/overview.png"))
        .await;
    assert_console_clean(&browser, "/").await;

    // A decision change made elsewhere shows up on the open page, without a reload.
    browser
        .eval("window.gateTestMark = 1; return null;", json!([]))
        .await;
    let (status, body) = api
        .post(
            &daemon.url("/v1/trains/web-healthy/override"),
            json!({"decision": "pause", "reason": "freeze for the sale", "actor": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    browser
        .until(
            "the override on the open overview",
            WAIT,
            "const r = document.querySelector('tr[data-train=\"web-healthy\"]');
             return r && r.dataset.decision === 'pause' && window.gateTestMark === 1 ? true : null;",
        )
        .await;

    // Train page: verdict first, the chart of the recorded burn rates, thresholds, markers.
    browser.goto(&daemon.url("/trains/web-fastburn")).await;
    let chart = browser
        .until(
            "the chart",
            WAIT,
            "const c = document.getElementById('chart');
             if (!c || !c.querySelector('svg')) return null;
             return {
               verdict: document.querySelector('h1 .verdict').textContent,
               points: [...c.querySelectorAll('circle.point')].map(p => [p.dataset.key, Number(p.dataset.value), p.dataset.t]),
               thresholds: [...c.querySelectorAll('line.threshold')].map(l => Number(l.dataset.value)),
               markers: [...c.querySelectorAll('line.marker')].map(l => l.dataset.kind),
               queries: [...document.querySelectorAll('a[href^=\"https://prometheus.example.com/graph\"]')].length,
             };",
        )
        .await;
    assert_eq!(chart["verdict"], "rollback");
    let mut thresholds: Vec<f64> = chart["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    thresholds.sort_by(f64::total_cmp);
    assert_eq!(thresholds, vec![6.0, 6.0, 14.4, 14.4]);
    assert!(
        chart["markers"]
            .as_array()
            .unwrap()
            .contains(&json!("decision")),
        "{chart}"
    );
    assert!(
        chart["queries"].as_u64().unwrap() > 0,
        "links to Prometheus: {chart}"
    );

    // Every burn rate the audit trail recorded with a decision change is a point of the
    // chart, at that time, with that value.
    let events = api.get(&daemon.url("/v1/trains/web-fastburn/events")).await;
    let points: Vec<(String, f64, i64)> = chart["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_f64().unwrap(),
                millis(p[2].as_str().unwrap()),
            )
        })
        .collect();
    let mut recorded = 0;
    for event in events["events"].as_array().unwrap() {
        if event["kind"] != "decision" {
            continue;
        }
        let at = millis(event["evaluated_at"].as_str().unwrap());
        for (slo, windows) in event["evidence"]["signals"]["burn_rate"]
            .as_object()
            .unwrap()
        {
            for (window, value) in windows.as_object().unwrap() {
                let Some(value) = value.as_f64() else {
                    continue;
                };
                let key = format!("{slo} {window}");
                assert!(
                    points
                        .iter()
                        .any(|(k, v, t)| *k == key && *v == value && *t == at),
                    "{key} = {value} at {at} is not drawn: {points:?}"
                );
                recorded += 1;
            }
        }
    }
    assert!(
        recorded >= 4,
        "the rollback recorded four burn rates: {events}"
    );
    browser
        .screenshot(&common::repo_root().join("docs/web/train.png"))
        .await;
    assert_console_clean(&browser, "/trains/web-fastburn").await;

    // At phone width the overview fits the screen: no sideways scrolling.
    browser.resize(390, 844).await;
    browser.goto(&daemon.url("/")).await;
    browser
        .until(
            "the overview at phone width",
            WAIT,
            "return document.querySelectorAll('tr[data-train]').length === 3 ? true : null;",
        )
        .await;
    let overflow = browser
        .eval(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            json!([]),
        )
        .await;
    assert_eq!(
        overflow,
        json!(0),
        "the overview scrolls sideways at 390 px"
    );
    browser
        .screenshot(&common::repo_root().join("docs/web/overview-phone.png"))
        .await;
    assert_console_clean(&browser, "/ at phone width").await;
}
