//! `gate approve`: a person's go for a train whose gate has `approval: required`, recorded
//! with who and why in the audit trail. The train promotes at the next evaluation if it is
//! verified (and its gates' departure windows and freezes allow it); an approval never lifts
//! a rollback or a pause.

use super::override_::audited;
use super::train_id;
use crate::client::{ApproveRequest, ServerArgs};
use crate::{exit, render};

/// Arguments of `gate approve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The train ID.
    pub id: String,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    pub reason: String,
    /// Who is approving. Default: the OS user (USER or LOGNAME).
    #[arg(long)]
    pub actor: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `gate approve`.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let id = train_id(&args.id)?;
    let actor = audited(&args.reason, args.actor, "approved")?;
    let request = ApproveRequest {
        reason: args.reason,
        actor,
    };
    let client = args.server.client()?;
    let now = client
        .approve(id.as_str(), &request)
        .await
        .map_err(|e| e.into_exit())?
        .value;
    render::write_stdout(&format!(
        "{}  train {id}  (approved by {}, seq {})\n  {}\n",
        render::verdict(now.decision, render::color_stdout()),
        request.actor,
        now.seq,
        now.reason
    ))?;
    Ok(exit::OK)
}
