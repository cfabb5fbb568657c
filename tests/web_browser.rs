//! The web page in a real browser: headless Chromium (through `chromedriver`) against a real
//! `gate serve` and a real Prometheus backfilled with telemetry around the test's start.
//!
//! It checks what the on-call engineer relies on: the overview lists every train with the
//! verdict the API gives, and can be worked with the keyboard; an override made through the
//! API appears on the open overview without a reload, carried by the change stream; the train
//! page's chart draws one point per step of `GET /v1/trains/{id}/series` with exactly its
//! values, the rules' thresholds and a marker per decision change and override; nothing
//! scrolls sideways at phone width; under `--auth-reads` the page asks for the token once and
//! keeps it in `sessionStorage`, never in a URL; the console stays free of errors (a CSP
//! violation, a failed request or a script error would show there). The series endpoint
//! itself is checked against `gate eval --at` at its steps. The screenshots it takes are the
//! ones docs/web.md shows.
//!
//! `overview_at_10000_trains` is a measurement, not a check: run it by hand (see
//! BENCHMARKS.md).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use common::daemon::{Api, Daemon};
use common::fixtures::{Scenario, Traffic};
use common::prometheus::TestPrometheus;
use common::webdriver::Browser;
use serde_json::{json, Value};

const MINUTE: i64 = 60;
const AHEAD: i64 = 30 * MINUTE;
const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret-token";
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

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
  - name: strict
    slos: [checkout-availability]
    interval: 1s
    verify_for: 10s
    watch_for: 2h
    min_requests: 100
    baseline: none
    on_inconclusive: pending
    rules:
      - name: any-burn
        when: burn_rate("checkout-availability", "5m") > 0.1
        then: pause
"#
    )
}

/// 0.05 % errors (burn 0.5) and 5 % (burn 50), both serving since 30 minutes before now;
/// `web-hold` has no series at all; `web-both` is as healthy as `web-healthy`.
fn scenario() -> Scenario {
    Scenario::new(vec![
        Traffic::new("checkout", "web-healthy", -AHEAD - 30 * MINUTE, 0)
            .code(200, 23_988)
            .code(500, 12),
        Traffic::new("checkout", "web-both", -AHEAD - 30 * MINUTE, 0)
            .code(200, 23_988)
            .code(500, 12),
        Traffic::new("checkout", "web-fastburn", -AHEAD - 30 * MINUTE, 0)
            .code(200, 1_140)
            .code(500, 60),
    ])
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

/// Prometheus with the scenario, `gate serve` on it, and the three trains registered and
/// decided (healthy: promote, fast burn: rollback, no series: pending).
struct Setup {
    prometheus: TestPrometheus,
    dir: tempfile::TempDir,
    daemon: Daemon,
    api: Api,
    token: Option<&'static str>,
    started: String,
}

impl Setup {
    async fn start(token: Option<&'static str>) -> Setup {
        let now = Utc::now();
        let end = now.timestamp() + AHEAD;
        let prometheus =
            TestPrometheus::start_rendered(&scenario(), end - AHEAD - 60 * MINUTE, end, 5);
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("gate.yaml");
        std::fs::write(&config_path, config(prometheus.url())).unwrap();
        let (env, args): (Vec<(&str, &str)>, Vec<&str>) = match token {
            Some(token) => (vec![("GATE_API_TOKEN", token)], vec!["--auth-reads"]),
            None => (Vec::new(), Vec::new()),
        };
        let daemon = Daemon::start_with(
            &config_path,
            &dir.path().join("gate.db"),
            dir.path().join("serve.log"),
            &env,
            &args,
        );
        let started =
            (now - chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let setup = Setup {
            prometheus,
            dir,
            daemon,
            api: Api::default(),
            token,
            started,
        };
        for id in ["web-healthy", "web-fastburn", "web-hold"] {
            let (status, body) = setup
                .post(
                    "/v1/trains",
                    json!({"id": id, "gate": "checkout", "started_at": setup.started}),
                )
                .await;
            assert_eq!(status, 201, "{id}: {body}");
        }
        setup
            .until("verdicts", |b| {
                setup.decision(b, "web-healthy") == Some(json!("promote"))
                    && setup.decision(b, "web-fastburn") == Some(json!("rollback"))
            })
            .await;
        setup
    }

    fn decision(&self, list: &Value, id: &str) -> Option<Value> {
        list["trains"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["train"] == id))
            .map(|t| t["decision"].clone())
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    async fn get_status(&self, path: &str) -> (u16, Value) {
        let req = self.authorized(self.api.http.get(self.daemon.url(path)));
        self.api.send(req).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.get_status(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let req = self.authorized(self.api.http.post(self.daemon.url(path)).json(&body));
        self.api.send(req).await
    }

    async fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let body = self.get("/v1/trains").await;
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}; still {body:#}; daemon log:\n{}",
                self.daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `gate eval --format json` of `train` at `at`, on the same config.
    fn eval(&self, train: &str, at: &str) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_gate"))
            .args(["eval", "--config"])
            .arg(self.dir.path().join("gate.yaml"))
            .args(["--gate", "checkout", "--train", train])
            .args([
                "--started-at",
                &self.started,
                "--at",
                at,
                "--format",
                "json",
            ])
            .env_remove("GATE_API_TOKEN")
            .output()
            .expect("run gate eval");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "gate eval {train} --at {at}: {e}; stderr: {}; Prometheus log: {}",
                String::from_utf8_lossy(&out.stderr),
                self.prometheus.log()
            )
        })
    }
}

