//! The key index: built once in `init`, read by every `authorize`.

use std::collections::HashMap;
use std::fmt::Write as _;

use keygate_policy_sdk::keys::{KeyOptions, PublicKeyData, parse_authorized_key};
use keygate_policy_sdk::{Action, Decision, InitReport, Input, Request};

use crate::yaml;

/// At most this many faults are listed in a failed load's message; the
/// count of the rest follows.
const MAX_LISTED_ERRORS: usize = 50;

/// Teams with more than this many are summarised without per-team lines.
const MAX_LISTED_TEAMS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Global,
    Team(u32),
}

#[derive(Debug)]
struct Grant {
    scope: Scope,
    options: KeyOptions,
}

/// Every key with the scopes it is granted in.
#[derive(Debug, Default)]
pub struct Index {
    team_names: Vec<String>,
    team_ids: HashMap<String, u32>,
    /// Keyed by the canonical one-line form (`ALGORITHM BASE64`), which is
    /// exactly what keygate sends as `request.key.openssh`: a lookup needs
    /// no decoding and no allocation. Keys are parsed and validated when the
    /// index is built, so equal text means equal algorithm and key data.
    keys: HashMap<String, Vec<Grant>>,
    /// Keys per team id, for the summary.
    team_key_counts: Vec<usize>,
    global_keys: usize,
}

/// Accumulates faults and warnings while the inputs are read.
#[derive(Default)]
struct Loader {
    index: Index,
    errors: Vec<String>,
    warnings: Vec<String>,
    /// Where each YAML team entry was first seen: (file, line).
    yaml_teams: HashMap<String, (String, usize)>,
    /// Where each (scope, key) was first granted, to report repeats.
    first_seen: HashMap<(Scope, PublicKeyData), String>,
    sources: Vec<String>,
}

impl Index {
    /// Build the index from keygate's inputs; see the crate docs for names.
    pub fn load(inputs: &[Input]) -> Result<(Index, InitReport), String> {
        let mut loader = Loader::default();
        if inputs.is_empty() {
            loader
                .warnings
                .push("no key inputs given; every key will be denied".into());
        }
        for input in inputs {
            loader.input(input);
        }
        loader.finish()
    }

    /// Decide one request.
    pub fn authorize(&self, request: &Request) -> Decision {
        let fingerprint = &request.key.fingerprint;
        let grants = self
            .keys
            .get(request.key.openssh.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let wanted = match (&request.action, &request.team) {
            (Action::Connect, _) => None,
            (Action::Other(name), _) => {
                return Decision::deny(format!("action `{name}` is not known to this policy"));
            }
            (_, Some(team)) => match self.team_ids.get(team) {
                Some(id) => Some(Scope::Team(*id)),
                None => Some(Scope::Global),
            },
            (_, None) => Some(Scope::Global),
        };
        let applicable = grants.iter().filter(|g| match wanted {
            None => true,
            Some(Scope::Global) => g.scope == Scope::Global,
            Some(team) => g.scope == Scope::Global || g.scope == team,
        });
        let mut client = None;
        let mut refusal = None;
        for grant in applicable {
            if grant.options.is_empty() {
                return Decision::Allow;
            }
            let ip = *client.get_or_insert_with(|| request.client_ip());
            match grant.options.check(ip, request.now) {
                Ok(()) => return Decision::Allow,
                Err(reason) => refusal = refusal.or(Some(reason)),
            }
        }
        Decision::deny(match (refusal, &request.team) {
            (Some(reason), _) => format!("key {fingerprint}: {reason}"),
            (None, _) if wanted.is_none() => {
                format!("key {fingerprint} is not authorized for any team")
            }
            (None, Some(team)) => format!("key {fingerprint} is not authorized for team {team}"),
            (None, None) => format!(
                "key {fingerprint} is not a global key; only global keys may act for all teams"
            ),
        })
    }

    fn team_id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.team_ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.team_names.len()).unwrap_or(u32::MAX);
        self.team_names.push(name.to_owned());
        self.team_ids.insert(name.to_owned(), id);
        self.team_key_counts.push(0);
        id
    }
}

impl Loader {
    fn input(&mut self, input: &Input) {
        let name = input.name.as_str();
        let Ok(text) = std::str::from_utf8(&input.data) else {
            self.errors
                .push(format!("{}: not UTF-8 text", display_name(name)));
            return;
        };
        if let Some(path) = name.strip_prefix("authorized-keys:") {
            self.authorized_keys(path, text, Scope::Global);
        } else if let Some(rest) = name.strip_prefix("team-authorized-keys:") {
            match rest.split_once(':') {
                Some((team, path)) if !team.trim().is_empty() => {
                    let id = self.index.team_id(team);
                    self.authorized_keys(path, text, Scope::Team(id));
                }
                _ => self.errors.push(format!(
                    "input `{name}`: empty team name (expected TEAM:FILE)"
                )),
            }
        } else if let Some(path) = name.strip_prefix("team-authorized-keys-file:") {
            self.yaml(path, text);
        } else {
            self.errors.push(format!(
                "unknown input `{name}`; this policy reads authorized-keys:, \
                 team-authorized-keys: and team-authorized-keys-file: inputs"
            ));
        }
        self.sources.push(display_name(name).to_owned());
    }

