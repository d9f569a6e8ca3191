//! The `traum` command line: argument definitions and dispatch.

mod admin;
mod analytics;
mod collections;
mod duplicates;
mod events;
mod files;
mod health;
mod jobs;
mod output;
mod search;
mod upload;
mod waveform;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use traum_client::v1::{AudioFormat, FileState, JobState};
use traum_client::{ClientConfig, ClientError, DEFAULT_ENDPOINT, TraumClient};

/// Command-line client for the Traum audio search server.
#[derive(Debug, Parser)]
#[command(name = "traum", version)]
pub struct Cli {
    /// Server address; https:// enables TLS.
    #[arg(long, global = true, env = "TRAUM_ADDR", default_value = DEFAULT_ENDPOINT)]
    addr: String,

    /// API key sent as `x-api-key`.
    #[arg(long, global = true, env = "TRAUM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// PEM file of CA certificates to trust instead of the system roots.
    #[arg(long, global = true, env = "TRAUM_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// PEM client certificate, for servers that require one (mutual TLS; with --client-key).
    #[arg(
        long,
        global = true,
        env = "TRAUM_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "TRAUM_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,

    /// Server name to verify the certificate against, if not the address's host.
    #[arg(long, global = true, env = "TRAUM_TLS_DOMAIN", value_name = "NAME")]
    tls_domain: Option<String>,

    /// How long to wait for the connection, e.g. `5s`.
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,

    /// Print machine-readable JSON on stdout (and no progress bars).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upload files, directories (recursively) or glob patterns.
    Upload(upload::UploadArgs),
    /// List processing jobs, or show one.
    Jobs(jobs::JobsArgs),
    /// Follow a job until it succeeds or fails.
    Watch(jobs::WatchArgs),
    /// Process files again and follow their jobs.
    Reprocess(jobs::ReprocessArgs),
    /// Print changes to the library as they happen (jobs, renames, deletions) until Ctrl-C.
    Events(events::EventsArgs),
    /// List files.
    Ls(files::LsArgs),
    /// Show everything known about a file.
    Info(files::InfoArgs),
    /// Rename a file or change its tags.
    Tag(files::TagArgs),
    /// Delete files.
    Rm(files::RmArgs),
    /// Download a file's original bytes.
    Download(files::DownloadArgs),
    /// Show a file's waveform: a summary, or every min/max peak with --json.
    Waveform(waveform::WaveformArgs),
    /// List groups of files that are the same recording (other formats, bitrates, trims, gain).
    Duplicates(duplicates::DuplicatesArgs),
    /// Show library totals and server state.
    Stats,
    /// Show recent usage per RPC and over time.
    Usage(analytics::UsageArgs),
    /// Show the audit log: who changed what, when (needs an admin key).
    Audit(admin::AuditArgs),
    /// Create, list and revoke API keys (needs an admin key).
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Check the server's health; exit 0 only if every checked service is SERVING, else 1.
    Health(health::HealthArgs),
    /// Find files matching a text description, or sounding like an example clip (--audio).
    Search(search::SearchArgs),
    /// Find files that sound like a stored file.
    Similar(search::SimilarArgs),
    /// Complete a search prefix.
    Suggest(search::SuggestArgs),
    /// Create, list, change and delete collections (named, ordered sets of files).
    #[command(subcommand)]
    Collection(collections::CollectionCommand),
    /// Export a collection as CSV, JSON, an M3U8 playlist or a zip of its files.
    Export(collections::ExportArgs),
}

/// Whether a command that ran to completion achieved what was asked; a
/// failure here has already been reported, so it only sets the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Nothing failed, but a job waits for something the server lacks (the
    /// embedding model) and will not finish until it has it.
    Waiting,
}

/// Exit code of [`Outcome::Waiting`].
pub const EXIT_WAITING: u8 = 3;

