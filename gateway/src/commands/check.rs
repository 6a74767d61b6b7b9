//! `keygate check`: load everything as `serve` would and report.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::PolicyArgs;
use crate::policy::{LoadedPolicy, load_policy};

/// Run the command. Exit 0 when the configuration is usable.
pub fn run(args: &PolicyArgs) -> anyhow::Result<ExitCode> {
    let runtime = args.runtime()?;
    let mut out = std::io::stdout().lock();
    match load_policy(&runtime, &args.source(), &args.inputs(), None) {
        Ok(policy) => {
            report(&mut out, &policy, runtime.limits().instances)?;
            writeln!(out, "ok: configuration is usable")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            writeln!(out, "error: {e}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

fn report(out: &mut impl Write, policy: &LoadedPolicy, instances: usize) -> std::io::Result<()> {
    writeln!(
        out,
        "policy: {} (sha256 {})",
        policy.source(),
        policy.digest()
    )?;
    writeln!(
        out,
        "loaded: {} in {} ms, init in {} ms on {instances} instance(s)",
        if policy.compiled().from_cache {
            "compiled code from the cache"
        } else {
            "compiled"
        },
        policy.compiled().compile_time.as_millis(),
        policy.init_time.as_millis()
    )?;
    for input in &policy.inputs {
        writeln!(
            out,
            "input: {} (sha256 {})",
            input.path.display(),
            input.digest
        )?;
    }
    for line in &policy.summary {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "warnings: {}", policy.warnings.len())?;
    for warning in &policy.warnings {
        writeln!(out, "  warning: {warning}")?;
    }
    Ok(())
}
