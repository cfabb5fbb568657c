//! The HTTP server under the API: accepts connections and serves each with hyper's HTTP/1.
//!
//! gate owns the accept loop rather than using `axum::serve` for what each open connection
//! costs. `axum::serve` wraps every connection in hyper-util's protocol detection (HTTP/1 or
//! HTTP/2 by the first bytes), whose state stays with the connection for as long as it is
//! open; serving HTTP/1 alone takes 20 KB of RSS for a held long-poll instead of 25–30
//! (BENCHMARKS.md §11). gate's clients — `gate wait`, pipelines, browsers over plain HTTP —
//! speak HTTP/1.1, and none of its endpoints needs HTTP/2.
//!
//! Shutdown follows `axum::serve(..).with_graceful_shutdown`: stop accepting, ask every
//! connection to finish the request in flight and close, and return once all have.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the connections
/// open at that moment to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = http1::Builder::new();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A clone of the one router (an `Arc`), never route tables of its own.
        let service = TowerToHyperService::new(router.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An accept error: a connection that went away before it was accepted is nothing; anything
/// else (out of file descriptors, most often) is logged and retried after a pause, as
/// `axum::serve` does, rather than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
