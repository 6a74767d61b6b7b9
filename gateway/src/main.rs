//! The `keygate` binary: parse flags, set up logging, hand over.

use std::process::ExitCode;

use clap::Parser;
use keygate::cli::{Cli, Command, PolicyCommand};
use keygate::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = keygate::logging::init(cli.log_format, &cli.log) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Check(args) => commands::check::run(&args),
        Command::Policy(PolicyCommand::Eval(args)) => Ok(commands::eval::run(&args)),
        Command::Policy(PolicyCommand::Test(args)) => Ok(commands::policy_test::run(&args)),
        Command::Serve(args) => serve(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn serve(args: keygate::cli::ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::serve::run(args))?;
    Ok(ExitCode::SUCCESS)
}