    fn authorized_keys(&mut self, path: &str, text: &str, scope: Scope) {
        for (index, line) in text.lines().enumerate() {
            self.key_line(path, index + 1, line, scope);
        }
    }

    fn yaml(&mut self, path: &str, text: &str) {
        let (entries, faults) = yaml::parse(text);
        self.errors
            .extend(faults.iter().map(|fault| fault.in_file(path)));
        if entries.is_empty() && self.errors.is_empty() {
            self.warnings.push(format!("{path}: no teams defined"));
        }
        for entry in entries {
            let team = entry.team.trim();
            if team != entry.team {
                let line = entry.line;
                self.warnings.push(format!(
                    "{path}:{line}: team name `{team}` has surrounding spaces; they are ignored"
                ));
            }
            if let Some((file, first)) = self.yaml_teams.get(team) {
                self.warnings.push(format!(
                    "{path}:{}: team {team} is listed again (first at {file}:{first}); its keys are merged",
                    entry.line
                ));
            } else {
                self.yaml_teams
                    .insert(team.to_owned(), (path.to_owned(), entry.line));
            }
            let id = self.index.team_id(team);
            if entry.keys.is_empty() {
                self.warnings
                    .push(format!("{path}:{}: team {team} has no keys", entry.line));
            }
            for key in entry.keys {
                let line = key.line;
                if key.value.trim().is_empty() {
                    self.errors
                        .push(format!("{path}:{line}: empty key in team {team}"));
                    continue;
                }
                self.key_line(path, line, &key.value, Scope::Team(id));
            }
        }
    }

    fn key_line(&mut self, path: &str, line: usize, text: &str, scope: Scope) {
        let key = match parse_authorized_key(text) {
            Ok(Some(key)) => key,
            Ok(None) => return,
            Err(message) => {
                let team = self.scope_label(scope);
                self.errors.push(format!("{path}:{line}: {message}{team}"));
                return;
            }
        };
        for warning in &key.warnings {
            self.warnings.push(format!("{path}:{line}: {warning}"));
        }
        let here = format!("{path}:{line}");
        match self.first_seen.get(&(scope, key.key.clone())) {
            Some(first) => {
                let team = self.scope_label(scope);
                self.warnings.push(format!(
                    "{here}: key {} repeats {first}{team}",
                    key.key.fingerprint()
                ));
            }
            None => {
                self.first_seen.insert((scope, key.key.clone()), here);
                match scope {
                    Scope::Global => self.index.global_keys += 1,
                    Scope::Team(id) => {
                        if let Some(count) = self.index.team_key_counts.get_mut(id as usize) {
                            *count += 1;
                        }
                    }
                }
            }
        }
        let grant = Grant {
            scope,
            options: key.options,
        };
        self.index
            .keys
            .entry(key.key.to_openssh())
            .or_default()
            .push(grant);
    }

    fn scope_label(&self, scope: Scope) -> String {
        match scope {
            Scope::Global => String::new(),
            Scope::Team(id) => match self.index.team_names.get(id as usize) {
                Some(name) => format!(" (team {name})"),
                None => String::new(),
            },
        }
    }

    fn finish(self) -> Result<(Index, InitReport), String> {
        if !self.errors.is_empty() {
            let mut message = format!("{} error(s) in the key inputs:", self.errors.len());
            for error in self.errors.iter().take(MAX_LISTED_ERRORS) {
                let _ = write!(message, "\n  {error}");
            }
            if self.errors.len() > MAX_LISTED_ERRORS {
                let _ = write!(
                    message,
                    "\n  ... and {} more",
                    self.errors.len() - MAX_LISTED_ERRORS
                );
            }
            return Err(message);
        }
        let report = self.report();
        Ok((self.index, report))
    }

    fn report(&self) -> InitReport {
        let index = &self.index;
        let team_keys: usize = index.team_key_counts.iter().sum();
        let mut report = InitReport::default()
            .summary(format!("inputs: {}", self.sources.join(", ")))
            .summary(format!(
                "teams: {} ({team_keys} team keys)",
                index.team_names.len()
            ))
            .summary(format!("global keys: {}", index.global_keys))
            .summary(format!("distinct keys: {}", index.keys.len()));
        if index.team_names.len() <= MAX_LISTED_TEAMS {
            let mut teams: Vec<_> = index
                .team_names
                .iter()
                .zip(&index.team_key_counts)
                .collect();
            teams.sort();
            for (name, count) in teams {
                report = report.summary(format!("  team {name}: {count} keys"));
            }
        }
        report.warnings = self.warnings.clone();
        report
    }
}

/// The path part of an input name, for messages.
fn display_name(name: &str) -> &str {
    if let Some(rest) = name.strip_prefix("team-authorized-keys:") {
        return rest.split_once(':').map_or(rest, |(_, path)| path);
    }
    name.split_once(':').map_or(name, |(_, path)| path)
}

#[cfg(test)]
mod tests;