/// Options every subcommand needs besides the client.
#[derive(Clone, Copy, Debug)]
pub struct Globals {
    pub json: bool,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<Outcome> {
        // Exports come from the web port; no gRPC connection needed.
        if let Command::Export(args) = &self.command {
            let key = self.api_key.as_deref().filter(|key| !key.is_empty());
            let tls = collections::WebTls {
                ca_cert: self.ca_cert.clone(),
                client_identity: self.client_cert.clone().zip(self.client_key.clone()),
            };
            return collections::export(args.clone(), key, tls).await;
        }
        if let Command::Health(args) = &self.command {
            // One limit for connecting and every check, so a hung server
            // cannot outlast a container health check's own timeout.
            let limit = args.timeout;
            let checks = async {
                let client = self.connect_within(self.connect_timeout.min(limit)).await?;
                health::health(&client, Globals { json: self.json }, args).await
            };
            return match tokio::time::timeout(limit, checks).await {
                Ok(outcome) => outcome,
                Err(_) => Err(anyhow::anyhow!(
                    "{} did not answer the health checks within {}",
                    self.addr,
                    humantime::format_duration(limit)
                )),
            };
        }
        let client = self.connect().await?;
        let globals = Globals { json: self.json };
        match self.command {
            Command::Upload(args) => upload::run(&client, globals, args).await,
            Command::Jobs(args) => jobs::list(&client, globals, args).await,
            Command::Watch(args) => jobs::watch(&client, globals, args).await,
            Command::Reprocess(args) => jobs::reprocess(&client, globals, args).await,
            Command::Events(args) => events::events(&client, globals, args).await,
            Command::Ls(args) => files::ls(&client, globals, args).await,
            Command::Info(args) => files::info(&client, globals, args).await,
            Command::Tag(args) => files::tag(&client, globals, args).await,
            Command::Rm(args) => files::rm(&client, globals, args).await,
            Command::Download(args) => files::download(&client, globals, args).await,
            Command::Waveform(args) => waveform::waveform(&client, globals, args).await,
            Command::Duplicates(args) => duplicates::duplicates(&client, globals, args).await,
            Command::Stats => analytics::stats(&client, globals).await,
            Command::Usage(args) => analytics::usage(&client, globals, args).await,
            Command::Audit(args) => admin::audit(&client, globals, args).await,
            Command::Keys(command) => admin::keys(&client, globals, command).await,
            Command::Health(args) => health::health(&client, globals, &args).await,
            Command::Search(args) => search::search(&client, globals, args).await,
            Command::Similar(args) => search::similar(&client, globals, args).await,
            Command::Suggest(args) => search::suggest(&client, globals, args).await,
            Command::Collection(command) => collections::run(&client, globals, command).await,
            Command::Export(args) => collections::export(args, None, collections::WebTls::default()).await,
        }
    }

    async fn connect(&self) -> anyhow::Result<TraumClient> {
        self.connect_within(self.connect_timeout).await
    }

    async fn connect_within(&self, connect_timeout: Duration) -> anyhow::Result<TraumClient> {
        let tls_ca_pem = match &self.ca_cert {
            Some(path) => Some(
                tokio::fs::read(path)
                    .await
                    .with_context(|| format!("reading CA certificate {}", path.display()))?,
            ),
            None => None,
        };
        let tls_client_identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((
                tokio::fs::read(cert)
                    .await
                    .with_context(|| format!("reading client certificate {}", cert.display()))?,
                tokio::fs::read(key)
                    .await
                    .with_context(|| format!("reading client key {}", key.display()))?,
            )),
            _ => None,
        };
        let config = ClientConfig {
            endpoint: self.addr.clone(),
            api_key: self.api_key.clone().filter(|key| !key.is_empty()),
            tls_ca_pem,
            tls_domain: self.tls_domain.clone(),
            tls_client_identity,
            connect_timeout,
        };
        match TraumClient::connect(config).await {
            Ok(client) => Ok(client),
            Err(err @ ClientError::Transport(_)) => {
                Err(anyhow::Error::new(err).context(format!("cannot connect to {}", self.addr)))
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Audio formats as accepted on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Wav,
    Aiff,
    Flac,
    Mp3,
    Ogg,
    M4a,
}

impl FormatArg {
    pub fn proto(self) -> i32 {
        let format = match self {
            Self::Wav => AudioFormat::Wav,
            Self::Aiff => AudioFormat::Aiff,
            Self::Flac => AudioFormat::Flac,
            Self::Mp3 => AudioFormat::Mp3,
            Self::Ogg => AudioFormat::Ogg,
            Self::M4a => AudioFormat::M4a,
        };
        format as i32
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum JobStateArg {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStateArg {
    pub fn proto(self) -> i32 {
        let state = match self {
            Self::Queued => JobState::Queued,
            Self::Running => JobState::Running,
            Self::Succeeded => JobState::Succeeded,
            Self::Failed => JobState::Failed,
        };
        state as i32
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FileStateArg {
    Processing,
    Ready,
    Failed,
}

impl FileStateArg {
    pub fn proto(self) -> i32 {
        let state = match self {
            Self::Processing => FileState::Processing,
            Self::Ready => FileState::Ready,
            Self::Failed => FileState::Failed,
        };
        state as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_upload_flags() {
        let cli = Cli::try_parse_from([
            "traum",
            "--json",
            "upload",
            "a.wav",
            "dir",
            "--tag",
            "drums",
            "--parallel",
            "2",
            "--no-wait",
        ]);
        assert!(cli.is_ok_and(|cli| cli.json && matches!(cli.command, Command::Upload(_))));
    }

    #[test]
    fn search_takes_exactly_one_of_text_and_audio() {
        assert!(Cli::try_parse_from(["traum", "search", "warm pad"]).is_ok());
        assert!(Cli::try_parse_from(["traum", "search", "--audio", "clip.wav", "--tag", "drums"]).is_ok());
        let neither = Cli::try_parse_from(["traum", "search", "--tag", "drums"]).unwrap_err();
        assert_eq!(neither.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let both = Cli::try_parse_from(["traum", "search", "pad", "--audio", "clip.wav"]).unwrap_err();
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn resumable_options_need_resumable() {
        assert!(
            Cli::try_parse_from(["traum", "upload", "a.wav", "--resumable", "--chunk-size", "64KiB"]).is_ok()
        );
        let err = Cli::try_parse_from(["traum", "upload", "a.wav", "--chunk-size", "64KiB"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
