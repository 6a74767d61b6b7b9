//! `keygate serve`: the gateway.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::audit::{AuditLog, AuditTarget};
use crate::cli::ServeArgs;
use crate::gateway::{Gateway, GatewayConfig};
use crate::policy::{PolicyInputs, PolicySource, load_policy};
use crate::reload::{self, Reloader};
use crate::{admin, ssh};

/// Run the gateway until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = args.policy.runtime()?;
    let (source, inputs) = (args.policy.source(), args.policy.inputs());
    let policy = {
        let (runtime, source, inputs) = (runtime.clone(), source.clone(), inputs.clone());
        tokio::task::spawn_blocking(move || load_policy(&runtime, &source, &inputs, None)).await??
    };
    tracing::info!(
        policy.digest = %policy.digest(), policy.source = %policy.source(),
        compile_ms = policy.compiled().compile_time.as_millis(),
        from_cache = policy.compiled().from_cache, "policy loaded"
    );
    for warning in &policy.warnings {
        tracing::warn!(%warning, "policy warning");
    }
    let shadow_source = args.shadow_policy.clone().map(PolicySource::File);
    let shadow_inputs = if args.shadow_policy_input.is_empty() {
        inputs.clone()
    } else {
        PolicyInputs {
            policy_inputs: args.shadow_policy_input.clone(),
            ..PolicyInputs::default()
        }
    };
    let shadow = match &shadow_source {
        Some(source) => {
            let (runtime, source, inputs) =
                (runtime.clone(), source.clone(), shadow_inputs.clone());
            let shadow =
                tokio::task::spawn_blocking(move || load_policy(&runtime, &source, &inputs, None))
                    .await?
                    .context("failed to load the shadow policy")?;
            tracing::info!(shadow.digest = %shadow.digest(), shadow.source = %shadow.source(), "shadow policy loaded; its decisions are compared, never enforced");
            Some(shadow)
        }
        None => None,
    };

    let mut keys = Vec::new();
    for path in &args.host_key {
        keys.push(ssh::host_key::load_or_generate(path)?);
    }
    let config = GatewayConfig {
        forward_bind: args.forward_bind,
        peer_address: args.peer_address.unwrap_or(args.forward_bind),
        max_forwards: args.max_forwards,
        heartbeat_interval: args.heartbeat_interval.max(Duration::from_millis(100)),
        allow_ssh_rsa_sha1: args.allow_ssh_rsa_sha1,
    };
    let mut gateway = Gateway::new(policy, config);
    if let Some(target) = &args.audit_log {
        gateway = gateway.with_audit(AuditLog::start(AuditTarget::parse(target))?);
    }
    if let Some(shadow) = shadow {
        gateway.publish_shadow(shadow);
    }
    let gateway = Arc::new(gateway);
    let reloader = Arc::new(Reloader::new(
        runtime,
        source,
        shadow_source.map(|source| (source, shadow_inputs)),
        inputs,
        gateway.clone(),
        !args.no_revoke_on_reload,
    ));

    let watch = if args.no_watch {
        None
    } else {
        Some(reload::FileWatch::start(reloader.clone())?)
    };
    let ssh_listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let admin_listener = TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("failed to listen on {} (admin)", args.admin_listen))?;
    tracing::info!(
        ssh.addr = %ssh_listener.local_addr()?,
        admin.addr = %admin_listener.local_addr()?,
        "listening"
    );

    tokio::spawn(log_exit(
        "admin API",
        admin::serve(admin_listener, gateway.clone(), reloader.clone()),
    ));
    tokio::spawn(log_exit(
        "SIGHUP handler",
        reload::on_sighup(reloader.clone()),
    ));
    if let Some(watch) = watch {
        tokio::spawn(watch.run());
    }
    let limits = ssh::Limits {
        login_grace_time: args.login_grace_time,
        max_auth_tries: args.max_auth_tries,
        max_startups: args.max_startups,
        keepalive_interval: nonzero(args.keepalive_interval),
        keepalive_count: args.keepalive_count,
        idle_timeout: nonzero(args.idle_timeout),
    };
    let config = Arc::new(ssh::config(keys, &limits));
    tokio::select! {
        () = ssh::serve(gateway.clone(), ssh_listener, config, limits) => {}
        () = shutdown_signal() => tracing::info!("shutting down"),
    }
    if let Some(audit) = gateway.audit() {
        let audit = audit.clone();
        tokio::task::spawn_blocking(move || audit.close(Duration::from_secs(2))).await?;
    }
    Ok(())
}

fn nonzero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

async fn log_exit<E: std::fmt::Display>(what: &str, task: impl Future<Output = Result<(), E>>) {
    if let Err(e) = task.await {
        tracing::error!(error = %e, "{what} stopped");
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
