//! One module per `keygate` command.

pub mod check;
pub mod eval;
pub mod policy_test;
pub mod serve;
