//! One sandboxed policy instance: its store, its limits and the calls into
//! it.
//!
//! A policy reaches nothing but what this file gives it: the `host.log`
//! import, and the parts of WASI that Rust's standard library needs to start
//! at all, each stripped of authority. No directories are preopened, no
//! environment variables or arguments are set, every socket operation is
//! refused, stdin is empty and stdout is discarded. stderr is kept (up to
//! 4 KiB) only to explain a crash. The wall clock reads the time of the
//! request being decided (during `init`, the time the load started), so a
//! decision can be replayed; the monotonic clock and random numbers are
//! real.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::runtime::{CompiledPolicy, EPOCH_TICK, PolicyLimits, chain};
use super::{DecisionRequest, InputFile, Outcome, PolicyFault};
use crate::domain::KeyIdentity;

wasmtime::component::bindgen!({
    path: "../policy-sdk/wit",
    world: "keygate-policy",
});

use self::keygate::policy::host::{self, Level};
use self::keygate::policy::types as wit;

pub use wit::InitReport;

/// Most stderr kept from a policy, to explain a trap.
const STDERR_CAPACITY: usize = 4096;

/// Longest log line a policy may write; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

/// Host-side state of one instance.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    stderr: MemoryOutputPipe,
    policy: String,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for StoreState {}

impl host::Host for StoreState {
    fn log(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let policy = self.policy.as_str();
        match level {
            Level::Trace => tracing::trace!(policy.digest = policy, "policy: {message}"),
            Level::Debug => tracing::debug!(policy.digest = policy, "policy: {message}"),
            Level::Info => tracing::info!(policy.digest = policy, "policy: {message}"),
            Level::Warn => tracing::warn!(policy.digest = policy, "policy: {message}"),
            Level::Error => tracing::error!(policy.digest = policy, "policy: {message}"),
        }
    }
}

/// Caps linear memory and remembers whether the cap was hit, so that the
/// resulting trap can be reported as what it is.
struct MemoryCap {
    max: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes reached",
                self.max
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A wall clock that reads the time of the request being decided.
struct RequestClock(Arc<AtomicU64>);

impl HostWallClock for RequestClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::from_secs(self.0.load(Ordering::Relaxed))
    }
}

/// The linker every instance is created from: the contract's imports and
/// the WASI subset described above.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    KeygatePolicy::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A running policy instance.
pub(crate) struct PolicyInstance {
    store: Store<StoreState>,
    bindings: KeygatePolicy,
    clock: Arc<AtomicU64>,
    limits: PolicyLimits,
}

/// Why an instance could not start.
pub(crate) enum StartError {
    /// `init` returned an error: the inputs are bad.
    Rejected(String),
    /// Instantiation or `init` broke.
    Fault(PolicyFault),
}

impl PolicyInstance {
    /// Instantiate and run `init` on `inputs`.
    pub(crate) fn start(
        compiled: &CompiledPolicy,
        limits: &PolicyLimits,
        inputs: &[InputFile],
    ) -> Result<(PolicyInstance, InitReport), StartError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let clock = Arc::new(AtomicU64::new(now));
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(RequestClock(clock.clone()))
            .build();
        let max = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let state = StoreState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap { max, hit: false },
            stderr,
            policy: compiled.digest.short(),
        };
        let mut store = Store::new(compiled.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(ticks(limits.init_timeout));
        let init_ms = millis(limits.init_timeout);
        let bindings = compiled
            .pre
            .instantiate(&mut store)
            .map_err(|e| StartError::Fault(classify(&e, &store, init_ms)))?;
        let inputs: Vec<wit::Input> = inputs
            .iter()
            .map(|i| wit::Input {
                name: i.name.clone(),
                data: i.data.clone(),
            })
            .collect();
        let result = bindings
            .keygate_policy_policy()
            .call_init(&mut store, &inputs);
        let report = match result {
            Ok(Ok(report)) => report,
            Ok(Err(message)) => return Err(StartError::Rejected(message)),
            Err(e) => return Err(StartError::Fault(classify(&e, &store, init_ms))),
        };
        let instance = PolicyInstance {
            store,
            bindings,
            clock,
            limits: limits.clone(),
        };
        Ok((instance, report))
    }

    /// Ask the policy. A fault leaves the instance unusable: the caller must
    /// drop it and start a new one.
    pub(crate) fn authorize(&mut self, request: &DecisionRequest) -> Outcome {
        let now = request.unix_time();
        self.clock.store(now, Ordering::Relaxed);
        self.store
            .set_epoch_deadline(ticks(self.limits.decision_timeout));
        let wit_request = to_wit(request, now);
        match self
            .bindings
            .keygate_policy_policy()
            .call_authorize(&mut self.store, &wit_request)
        {
            Ok(wit::Decision::Allow) => Outcome::Allow,
            Ok(wit::Decision::Deny(reason)) => Outcome::Deny(reason),
            Err(e) => Outcome::Fault(classify(
                &e,
                &self.store,
                millis(self.limits.decision_timeout),
            )),
        }
    }
}

fn to_wit(request: &DecisionRequest, now: u64) -> wit::Request {
    let action = match &request.action {
        super::Action::Connect => wit::Action::Connect,
        super::Action::Register => wit::Action::Register,
        super::Action::Land => wit::Action::Land,
        super::Action::Retire => wit::Action::Retire,
        super::Action::Delete => wit::Action::Delete,
        super::Action::Other(name) => wit::Action::Other(name.to_string()),
    };
    wit::Request {
        action,
        team: request.team.as_ref().map(|t| t.as_str().to_owned()),
        user: request.user.clone(),
        key: to_wit_key(&request.key),
        certificate: None,
        client_addr: request.client.to_string(),
        worker: request.worker.as_ref().map(|w| w.as_str().to_owned()),
        now,
    }
}

fn to_wit_key(key: &KeyIdentity) -> wit::PublicKey {
    wit::PublicKey {
        algorithm: key.algorithm().to_owned(),
        fingerprint: key.fingerprint().as_str().to_owned(),
        openssh: key.openssh().to_owned(),
    }
}

/// Sort a failed call into timeout, memory or trap.
fn classify(error: &wasmtime::Error, store: &Store<StoreState>, timeout_ms: u64) -> PolicyFault {
    if store.data().limiter.hit {
        return PolicyFault::Memory((store.data().limiter.max as u64) >> 20);
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return PolicyFault::Timeout(timeout_ms);
    }
    let mut detail = chain(error);
    let stderr = store.data().stderr.contents();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim();
    if !stderr.is_empty() {
        detail.push_str("; policy stderr: ");
        detail.push_str(stderr);
    }
    PolicyFault::Trap(detail)
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}
