//! `gate override`: an operator forces a train's decision (`promote`, `pause`, `rollback`) or
//! lifts a pause or a forced decision (`resume`), with who and why recorded in the audit trail.
//!
//! The actor defaults to the OS user (`USER`, then `LOGNAME`) so the trail names a person
//! without ceremony; `--actor` names a bot or a pipeline instead. The reason is required: an
//! override without a why is what post-incident reviews cannot reconstruct.

use gate_api::OverrideAction;

use super::train_id;
use crate::client::{OverrideRequest, ServerArgs};
use crate::{exit, render};

/// Arguments of `gate override`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The train ID.
    pub id: String,
    /// What to force: promote, pause, rollback; or resume to let the rules decide again.
    #[arg(long, value_parser = parse_action)]
    pub decision: OverrideAction,
    /// Why (recorded in the audit trail and sent with the webhook).
    #[arg(long)]
    pub reason: String,
    /// Who is overriding. Default: the OS user (USER or LOGNAME).
    #[arg(long)]
    pub actor: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_action(s: &str) -> Result<OverrideAction, String> {
    s.parse()
}

/// The actor recorded when `--actor` is not given: `USER`, else `LOGNAME`, else `unknown`.
pub fn default_actor(var: impl Fn(&str) -> Option<String>) -> String {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(var)
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The `--reason` (refused when blank: it must say why the train is `what`) and the actor
/// (`--actor`, else [`default_actor`]) recorded in the audit trail.
pub fn audited(reason: &str, actor: Option<String>, what: &str) -> anyhow::Result<String> {
    if reason.trim().is_empty() {
        return Err(exit::usage(format!(
            "--reason must say why the train is {what}"
        )));
    }
    Ok(actor
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| default_actor(|name| std::env::var(name).ok())))
}

/// Runs `gate override`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let id = train_id(&args.id)?;
    let actor = audited(&args.reason, args.actor, "overridden")?;
    let request = OverrideRequest {
        decision: args.decision,
        reason: args.reason,
        actor,
    };
    let client = args.server.client()?;
    let now = client
        .override_decision(id.as_str(), &request)
        .await
        .map_err(|e| e.into_exit())?
        .value;
    render::write_stdout(&format!(
        "{}  train {id}  (override {} by {}, seq {})\n  {}\n",
        render::verdict(now.decision, render::color_stdout()),
        request.decision,
        request.actor,
        now.seq,
        now.reason
    ))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_defaults_to_user_then_logname_then_unknown() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            default_actor(env(&[("USER", "alice"), ("LOGNAME", "bob")])),
            "alice"
        );
        assert_eq!(
            default_actor(env(&[("USER", " "), ("LOGNAME", "bob")])),
            "bob"
        );
        assert_eq!(default_actor(env(&[])), "unknown");
    }

    #[test]
    fn decisions_parse_by_name() {
        assert_eq!(parse_action("resume").unwrap(), OverrideAction::Resume);
        assert_eq!(parse_action("rollback").unwrap(), OverrideAction::Rollback);
        assert!(parse_action("pending").is_err());
    }
}
