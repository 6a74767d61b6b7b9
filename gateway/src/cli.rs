//! Command-line flags. Every flag can also be set from a `KEYGATE_*`
//! environment variable; a flag given on the command line wins.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::Team;
use crate::policy::{Action, PolicyInputs, PolicyLimits, PolicyRuntime, PolicySource};

/// An SSH gateway for CI workers whose every (team, key) decision is made by
/// a hot-swappable WebAssembly policy.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, max_term_width = 100)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log filter: a level (`info`, `debug`) or tracing directives
    /// (`keygate=debug,russh=warn`).
    #[arg(long, global = true, env = "KEYGATE_LOG", default_value = "info")]
    pub log: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// keygate's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: accept workers over SSH and serve the admin API.
    Serve(ServeArgs),
    /// Load the policy and inputs exactly as `serve` would and report on them.
    Check(PolicyArgs),
    /// Work with policies directly.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `keygate policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Ask the policy one question and print its decision as JSON.
    ///
    /// Exit status: 0 allow, 1 deny, 2 error (bad flags, unloadable policy,
    /// or a policy fault).
    Eval(EvalArgs),
    /// Run a table of cases against the policy: one line per case, then a
    /// summary. Exit status: 0 all passed, 1 some failed, 2 error.
    Test(PolicyTestArgs),
}

/// `keygate policy test` flags.
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// YAML list of cases: request fields and `expect: allow|deny`.
    #[arg(value_name = "CASES.yaml")]
    pub cases: PathBuf,

    /// Policy and inputs.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Flags shared by every command that loads a policy.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// OpenSSH authorized_keys file of global keys: workers for every team.
    #[arg(long, env = "KEYGATE_AUTHORIZED_KEYS", value_name = "FILE")]
    pub authorized_keys: Option<PathBuf>,

    /// authorized_keys file for one team, as TEAM:FILE. Repeatable, or
    /// several separated by commas (so paths cannot contain commas).
    #[arg(
        long,
        env = "KEYGATE_TEAM_AUTHORIZED_KEYS",
        value_name = "TEAM:FILE",
        value_parser = parse_team_file,
        value_delimiter = ','
    )]
    pub team_authorized_keys: Vec<(Team, PathBuf)>,

    /// YAML team-key file: a list of `- team: NAME` entries with `ssh_keys:`.
    #[arg(long, env = "KEYGATE_TEAM_AUTHORIZED_KEYS_FILE", value_name = "FILE")]
    pub team_authorized_keys_file: Option<PathBuf>,

    /// Any other document for a custom policy, passed to it as
    /// `policy-input:FILE`. Repeatable, or several separated by commas.
    /// Watched and reloaded like the key files.
    #[arg(
        long,
        env = "KEYGATE_POLICY_INPUT",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub policy_input: Vec<PathBuf>,

    /// Policy component (.wasm). Default: the embedded YAML team policy.
    #[arg(long, env = "KEYGATE_POLICY", value_name = "FILE.wasm")]
    pub policy: Option<PathBuf>,

    /// Time one policy decision may run before it is stopped and denied as a
    /// fault (wall-clock, measured in 5 ms ticks).
    #[arg(long, env = "KEYGATE_POLICY_TIMEOUT", value_parser = parse_duration, default_value = "100ms")]
    pub policy_timeout: Duration,

    /// Time the policy's instantiation and init may take on each load.
    #[arg(long, env = "KEYGATE_POLICY_INIT_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub policy_init_timeout: Duration,

    /// Linear memory cap of each policy instance, in MiB.
    #[arg(
        long,
        env = "KEYGATE_POLICY_MEMORY_MIB",
        value_name = "MIB",
        default_value_t = 512
    )]
    pub policy_memory_mib: u64,

    /// Policy instances deciding side by side. Default: the number of CPUs,
    /// at most 8.
    #[arg(long, env = "KEYGATE_POLICY_INSTANCES", value_name = "N")]
    pub policy_instances: Option<usize>,

    /// Directory of compiled policy modules, so a module seen before loads
    /// without compiling again. Must be owned by keygate's user and not
    /// writable by others. Default: $XDG_CACHE_HOME/keygate or
    /// ~/.cache/keygate, used when it can be created.
    #[arg(long, env = "KEYGATE_POLICY_CACHE", value_name = "DIR")]
    pub policy_cache: Option<PathBuf>,

    /// Compile every module on load; use no cache (overrides
    /// `--policy-cache`).
    #[arg(long, env = "KEYGATE_NO_POLICY_CACHE")]
    pub no_policy_cache: bool,
}

