//! The Wasm engine, shared by every policy: compilation, the deadline clock
//! and the checks that a module really is a keygate policy.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::PolicySource;
use super::cache::{Lookup, ModuleCache};
use super::inputs::InputError;
use super::instance::{KeygatePolicyPre, StoreState};

/// How often the deadline clock ticks. Deadlines are rounded up to it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The WIT world a policy must implement.
pub const WORLD: &str = "keygate:policy/keygate-policy@0.1.0";

/// Bounds on every policy call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLimits {
    /// CPU time one `authorize` call may take.
    pub decision_timeout: Duration,
    /// CPU time `init` may take.
    pub init_timeout: Duration,
    /// Linear memory one instance may grow to.
    pub memory_bytes: u64,
    /// Instances serving decisions side by side.
    pub instances: usize,
    /// Decisions that may wait for a free instance before new ones are
    /// refused.
    pub queue: usize,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PolicyLimits {
            decision_timeout: Duration::from_millis(100),
            init_timeout: Duration::from_secs(30),
            memory_bytes: 512 << 20,
            instances: cores.clamp(1, 8),
            queue: 1024,
        }
    }
}

/// SHA-256 of a module or input, shown in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The first 12 hex digits, enough to tell policies apart in logs.
    pub fn short(&self) -> String {
        self.to_string().chars().take(12).collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Why a policy could not be loaded. The message names the source and says
/// what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The module or an input file could not be read.
    #[error(transparent)]
    Read(#[from] InputError),
    /// The bytes are not WebAssembly at all.
    #[error("{policy}: not a WebAssembly file")]
    NotWasm { policy: PolicySource },
    /// A core module where a component is needed.
    #[error(
        "{policy}: is a core WebAssembly module, not a component; build the policy for \
         wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule { policy: PolicySource },
    /// Compilation failed.
    #[error("{policy}: failed to compile; {detail}")]
    Compile {
        policy: PolicySource,
        detail: String,
    },
    /// The component does not fit keygate's contract.
    #[error("{policy}: does not implement {WORLD}; {detail}")]
    World {
        policy: PolicySource,
        detail: String,
    },
    /// The policy's `init` refused its inputs.
    #[error("{policy}: init rejected the inputs:\n{message}")]
    Init {
        policy: PolicySource,
        message: String,
    },
    /// The policy's `init` broke.
    #[error("{policy}: init failed; {fault}")]
    InitFault {
        policy: PolicySource,
        fault: super::PolicyFault,
    },
}

/// A policy compiled and checked against the contract, ready to start.
pub struct CompiledPolicy {
    pub(crate) pre: KeygatePolicyPre<StoreState>,
    /// SHA-256 of the module's bytes.
    pub digest: Digest,
    /// Where the module came from.
    pub source: PolicySource,
    /// How long compilation (or loading from the cache) took.
    pub compile_time: Duration,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("digest", &self.digest)
            .field("source", &self.source)
            .finish()
    }
}

/// The engine and linker every policy runs on.
#[derive(Clone)]
pub struct PolicyRuntime {
    engine: Engine,
    linker: Arc<Linker<StoreState>>,
    limits: PolicyLimits,
    cache: Option<ModuleCache>,
}

impl fmt::Debug for PolicyRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyRuntime")
            .field("limits", &self.limits)
            .field("cache", &self.cache)
            .finish()
    }
}

impl PolicyRuntime {
    /// Set up the engine and start its deadline clock.
    pub fn new(limits: PolicyLimits) -> anyhow::Result<PolicyRuntime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.parallel_compilation(true);
        let engine =
            Engine::new(&config).map_err(|e| anyhow::anyhow!("failed to set up wasmtime; {e}"))?;
        let linker = super::instance::linker(&engine)
            .map_err(|e| anyhow::anyhow!("failed to link the policy host; {e}"))?;
        start_epoch_clock(&engine)?;
        Ok(PolicyRuntime {
            engine,
            linker: Arc::new(linker),
            limits,
            cache: None,
        })
    }

    /// Keep compiled modules in `dir` and load them from there when the same
    /// module is loaded again (see [`ModuleCache`]).
    pub fn with_cache(mut self, dir: &std::path::Path) -> anyhow::Result<PolicyRuntime> {
        self.cache = Some(ModuleCache::open(dir, &self.engine).map_err(anyhow::Error::msg)?);
        Ok(self)
    }

    /// The limits every policy started here runs under.
    pub fn limits(&self) -> &PolicyLimits {
        &self.limits
    }

    /// Compile a module and check it against the contract.
    pub fn compile(
        &self,
        source: &PolicySource,
        bytes: &[u8],
    ) -> Result<CompiledPolicy, LoadError> {
        let started = Instant::now();
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
                return Err(LoadError::CoreModule {
                    policy: source.clone(),
                });
            }
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => {
                return Err(LoadError::NotWasm {
                    policy: source.clone(),
                });
            }
        }
        let digest = Digest::of(bytes);
        let (component, from_cache) = self.component(source, &digest, bytes)?;
        let world = |e: wasmtime::Error| LoadError::World {
            policy: source.clone(),
            detail: chain(&e),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(world)?;
        let pre = KeygatePolicyPre::new(pre).map_err(world)?;
        Ok(CompiledPolicy {
            pre,
            digest,
            source: source.clone(),
            compile_time: started.elapsed(),
            from_cache,
        })
    }

    /// The compiled component: from the cache when it holds this module,
    /// else compiled now and stored there. A cache that fails is reported
    /// and bypassed; it never fails a load.
    fn component(
        &self,
        source: &PolicySource,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(Component, bool), LoadError> {
        if let Some(cache) = &self.cache {
            match cache.get(&self.engine, digest) {
                Lookup::Hit(component) => return Ok((component, true)),
                Lookup::Miss => {}
                Lookup::Invalid(why) => {
                    tracing::warn!(policy = %source, reason = %why, "ignored an invalid policy cache entry; compiling again");
                }
            }
        }
        let component =
            Component::from_binary(&self.engine, bytes).map_err(|e| LoadError::Compile {
                policy: source.clone(),
                detail: chain(&e),
            })?;
        if let Some(cache) = &self.cache
            && let Err(error) = cache.put(digest, &component)
        {
            tracing::warn!(policy = %source, %error, "failed to store the compiled policy in the cache");
        }
        Ok((component, false))
    }
}

/// Advance the engine's epoch every tick, forever, from a thread of its own.
/// Calls into a policy set their deadline in ticks of this clock.
fn start_epoch_clock(engine: &Engine) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("keygate-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| anyhow::anyhow!("failed to start the policy deadline clock; {e}"))?;
    Ok(())
}

/// An error and its causes on one line.
pub(crate) fn chain(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
