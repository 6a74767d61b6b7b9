//! keygate's default policy: teams and their keys from the YAML team-key file
//! and OpenSSH `authorized_keys` files.
//!
//! Inputs are recognised by name, which keygate derives from the flag that
//! supplied them:
//!
//! | input name                        | contents                              |
//! |-----------------------------------|---------------------------------------|
//! | `authorized-keys:PATH`            | global keys (workers for every team)  |
//! | `team-authorized-keys:TEAM:PATH`  | keys of team `TEAM`                   |
//! | `team-authorized-keys-file:PATH`  | YAML list of `team:` + `ssh_keys:`    |
//!
//! The rule: a key may connect when it is global or belongs to any team; it
//! may act for team T when it is global or listed under T; it may act for
//! all teams (no team claimed) only when it is global. `from=` and
//! `expiry-time=` options on a key are checked on every decision.
//!
//! Any fault in the inputs (an unreadable key, an unknown option, a YAML
//! error, an empty team name) fails the whole load, listing every fault with
//! its file and line: keygate then keeps serving the previous policy, and a
//! worker is never locked out by a key that was dropped in silence.
//! Duplicate team entries and duplicate keys are merged, with a warning.

mod index;
mod yaml;

use keygate_policy_sdk::{Decision, InitReport, Input, Policy, Request};

pub use index::Index;

/// The policy: an index built once per load.
#[derive(Debug)]
pub struct YamlTeams {
    index: Index,
}

impl Policy for YamlTeams {
    fn init(inputs: Vec<Input>) -> Result<(Self, InitReport), String> {
        let (index, report) = Index::load(&inputs)?;
        Ok((YamlTeams { index }, report))
    }

    fn authorize(&self, request: &Request) -> Decision {
        self.index.authorize(request)
    }
}

keygate_policy_sdk::export_policy!(YamlTeams);
