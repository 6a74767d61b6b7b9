//! An example keygate policy: team rules that the YAML team file cannot
//! express.
//!
//! The rules arrive as one or more YAML files given to keygate with
//! `--policy-input FILE` (inputs named `policy-input:FILE`):
//!
//! - every key names its `owner` and may carry an `expires` date (RFC 3339:
//!   `2027-06-30` or `2027-06-30T12:00:00Z`); from that instant on the key
//!   is refused, with a reason naming the owner and the date;
//! - every team lists worker-name patterns (`*` and `?` wildcards); a key
//!   may register, land, retire or delete a worker for the team only when
//!   the worker's name matches one;
//! - a global key (`global: true`) acts for every team, but only from the
//!   CIDR networks listed in its `networks:`; a global key without networks
//!   fails the load rather than being open to every address.
//!
//! A key may connect when it is listed, unexpired and, if global, used from
//! one of its networks. Only global keys act for all teams at once (no team
//! claimed); such workers serve every team and their names are not checked
//! against any team's patterns. Actions this policy does not know are
//! denied.
//!
//! Any fault in the rules fails the whole load and lists every fault as
//! `FILE:LINE: message`, so keygate keeps serving the previous policy.

mod decide;
mod entry;
mod rules;

use keygate_policy_sdk::{Decision, InitReport, Input, Policy, Request};

pub use rules::Rules;

/// The policy: the rules, loaded once per load.
#[derive(Debug)]
pub struct TeamRules {
    rules: Rules,
}

impl Policy for TeamRules {
    fn init(inputs: Vec<Input>) -> Result<(Self, InitReport), String> {
        let (rules, report) = Rules::load(&inputs)?;
        Ok((TeamRules { rules }, report))
    }

    fn authorize(&self, request: &Request) -> Decision {
        self.rules.authorize(request)
    }
}

keygate_policy_sdk::export_policy!(TeamRules);
