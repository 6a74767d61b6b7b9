//! A loaded policy: a few instances, each on a thread of its own, serving
//! decisions from one queue.
//!
//! Every instance ran `init` on the same inputs, so any of them can answer
//! any request. Instances live on plain threads rather than on the async
//! runtime: a policy call is CPU work bounded by its deadline, and WASI's
//! synchronous host calls must not run on a runtime thread. An instance that
//! faults is dropped and a fresh one is started in its place (running
//! `init` again); until it is ready the other instances carry the load.
//! Repeated faults keep being denied and counted, never retried as allows.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use super::instance::{InitReport, PolicyInstance, StartError};
use super::runtime::{CompiledPolicy, Digest, LoadError, PolicyLimits};
use super::{DecisionRequest, InputFile, Outcome, PolicyFault, PolicySource};

struct Job {
    request: DecisionRequest,
    reply: oneshot::Sender<Outcome>,
}

/// An input as it was when the policy loaded.
#[derive(Debug, Clone)]
pub struct LoadedInput {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of what was read.
    pub digest: Digest,
}

/// A policy that passed `init` and is serving decisions.
pub struct LoadedPolicy {
    compiled: Arc<CompiledPolicy>,
    /// What `init` reported.
    pub summary: Vec<String>,
    /// Warnings `init` reported.
    pub warnings: Vec<String>,
    /// The inputs it loaded.
    pub inputs: Vec<LoadedInput>,
    /// When it started serving.
    pub loaded_at: SystemTime,
    /// How long `init` took (the slowest instance).
    pub init_time: Duration,
    jobs: Sender<Job>,
    faults: Arc<AtomicU64>,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("digest", &self.digest())
            .field("source", self.source())
            .finish()
    }
}

impl LoadedPolicy {
    /// Start the instances and run `init` in each. Fails, stopping them all,
    /// if any instance fails to start.
    pub fn load(
        compiled: Arc<CompiledPolicy>,
        limits: &PolicyLimits,
        inputs: Vec<InputFile>,
    ) -> Result<LoadedPolicy, LoadError> {
        let started = Instant::now();
        let inputs = Arc::new(inputs);
        let (jobs, queue) = crossbeam_channel::bounded(limits.queue);
        let (ready_tx, ready_rx) = mpsc::channel();
        let faults = Arc::new(AtomicU64::new(0));
        for n in 0..limits.instances.max(1) {
            let worker = Worker {
                compiled: compiled.clone(),
                limits: limits.clone(),
                inputs: inputs.clone(),
                queue: queue.clone(),
                faults: faults.clone(),
            };
            let ready = ready_tx.clone();
            let name = format!("keygate-policy-{}-{n}", compiled.digest.short());
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || worker.run(ready));
            if let Err(e) = spawned {
                let fault = PolicyFault::Unavailable(format!("cannot start a thread; {e}"));
                return Err(LoadError::InitFault {
                    policy: compiled.source.clone(),
                    fault,
                });
            }
        }
        drop(ready_tx);
        let mut report = None;
        for result in ready_rx.iter() {
            let policy = compiled.source.clone();
            match result {
                Ok(r) => report = report.or(Some(r)),
                Err(StartError::Rejected(message)) => {
                    return Err(LoadError::Init { policy, message });
                }
                Err(StartError::Fault(fault)) => {
                    return Err(LoadError::InitFault { policy, fault });
                }
            }
        }
        let report = report.unwrap_or(InitReport {
            summary: Vec::new(),
            warnings: Vec::new(),
        });
        Ok(LoadedPolicy {
            compiled,
            summary: report.summary,
            warnings: report.warnings,
            inputs: inputs
                .iter()
                .map(|i| LoadedInput {
                    path: i.path.clone(),
                    digest: i.digest,
                })
                .collect(),
            loaded_at: SystemTime::now(),
            init_time: started.elapsed(),
            jobs,
            faults,
        })
    }

    /// SHA-256 of the policy module.
    pub fn digest(&self) -> Digest {
        self.compiled.digest
    }

    /// Where the module came from.
    pub fn source(&self) -> &PolicySource {
        &self.compiled.source
    }

    /// The compiled module, to start another load from without compiling.
    pub fn compiled(&self) -> &Arc<CompiledPolicy> {
        &self.compiled
    }

    /// Faults since this policy loaded.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Ask the policy, waiting asynchronously for a free instance.
    pub async fn decide(&self, request: DecisionRequest) -> Outcome {
        match self.submit(request) {
            Ok(reply) => reply.await.unwrap_or_else(|_| stopped()),
            Err(outcome) => outcome,
        }
    }

    /// Ask the policy from synchronous code (the CLI).
    pub fn decide_blocking(&self, request: DecisionRequest) -> Outcome {
        match self.submit(request) {
            Ok(reply) => reply.blocking_recv().unwrap_or_else(|_| stopped()),
            Err(outcome) => outcome,
        }
    }

    fn submit(&self, request: DecisionRequest) -> Result<oneshot::Receiver<Outcome>, Outcome> {
        let (reply, receiver) = oneshot::channel();
        match self.jobs.try_send(Job { request, reply }) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                Err(Outcome::Fault(PolicyFault::Unavailable(
                    "decision queue is full".into(),
                )))
            }
            Err(TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }
}

fn stopped() -> Outcome {
    Outcome::Fault(PolicyFault::Unavailable(
        "no policy instance is running".into(),
    ))
}

/// One instance's thread.
struct Worker {
    compiled: Arc<CompiledPolicy>,
    limits: PolicyLimits,
    inputs: Arc<Vec<InputFile>>,
    queue: Receiver<Job>,
    faults: Arc<AtomicU64>,
}

impl Worker {
    fn run(self, ready: mpsc::Sender<Result<InitReport, StartError>>) {
        let mut instance = match self.start() {
            Ok((instance, report)) => {
                let _ = ready.send(Ok(report));
                Some(instance)
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        drop(ready);
        for job in self.queue.iter() {
            if instance.is_none() {
                instance = self.restart();
            }
            let Some(current) = instance.as_mut() else {
                let fault = PolicyFault::Unavailable("instance could not be restarted".into());
                let _ = job.reply.send(Outcome::Fault(fault));
                continue;
            };
            let outcome = current.authorize(&job.request);
            let faulted = matches!(outcome, Outcome::Fault(_));
            if faulted {
                self.faults.fetch_add(1, Ordering::Relaxed);
            }
            let _ = job.reply.send(outcome);
            if faulted {
                instance = self.restart();
            }
        }
    }

    fn start(&self) -> Result<(PolicyInstance, InitReport), StartError> {
        PolicyInstance::start(&self.compiled, &self.limits, &self.inputs)
    }

    /// A fresh instance after a fault. Its `init` succeeded on these inputs
    /// before, so failure here is itself a fault; it is logged and retried
    /// on the next request.
    fn restart(&self) -> Option<PolicyInstance> {
        match self.start() {
            Ok((instance, _)) => Some(instance),
            Err(StartError::Rejected(message)) => {
                tracing::error!(policy.digest = %self.compiled.digest.short(), %message, "policy instance restart rejected its inputs");
                None
            }
            Err(StartError::Fault(fault)) => {
                tracing::error!(policy.digest = %self.compiled.digest.short(), %fault, "policy instance restart failed");
                None
            }
        }
    }
}
