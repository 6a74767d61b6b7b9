//! The results table: figure, keygate, the baseline (sshd or native), the
//! ratio, and the target with whether it was met.

use std::fmt::Write as _;
use std::path::Path;

use crate::crypto::Ceiling;
use crate::sections::{HandshakeRun, MemoryRun, ReloadRun, RolloutRun, TunnelRun};

/// Policy decisions in one keygate benchmark handshake: `connect` when the
/// key is offered (reused for the verified key) and the `land` command.
const DECISIONS_PER_HANDSHAKE: f64 = 2.0;

pub struct Table {
    mode: &'static str,
    rows: Vec<[String; 6]>,
    notes: Vec<String>,
}

fn verdict(met: bool) -> String {
    if met {
        "met".into()
    } else {
        "**missed**".into()
    }
}

impl Table {
    pub fn new(mode: &'static str) -> Table {
        Table {
            mode,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn row(
        &mut self,
        figure: &str,
        keygate: String,
        baseline: String,
        ratio: String,
        target: &str,
        met: Option<bool>,
    ) {
        let met = met.map_or_else(|| "-".to_owned(), verdict);
        self.rows.push([
            figure.to_owned(),
            keygate,
            baseline,
            ratio,
            target.to_owned(),
            met,
        ]);
    }

    pub fn handshakes(&mut self, runs: &[HandshakeRun], ceiling: &Ceiling) {
        for run in runs {
            let ratio = run.keygate_rate / run.sshd_rate;
            let target = if run.concurrency == 64 {
                "≥ 20× sshd"
            } else {
                ""
            };
            let met = (run.concurrency == 64).then_some(ratio >= 20.0);
            self.row(
                &format!(
                    "handshakes/s, {} clients ({} keygate, {} sshd)",
                    run.concurrency,
                    run.count * crate::sections::KEYGATE_HANDSHAKE_FACTOR,
                    run.count
                ),
                format!("{:.0}", run.keygate_rate),
                format!("{:.1} (sshd)", run.sshd_rate),
                format!("{ratio:.1}×"),
                target,
                met,
            );
        }
        if let Some(run) = runs.last() {
            self.row(
                "server CPU per handshake, ms",
                format!("{:.2}", run.keygate_cpu_ms),
                format!("{:.2} (sshd)", run.sshd_cpu_ms),
                format!("{:.1}×", run.sshd_cpu_ms / run.keygate_cpu_ms),
                "",
                None,
            );
            let efficiency = ceiling.seconds_per_handshake * 1000.0 / run.keygate_cpu_ms;
            self.row(
                "server CPU that is handshake cryptography",
                format!("{:.0}%", efficiency * 100.0),
                format!(
                    "{:.3} ms of {:.3} ms",
                    ceiling.seconds_per_handshake * 1000.0,
                    run.keygate_cpu_ms
                ),
                String::new(),
                "",
                None,
            );
            let share = run.keygate_rate / ceiling.rate();
            self.row(
                "share of the crypto-only ceiling",
                format!("{:.0}/s", run.keygate_rate),
                format!("{:.0}/s (ceiling)", ceiling.rate()),
                format!("{:.0}%", share * 100.0),
                "≥ 60%",
                Some(share >= 0.6),
            );
            self.notes.push(format!(
                "Crypto-only ceiling: {:.1} µs of server-side cryptography per handshake (X25519 key pair and \
                 shared secret, exchange hash, ed25519 host signature, ed25519 client verification), on {} cores. \
                 The load generator runs on the same machine and takes its share of those cores.",
                ceiling.seconds_per_handshake * 1e6,
                ceiling.cores
            ));
        }
    }

    pub fn decisions(&mut self, criterion: &Path, runs: &[HandshakeRun]) {
        let read = |name: &str| -> Option<f64> {
            // Criterion names its directories after the benchmark, with `/`
            // turned into `_`.
            let dir = criterion.join(name.replace('/', "_"));
            let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json["median"]["point_estimate"].as_f64()
        };
        let (Some(wasm_hit), Some(native_hit), Some(hashmap_hit)) = (
            read("wasm_call/hit"),
            read("native_policy/hit"),
            read("native_hashmap/hit"),
        ) else {
            self.notes.push("Decision cost: no Criterion results found; run `cargo bench -p keygate-bench --bench decision` first.".into());
            return;
        };
        for (label, wasm, native) in [
            (
                "decision, hit: Wasm call vs native policy, ns",
                Some(wasm_hit),
                Some(native_hit),
            ),
            (
                "decision, miss: Wasm call vs native policy, ns",
                read("wasm_call/miss"),
                read("native_policy/miss"),
            ),
        ] {
            if let (Some(w), Some(n)) = (wasm, native) {
                self.row(
                    label,
                    format!("{w:.0}"),
                    format!("{n:.0} (native)"),
                    format!("{:.1}×", w / n),
                    "≤ 3×",
                    Some(w / n <= 3.0),
                );
            }
        }
        self.row(
            "decision, hit: Wasm call vs HashMap lookup, ns",
            format!("{wasm_hit:.0}"),
            format!("{hashmap_hit:.0} (HashMap)"),
            format!("{:.1}×", wasm_hit / hashmap_hit),
            "≤ 3×",
            Some(wasm_hit / hashmap_hit <= 3.0),
        );
        if let Some(floor) = read("wasm_call/floor") {
            self.row(
                "call floor: an allow-all policy, ns",
                format!("{floor:.0}"),
                format!("{native_hit:.0} (native policy)"),
                format!("{:.1}×", floor / native_hit),
                "",
                None,
            );
        }
        if let Some(fresh) = read("instantiate_and_init/4_keys") {
            self.row(
                "fresh instance per decision (instantiate + init, 4 keys), ns",
                format!("{fresh:.0}"),
                format!("{wasm_hit:.0} (resident instance)"),
                format!("{:.0}×", fresh / wasm_hit),
                "",
                None,
            );
        }
        if let Some(run) = runs.last() {
            let share = DECISIONS_PER_HANDSHAKE * wasm_hit / (run.keygate_cpu_ms * 1e6);
            self.row(
                "policy share of a handshake's server CPU",
                format!("{:.1}%", share * 100.0),
                format!("{wasm_hit:.0} ns × {DECISIONS_PER_HANDSHAKE} decisions"),
                String::new(),
                "≤ 2%",
                Some(share <= 0.02),
            );
        }
        if let Some(gateway) = read("wasm_gateway/hit") {
            self.notes.push(format!(
                "A decision as the gateway makes it (`wasm_gateway/hit`: the call plus the hand-off to a policy \
                 thread and back, waiting included) takes {gateway:.0} ns of latency; the CPU share above counts \
                 the call itself ({wasm_hit:.0} ns) {DECISIONS_PER_HANDSHAKE} times per handshake."
            ));
        }
    }

    pub fn rollout(&mut self, run: &RolloutRun) {
        let ratio = run.rollout_rate / run.plain_rate;
        self.row(
            &format!(
                "handshakes/s with shadow policy + audit log, 16 clients ({} each)",
                run.count
            ),
            format!("{:.0}", run.rollout_rate),
            format!("{:.0} (keygate alone)", run.plain_rate),
            format!("{ratio:.2}×"),
            "",
            None,
        );
        let extra = run.rollout_cpu_ms - run.plain_cpu_ms;
        self.row(
            "server CPU per handshake with shadow + audit, ms",
            format!("{:.3}", run.rollout_cpu_ms),
            format!("{:.3} (keygate alone)", run.plain_cpu_ms),
            format!("{:+.0} µs", extra * 1000.0),
            "",
            None,
        );
        self.notes.push(format!(
            "Shadow + audit: the shadow is the default policy again (same rules, so every decision is \
             compared and none disagrees); every decision also writes an audit line. Medians of 3 alternating \
             runs. The audit log held {} lines for {} decisions.",
            run.audit_lines, run.decisions
        ));
    }

    pub fn reload(&mut self, run: &ReloadRun) {
        let ratio = run.keygate_ms / run.native_ms;
        self.row(
            &format!("reload of {} keys, ms", run.keys),
            format!("{:.0}", run.keygate_ms),
            format!("{:.0} (native load)", run.native_ms),
            format!("{ratio:.1}×"),
            "≤ 3×",
            Some(ratio <= 3.0),
        );
        self.row(
            &format!("failed handshakes during {} reloads", run.burst_reloads),
            format!("{} of {}", run.burst_failures, run.burst_handshakes),
            String::new(),
            String::new(),
            "0",
            Some(run.burst_failures == 0),
        );
    }

    pub fn memory(&mut self, run: &MemoryRun) {
        for &(count, per) in &run.keygate {
            let ratio = run.sshd_per_worker / per;
            self.row(
                &format!(
                    "memory per worker, KiB ({count} workers; sshd at {})",
                    run.sshd_workers
                ),
                format!("{per:.1}"),
                format!("{:.1} (sshd)", run.sshd_per_worker),
                format!("1/{ratio:.0}"),
                "≤ 1/20 of sshd",
                Some(ratio >= 20.0),
            );
        }
        self.notes.push(
            "Memory is proportional set size (PSS) growth over the idle process; for sshd, summed over all its \
             processes. Each keygate worker holds two reverse tunnels and a registered `forward-worker` channel; \
             each sshd connection holds two reverse tunnels and an idle session channel (no user process)."
                .into(),
        );
    }

    pub fn tunnel(&mut self, runs: &[TunnelRun]) {
        for run in runs {
            self.tunnel_run(run);
        }
    }

    fn tunnel_run(&mut self, run: &TunnelRun) {
        let mib = |r: f64| r / (1 << 20) as f64;
        let ratio = run.keygate / run.sshd;
        let cipher = run.cipher.unwrap_or("client's default cipher");
        self.row(
            &format!(
                "tunnel throughput, MiB/s ({} MiB, {cipher})",
                run.bytes >> 20
            ),
            format!("{:.0}", mib(run.keygate)),
            format!("{:.0} (sshd)", mib(run.sshd)),
            format!("{ratio:.2}×"),
            "≥ 1.0× sshd",
            Some(ratio >= 1.0),
        );
        self.row(
            &format!("direct loopback copy, MiB/s (ceiling, {cipher} run)"),
            String::new(),
            format!("{:.0}", mib(run.direct)),
            String::new(),
            "",
            None,
        );
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| figure | keygate | baseline | ratio | target | |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Mode: {}. Machine: {}.", self.mode, machine());
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let sshd = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores, {cpu}; keygate {} (russh 0.65, wasmtime 48); {sshd}",
        env!("CARGO_PKG_VERSION")
    )
}
