//! The rules file's schema: reading a YAML tree into key and team entries.
//!
//! ```yaml
//! keys:
//!   - key: ssh-ed25519 AAAA... alice@laptop
//!     owner: alice@example.com
//!     expires: 2027-06-30
//!     teams: [main, data]
//!   - key: ssh-ed25519 AAAA...
//!     owner: platform-oncall
//!     global: true
//!     networks: [10.0.0.0/8, "fd00::/8"]
//! teams:
//!   main:
//!     workers: ["main-*", "ci-??"]
//! ```
//!
//! Each entry is checked on its own here; what needs every file at once
//! (keys listed twice, teams a key names but nobody defines) is checked in
//! [`crate::rules`].

use keygate_policy_sdk::keys::{KeyError, PublicKeyData};
use keygate_policy_sdk::net::Cidr;
use keygate_policy_sdk::parse_rfc3339;
use keygate_policy_sdk::yaml::{Fault, Fields, Node, Text, push_err};

const TOP_FIELDS: &[&str] = &["keys", "teams"];
const KEY_FIELDS: &[&str] = &["key", "owner", "expires", "teams", "global", "networks"];
const TEAM_FIELDS: &[&str] = &["workers"];

/// Characters a worker pattern may not hold: whitespace aside, these look
/// like wildcards of other syntaxes (`[0-9]`, `{a,b}`, `\*`) that this
/// policy does not have, and would silently match nothing.
const NOT_WILDCARDS: &[char] = &['[', ']', '{', '}', '\\'];

/// One rules file, as written.
#[derive(Debug, Default)]
pub struct RuleFile {
    pub keys: Vec<KeyEntry>,
    pub teams: Vec<TeamEntry>,
}

/// One entry under `keys:`.
#[derive(Debug)]
pub struct KeyEntry {
    pub line: usize,
    pub key: PublicKeyData,
    pub owner: String,
    pub expires: Option<Expiry>,
    pub grant: EntryGrant,
}

/// When a key stops working: the instant, and the text it was written as
/// (which deny reasons quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub at: u64,
    pub text: String,
}

/// What a key entry may do.
#[derive(Debug)]
pub enum EntryGrant {
    /// Act for these teams, each with the line that names it.
    Teams(Vec<Text>),
    /// Act for every team, from these networks only.
    Global(Vec<Cidr>),
}

/// One entry under `teams:`.
#[derive(Debug)]
pub struct TeamEntry {
    pub name: Text,
    pub workers: Vec<String>,
}

/// Read a whole file. Well-formed entries are returned even when others
/// are faulty, so that every fault is found in one load.
pub fn read(root: Option<Node>) -> (RuleFile, Vec<Fault>) {
    let mut faults = Vec::new();
    let mut file = RuleFile::default();
    let Some(root) = root else {
        return (file, faults);
    };
    let mut fields = match Fields::of(root, "a mapping with `keys:` and `teams:`") {
        Ok(fields) => fields,
        Err(fault) => return (file, vec![fault]),
    };
    fields.check(TOP_FIELDS, "the rules", &mut faults);
    if let Some(node) = fields.take("keys") {
        file.keys = node
            .into_list("keys", &mut faults)
            .into_iter()
            .filter_map(|item| key_entry(item, &mut faults))
            .collect();
    }
    if let Some(node) = fields.take("teams") {
        file.teams = team_entries(node, &mut faults);
    }
    (file, faults)
}

fn key_entry(node: Node, faults: &mut Vec<Fault>) -> Option<KeyEntry> {
    let what = "a key entry (`key:`, `owner:`, ...)";
    let mut fields = push_err(Fields::of(node, what), faults)?;
    let before = faults.len();
    fields.check(KEY_FIELDS, "key entry", faults);
    let key = fields
        .string("key", "key entry", faults)
        .and_then(|text| push_err(public_key(&text), faults));
    let owner = fields.string("owner", "key entry", faults);
    let expires = fields
        .take("expires")
        .and_then(|node| push_err(expiry(node), faults));
    let grant = grant(&mut fields, faults);
    if faults.len() > before {
        return None;
    }
    Some(KeyEntry {
        line: fields.line(),
        key: key?,
        owner: owner?.value.trim().to_owned(),
        expires,
        grant: grant?,
    })
}

fn public_key(text: &Text) -> Result<PublicKeyData, Fault> {
    PublicKeyData::parse(&text.value).map_err(|e| {
        let first = text.value.split_whitespace().next().unwrap_or("");
        let message = match e {
            KeyError::UnknownAlgorithm(_) if first.contains('=') => {
                "`key` takes a plain public key (ALGORITHM BASE64 [COMMENT]); \
                 authorized_keys options such as from= are not read here"
                    .to_owned()
            }
            other => format!("`key`: {other}"),
        };
        Fault::new(text.line, message)
    })
}

