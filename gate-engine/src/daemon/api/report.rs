//! `GET /v1/report?since=30d&gate=NAME`: the monthly review of the trains started in the
//! last `since`, per gate and overall, computed from the store's histories by
//! [`crate::review`] — the same figures `gate report --db` computes from the file.
//!
//! The store is read on the blocking pool in one snapshot; nothing is cached, so a report
//! always reflects every commit before it.

use axum::http::StatusCode;
use axum::response::Response;
use gate_api::{ErrorBody, Report};
use gate_rules::PromDuration;
use serde::Deserialize;

use super::{json_body, ApiError, ApiQuery, AppState};
use crate::review;

/// The range when `since` is not given.
pub const DEFAULT_SINCE: &str = "30d";

/// `GET /v1/report` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportQuery {
    /// How far back trains are counted, by their start: a Prometheus duration (`30d`, `12h`,
    /// `2w`). Default `30d`.
    #[serde(default)]
    #[param(example = "30d")]
    since: Option<String>,
    /// Only the trains this gate judged.
    #[serde(default)]
    gate: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/report", tag = "trains",
    description = "The trains started in the last `since`, in figures per gate and overall: started, promoted, rolled back, paused (and for how long), overridden; release success rate, rollback frequency, change failure rate; time from start to verdict (median, p90); rollbacks per rule. docs/report.md defines each figure.",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "A bad query parameter, e.g. `since` not a duration (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = ErrorBody),
        (status = 500, description = "The store failed (`internal`)", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn report(
    state: AppState,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let shared = state.0;
    let text = query.since.as_deref().unwrap_or(DEFAULT_SINCE);
    let since: PromDuration = text.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("since: `{text}`: {e}"),
        )
    })?;
    let now = shared.clock.now();
    let from = review::range_start(since, now);
    let histories = shared
        .blocking(move |store| store.histories(from, now))
        .await?;
    let report = review::build(
        &histories,
        &since.to_string(),
        from,
        now,
        query.gate.as_deref(),
    );
    Ok(json_body(StatusCode::OK, &report))
}

#[cfg(test)]
mod tests {
    use crate::daemon::api::tests::plain;

    #[tokio::test]
    async fn a_bad_since_is_a_400_with_a_code() {
        let h = &plain().await;
        let get = |uri: String| async move {
            let (status, body) = h.call("GET", &uri, None, None).await;
            (status.as_u16(), body)
        };
        for bad in ["30", "thirty%20days", "-1d", "1h5"] {
            let (status, body) = get(format!("/v1/report?since={bad}")).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert_eq!(body["error"]["code"], "invalid_query", "{bad}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("since: "),
                "{body}"
            );
        }
        let (status, body) = get("/v1/report?window=1d".into()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_query"))
        );
        let (status, body) = get("/v1/report".into()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["since"], "30d");
        assert_eq!(body["overall"]["started"], 0);
        assert_eq!(
            body["overall"]["release_success_rate"],
            serde_json::Value::Null
        );
    }

    /// A verifying train rolled back by an operator an hour after its start, and one stopped:
    /// both finish, one reaches its first verdict; the report from the store agrees.
    #[tokio::test]
    async fn finishing_trains_are_counted_on_metrics_as_in_the_report() {
        use serde_json::json;

        use crate::daemon::api::tests::train;

        let h = plain().await;
        for id in ["t-1", "t-2"] {
            let (status, body) = h.call("POST", "/v1/trains", Some(train(id)), None).await;
            assert_eq!(status.as_u16(), 201, "{body}");
        }
        let (status, body) = h
            .call(
                "POST",
                "/v1/trains/t-1/override",
                Some(json!({"decision": "rollback", "reason": "bad config", "actor": "alice"})),
                None,
            )
            .await;
        assert_eq!(status.as_u16(), 200, "{body}");
        let (status, _) = h.call("DELETE", "/v1/trains/t-2", None, None).await;
        assert_eq!(status.as_u16(), 200);
        // Stopping a train already finished counts nothing more.
        let (status, _) = h.call("DELETE", "/v1/trains/t-1", None, None).await;
        assert_eq!(status.as_u16(), 200);

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &h.shared().registry).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("gate_trains_finished_total")
                    || l.starts_with("gate_time_to_verdict_seconds_")
            })
            .collect();
        for want in [
            r#"gate_trains_finished_total{gate="checkout",outcome="rolled_back"} 1"#,
            r#"gate_trains_finished_total{gate="checkout",outcome="stopped"} 1"#,
            r#"gate_time_to_verdict_seconds_sum{gate="checkout"} 3600.0"#,
            r#"gate_time_to_verdict_seconds_count{gate="checkout"} 1"#,
        ] {
            assert!(lines.contains(&want), "{want} not in {lines:#?}");
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("gate_trains_finished_total"))
                .count(),
            2,
            "{lines:#?}"
        );

        let (status, body) = h.call("GET", "/v1/report", None, None).await;
        assert_eq!(status.as_u16(), 200, "{body}");
        let all = &body["overall"];
        assert_eq!(
            (all["started"].as_u64(), all["finished"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(all["stopped"], 1);
        assert_eq!(all["override_rollbacks"], 1);
        assert_eq!(all["time_to_verdict"]["median_secs"], 3600.0);
    }
}
