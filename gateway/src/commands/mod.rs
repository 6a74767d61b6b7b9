//! One module per `keygate` command.

pub mod check;
pub mod eval;
pub mod serve;
