//! The `ringfence` binary: parse, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The sandbox init re-executes this binary; it must stay single-threaded and quiet, so it is
    // dispatched before argument parsing and logging are set up.
    if std::env::args_os().nth(1).as_deref() == Some("__sandbox-init".as_ref()) {
        ringfence::sandbox::init::main();
    }
    let cli = ringfence::cli::Cli::parse();
    ringfence::logging::init(cli.verbose);
    match ringfence::commands::dispatch(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("{}", ringfence::output::human::error(&e));
            ExitCode::from(ringfence::commands::Exit::error_code(&e))
        }
    }
}
