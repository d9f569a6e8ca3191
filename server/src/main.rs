//! `traum-server`: parses configuration, binds the port and runs the server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use traum_server::commands::{
    self, BackupArgs, DatabaseArgs, EmbedArgs, EvalTagsArgs, KeysArgs, RestoreArgs,
};
use traum_server::{Config, ConfigArgs, EXIT_CONFIG, telemetry};

/// Traum audio search server.
#[derive(Debug, Parser)]
#[command(name = "traum-server", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints CLAP embeddings of audio files and texts (per window and
    /// pooled), computed as the server computes them.
    Embed(EmbedArgs),
    /// Creates, lists and revokes API keys in the server's database.
    Keys(KeysArgs),
    /// Brings the database schema up to date and exits (every server also
    /// does this at start; replicas starting together take turns).
    Migrate(DatabaseArgs),
    /// Measures zero-shot tag accuracy per vocabulary on a labelled folder
    /// (DIR/VOCABULARY/LABEL/FILE).
    EvalTags(EvalTagsArgs),
    /// Writes a consistent backup of the database rows, blobs and saved
    /// index while servers keep serving (`--to DIR`), or checks one
    /// (`--verify DIR`).
    Backup(BackupArgs),
    /// Loads a backup into an empty database and blob store (SQLite or
    /// PostgreSQL, a directory or S3), after verifying it.
    Restore(RestoreArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            let _ = err.print();
            return ExitCode::from(EXIT_CONFIG as u8);
        }
        Err(err) => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
    };
    if let Some(Command::Embed(args)) = &cli.command {
        telemetry::init_logging(traum_server::config::LogFormat::Human, "warn");
        return match commands::embed(args) {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("traum-server embed: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::EvalTags(args)) = &cli.command {
        telemetry::init_logging(traum_server::config::LogFormat::Human, "warn");
        return match commands::eval_tags(args) {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("traum-server eval-tags: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Migrate(args)) = &cli.command {
        telemetry::init_logging(traum_server::config::LogFormat::Human, "warn");
        return match commands::migrate(args) {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("traum-server migrate: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Backup(args)) = &cli.command {
        telemetry::init_logging(traum_server::config::LogFormat::Human, "warn");
        return finish("backup", commands::backup(args));
    }
    if let Some(Command::Restore(args)) = &cli.command {
        telemetry::init_logging(traum_server::config::LogFormat::Human, "warn");
        return finish("restore", commands::restore(args));
    }
    if let Some(Command::Keys(args)) = &cli.command {
        telemetry::init_logging(traum_server::config::LogFormat::Human, "warn");
        return match commands::keys(args) {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("traum-server keys: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::resolve(cli.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("traum-server: {err}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    telemetry::init_logging(config.log_format, &config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("traum-server: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(addr = %config.listen, error = %err, "cannot bind the gRPC listener");
                return ExitCode::FAILURE;
            }
        };
        match traum_server::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(error = %err, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// Prints a command's outcome where it belongs.
fn finish(command: &str, outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("traum-server {command}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