impl PolicyArgs {
    /// Where the policy module comes from.
    pub fn source(&self) -> PolicySource {
        self.policy
            .clone()
            .map_or(PolicySource::Embedded, PolicySource::File)
    }

    /// The configured input documents.
    pub fn inputs(&self) -> PolicyInputs {
        PolicyInputs {
            authorized_keys: self.authorized_keys.clone(),
            team_authorized_keys: self.team_authorized_keys.clone(),
            team_keys_file: self.team_authorized_keys_file.clone(),
            policy_inputs: self.policy_input.clone(),
        }
    }

    /// The policy host, with the compiled-module cache the flags ask for.
    /// A cache given with `--policy-cache` that cannot be used is an error;
    /// the default one is skipped with a warning.
    pub fn runtime(&self) -> anyhow::Result<PolicyRuntime> {
        let runtime = PolicyRuntime::new(self.limits())?;
        if self.no_policy_cache {
            return Ok(runtime);
        }
        if let Some(dir) = &self.policy_cache {
            return runtime.with_cache(dir);
        }
        let Some(dir) = default_cache_dir() else {
            return Ok(runtime);
        };
        match runtime.clone().with_cache(&dir) {
            Ok(cached) => Ok(cached),
            Err(error) => {
                tracing::warn!(%error, "not caching compiled policies");
                Ok(runtime)
            }
        }
    }

    /// Limits for the policy host.
    pub fn limits(&self) -> PolicyLimits {
        let defaults = PolicyLimits::default();
        PolicyLimits {
            decision_timeout: self.policy_timeout,
            init_timeout: self.policy_init_timeout,
            memory_bytes: self.policy_memory_mib.saturating_mul(1 << 20),
            instances: self.policy_instances.unwrap_or(defaults.instances).max(1),
            queue: defaults.queue,
        }
    }
}

/// `keygate policy eval` flags.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Policy and inputs.
    #[command(flatten)]
    pub policy: PolicyArgs,

    /// The action: connect, register, land, retire or delete; or
    /// other:NAME, an action from a later contract.
    #[arg(long)]
    pub action: Action,

    /// The team claimed; omit for the global scope.
    #[arg(long)]
    pub team: Option<String>,

    /// Public key file (`.pub`, OpenSSH one-line format).
    #[arg(long, value_name = "PUBKEY_FILE")]
    pub key: PathBuf,

    /// SSH user name.
    #[arg(long, default_value = "worker")]
    pub user: String,

    /// Client IP address.
    #[arg(long, default_value = "127.0.0.1")]
    pub addr: IpAddr,

    /// Worker name.
    #[arg(long)]
    pub worker: Option<String>,

    /// Time of the request, seconds since the Unix epoch. Default: now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub time: Option<u64>,
}