fn screenshot(name: &str) -> PathBuf {
    let dir = common::repo_root().join("docs/web");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Every numeric burn rate of every step of `series` as `(key, at, value)`, in order.
fn series_points(series: &Value) -> Vec<(String, String, f64)> {
    let mut points = Vec::new();
    for step in series["steps"].as_array().unwrap() {
        let at = step["at"].as_str().unwrap();
        for (slo, windows) in step["burn_rate"].as_object().unwrap() {
            for (window, value) in windows.as_object().unwrap() {
                if let Some(v) = value.as_f64() {
                    points.push((format!("{slo} {window}"), at.to_string(), v));
                }
            }
        }
    }
    points.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_equals_gate_eval_at_its_steps_and_refuses_bad_parameters() {
    let s = Setup::start(None).await;
    let series = s.get("/v1/trains/web-fastburn/series").await;
    let steps = series["steps"].as_array().unwrap();
    assert!(
        (2..=300).contains(&steps.len()),
        "the default step gives at most 300 points: {}",
        steps.len()
    );
    assert_eq!(series["from"], json!(s.started), "from the train's start");
    assert_eq!(steps[0]["at"], series["from"]);
    assert_eq!(steps.last().unwrap()["at"], series["to"]);
    let mut rules: Vec<(String, f64)> = series["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["rule"].as_str().unwrap().to_string(),
                t["value"].as_f64().unwrap(),
            )
        })
        .collect();
    rules.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        rules,
        [
            ("fast-burn".to_string(), 14.4),
            ("fast-burn".to_string(), 14.4),
            ("slow-burn".to_string(), 6.0),
            ("slow-burn".to_string(), 6.0)
        ]
    );
    // At its first, middle and last step, the signals `gate eval --at` computes.
    for i in [0, steps.len() / 2, steps.len() - 1] {
        let at = steps[i]["at"].as_str().unwrap();
        let eval = s.eval("web-fastburn", at);
        for kind in ["burn_rate", "error_ratio"] {
            assert_eq!(
                steps[i][kind], eval["signals"][kind],
                "{kind} at {at} (step {i})"
            );
        }
    }
    assert!(
        steps.last().unwrap()["burn_rate"]["checkout-availability"]["5m"]
            .as_f64()
            .unwrap()
            > 14.4,
        "the fast burn shows: {}",
        steps.last().unwrap()
    );

    // An explicit grid: from, from + step, … up to `to`.
    let from = DateTime::parse_from_rfc3339(&s.started).unwrap();
    let to = (from + chrono::Duration::minutes(30)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let grid = s
        .get(&format!(
            "/v1/trains/web-fastburn/series?from={}&to={to}&step=1m",
            s.started
        ))
        .await;
    assert_eq!(grid["to"], json!(to));
    assert_eq!(grid["step"], "1m");
    assert_eq!(
        grid["steps"].as_array().unwrap().len(),
        31,
        "30 minutes at 1m"
    );

    for (query, needle) in [
        ("step=1s&from=2026-01-01T00:00:00Z", "at least"),
        ("step=500ms", "shorter than 1s"),
        ("step=soon", "step"),
        ("from=yesterday", "from"),
        ("from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z", "after"),
        ("bogus=1", "bogus"),
    ] {
        let (status, body) = s
            .get_status(&format!("/v1/trains/web-fastburn/series?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
    let (status, body) = s.get_status("/v1/trains/nobody/series").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("train_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_and_train_page_in_chromium() {
    let s = Setup::start(None).await;
    let list = s.get("/v1/trains").await;
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
    let response = s.api.http.get(s.daemon.url("/")).send().await.unwrap();
    assert_eq!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap(),
        "default-src 'self'"
    );

    let browser = Browser::start(1280, 900).await;

    // Overview: every train, with the API's verdict, the verdict as a word.
    browser.goto(&s.daemon.url("/")).await;
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
    browser.screenshot(&screenshot("overview.png")).await;
    assert_console_clean(&browser, "/").await;

    // A decision change made elsewhere shows up on the open page, without a reload, from the
    // change stream.
    let streamed = browser
        .eval(
            "window.gateTestMark = 1; return Number(document.body.dataset.streamed || 0);",
            json!([]),
        )
        .await;
    let posted = Instant::now();
    let (status, body) = s
        .post(
            "/v1/trains/web-healthy/override",
            json!({"decision": "pause", "reason": "freeze for the sale", "actor": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    browser
        .until(
            "the override on the open overview",
            WAIT,
            &format!(
                "const r = document.querySelector('tr[data-train=\"web-healthy\"]');
                 return r && r.dataset.decision === 'pause' && window.gateTestMark === 1
                   && Number(document.body.dataset.streamed) > {streamed} ? true : null;"
            ),
        )
        .await;
    eprintln!(
        "the override showed on the overview {} ms after the API answered",
        posted.elapsed().as_millis()
    );
    assert_console_clean(&browser, "/ after the override").await;

    // The keyboard: Tab reaches the rows, Enter opens the focused train.
    let mut focused = Value::Null;
    for _ in 0..15 {
        browser.keys(&[TAB]).await;
        focused = browser
            .eval(
                "const a = document.activeElement;
                 return a && a.matches('tr[data-train]') ? a.dataset.train : null;",
                json!([]),
            )
            .await;
        if !focused.is_null() {
            break;
        }
    }
    let focused = focused
        .as_str()
        .expect("Tab reaches a row of the overview")
        .to_string();
    browser.keys(&[ENTER]).await;
    browser
        .until(
            "Enter opens the focused train",
            WAIT,
            &format!(
                "return location.pathname === '/trains/{focused}' && document.getElementById('chart') ? true : null;"
            ),
        )
        .await;

    // Train page: verdict first, the chart of the series endpoint's steps, thresholds,
    // markers.
    browser.goto(&s.daemon.url("/trains/web-fastburn")).await;
    let chart = browser
        .until(
            "the chart",
            WAIT,
            "const c = document.getElementById('chart');
             if (!c || c.dataset.source !== 'series') return null;
             return {
               verdict: document.querySelector('h1 .verdict').textContent,
               from: c.dataset.from, to: c.dataset.to, step: c.dataset.step,
               steps: Number(c.dataset.points),
               points: [...c.querySelectorAll('circle.point')].map(p => [p.dataset.key, p.dataset.t, Number(p.dataset.value)]),
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
    // One point per step and window, each with the series endpoint's value at that step.
    let series = s
        .get(&format!(
            "/v1/trains/web-fastburn/series?from={}&to={}&step={}",
            chart["from"].as_str().unwrap(),
            chart["to"].as_str().unwrap(),
            chart["step"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        chart["steps"].as_u64().unwrap() as usize,
        series["steps"].as_array().unwrap().len()
    );
    let mut drawn: Vec<(String, String, f64)> = chart["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
                p[2].as_f64().unwrap(),
            )
        })
        .collect();
    drawn.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let expected = series_points(&series);
    assert!(
        expected.len() > 4 * 10,
        "four windows over many steps: {}",
        expected.len()
    );
    assert_eq!(
        drawn, expected,
        "the chart draws the series endpoint's values"
    );
    browser.screenshot(&screenshot("train.png")).await;
    assert_console_clean(&browser, "/trains/web-fastburn").await;

    // The override is a marker on its train's chart.
    browser.goto(&s.daemon.url("/trains/web-healthy")).await;
    browser
        .until(
            "the override marker",
            WAIT,
            "const c = document.getElementById('chart');
             return c && c.dataset.source === 'series' && c.querySelector('line.marker[data-kind=\"override\"]') ? true : null;",
        )
        .await;
    assert_console_clean(&browser, "/trains/web-healthy").await;

    // At phone width nothing scrolls sideways.
    browser.resize(390, 844).await;
    let overflow =
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;";
    for (path, ready) in [
        (
            "/trains/web-fastburn",
            "const c = document.getElementById('chart'); return c && c.dataset.source === 'series' ? true : null;",
        ),
        (
            "/",
            "return document.querySelectorAll('tr[data-train]').length === 3 ? true : null;",
        ),
    ] {
        browser.goto(&s.daemon.url(path)).await;
        browser.until(&format!("{path} at phone width"), WAIT, ready).await;
        assert_eq!(
            browser.eval(overflow, json!([])).await,
            json!(0),
            "{path} scrolls sideways at 390 px"
        );
        assert_console_clean(&browser, &format!("{path} at phone width")).await;
    }
    browser.screenshot(&screenshot("overview-phone.png")).await;
}

/// A train of two gates: `checkout` promotes it, `strict` (any burn above 0.1 pauses) holds
/// it. The page leads with the train's verdict, the most severe, then each gate's decision
/// and rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_train_of_two_gates_shows_each_gates_decision() {
    let s = Setup::start(None).await;
    let (status, body) = s
        .post(
            "/v1/trains",
            json!({"id": "web-both", "gates": ["checkout", "strict"], "started_at": s.started}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The verdict is `pause` as soon as `strict` pauses; `checkout` promotes once its
    // verification has run, maybe a cycle later.
    let deadline = Instant::now() + WAIT;
    let train = loop {
        let train = s.get("/v1/trains/web-both").await;
        let decided = |gate: &str, decision: &str| {
            train["gates"].as_array().is_some_and(|gates| {
                gates
                    .iter()
                    .any(|g| g["gate"] == gate && g["decision"] == decision)
            })
        };
        if train["decision"] == "pause" && decided("checkout", "promote") {
            break train;
        }
        assert!(
            Instant::now() < deadline,
            "web-both not decided by both gates: {train:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let api: Vec<(String, String)> = train["gates"]
        .as_array()
        .unwrap_or_else(|| panic!("a train of two gates answers its gates: {train}"))
        .iter()
        .map(|g| {
            (
                g["gate"].as_str().unwrap().to_string(),
                g["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        api,
        [
            ("checkout".to_string(), "promote".to_string()),
            ("strict".to_string(), "pause".to_string())
        ]
    );

    let browser = Browser::start(1280, 900).await;
    browser.goto(&s.daemon.url("/trains/web-both")).await;
    let page = browser
        .until(
            "the gates' table",
            WAIT,
            "const rows = [...document.querySelectorAll('table.gates tbody tr')];
             if (rows.length !== 2) return null;
             return {
               verdict: document.querySelector('h1 .verdict').textContent,
               gates: rows.map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent]),
               rules: [...document.querySelectorAll('h3')].map(h => h.textContent),
             };",
        )
        .await;
    assert_eq!(page["verdict"], "pause", "{page}");
    let shown: Vec<(String, String)> = page["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(
                !r[2].as_str().unwrap().is_empty(),
                "each gate gives its reason: {r}"
            );
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(shown, api, "the page shows the API's decision of each gate");
    assert_eq!(
        page["rules"],
        json!(["Rules of gate checkout", "Rules of gate strict"])
    );
    assert_console_clean(&browser, "/trains/web-both").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_reads_the_page_asks_for_the_token_once() {
    let s = Setup::start(Some(TOKEN)).await;
    for path in [
        "/v1/trains",
        "/v1/events",
        "/v1/trains/web-fastburn/series",
        "/web/settings.json",
    ] {
        let (status, _) = s.api.send(s.api.http.get(s.daemon.url(path))).await;
        assert_eq!(status, 401, "{path} without the token");
    }

    let browser = Browser::start(1280, 900).await;
    browser.goto(&s.daemon.url("/")).await;
    browser
        .until(
            "the token form",
            WAIT,
            "return document.activeElement && document.activeElement.id === 'token' ? true : null;",
        )
        .await;
    // The 401 that made the page ask is the only thing in the console.
    let logged = browser.console().await;
    assert!(logged.iter().all(|(_, m)| m.contains("401")), "{logged:#?}");

    // A wrong token is refused and asked again; the right one, typed, opens the overview.
    let wrong: Vec<String> = "wrong".chars().map(String::from).collect();
    let mut keys: Vec<&str> = wrong.iter().map(String::as_str).collect();
    keys.push(ENTER);
    browser.keys(&keys).await;
    browser
        .until(
            "the refusal",
            WAIT,
            "return document.getElementById('token-refused') && document.activeElement.id === 'token' ? true : null;",
        )
        .await;
    browser.console().await;
    let right: Vec<String> = TOKEN.chars().map(String::from).collect();
    let mut keys: Vec<&str> = right.iter().map(String::as_str).collect();
    keys.push(ENTER);
    browser.keys(&keys).await;
    let rows = "return document.querySelectorAll('tr[data-train]').length === 3 && !document.getElementById('token') ? true : null;";
    browser
        .until("the overview with the token", WAIT, rows)
        .await;
    let kept = browser
        .eval(
            "return {
               stored: sessionStorage.getItem('gate.token'),
               href: location.href,
               urls: performance.getEntriesByType('resource').map(e => e.name),
             };",
            json!([]),
        )
        .await;
    assert_eq!(kept["stored"], TOKEN, "kept for the browser session");
    assert!(!kept["href"].as_str().unwrap().contains(TOKEN), "{kept}");
    assert!(
        kept["urls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| !u.as_str().unwrap().contains(TOKEN)),
        "never in a URL: {kept}"
    );
    assert_console_clean(&browser, "/ with the token").await;

    // Asked once: a new page of the same session, and the train page with its series, read
    // with the stored token.
    browser.goto(&s.daemon.url("/")).await;
    browser.until("the overview again", WAIT, rows).await;
    browser.goto(&s.daemon.url("/trains/web-fastburn")).await;
    browser
        .until(
            "the train page with the token",
            WAIT,
            "const c = document.getElementById('chart');
             return c && c.dataset.source === 'series' && c.querySelectorAll('circle.point').length > 0 ? true : null;",
        )
        .await;
    assert_console_clean(&browser, "/trains/web-fastburn with the token").await;
}

/// The median, minimum and maximum of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

/// Measures the overview at 10,000 active trains: the server time of the list the page reads
/// and the time from navigation to the first rows drawn in Chromium. Run by hand:
/// `cargo test --release --test web_browser -- --ignored --nocapture overview_at_10000_trains`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md, run by hand"]
async fn overview_at_10000_trains() {
    const TRAINS: usize = 10_000;
    const RUNS: usize = 7;
    let now = Utc::now();
    let end = now.timestamp() + 10 * MINUTE;
    // 1 % of the trains burn fast (5 % errors), the others serve 0.05 % errors.
    let traffic = (0..TRAINS)
        .map(|i| {
            let t = Traffic::new("checkout", &format!("t-{i:05}"), -20 * MINUTE, 0);
            if i % 100 == 0 {
                t.code(200, 1_140).code(500, 60)
            } else {
                t.code(200, 23_988).code(500, 12)
            }
        })
        .collect();
    let prometheus =
        TestPrometheus::start_rendered(&Scenario::new(traffic), end - 20 * MINUTE, end, 30);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gate.yaml");
    let yaml = config(prometheus.url()).replace("interval: 1s", "interval: 30s");
    std::fs::write(&config_path, yaml).unwrap();
    let daemon = Daemon::start(
        &config_path,
        &dir.path().join("gate.db"),
        dir.path().join("serve.log"),
    );
    let api = Api::default();
    let started = (now - chrono::Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let registered = Instant::now();
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TRAINS {
        let (http, url, limit) = (
            api.http.clone(),
            daemon.url("/v1/trains"),
            std::sync::Arc::clone(&limit),
        );
        let body = json!({"id": format!("t-{i:05}"), "gate": "checkout", "started_at": started});
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let status = http.post(url).json(&body).send().await.unwrap().status();
            assert_eq!(status.as_u16(), 201);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    eprintln!(
        "{TRAINS} trains registered in {:.1} s",
        registered.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let list = api.get(&daemon.url("/v1/trains")).await;
        let trains = list["trains"].as_array().unwrap();
        // Every train evaluated with data (a cycle may fail while Prometheus is busy).
        if trains.len() == TRAINS && trains.iter().all(|t| !t["worst_burn"].is_null()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cycle evaluated every train with data; daemon log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Server: the request the page makes, read whole by the client.
    let mut server = Vec::new();
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let body = api
            .http
            .get(daemon.url("/v1/trains?state=active"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        server.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    let (median, min, max) = spread(server);
    eprintln!(
        "GET /v1/trains?state=active ({TRAINS} trains, {bytes} bytes): {median:.0} ms ({min:.0}–{max:.0}, n={RUNS})"
    );

    // Browser: navigation start to the first page of rows drawn, and the sort + render.
    let browser = Browser::start(1280, 900).await;
    let (mut shown, mut render) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        browser.goto(&daemon.url("/")).await;
        let times = browser
            .until(
                "the overview of 10,000 trains",
                Duration::from_secs(60),
                "const b = document.body.dataset;
                 return b.shownMs && document.querySelectorAll('tr[data-train]').length === 100
                   ? [Number(b.shownMs), Number(b.renderMs), Number(b.loaded)] : null;",
            )
            .await;
        assert_eq!(times[2].as_u64(), Some(TRAINS as u64));
        shown.push(times[0].as_f64().unwrap());
        render.push(times[1].as_f64().unwrap());
    }
    let (median, min, max) = spread(shown);
    eprintln!("page: navigation to rows drawn {median:.0} ms ({min:.0}–{max:.0}, n={RUNS})");
    let (median, min, max) = spread(render);
    eprintln!("page: sort + render {median:.1} ms ({min:.1}–{max:.1}, n={RUNS})");
    assert_console_clean(&browser, "/ at 10,000 trains").await;
}
