//! Hot reload: every trigger (SIGHUP, a changed file, `POST /reload`) runs
//! the same path.
//!
//! A reload reads the module and every input, compiles the module if it
//! changed, and runs `init` on fresh instances. Only when all of that
//! succeeds is the new policy published, in one atomic swap; decisions
//! already running finish on the policy they started with. A failed reload
//! changes nothing: the previous policy keeps serving, and the error is
//! logged, counted and shown on `GET /status`.
//!
//! After a successful reload every authenticated connection is checked
//! again under the new policy (its `connect`, and `register` for each of
//! its workers' teams). Connections the new policy denies are closed, unless
//! `--no-revoke-on-reload` is set. A policy fault during this pass closes
//! nothing: faults refuse new requests, but never cut live workers off.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::gateway::Gateway;
use crate::policy::{
    Action, DecisionRequest, Outcome, PolicyInputs, PolicyRuntime, PolicySource, load_policy,
};
use crate::registry::unix_now;

/// Quiet time after a file event before reloading, so that a burst of
/// writes (an editor's save, a ConfigMap swap) causes one reload.
const DEBOUNCE: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
struct ReloadRecord {
    at: u64,
    trigger: String,
    error: Option<String>,
}

/// Runs reloads, one at a time, and remembers how the last one went.
pub struct Reloader {
    runtime: PolicyRuntime,
    source: PolicySource,
    inputs: PolicyInputs,
    gateway: Arc<Gateway>,
    revoke: bool,
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReloadRecord>>,
    last_error: Mutex<Option<ReloadRecord>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for `gateway`'s policy.
    pub fn new(
        runtime: PolicyRuntime,
        source: PolicySource,
        inputs: PolicyInputs,
        gateway: Arc<Gateway>,
        revoke: bool,
    ) -> Reloader {
        Reloader {
            runtime,
            source,
            inputs,
            gateway,
            revoke,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// Every file whose change should trigger a reload.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.inputs.paths();
        if let PolicySource::File(path) = &self.source {
            files.push(path.clone());
        }
        files
    }

    /// Reload now. The error is the reason the old policy is still serving.
    pub async fn reload(&self, trigger: &str) -> Result<(), String> {
        let _one_at_a_time = self.running.lock().await;
        let previous = self.gateway.policy();
        let (runtime, source, inputs) = (
            self.runtime.clone(),
            self.source.clone(),
            self.inputs.clone(),
        );
        let loaded = tokio::task::spawn_blocking(move || {
            load_policy(&runtime, &source, &inputs, Some(&previous))
        })
        .await
        .map_err(|e| format!("reload task failed; {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        let record = |error: Option<String>| ReloadRecord {
            at: unix_now(),
            trigger: trigger.to_owned(),
            error,
        };
        let policy = match loaded {
            Ok(policy) => policy,
            Err(error) => {
                tracing::error!(trigger, %error, "reload failed; the previous policy keeps serving");
                self.gateway.metrics.reload("failure");
                *lock(&self.last) = Some(record(Some(error.clone())));
                *lock(&self.last_error) = Some(record(Some(error.clone())));
                return Err(error);
            }
        };
        for warning in &policy.warnings {
            tracing::warn!(%warning, "policy warning");
        }
        let digest = policy.digest().short();
        let old = self.gateway.publish(policy);
        tracing::info!(trigger, policy.digest = %digest, previous.digest = %old.digest().short(), "policy reloaded");
        self.gateway.metrics.reload("success");
        *lock(&self.last) = Some(record(None));
        if self.revoke {
            self.revoke_denied().await;
        }
        Ok(())
    }

    /// Close every connection the active policy no longer allows.
    async fn revoke_denied(&self) {
        let gateway = &self.gateway;
        for (id, session) in gateway.sessions() {
            let request = |action, team, worker| DecisionRequest {
                action,
                team,
                user: session.user.clone(),
                key: session.key.clone(),
                client: session.client,
                worker,
                time: SystemTime::now(),
            };
            let mut denial = denied(gateway.decide(request(Action::Connect, None, None)).await);
            if denial.is_none() {
                for (worker, team) in gateway.registry.of_connection(id) {
                    denial = denied(
                        gateway
                            .decide(request(Action::Register, team, Some(worker)))
                            .await,
                    );
                    if denial.is_some() {
                        break;
                    }
                }
            }
            let Some(reason) = denial else { continue };
            tracing::info!(conn.id = id, key.fingerprint = %session.key.fingerprint(), %reason, "revoking session");
            gateway.metrics.revoked();
            gateway.registry.remove_connection(id);
            gateway.session_ended(id);
            let message = format!("access revoked: {reason}");
            let _ = session
                .handle
                .disconnect(russh::Disconnect::ByApplication, message, String::new())
                .await;
        }
    }

    /// The active policy and the last reloads, for `GET /status`.
    pub fn status(&self, gateway: &Gateway) -> Value {
        let policy = gateway.policy();
        let loaded_at = policy
            .loaded_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let inputs: Vec<Value> = policy
            .inputs
            .iter()
            .map(|i| json!({"path": i.path.display().to_string(), "digest": i.digest.to_string()}))
            .collect();
        let render = |r: &Option<ReloadRecord>| {
            r.as_ref().map(|r| json!({"at": r.at, "trigger": r.trigger, "result": if r.error.is_some() { "failure" } else { "success" }, "error": r.error}))
        };
        json!({
            "policy": {
                "digest": policy.digest().to_string(),
                "source": policy.source().to_string(),
                "loaded_at": loaded_at,
                "inputs": inputs,
                "summary": policy.summary,
                "warnings": policy.warnings,
                "faults": policy.faults(),
            },
            "last_reload": render(&lock(&self.last)),
            "last_error": render(&lock(&self.last_error)),
            "sessions": gateway.sessions().len(),
            "workers": gateway.registry.list(None).len(),
        })
    }
}

/// The reason to revoke, if the policy explicitly denied. A fault is not a
/// reason: it already refuses new requests, and turning a broken policy
/// into a mass disconnect of live workers would make the outage worse.
fn denied(outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::Deny(reason) => Some(reason),
        Outcome::Allow => None,
        Outcome::Fault(fault) => {
            tracing::warn!(%fault, "policy fault while re-checking a live session; it stays connected");
            None
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reload on every SIGHUP, forever.
pub async fn on_sighup(reloader: Arc<Reloader>) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    while hangups.recv().await.is_some() {
        let _ = reloader.reload("sighup").await;
    }
    Ok(())
}

/// Reloads when a watched file changes. Watches the files' directories, not
/// the files: editors save by renaming a new file over the old one, and
/// Kubernetes updates a mounted ConfigMap by swapping a `..data` symlink;
/// a watch on the old file would see neither.
#[derive(Debug)]
pub struct FileWatch {
    reloader: Arc<Reloader>,
    // Dropping the watcher ends the watch; it lives as long as the loop.
    _watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::Receiver<()>,
}

impl FileWatch {
    /// Install the watches now, so that no change made after this returns
    /// can be missed.
    pub fn start(reloader: Arc<Reloader>) -> anyhow::Result<FileWatch> {
        let files = reloader.watched_files();
        let (tx, events) = mpsc::channel(1);
        if files.is_empty() {
            return Ok(FileWatch {
                reloader,
                _watcher: None,
                events,
            });
        }
        let names: HashSet<OsString> = files
            .iter()
            .filter_map(|f| f.file_name().map(Into::into))
            .collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && relevant(&event, &names)
                {
                    let _ = tx.try_send(());
                }
            })?;
        let dirs: HashSet<PathBuf> = files.iter().map(|f| parent_dir(f)).collect();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| {
                    anyhow::anyhow!("failed to watch {} for changes; {e}", dir.display())
                })?;
            tracing::info!(dir = %dir.display(), "watching for changes");
        }
        Ok(FileWatch {
            reloader,
            _watcher: Some(watcher),
            events,
        })
    }

    /// Reload after each burst of changes, forever.
    pub async fn run(mut self) {
        while self.events.recv().await.is_some() {
            while tokio::time::timeout(DEBOUNCE, self.events.recv())
                .await
                .is_ok_and(|m| m.is_some())
            {}
            let _ = self.reloader.reload("file-change").await;
        }
    }
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A change to one of the files, or to Kubernetes' `..data`-style entries.
/// Reads (access events) never count: the reload itself reads the files.
fn relevant(event: &notify::Event, names: &HashSet<OsString>) -> bool {
    if !matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    ) {
        return false;
    }
    event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
    })
}
