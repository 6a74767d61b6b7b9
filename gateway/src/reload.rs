//! Hot reload: every trigger (SIGHUP, a changed file, `POST /reload`) runs
//! the same path.
//!
//! A reload reads the module and every input, compiles the module if it
//! changed (or takes it from the compiled-module cache), and runs `init` on
//! fresh instances, all on a blocking thread while the old policy serves. Only when all of that
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
//!
//! The shadow policy (`--shadow-policy`) is reloaded by the same triggers,
//! with the same inputs, after the active one. Either can fail without the
//! other: a failed shadow reload keeps the previous shadow and is shown
//! under `shadow` on `GET /status`.

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
    Action, DecisionRequest, LoadedPolicy, Outcome, PolicyInputs, PolicyRuntime, PolicySource,
    load_policy,
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
    shadow: Option<(PolicySource, PolicyInputs)>,
    inputs: PolicyInputs,
    gateway: Arc<Gateway>,
    revoke: bool,
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<ReloadRecord>>,
    last_error: Mutex<Option<ReloadRecord>>,
    shadow_error: Mutex<Option<ReloadRecord>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for `gateway`'s policy and, if `shadow` is given, its
    /// shadow policy and the shadow's inputs.
    pub fn new(
        runtime: PolicyRuntime,
        source: PolicySource,
        shadow: Option<(PolicySource, PolicyInputs)>,
        inputs: PolicyInputs,
        gateway: Arc<Gateway>,
        revoke: bool,
    ) -> Reloader {
        Reloader {
            runtime,
            source,
            shadow,
            inputs,
            gateway,
            revoke,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            last_error: Mutex::new(None),
            shadow_error: Mutex::new(None),
        }
    }

    /// Every file whose change should trigger a reload.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.inputs.paths();
        let shadow = self.shadow.iter().map(|(source, _)| source);
        for source in std::iter::once(&self.source).chain(shadow) {
            if let PolicySource::File(path) = source {
                files.push(path.clone());
            }
        }
        if let Some((_, inputs)) = &self.shadow {
            files.extend(inputs.paths());
        }
        files.sort();
        files.dedup();
        files
    }

    /// Load `source` off the async threads, reusing `previous`'s compiled
    /// code if the module is unchanged.
    async fn load(
        &self,
        source: &PolicySource,
        inputs: &PolicyInputs,
        previous: Option<Arc<LoadedPolicy>>,
    ) -> Result<LoadedPolicy, String> {
        let (runtime, source, inputs) = (self.runtime.clone(), source.clone(), inputs.clone());
        tokio::task::spawn_blocking(move || {
            load_policy(&runtime, &source, &inputs, previous.as_deref())
        })
        .await
        .map_err(|e| format!("reload task failed; {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()))
    }

    /// Reload now: the active policy, then the shadow. The error is the
    /// reason the old active policy is still serving.
    pub async fn reload(&self, trigger: &str) -> Result<(), String> {
        let _one_at_a_time = self.running.lock().await;
        let result = self.reload_active(trigger).await;
        // Revoke before the shadow loads: a large shadow can take seconds to
        // compile, and a removed key must not stay connected meanwhile.
        if result.is_ok() && self.revoke {
            self.revoke_denied().await;
        }
        if let Some((source, inputs)) = &self.shadow {
            self.reload_shadow(source, inputs, trigger).await;
        }
        result
    }

    async fn reload_active(&self, trigger: &str) -> Result<(), String> {
        let loaded = self
            .load(&self.source, &self.inputs, Some(self.gateway.policy()))
            .await;
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
        Ok(())
    }

    async fn reload_shadow(&self, source: &PolicySource, inputs: &PolicyInputs, trigger: &str) {
        match self.load(source, inputs, self.gateway.shadow()).await {
            Ok(policy) => {
                let digest = policy.digest().short();
                self.gateway.publish_shadow(policy);
                tracing::info!(trigger, shadow.digest = %digest, "shadow policy reloaded");
                self.gateway.metrics.shadow_reload("success");
                *lock(&self.shadow_error) = None;
            }
            Err(error) => {
                tracing::error!(trigger, %error, "shadow reload failed; the previous shadow keeps running");
                self.gateway.metrics.shadow_reload("failure");
                *lock(&self.shadow_error) = Some(ReloadRecord {
                    at: unix_now(),
                    trigger: trigger.to_owned(),
                    error: Some(error),
                });
            }
        }
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
            let mut denial = denied(
                gateway
                    .decide(id, request(Action::Connect, None, None))
                    .await,
            );
            if denial.is_none() {
                for (worker, team) in gateway.registry.of_connection(id) {
                    denial = denied(
                        gateway
                            .decide(id, request(Action::Register, team, Some(worker)))
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

    /// The active policy, the shadow and the last reloads, for
    /// `GET /status`.
    pub fn status(&self, gateway: &Gateway) -> Value {
        let shadow = gateway.shadow().map(|shadow| {
            let (decisions, disagreements) = gateway.metrics.shadow_counts();
            let mut status = describe(&shadow);
            if let Some(fields) = status.as_object_mut() {
                fields.insert("decisions".into(), json!(decisions));
                fields.insert("disagreements".into(), json!(disagreements));
                fields.insert(
                    "last_error".into(),
                    json!(render(&lock(&self.shadow_error))),
                );
            }
            status
        });
        json!({
            "policy": describe(&gateway.policy()),
            "shadow": shadow,
            "last_reload": render(&lock(&self.last)),
            "last_error": render(&lock(&self.last_error)),
            "sessions": gateway.sessions().len(),
            "workers": gateway.registry.list(None).len(),
            "audit": gateway.audit().map(|a| json!({"written": a.written(), "dropped": a.dropped()})),
        })
    }
}

/// A loaded policy as `GET /status` shows it.
fn describe(policy: &LoadedPolicy) -> Value {
    let loaded_at = policy
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let inputs: Vec<Value> = policy
        .inputs
        .iter()
        .map(|i| json!({"path": i.path.display().to_string(), "digest": i.digest.to_string()}))
        .collect();
    let compiled = policy.compiled();
    json!({
        "digest": policy.digest().to_string(),
        "source": policy.source().to_string(),
        "loaded_at": loaded_at,
        "compile_ms": compiled.compile_time.as_millis(),
        "from_cache": compiled.from_cache,
        "init_ms": policy.init_time.as_millis(),
        "inputs": inputs,
        "summary": policy.summary,
        "warnings": policy.warnings,
        "faults": policy.faults(),
    })
}

fn render(record: &Option<ReloadRecord>) -> Option<Value> {
    record.as_ref().map(|r| {
        let result = if r.error.is_some() {
            "failure"
        } else {
            "success"
        };
        json!({"at": r.at, "trigger": r.trigger, "result": result, "error": r.error})
    })
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
        if let Some(audit) = reloader.gateway.audit() {
            audit.reopen();
        }
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
