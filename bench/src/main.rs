//! keygate's benchmark suite. Runs keygate and OpenSSH's sshd side by side
//! on loopback, in one run, and prints a markdown table of figures, ratios
//! and targets (also written to `--out`).
//!
//! Run it through `scripts/bench.sh`, which installs sshd, raises the
//! open-files limit for this process tree, runs the Criterion decision
//! benchmark first (its results feed the table) and then this binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails by panicking"
)]

mod client;
mod crypto;
mod procs;
mod report;
mod sections;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// Benchmark keygate against OpenSSH sshd and native code.
#[derive(Debug, Parser)]
struct Args {
    /// The full run: larger counts, 1 GiB through the tunnels.
    #[arg(long, conflicts_with = "smoke")]
    full: bool,
    /// A seconds-long pass with tiny counts, to check the suite runs (CI).
    #[arg(long)]
    smoke: bool,
    /// Where to write the markdown table.
    #[arg(long, default_value = "bench/results.md")]
    out: PathBuf,
    /// Run only these sections (handshakes, rollout, reload, memory, tunnel).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Criterion's output directory, for the decision figures.
    #[arg(long, default_value = "target/criterion")]
    criterion: PathBuf,
}

/// How big each section runs.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub handshakes: [(usize, usize); 3],
    pub reloads: usize,
    pub workers: [usize; 2],
    pub sshd_workers: usize,
    pub tunnel_bytes: u64,
    pub name: &'static str,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scale = if args.smoke {
        Scale {
            handshakes: [(1, 10), (16, 32), (64, 64)],
            reloads: 5,
            workers: [20, 50],
            sshd_workers: 20,
            tunnel_bytes: 8 << 20,
            name: "smoke",
        }
    } else if args.full {
        Scale {
            handshakes: [(1, 300), (16, 1500), (64, 3000)],
            reloads: 50,
            workers: [1_000, 10_000],
            sshd_workers: 1_000,
            tunnel_bytes: 1 << 30,
            name: "full",
        }
    } else {
        Scale {
            handshakes: [(1, 40), (16, 160), (64, 256)],
            reloads: 20,
            workers: [1_000, 10_000],
            sshd_workers: 200,
            tunnel_bytes: 256 << 20,
            name: "quick",
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let setup = Arc::new(sections::Setup::new()?);
    let mut table = report::Table::new(scale.name);

    let run = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);

    if run("handshakes") {
        eprintln!("== crypto ceiling");
        let ceiling = crypto::ceiling();
        eprintln!("== handshakes");
        let handshakes = runtime.block_on(sections::handshakes(&setup, &scale))?;
        table.handshakes(&handshakes, &ceiling);
        eprintln!("== decision cost (Criterion results)");
        table.decisions(&args.criterion, &handshakes);
    }
    if run("rollout") {
        eprintln!("== shadow policy and audit log on the handshake path");
        let rollout = runtime.block_on(sections::rollout(&setup, &scale))?;
        table.rollout(&rollout);
    }
    if run("reload") {
        eprintln!("== reload");
        let reload = runtime.block_on(sections::reload(&setup, &scale))?;
        table.reload(&reload);
    }
    if run("memory") {
        eprintln!("== memory per worker");
        let memory = runtime.block_on(sections::memory(&setup, &scale))?;
        table.memory(&memory);
    }
    if run("tunnel") {
        eprintln!("== tunnel throughput");
        let tunnel = sections::tunnel(&setup, &scale)?;
        table.tunnel(&tunnel);
    }

    let text = table.render();
    println!("{text}");
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &text)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}
