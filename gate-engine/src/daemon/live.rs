//! `GET /v1/events`: the changes of every train as they happen, as server-sent events
//! (`text/event-stream`), for the live overview of the web page and for anyone who would
//! rather be told than poll.
//!
//! The stream opens with `event: ready` once the subscription is in place: a client that
//! reads the list after it cannot miss a change (it may see one twice, and keeps the one with
//! the higher `seq`). Then one `event: train` per change — a train registered or seen for the
//! first time, a decision change or override (a new `seq`), a new lifecycle state — whose
//! data is the train as `GET /v1/trains` lists it. Evaluations that change none of these are
//! not sent, so the stream stays quiet at 10,000 trains. A client that falls
//! [`super::state::CHANGES_BUFFER`] changes behind gets `event: resync` and should read the
//! list again. A comment line every 15 s keeps proxies from closing an idle stream; the
//! stream ends when the daemon shuts down.
//!
//! Browsers' `EventSource` cannot send an `Authorization` header, so under `--auth-reads` the
//! page reads the stream with `fetch` instead; the route is behind the API's authentication
//! like every read (merged into the API router before its auth layer).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::list::worst_burn;
use super::{Shared, TrainView};

/// The interval of the keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The events route, to merge into the API router inside its authentication.
pub fn router() -> Router<Arc<Shared>> {
    Router::new().route("/v1/events", get(events))
}

#[utoipa::path(
    get, path = "/v1/events", tag = "trains",
    description = "The changes of every train as server-sent events until shutdown: `ready` \
        first, then one `train` event per change with the train as `GET /v1/trains` lists it, \
        `resync` when the client fell behind (see docs/api.md).",
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "Token missing or wrong (`unauthorized`)", body = gate_api::ErrorBody),
        (status = 403, description = "The token lacks the `read` scope (`forbidden`)", body = gate_api::ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn events(State(shared): State<Arc<Shared>>) -> Response {
    Sse::new(changes(shared))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// `ready`, then the changes until shutdown.
fn changes(shared: Arc<Shared>) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = shared.trains.changes();
    let shutdown = shared.shutdown.subscribe();
    let ready = stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let changes = stream::unfold(
        (rx, shutdown, shared),
        |(mut rx, mut shutdown, shared)| async move {
            let event = tokio::select! {
                _ = shutdown.wait_for(|down| *down) => return None,
                received = rx.recv() => match received {
                    Ok(view) => train_event(&shared, &view),
                    Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(event), (rx, shutdown, shared)))
        },
    );
    ready.chain(changes)
}

fn train_event(shared: &Shared, view: &TrainView) -> Event {
    let config = shared.runtime().config.clone();
    let entry = gate_api::Train {
        worst_burn: Some(view.record.evaluation.as_ref().and_then(worst_burn)),
        ..view.summary(shared.evaluating(view, &config), false)
    };
    Event::default()
        .event("train")
        .json_data(&entry)
        .unwrap_or_else(|_| Event::default().event("resync").data("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::tests::{config_yaml, harness};
    use crate::daemon::ApiOptions;

    #[tokio::test]
    async fn the_stream_sends_ready_then_each_change_and_ends_at_shutdown() {
        let h = harness(&config_yaml("http://127.0.0.1:9"), ApiOptions::default()).await;
        let shared = h.shared();
        let mut events = Box::pin(changes(Arc::clone(&shared)));
        let first = events.next().await.unwrap().unwrap();
        assert!(format!("{first:?}").contains("ready"), "{first:?}");
        let record = crate::daemon::state::tests::record("t-live", 3, gate_rules::Decision::Pause);
        shared.trains.publish(TrainView::new(record));
        let change = format!("{:?}", events.next().await.unwrap().unwrap());
        assert!(
            change.contains("train") && change.contains("t-live") && change.contains("pause"),
            "{change}"
        );
        shared.shutdown.send_replace(true);
        assert!(events.next().await.is_none(), "the stream ends at shutdown");
    }
}
