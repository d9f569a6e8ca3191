//! `traum`: command-line client for the Traum audio search server.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run().await {
        Ok(cli::Outcome::Success) => ExitCode::SUCCESS,
        Ok(cli::Outcome::Failure) => ExitCode::FAILURE,
        Ok(cli::Outcome::Waiting) => ExitCode::from(cli::EXIT_WAITING),
        Err(err) => {
            // `ClientError` renders server errors as `CODE: message`, so this
            // yields `error: NOT_FOUND: ...` for RPC failures.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
