//! Deciding one request against the loaded rules.
//!
//! The checks run in a fixed order and the first that fails gives the deny
//! reason: the action must be known, the key listed and not expired, a
//! global key used from one of its networks; then, for worker actions, the
//! key must cover the team and the worker's name must match one of the
//! team's patterns.

use std::net::IpAddr;

use keygate_policy_sdk::glob::glob_match;
use keygate_policy_sdk::net::Cidr;
use keygate_policy_sdk::{Action, Decision, Request};

use crate::rules::{Grant, KeyRule, Rules, TeamRule};

impl Rules {
    /// Decide one request.
    pub fn authorize(&self, request: &Request) -> Decision {
        match self.check(request) {
            Ok(()) => Decision::Allow,
            Err(reason) => Decision::deny(reason),
        }
    }

    fn check(&self, request: &Request) -> Result<(), String> {
        let acts_on_worker = match &request.action {
            Action::Connect => false,
            Action::Register | Action::Land | Action::Retire | Action::Delete => true,
            Action::Other(name) => {
                return Err(format!("action `{name}` is not known to this policy"));
            }
        };
        let key = self
            .keys
            .get(request.key.openssh.as_str())
            .ok_or_else(|| format!("key {} is not in the rules", request.key.fingerprint))?;
        key.check_expiry(request.now)?;
        if let Grant::Global(networks) = &key.grant {
            key.check_network(networks, &request.client_addr)?;
        }
        if !acts_on_worker {
            return Ok(());
        }
        let Some(team) = request.team.as_deref() else {
            return match key.grant {
                Grant::Global(_) => Ok(()),
                Grant::Teams(_) => Err(format!(
                    "{} is not a global key; only global keys may act for all teams",
                    key.label
                )),
            };
        };
        key.check_team(team)?;
        let rule = self.teams.get(team).ok_or_else(|| {
            format!("team {team} is not defined in the rules; no worker may act for it")
        })?;
        rule.check_worker(team, request.worker.as_deref())
    }
}

impl KeyRule {
    fn check_expiry(&self, now: u64) -> Result<(), String> {
        match &self.expires {
            Some(expiry) if now >= expiry.at => {
                Err(format!("{} expired at {}", self.label, expiry.text))
            }
            _ => Ok(()),
        }
    }

    fn check_network(&self, networks: &[Cidr], client: &str) -> Result<(), String> {
        let inside = client
            .parse::<IpAddr>()
            .is_ok_and(|ip| networks.iter().any(|net| net.contains(ip)));
        if inside {
            return Ok(());
        }
        let list: Vec<String> = networks.iter().map(Cidr::to_string).collect();
        Err(format!(
            "client address {client} is outside the networks of global {}: {}",
            self.label,
            list.join(", ")
        ))
    }

    fn check_team(&self, team: &str) -> Result<(), String> {
        match &self.grant {
            Grant::Teams(teams) if !teams.iter().any(|t| t == team) => Err(format!(
                "{} is not in team {team} (its teams: {})",
                self.label,
                teams.join(", ")
            )),
            _ => Ok(()),
        }
    }
}

impl TeamRule {
    fn check_worker(&self, team: &str, worker: Option<&str>) -> Result<(), String> {
        let patterns = self.workers.join(", ");
        let Some(worker) = worker else {
            return Err(format!(
                "no worker name given; team {team} admits only workers matching {patterns}"
            ));
        };
        if self.workers.iter().any(|p| glob_match(p, worker)) {
            Ok(())
        } else {
            Err(format!(
                "worker `{worker}` matches none of team {team}'s worker patterns: {patterns}"
            ))
        }
    }
}

#[cfg(test)]
mod tests;
