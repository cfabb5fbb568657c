//! Exit codes shared by every `gate` command (SPEC §5).
//!
//! Pipelines branch on these, so they are part of the contract: the same number means the
//! same thing for `eval`, `wait`, `status` and the rest.

/// Promote, or the command succeeded.
pub const OK: i32 = 0;
/// An unexpected internal error.
pub const INTERNAL: i32 = 1;
/// Usage or config error, invalid train ID.
pub const USAGE: i32 = 2;
/// Rollback.
pub const ROLLBACK: i32 = 3;
/// Pause.
pub const PAUSE: i32 = 4;
/// Pending at the end (`eval`), or `wait` timed out without a final decision.
pub const PENDING: i32 = 5;
/// Prometheus or the gate server unreachable.
pub const UNREACHABLE: i32 = 6;

/// The help text listing the exit codes, shown by `gate --help`.
pub const HELP: &str = "\
Exit codes:
  0  promote (or: the command succeeded)
  1  unexpected internal error
  2  usage or config error, invalid train ID
  3  rollback
  4  pause
  5  pending at the end (eval), or wait timed out without a final decision
  6  Prometheus or the gate server unreachable";

/// The exit code that reports a decision.
pub fn for_decision(d: gate_rules::Decision) -> i32 {
    match d {
        gate_rules::Decision::Promote => OK,
        gate_rules::Decision::Rollback => ROLLBACK,
        gate_rules::Decision::Pause => PAUSE,
        gate_rules::Decision::Pending => PENDING,
    }
}

/// An error that carries its exit code, for failures the CLI classifies itself (bad train ID,
/// unreachable server). Everything else that reaches `main` exits [`INTERNAL`].
#[derive(Debug)]
pub struct Exit {
    /// The exit code.
    pub code: i32,
    /// The message printed to stderr.
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Fails with a usage error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// Fails with an unreachable error (exit 6).
pub fn unreachable(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: UNREACHABLE,
        message: message.into(),
    }
    .into()
}