/// `keygate serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Policy and inputs.
    #[command(flatten)]
    pub policy: PolicyArgs,

    /// A second policy component asked every question the active one is
    /// asked, with the same inputs, and never enforced: where its verdict
    /// differs, the request is logged and counted. Reloaded with the active
    /// policy.
    #[arg(long, env = "KEYGATE_SHADOW_POLICY", value_name = "FILE.wasm")]
    pub shadow_policy: Option<PathBuf>,

    /// Input documents for the shadow policy, passed to it as
    /// `policy-input:FILE`, instead of the active policy's inputs (the
    /// default). Repeatable, or several separated by commas.
    #[arg(
        long,
        env = "KEYGATE_SHADOW_POLICY_INPUT",
        value_name = "FILE",
        value_delimiter = ',',
        requires = "shadow_policy"
    )]
    pub shadow_policy_input: Vec<PathBuf>,

    /// Write one JSON line per decision to FILE (appended; reopened on
    /// SIGHUP and when rotated away), or to standard output with `-`.
    #[arg(long, env = "KEYGATE_AUDIT_LOG", value_name = "FILE|-")]
    pub audit_log: Option<String>,

    /// Address workers connect to.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "0.0.0.0:2222")]
    pub listen: SocketAddr,

    /// Host key file, loaded if present; if absent, an ed25519 key is
    /// generated and written there (mode 0600). Repeat for several key
    /// types, or separate paths with commas.
    #[arg(
        long,
        env = "KEYGATE_HOST_KEY",
        value_name = "FILE",
        value_delimiter = ',',
        default_value = "keygate_host_ed25519_key"
    )]
    pub host_key: Vec<PathBuf>,

    /// Address of the admin HTTP API (workers, health, metrics).
    #[arg(long, env = "KEYGATE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Address reverse tunnels listen on (the port is chosen by the OS).
    #[arg(long, env = "KEYGATE_FORWARD_BIND", default_value = "127.0.0.1")]
    pub forward_bind: IpAddr,

    /// Address written into registered workers' `addr` and
    /// `baggageclaim_url`. Default: the forward bind address.
    #[arg(long, env = "KEYGATE_PEER_ADDRESS")]
    pub peer_address: Option<IpAddr>,

    /// Reverse tunnels one connection may hold.
    #[arg(long, env = "KEYGATE_MAX_FORWARDS", default_value_t = 2)]
    pub max_forwards: usize,

    /// Time a client has to authenticate (sshd's LoginGraceTime).
    #[arg(long, env = "KEYGATE_LOGIN_GRACE_TIME", value_parser = parse_duration, default_value = "30s")]
    pub login_grace_time: Duration,

    /// Authentication attempts per connection (sshd's MaxAuthTries).
    #[arg(long, env = "KEYGATE_MAX_AUTH_TRIES", default_value_t = 6)]
    pub max_auth_tries: usize,

    /// Connections that may be unauthenticated at once. When full, the
    /// oldest unauthenticated connection is dropped to admit a new one, so
    /// idle or slow clients cannot lock workers out.
    #[arg(long, env = "KEYGATE_MAX_STARTUPS", default_value_t = 100)]
    pub max_startups: usize,

    /// Send a keepalive after this long without traffic from the client;
    /// 0 disables keepalives.
    #[arg(long, env = "KEYGATE_KEEPALIVE_INTERVAL", value_parser = parse_duration, default_value = "15s")]
    pub keepalive_interval: Duration,

    /// Unanswered keepalives after which the connection is closed.
    #[arg(long, env = "KEYGATE_KEEPALIVE_COUNT", default_value_t = 3)]
    pub keepalive_count: usize,

    /// Close a connection after this long without any traffic; 0 disables.
    #[arg(long, env = "KEYGATE_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "0s")]
    pub idle_timeout: Duration,

    /// Interval of `{"event":"heartbeated"}` lines sent to registered workers.
    #[arg(long, env = "KEYGATE_HEARTBEAT_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    pub heartbeat_interval: Duration,

    /// Reload when the policy or an input file changes (the default).
    #[arg(long, overrides_with = "no_watch")]
    pub watch: bool,

    /// Do not watch files; reload only on SIGHUP or `POST /reload`.
    #[arg(long, env = "KEYGATE_NO_WATCH", overrides_with = "watch")]
    pub no_watch: bool,

    /// After each reload, close connections the new policy denies (the
    /// default).
    #[arg(long, overrides_with = "no_revoke_on_reload")]
    pub revoke_on_reload: bool,

    /// Keep connections open across reloads even if the new policy denies
    /// them; new decisions still use the new policy.
    #[arg(
        long,
        env = "KEYGATE_NO_REVOKE_ON_RELOAD",
        overrides_with = "revoke_on_reload"
    )]
    pub no_revoke_on_reload: bool,

    /// Accept RSA signatures made with SHA-1 (`ssh-rsa`). Off by default:
    /// SHA-1 signatures are forgeable in principle; rsa-sha2-256/512 are
    /// accepted.
    #[arg(long, env = "KEYGATE_ALLOW_SSH_RSA_SHA1")]
    pub allow_ssh_rsa_sha1: bool,
}

fn parse_team_file(value: &str) -> Result<(Team, PathBuf), String> {
    match value.split_once(':') {
        Some((team, path)) if !team.trim().is_empty() && !path.is_empty() => {
            Ok((Team::new(team.trim()), PathBuf::from(path)))
        }
        _ => Err(format!("expected TEAM:FILE, got `{value}`")),
    }
}

/// Parse `250ms`, `30s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{value}` (try 30s)"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "invalid duration unit in `{value}` (ms, s, m or h)"
            ));
        }
    };
    Ok(duration)
}

/// `$XDG_CACHE_HOME/keygate`, else `$HOME/.cache/keygate`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
            Some(PathBuf::from(home).join(".cache"))
        })?;
    Some(base.join("keygate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("10x").is_err());
    }

    #[test]
    fn team_files() {
        let (team, path) = parse_team_file("main:/etc/keys").unwrap();
        assert_eq!((team.as_str(), path), ("main", PathBuf::from("/etc/keys")));
        assert!(parse_team_file("/etc/keys").is_err());
        assert!(parse_team_file(":x").is_err());
    }

    #[test]
    fn flags_parse() {
        Cli::command_for_tests().debug_assert();
    }

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
