//! `gate-rules` is the pure core of gate: everything that decides, nothing that does I/O.
//!
//! The data flows one way through its modules:
//!
//! * [`config`] loads and validates the YAML configuration (all errors at once, with positions);
//! * [`expr`] compiles each rule's CEL `when` and lists the signals it reads;
//! * [`query`] turns SLI selectors into PromQL through the PromQL AST (never by pasting strings);
//! * [`signals`] holds the numbers fetched for one train and derives the values rules read,
//!   using [`math`] (burn rate, budget, error delta) and [`stats`] (significance test);
//! * [`sequential`] is the anytime-valid test of "the train errs more than its baseline, beyond a
//!   margin", whose state persists between evaluations;
//! * [`decide`] is the decision table: signals + previous state → decision with evidence;
//! * [`calendar`] says when a gate may promote (departure windows, freezes);
//! * [`registration`] refuses train starts that would break verification (future, too old);
//! * [`vocab`] holds the words these modules share ([`Decision`], [`Counts`], [`SignalRef`], …)
//!   and imports none of them, so the module graph has no cycles.
//!
//! Beside that flow, [`import`] converts SLOs written for OpenSLO and Sloth into a config.
//!
//! The engine (`gate-engine`) fetches the numbers; this crate never talks to the network,
//! never reads the clock (times are passed in) and never touches the filesystem except to read
//! the config file in [`config::load_file`].
#![deny(missing_docs)]

pub mod calendar;
pub mod config;
pub mod decide;
pub mod duration;
pub mod error_chain;
pub mod expr;
pub mod hint;
pub mod import;
pub mod math;
pub mod query;
pub mod registration;
pub mod sequential;
pub mod signals;
pub mod stats;
pub mod time;
pub mod train_id;
pub mod vocab;

pub use config::Config;
pub use decide::decide;
pub use duration::PromDuration;
pub use error_chain::error_chain;
pub use train_id::TrainId;
pub use vocab::{
    Counter, Counts, Decision, ErrorDelta, HoldDecision, Resolve, Resolved, SignalRef,
    SignalValues, Truth,
};
