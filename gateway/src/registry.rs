//! The registry of workers connected through this gateway.
//!
//! A worker enters when its `forward-worker` command is allowed and leaves
//! when that command's channel or its SSH connection closes, or when it is
//! deleted. Names are unique: a worker re-registering under its name (after
//! a reconnect, say) replaces its earlier entry, but only within the same
//! team, so one team cannot take over another team's worker name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{Fingerprint, Team, WorkerName};

/// A worker's state, in Concourse's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Registered and heartbeating.
    Running,
    /// `land-worker` was called: draining before it goes away.
    Landing,
    /// `retire-worker` was called: draining before removal for good.
    Retiring,
}

impl WorkerState {
    /// The state's name in JSON and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Landing => "landing",
            WorkerState::Retiring => "retiring",
        }
    }
}

/// One registered worker, as `GET /api/v1/workers` shows it: the worker's own
/// JSON (Concourse's worker shape) with `addr` and `baggageclaim_url`
/// rewritten to the gateway side, plus keygate's fields.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRecord {
    /// The worker's name.
    pub name: WorkerName,
    /// Its team; absent for a worker serving every team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<Team>,
    /// Its state.
    pub state: WorkerState,
    /// Fingerprint of the key its connection authenticated with.
    pub key_fingerprint: Fingerprint,
    /// Client address of its connection.
    pub client_addr: String,
    /// The SSH connection's id, as in the logs.
    pub connection_id: u64,
    /// When it registered, seconds since the Unix epoch.
    pub connected_at: u64,
    /// Last heartbeat, seconds since the Unix epoch.
    pub last_heartbeat: u64,
    /// Every other field of the worker's JSON, as sent.
    #[serde(flatten)]
    pub payload: Map<String, Value>,
}

struct Entry {
    record: WorkerRecord,
    generation: u64,
}

/// Why a registration was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("worker name {name} is already registered by {owner}")]
pub struct NameTaken {
    name: WorkerName,
    owner: String,
}

/// All registered workers.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    workers: HashMap<WorkerName, Entry>,
    next_generation: u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is a single insert or remove), so a poisoned lock
        // is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add or replace a worker. Returns the registration's generation, which
    /// later calls use so that a stale session cannot touch a newer entry.
    pub fn register(&self, record: WorkerRecord) -> Result<u64, NameTaken> {
        let mut inner = self.lock();
        if let Some(existing) = inner.workers.get(&record.name)
            && existing.record.team != record.team
        {
            let owner = match &existing.record.team {
                Some(team) => format!("team {team}"),
                None => "a global worker".to_owned(),
            };
            return Err(NameTaken {
                name: record.name.clone(),
                owner,
            });
        }
        inner.next_generation += 1;
        let generation = inner.next_generation;
        inner
            .workers
            .insert(record.name.clone(), Entry { record, generation });
        Ok(generation)
    }

    /// The team and connection of a registered worker.
    pub fn owner(&self, name: &WorkerName) -> Option<(Option<Team>, u64)> {
        let inner = self.lock();
        inner
            .workers
            .get(name)
            .map(|e| (e.record.team.clone(), e.record.connection_id))
    }

    /// Record a heartbeat; false if the registration is gone.
    pub fn heartbeat(&self, name: &WorkerName, generation: u64) -> bool {
        let mut inner = self.lock();
        match inner.workers.get_mut(name) {
            Some(entry) if entry.generation == generation => {
                entry.record.last_heartbeat = unix_now();
                true
            }
            _ => false,
        }
    }

    /// Change a worker's state; false if it is not registered.
    pub fn set_state(&self, name: &WorkerName, state: WorkerState) -> bool {
        let mut inner = self.lock();
        match inner.workers.get_mut(name) {
            Some(entry) => {
                entry.record.state = state;
                true
            }
            None => false,
        }
    }

    /// Remove a worker by name; false if it was not registered.
    pub fn delete(&self, name: &WorkerName) -> bool {
        self.lock().workers.remove(name).is_some()
    }

    /// Remove one registration, if it is still the current one.
    pub fn remove(&self, name: &WorkerName, generation: u64) {
        let mut inner = self.lock();
        if inner
            .workers
            .get(name)
            .is_some_and(|e| e.generation == generation)
        {
            inner.workers.remove(name);
        }
    }

    /// Remove every worker registered over one connection.
    pub fn remove_connection(&self, connection_id: u64) -> usize {
        let mut inner = self.lock();
        let before = inner.workers.len();
        inner
            .workers
            .retain(|_, e| e.record.connection_id != connection_id);
        before - inner.workers.len()
    }

    /// Workers of a connection with their teams, for re-checking them.
    pub fn of_connection(&self, connection_id: u64) -> Vec<(WorkerName, Option<Team>)> {
        let inner = self.lock();
        inner
            .workers
            .values()
            .filter(|e| e.record.connection_id == connection_id)
            .map(|e| (e.record.name.clone(), e.record.team.clone()))
            .collect()
    }

    /// Every worker, or one team's, sorted by name.
    pub fn list(&self, team: Option<&str>) -> Vec<WorkerRecord> {
        let inner = self.lock();
        let mut out: Vec<WorkerRecord> = inner
            .workers
            .values()
            .filter(|e| {
                team.is_none_or(|t| e.record.team.as_ref().is_some_and(|x| x.as_str() == t))
            })
            .map(|e| e.record.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Worker counts by (team, state); the global scope's team is "".
    pub fn counts(&self) -> Vec<((String, &'static str), usize)> {
        let inner = self.lock();
        let mut counts: HashMap<(String, &'static str), usize> = HashMap::new();
        for entry in inner.workers.values() {
            let team = entry
                .record
                .team
                .as_ref()
                .map_or_else(String::new, |t| t.to_string());
            *counts
                .entry((team, entry.record.state.as_str()))
                .or_default() += 1;
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, team: Option<&str>, conn: u64) -> WorkerRecord {
        WorkerRecord {
            name: WorkerName::new(name),
            team: team.map(Team::new),
            state: WorkerState::Running,
            key_fingerprint: crate::domain::KeyIdentity::from_openssh(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINF4cdaNFl+Uhb11GUEeH5KI4Gh/LfZMvRQWJSlIRpai",
            )
            .unwrap()
            .fingerprint()
            .clone(),
            client_addr: "127.0.0.1".into(),
            connection_id: conn,
            connected_at: 0,
            last_heartbeat: 0,
            payload: Map::new(),
        }
    }

    #[test]
    fn names_belong_to_a_team() {
        let registry = Registry::default();
        let first = registry.register(record("w1", Some("a"), 1)).unwrap();
        assert!(registry.register(record("w1", Some("b"), 2)).is_err());
        assert!(registry.register(record("w1", None, 2)).is_err());
        let second = registry.register(record("w1", Some("a"), 2)).unwrap();
        // The replaced registration can no longer heartbeat or remove.
        assert!(!registry.heartbeat(&WorkerName::new("w1"), first));
        registry.remove(&WorkerName::new("w1"), first);
        assert!(registry.heartbeat(&WorkerName::new("w1"), second));
        assert_eq!(registry.remove_connection(2), 1);
        assert!(registry.list(None).is_empty());
    }

    #[test]
    fn list_filters_by_team() {
        let registry = Registry::default();
        registry.register(record("b", Some("a"), 1)).unwrap();
        registry.register(record("a", Some("a"), 1)).unwrap();
        registry.register(record("g", None, 1)).unwrap();
        let names: Vec<_> = registry
            .list(Some("a"))
            .into_iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(registry.list(None).len(), 3);
    }
}