fn expiry(node: Node) -> Result<Expiry, Fault> {
    let text = node.into_string("expires")?;
    match parse_rfc3339(text.value.trim()) {
        Ok(at) => Ok(Expiry {
            at,
            text: text.value.trim().to_owned(),
        }),
        Err(e) => Err(Fault::new(text.line, format!("`expires`: {e}"))),
    }
}

/// The `global:`, `teams:` and `networks:` fields, which must agree.
fn grant(fields: &mut Fields, faults: &mut Vec<Fault>) -> Option<EntryGrant> {
    let line = fields.line();
    let before = faults.len();
    let global = match fields.take("global") {
        Some(node) => push_err(node.into_bool("global"), faults)?,
        None => false,
    };
    let teams = fields
        .take("teams")
        .map(|node| node.into_strings("teams", faults));
    let networks = fields.take("networks").map(|node| networks(node, faults));
    if faults.len() > before {
        // A faulty list is reported as such, not also as missing.
        return None;
    }
    let fault = |message: &str| Fault::new(line, message);
    let grant = match (global, teams, networks) {
        (true, Some(_), _) => Err(fault(
            "a global key acts for every team; drop `teams:` or `global: true`",
        )),
        (true, None, Some(networks)) if !networks.is_empty() => Ok(EntryGrant::Global(networks)),
        (true, None, _) => Err(fault(
            "a global key needs `networks:`, the CIDR networks it may be used from \
             (0.0.0.0/0 and ::/0 admit every address)",
        )),
        (false, _, Some(_)) => Err(fault(
            "`networks:` applies only to global keys (`global: true`)",
        )),
        (false, Some(teams), None) if !teams.is_empty() => Ok(EntryGrant::Teams(teams)),
        (false, _, None) => Err(fault(
            "the key has no teams; list them under `teams:` or set `global: true`",
        )),
    };
    push_err(grant, faults)
}

fn networks(node: Node, faults: &mut Vec<Fault>) -> Vec<Cidr> {
    node.into_strings("networks", faults)
        .into_iter()
        .filter_map(|text| {
            let cidr = Cidr::parse(text.value.trim());
            push_err(
                cidr.map_err(|e| Fault::new(text.line, format!("`networks`: {e}"))),
                faults,
            )
        })
        .collect()
}

fn team_entries(node: Node, faults: &mut Vec<Fault>) -> Vec<TeamEntry> {
    let entries = match node {
        Node::Map(_, entries) => entries,
        null if null.is_null() => return Vec::new(),
        other => {
            let found = other.kind();
            let message = format!("`teams` must map team names to `workers:`, found {found}");
            faults.push(Fault::new(other.line(), message));
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter_map(|(name, node)| team_entry(name, node, faults))
        .collect()
}

fn team_entry(name: Text, node: Node, faults: &mut Vec<Fault>) -> Option<TeamEntry> {
    let before = faults.len();
    let team = name.value.trim();
    if team.is_empty() {
        faults.push(Fault::new(name.line, "empty team name"));
    }
    let what = format!("team {team}'s rules (`workers:`)");
    let mut fields = push_err(Fields::of(node, &what), faults)?;
    fields.check(TEAM_FIELDS, &format!("team {team}"), faults);
    let workers = match fields.take("workers") {
        Some(node) => node.into_strings("workers", faults),
        None => Vec::new(),
    };
    if workers.is_empty() && faults.len() == before {
        let message = format!("team {team} has no worker patterns; list some under `workers:`");
        faults.push(Fault::new(fields.line(), message));
    }
    for pattern in &workers {
        push_err(check_pattern(pattern, team), faults);
    }
    if faults.len() > before {
        return None;
    }
    Some(TeamEntry {
        name: Text {
            line: name.line,
            value: team.to_owned(),
        },
        workers: workers.into_iter().map(|text| text.value).collect(),
    })
}

/// A worker pattern may hold any character but whitespace, control
/// characters and the [`NOT_WILDCARDS`].
fn check_pattern(pattern: &Text, team: &str) -> Result<(), Fault> {
    let text = pattern.value.as_str();
    let bad = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || NOT_WILDCARDS.contains(c));
    match bad {
        None => Ok(()),
        Some(c) => Err(Fault::new(
            pattern.line,
            format!(
                "worker pattern `{}` of team {team} holds {c:?}; \
                 patterns have only the wildcards `*` and `?`, and no spaces",
                text.escape_debug()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
