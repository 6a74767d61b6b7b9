//! The rules of every input, merged and cross-checked into the index that
//! `authorize` reads.

use std::collections::HashMap;
use std::fmt::Write as _;

use keygate_policy_sdk::net::Cidr;
use keygate_policy_sdk::{InitReport, Input, yaml};

use crate::entry::{self, EntryGrant, Expiry, KeyEntry, TeamEntry};

/// The prefix of the inputs this policy reads (`--policy-input FILE`).
const INPUT_PREFIX: &str = "policy-input:";

/// At most this many faults are listed in a failed load's message; the
/// count of the rest follows.
const MAX_LISTED_FAULTS: usize = 50;

/// Every key and team, as `authorize` needs them.
#[derive(Debug, Default)]
pub struct Rules {
    /// Keyed by the one-line form `ALGORITHM BASE64`, which is what keygate
    /// sends as `request.key.openssh`.
    pub(crate) keys: HashMap<String, KeyRule>,
    pub(crate) teams: HashMap<String, TeamRule>,
}

/// What one key may do.
#[derive(Debug)]
pub(crate) struct KeyRule {
    /// `key SHA256:... (owner NAME)`, the key as deny reasons name it.
    pub label: String,
    pub expires: Option<Expiry>,
    pub grant: Grant,
}

/// The scope of a key.
#[derive(Debug)]
pub(crate) enum Grant {
    Teams(Vec<String>),
    Global(Vec<Cidr>),
}

/// The worker-name patterns of one team.
#[derive(Debug)]
pub(crate) struct TeamRule {
    pub workers: Vec<String>,
}

/// Collects entries, faults and warnings across the inputs.
#[derive(Debug, Default)]
struct Loader {
    keys: Vec<(String, KeyEntry)>,
    teams: Vec<(String, TeamEntry)>,
    faults: Vec<String>,
    paths: Vec<String>,
}

impl Rules {
    /// Read every input; any fault fails the load, listing them all.
    pub fn load(inputs: &[Input]) -> Result<(Rules, InitReport), String> {
        let mut loader = Loader::default();
        if inputs.is_empty() {
            loader
                .faults
                .push("no rules given; pass the rules file with --policy-input FILE".into());
        }
        for input in inputs {
            loader.input(input);
        }
        let rules = loader.merge();
        loader.finish(rules)
    }
}

impl Loader {
    fn input(&mut self, input: &Input) {
        let Some(path) = input.name.strip_prefix(INPUT_PREFIX) else {
            self.faults.push(format!(
                "input `{}` is not for this policy; it reads only --policy-input files",
                input.name
            ));
            return;
        };
        self.paths.push(path.to_owned());
        let Ok(text) = std::str::from_utf8(&input.data) else {
            self.faults.push(format!("{path}: not UTF-8 text"));
            return;
        };
        let (file, faults) = match yaml::parse(text) {
            Ok(root) => entry::read(root),
            Err(fault) => (entry::RuleFile::default(), vec![fault]),
        };
        self.faults
            .extend(faults.iter().map(|fault| fault.in_file(path)));
        self.keys
            .extend(file.keys.into_iter().map(|k| (path.to_owned(), k)));
        self.teams
            .extend(file.teams.into_iter().map(|t| (path.to_owned(), t)));
    }

    /// Index the entries, faulting repeats and teams nobody defines.
    fn merge(&mut self) -> Rules {
        let mut rules = Rules::default();
        let mut team_lines: HashMap<String, String> = HashMap::new();
        for (path, team) in std::mem::take(&mut self.teams) {
            let here = format!("{path}:{}", team.name.line);
            let name = team.name.value;
            if let Some(first) = team_lines.get(&name) {
                self.faults.push(format!(
                    "{here}: team {name} is defined again (first at {first})"
                ));
                continue;
            }
            team_lines.insert(name.clone(), here);
            let rule = TeamRule {
                workers: team.workers,
            };
            rules.teams.insert(name, rule);
        }
        let mut key_lines: HashMap<String, String> = HashMap::new();
        for (path, key) in std::mem::take(&mut self.keys) {
            let here = format!("{path}:{}", key.line);
            let fingerprint = key.key.fingerprint();
            let openssh = key.key.to_openssh();
            if let Some(first) = key_lines.get(&openssh) {
                self.faults.push(format!(
                    "{here}: key {fingerprint} is listed again (first at {first})"
                ));
                continue;
            }
            self.check_teams(&path, &key, &rules);
            key_lines.insert(openssh.clone(), here);
            rules.keys.insert(openssh, key_rule(key, &fingerprint));
        }
        rules
    }

    fn check_teams(&mut self, path: &str, key: &KeyEntry, rules: &Rules) {
        let EntryGrant::Teams(teams) = &key.grant else {
            return;
        };
        for team in teams {
            let name = team.value.trim();
            if !rules.teams.contains_key(name) {
                self.faults.push(format!(
                    "{path}:{}: team {name} (key of {}) is not defined under `teams:`",
                    team.line, key.owner
                ));
            }
        }
    }

    fn finish(self, rules: Rules) -> Result<(Rules, InitReport), String> {
        if self.faults.is_empty() {
            let report = self.report(&rules);
            return Ok((rules, report));
        }
        let mut message = format!("{} error(s) in the rules:", self.faults.len());
        for fault in self.faults.iter().take(MAX_LISTED_FAULTS) {
            let _ = write!(message, "\n  {fault}");
        }
        if let Some(more) = self.faults.len().checked_sub(MAX_LISTED_FAULTS)
            && more > 0
        {
            let _ = write!(message, "\n  ... and {more} more");
        }
        Err(message)
    }

    fn report(&self, rules: &Rules) -> InitReport {
        let global = rules
            .keys
            .values()
            .filter(|k| matches!(k.grant, Grant::Global(_)))
            .count();
        let expiring = rules.keys.values().filter(|k| k.expires.is_some()).count();
        let mut report = InitReport::default()
            .summary(format!("inputs: {}", self.paths.join(", ")))
            .summary(format!(
                "keys: {} ({global} global, {expiring} with an expiry)",
                rules.keys.len()
            ))
            .summary(format!("teams: {}", rules.teams.len()));
        let mut teams: Vec<_> = rules.teams.iter().collect();
        teams.sort_by_key(|(name, _)| name.as_str());
        for (name, team) in teams {
            let keys = keys_of(rules, name);
            let patterns = team.workers.join(", ");
            report = report.summary(format!("  team {name}: {keys} keys, workers {patterns}"));
            if keys == 0 {
                report = report.warning(format!(
                    "team {name} has no keys of its own; only global keys can act for it"
                ));
            }
        }
        report
    }
}

fn key_rule(key: KeyEntry, fingerprint: &str) -> KeyRule {
    let grant = match key.grant {
        EntryGrant::Teams(teams) => {
            let mut names: Vec<String> = teams
                .into_iter()
                .map(|t| t.value.trim().to_owned())
                .collect();
            names.sort();
            names.dedup();
            Grant::Teams(names)
        }
        EntryGrant::Global(networks) => Grant::Global(networks),
    };
    KeyRule {
        label: format!("key {fingerprint} (owner {})", key.owner),
        expires: key.expires,
        grant,
    }
}

/// How many keys name `team`.
fn keys_of(rules: &Rules, team: &str) -> usize {
    let names = |k: &&KeyRule| matches!(&k.grant, Grant::Teams(t) if t.iter().any(|n| n == team));
    rules.keys.values().filter(names).count()
}

#[cfg(test)]
mod tests;
