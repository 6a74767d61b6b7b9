//! A policy that misbehaves on purpose, for keygate's fault-containment
//! tests. Its first input's contents choose the fault:
//!
//! - `init-trap`, `init-loop`: `init` panics or never returns.
//! - `init-error`: `init` returns an error.
//! - `trap`, `loop`, `hog`: `authorize` panics, spins forever, or allocates
//!   until the memory cap stops it.
//! - `trap-team:NAME` etc.: the fault only for requests claiming team
//!   `NAME`; every other request is allowed. Shows that one bad decision
//!   does not take the gateway down.
//! - `deny-all`, `allow-all`: a well-behaved policy with a fixed answer.

#![allow(clippy::panic, reason = "this policy panics on purpose")]

use keygate_policy_sdk::{Decision, InitReport, Input, Policy, Request, log};

#[derive(Debug)]
struct Faulty {
    fault: String,
    only_team: Option<String>,
}

impl Policy for Faulty {
    fn init(inputs: Vec<Input>) -> Result<(Self, InitReport), String> {
        let mode = inputs
            .first()
            .map(|i| String::from_utf8_lossy(&i.data).trim().to_owned())
            .unwrap_or_default();
        match mode.as_str() {
            "init-trap" => panic!("faulty policy: init trap requested"),
            "init-loop" => spin(),
            "init-error" => return Err("faulty policy: init error requested".into()),
            _ => {}
        }
        let (fault, only_team) = match mode.split_once("-team:") {
            Some((fault, team)) => (fault.to_owned(), Some(team.to_owned())),
            None => (mode.clone(), None),
        };
        log::info(&format!("faulty policy loaded in mode {mode}"));
        Ok((
            Faulty { fault, only_team },
            InitReport::default().summary(format!("mode: {mode}")),
        ))
    }

    fn authorize(&self, request: &Request) -> Decision {
        if let Some(team) = &self.only_team
            && request.team.as_deref() != Some(team)
        {
            return Decision::Allow;
        }
        match self.fault.as_str() {
            "trap" => panic!("faulty policy: trap requested"),
            "loop" => spin(),
            "hog" => hog(),
            "allow-all" => Decision::Allow,
            _ => Decision::deny(format!("faulty policy in mode {} denies", self.fault)),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

keygate_policy_sdk::export_policy!(Faulty);
