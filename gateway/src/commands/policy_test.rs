//! `keygate policy test`: table-driven tests for policy authors.
//!
//! A cases file is a YAML list; each case is a request and the decision
//! expected for it:
//!
//! ```yaml
//! - name: team a's key registers for team a
//!   action: register          # connect, register, land, retire, delete,
//!                             # or other:NAME (an action from a later contract)
//!   team: a                   # omit for the global scope
//!   key: keys/a.pub           # a .pub file (relative to the cases file) or a key line
//!   user: worker              # default: worker
//!   addr: 10.1.2.3            # default: 127.0.0.1
//!   worker: w1                # optional
//!   time: 1800000000          # seconds since the Unix epoch; default: now
//!   expect: allow             # allow or deny
//!   reason: not authorized    # optional: text the deny reason must contain
//! ```
//!
//! One line per case, then `N passed, M failed`. Exit status 0 when every
//! case passed, 1 when any failed, 2 when the cases or the policy could not
//! be loaded. A policy fault never passes: not even a case expecting deny.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use yaml_rust2::{Yaml, YamlLoader};

use crate::cli::PolicyTestArgs;
use crate::domain::{KeyIdentity, Team, WorkerName, client_ip};
use crate::policy::{Action, DecisionRequest, Outcome, load_policy};

/// One case from the file.
#[derive(Debug)]
struct Case {
    name: String,
    request: DecisionRequest,
    expect_allow: bool,
    reason: Option<String>,
}

/// Run the command.
pub fn run(args: &PolicyTestArgs) -> ExitCode {
    match run_cases(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_cases(args: &PolicyTestArgs) -> anyhow::Result<bool> {
    let cases = load_cases(&args.cases)?;
    let runtime = args.policy.runtime()?;
    let policy = load_policy(&runtime, &args.policy.source(), &args.policy.inputs(), None)?;
    let (mut passed, mut failed) = (0, 0);
    for case in cases {
        let outcome = policy.decide_blocking(case.request.clone());
        match verdict(&case, &outcome) {
            Ok(()) => {
                passed += 1;
                println!("pass  {}", case.name);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL  {}: {why}", case.name);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn verdict(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let expected = if case.expect_allow { "allow" } else { "deny" };
    match (outcome, case.expect_allow) {
        (Outcome::Fault(fault), _) => {
            Err(format!("expected {expected}, the policy faulted: {fault}"))
        }
        (Outcome::Allow, true) => Ok(()),
        (Outcome::Deny(reason), false) => match &case.reason {
            Some(wanted) if !reason.contains(wanted.as_str()) => Err(format!(
                "denied, but the reason {reason:?} does not contain {wanted:?}"
            )),
            _ => Ok(()),
        },
        (Outcome::Allow, false) => Err("expected deny, got allow".into()),
        (Outcome::Deny(reason), true) => Err(format!("expected allow, got deny: {reason}")),
    }
}

fn load_cases(path: &Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let docs = YamlLoader::load_from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: invalid YAML; {e}", path.display()))?;
    let Some(Yaml::Array(items)) = docs.first() else {
        bail!("{}: expected a list of cases", path.display());
    };
    let base = path.parent().unwrap_or(Path::new("."));
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            case(base, i + 1, item).with_context(|| format!("{}: case {}", path.display(), i + 1))
        })
        .collect()
}

fn text<'a>(item: &'a Yaml, field: &str) -> anyhow::Result<Option<&'a str>> {
    match &item[field] {
        Yaml::BadValue | Yaml::Null => Ok(None),
        Yaml::String(s) => Ok(Some(s)),
        _ => bail!("`{field}` must be a string"),
    }
}

fn case(base: &Path, number: usize, item: &Yaml) -> anyhow::Result<Case> {
    if let Some(fields) = item.as_hash() {
        const KNOWN: [&str; 10] = [
            "name", "action", "team", "key", "user", "addr", "worker", "time", "expect", "reason",
        ];
        for key in fields.keys() {
            let key = key.as_str().unwrap_or("?");
            if !KNOWN.contains(&key) {
                bail!("unknown field `{key}`");
            }
        }
    } else {
        bail!("a case must be a mapping");
    }
    let action: Action = text(item, "action")?
        .context("`action` is missing")?
        .parse()
        .map_err(anyhow::Error::msg)?;
    let key_field = text(item, "key")?.context("`key` is missing")?;
    let key_text = if key_field.contains(' ') {
        key_field.to_owned()
    } else {
        let key_path = base.join(key_field);
        std::fs::read_to_string(&key_path)
            .with_context(|| format!("failed to read key {}", key_path.display()))?
    };
    let key = KeyIdentity::from_openssh(&key_text).with_context(|| format!("`key` {key_field}"))?;
    let expect_allow = match text(item, "expect")? {
        Some("allow") => true,
        Some("deny") => false,
        Some(other) => bail!("`expect` must be allow or deny, not `{other}`"),
        None => bail!("`expect` is missing"),
    };
    let time = match &item["time"] {
        Yaml::Integer(secs) if *secs >= 0 => UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()),
        Yaml::BadValue | Yaml::Null => SystemTime::now(),
        _ => bail!("`time` must be seconds since the Unix epoch"),
    };
    let addr = text(item, "addr")?.unwrap_or("127.0.0.1");
    let client = addr
        .parse()
        .map_err(|_| anyhow::anyhow!("`addr` {addr} is not an IP address"))?;
    let team = text(item, "team")?;
    let name = match text(item, "name")? {
        Some(name) => name.to_owned(),
        None => format!("case {number}: {action} {}", team.unwrap_or("(all teams)")),
    };
    let request = DecisionRequest {
        action,
        team: team.map(Team::new),
        user: text(item, "user")?.unwrap_or("worker").to_owned(),
        key,
        client: client_ip(client),
        worker: text(item, "worker")?.map(WorkerName::new),
        time,
    };
    Ok(Case {
        name,
        request,
        expect_allow,
        reason: text(item, "reason")?.map(str::to_owned),
    })
}
