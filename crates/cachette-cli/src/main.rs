//! `cachette`: inspect, edit and load-test a cachette cache from the command line.
//!
//! Layout (after regex-cli): [`args`] holds the clap definitions, `cmd/<command>.rs` one
//! command each, [`context`] the connection, [`exit`] the exit codes and how errors map to
//! them. Errors print as one line (`cachette: error: ...`, causes joined with `: `).

mod args;
mod cmd;
mod context;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(exit::USAGE));
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cachette: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result = runtime.block_on(cmd::run(cli));
    // Background connection tasks must not hold the process open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if exit::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // One line, whatever the causes contain.
            let message = format!("{err:#}");
            let message: Vec<&str> = message.split_whitespace().collect();
            eprintln!("cachette: error: {}", message.join(" "));
            ExitCode::from(exit::code_of(&err))
        }
    }
}
