//! `gate-engine` does the I/O around the pure core in `gate-rules`.
//!
//! Data flows one way: [`planner`] turns a gate and its trains into the fewest PromQL queries;
//! [`prometheus`] sends them; the planner maps results back to per-train signals; `gate-rules`
//! decides; [`report`] shapes the decision with its evidence; the daemon stores it, serves it
//! and queues webhooks for it. [`review`] turns the stored histories into the figures of the
//! monthly review.
//!
//! Three small rooms serve all of them: [`clock`] (where wall-clock time comes from),
//! [`backoff`] (how long to wait between attempts) and [`redact`] (URLs without credentials).

pub mod backoff;
pub mod clock;
pub mod daemon;
pub mod evaluate;
pub mod looks;
pub mod offline;
pub mod planner;
pub mod prometheus;
pub mod redact;
pub mod replay;
pub mod report;
pub mod review;
pub mod store;
pub mod webhook;
