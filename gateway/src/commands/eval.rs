//! `keygate policy eval`: one decision, printed as a JSON line.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;

use crate::cli::EvalArgs;
use crate::domain::{KeyIdentity, Team, WorkerName, client_ip};
use crate::policy::{DecisionRequest, Outcome, load_policy};

/// Exit status for an error: bad flags, an unloadable policy, a fault.
const EXIT_ERROR: u8 = 2;

/// Run the command: exit 0 on allow, 1 on deny, 2 on error.
pub fn run(args: &EvalArgs) -> ExitCode {
    match decide(args) {
        Ok(Outcome::Allow) => {
            println!("{}", json!({"decision": "allow"}));
            ExitCode::SUCCESS
        }
        Ok(Outcome::Deny(reason)) => {
            println!("{}", json!({"decision": "deny", "reason": reason}));
            ExitCode::FAILURE
        }
        Ok(fault @ Outcome::Fault(_)) => {
            let Outcome::Fault(detail) = &fault else {
                return ExitCode::from(EXIT_ERROR);
            };
            let reason = fault.reason().unwrap_or_default();
            println!(
                "{}",
                json!({"decision": "deny", "reason": reason, "fault": detail.to_string()})
            );
            ExitCode::from(EXIT_ERROR)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn decide(args: &EvalArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("failed to read key file {}", args.key.display()))?;
    let key = KeyIdentity::from_openssh(&text)
        .with_context(|| format!("failed to read a public key from {}", args.key.display()))?;
    let runtime = args.policy.runtime()?;
    let policy = load_policy(&runtime, &args.policy.source(), &args.policy.inputs(), None)?;
    let time = match args.time {
        Some(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        None => SystemTime::now(),
    };
    let request = DecisionRequest {
        action: args.action.clone(),
        team: args.team.as_deref().map(Team::new),
        user: args.user.clone(),
        key,
        client: client_ip(args.addr),
        worker: args.worker.as_deref().map(WorkerName::new),
        time,
    };
    Ok(policy.decide_blocking(request))
}
