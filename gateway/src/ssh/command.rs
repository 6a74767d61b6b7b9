//! The commands workers send as SSH `exec` requests, and their JSON payload.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::{Team, WorkerName};
use crate::policy::Action;

/// Largest worker JSON accepted on stdin.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// A parsed worker command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerCommand {
    /// `forward-worker [--garden ADDR] [--baggageclaim ADDR]`: register,
    /// with the worker's services reached through the named tunnels.
    Forward {
        /// Bind address of the tunnel to the worker's Garden server.
        garden: Option<String>,
        /// Bind address of the tunnel to its baggageclaim server.
        baggageclaim: Option<String>,
    },
    /// `land-worker`
    Land,
    /// `retire-worker`
    Retire,
    /// `delete-worker`
    Delete,
}

impl WorkerCommand {
    /// Parse an exec command line. The error is shown to the worker.
    pub fn parse(line: &str) -> Result<WorkerCommand, String> {
        let mut words = line.split_ascii_whitespace();
        let name = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let command = match name {
            "forward-worker" => return parse_forward(&rest),
            "land-worker" => WorkerCommand::Land,
            "retire-worker" => WorkerCommand::Retire,
            "delete-worker" => WorkerCommand::Delete,
            "" => return Err("empty command".into()),
            "report-containers" | "report-volumes" | "sweep-containers" | "sweep-volumes" => {
                return Err(format!("command `{name}` is not supported by keygate"));
            }
            other => return Err(format!("unknown command `{other}`")),
        };
        match rest.first() {
            None => Ok(command),
            Some(arg) => Err(format!("`{name}` takes no arguments, got `{arg}`")),
        }
    }

    /// The policy action this command asks for.
    pub fn action(&self) -> Action {
        match self {
            WorkerCommand::Forward { .. } => Action::Register,
            WorkerCommand::Land => Action::Land,
            WorkerCommand::Retire => Action::Retire,
            WorkerCommand::Delete => Action::Delete,
        }
    }
}

fn parse_forward(args: &[&str]) -> Result<WorkerCommand, String> {
    let mut garden = None;
    let mut baggageclaim = None;
    let mut args = args.iter().copied();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg, None),
        };
        let slot = match flag {
            "--garden" => &mut garden,
            "--baggageclaim" => &mut baggageclaim,
            other => return Err(format!("forward-worker: unknown flag `{other}`")),
        };
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("forward-worker: `{flag}` needs an address"))?,
        };
        *slot = Some(value.to_owned());
    }
    Ok(WorkerCommand::Forward {
        garden,
        baggageclaim,
    })
}

/// The worker JSON sent on stdin (Concourse's worker shape). Only `name`
/// and `team` are interpreted; every field is kept and shown in the registry.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerPayload {
    /// The worker's name.
    pub name: String,
    /// Its team; empty or absent for a worker serving every team.
    #[serde(default)]
    pub team: Option<String>,
    /// Every other field.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl WorkerPayload {
    /// Parse the payload; the error is shown to the worker.
    pub fn parse(bytes: &[u8]) -> Result<WorkerPayload, String> {
        let payload: WorkerPayload = serde_json::from_slice(bytes)
            .map_err(|e| format!("invalid worker JSON on stdin; {e}"))?;
        if payload.name.trim().is_empty() {
            return Err("worker JSON has an empty `name`".into());
        }
        Ok(payload)
    }

    /// The worker's name.
    pub fn worker(&self) -> WorkerName {
        WorkerName::new(&self.name)
    }

    /// The claimed team; `None` for the global scope.
    pub fn team(&self) -> Option<Team> {
        self.team
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Team::new)
    }
}

/// Whether `buffer` holds a complete JSON value yet: `Ok(true)` when it
/// does, `Ok(false)` when more input is needed, `Err` when it never will.
pub fn payload_complete(buffer: &[u8]) -> Result<bool, String> {
    let mut values =
        serde_json::Deserializer::from_slice(buffer).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) if e.is_eof() => Ok(false),
        None => Ok(false),
        Some(Err(e)) => Err(format!("invalid worker JSON on stdin; {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            WorkerCommand::parse(
                "forward-worker --garden 0.0.0.0:7777 --baggageclaim=0.0.0.0:7788"
            ),
            Ok(WorkerCommand::Forward {
                garden: Some("0.0.0.0:7777".into()),
                baggageclaim: Some("0.0.0.0:7788".into())
            })
        );
        assert_eq!(WorkerCommand::parse("land-worker"), Ok(WorkerCommand::Land));
        assert!(WorkerCommand::parse("land-worker now").is_err());
        assert!(WorkerCommand::parse("forward-worker --garden").is_err());
        assert!(WorkerCommand::parse("forward-worker --shell x").is_err());
        assert!(
            WorkerCommand::parse("bash -c id")
                .unwrap_err()
                .contains("unknown command")
        );
    }

    #[test]
    fn payloads() {
        let p = WorkerPayload::parse(br#"{"name":"w1","team":"","platform":"linux","tags":["a"]}"#)
            .unwrap();
        assert_eq!((p.name.as_str(), p.team()), ("w1", None));
        assert_eq!(p.rest["platform"], "linux");
        assert!(WorkerPayload::parse(br#"{"team":"a"}"#).is_err());
        assert!(WorkerPayload::parse(br#"{"name":" "}"#).is_err());
        assert_eq!(payload_complete(br#"{"name": "w"#), Ok(false));
        assert_eq!(payload_complete(br#"{"name": "w"} "#), Ok(true));
        assert!(payload_complete(br#"{"name" 1}"#).is_err());
    }
}
