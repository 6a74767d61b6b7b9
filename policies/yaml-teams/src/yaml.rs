//! Reading the team-key YAML file with line numbers.
//!
//! The file is a list of teams, each with its keys:
//!
//! ```yaml
//! - team: main
//!   ssh_keys:
//!   - ssh-ed25519 AAAA... alice@laptop
//! ```
//!
//! The SDK's [`keygate_policy_sdk::yaml`] tree remembers the line of every
//! node, so each complaint can point at the line to fix. It refuses anchors
//! and aliases (the format has no use for them, and refusing them rules
//! out alias-expansion attacks), a second document and mapping keys that
//! are not strings.

use keygate_policy_sdk::yaml::{self, Fault, Node, Text};

/// One team entry as written in the file.
#[derive(Debug, PartialEq, Eq)]
pub struct TeamEntry {
    pub team: String,
    pub line: usize,
    /// Each key string with its line.
    pub keys: Vec<Text>,
}

/// The well-formed team entries, and the faults of the rest. Entries are
/// returned even when others are faulty, so that their keys are checked
/// too and every fault is reported in one go.
pub type Parsed = (Vec<TeamEntry>, Vec<Fault>);

/// Parse the file.
pub fn parse(text: &str) -> Parsed {
    match yaml::parse(text) {
        Err(fault) => (Vec::new(), vec![fault]),
        Ok(None) => (Vec::new(), Vec::new()),
        Ok(Some(Node::List(_, items))) => entries(items),
        Ok(Some(other)) => {
            let found = other.kind();
            let message = format!("expected a list of teams (`- team: NAME`), found {found}");
            (Vec::new(), vec![Fault::new(other.line(), message)])
        }
    }
}

fn entries(items: Vec<Node>) -> Parsed {
    let mut out = Vec::new();
    let mut faults = Vec::new();
    for item in items {
        match entry(item) {
            Ok(entry) => out.push(entry),
            Err(mut e) => faults.append(&mut e),
        }
    }
    (out, faults)
}

/// One entry. A field given twice counts as written last.
fn entry(node: Node) -> Result<TeamEntry, Vec<Fault>> {
    let Node::Map(line, fields) = node else {
        let found = node.kind();
        let message = format!("expected a team entry (`team:` and `ssh_keys:`), found {found}");
        return Err(vec![Fault::new(node.line(), message)]);
    };
    let mut team = None;
    let mut keys = None;
    let mut faults = Vec::new();
    for (key, value) in fields {
        match (key.value.as_str(), value) {
            ("team", Node::Scalar(name)) => team = Some(name),
            ("team", other) => {
                let message = format!("`team` must be a string, found {}", other.kind());
                faults.push(Fault::new(other.line(), message));
            }
            ("ssh_keys", value) => match key_list(value) {
                Ok(list) => keys = Some(list),
                Err(fault) => faults.push(fault),
            },
            (field, _) => faults.push(Fault::new(
                key.line,
                format!("unknown field `{field}` in team entry (expected `team` and `ssh_keys`)"),
            )),
        }
    }
    let team = match team {
        Some(name) if name.value.trim().is_empty() => {
            faults.push(Fault::new(name.line, "empty team name"));
            String::new()
        }
        Some(name) => name.value,
        None => {
            faults.push(Fault::new(line, "team entry has no `team:` name"));
            String::new()
        }
    };
    if !faults.is_empty() {
        return Err(faults);
    }
    Ok(TeamEntry {
        team,
        line,
        keys: keys.unwrap_or_default(),
    })
}

fn key_list(node: Node) -> Result<Vec<Text>, Fault> {
    match node {
        Node::List(_, items) => items
            .into_iter()
            .map(|item| match item {
                Node::Scalar(key) => Ok(key),
                other => Err(Fault::new(
                    other.line(),
                    format!(
                        "each ssh_keys item must be a key string, found {}",
                        other.kind()
                    ),
                )),
            })
            .collect(),
        // `ssh_keys:` with nothing after it.
        null if null.is_null() => Ok(Vec::new()),
        other => Err(Fault::new(
            other.line(),
            format!("`ssh_keys` must be a list of keys, found {}", other.kind()),
        )),
    }
}
