//! `traum collection …` (named, ordered sets of files) and `traum export`
//! (a collection as CSV, JSON, an M3U8 playlist or a zip of its files,
//! fetched from the server's web port).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use traum_client::TraumClient;
use traum_client::v1::{
    Collection, CreateCollectionRequest, DeleteCollectionRequest, FileIdList, GetCollectionRequest,
    ListCollectionsRequest, UpdateCollectionRequest,
};

use super::output::{FileJson, format_short, minutes_seconds, print_json, print_table, rpc};
use super::{Globals, Outcome};

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a collection, optionally with files in order.
    Create { name: String, file_ids: Vec<String> },
    /// List collections (only those holding a file with --file).
    Ls {
        #[arg(long, value_name = "FILE_ID")]
        file: Option<String>,
    },
    /// Show a collection's files in order.
    Show { collection_id: String },
    /// Append files.
    Add {
        collection_id: String,
        file_ids: Vec<String>,
    },
    /// Take files out.
    Remove {
        collection_id: String,
        file_ids: Vec<String>,
    },
    /// Move a file to a position (1 is the first).
    Move {
        collection_id: String,
        file_id: String,
        #[arg(long)]
        to: usize,
    },
    /// Rename a collection.
    Rename { collection_id: String, name: String },
    /// Delete a collection (its files stay in the library).
    Delete { collection_id: String },
}

#[derive(Serialize)]
struct CollectionJson {
    collection_id: String,
    name: String,
    file_count: u32,
    files: Vec<FileJson>,
}

impl From<&Collection> for CollectionJson {
    fn from(c: &Collection) -> Self {
        Self {
            collection_id: c.collection_id.clone(),
            name: c.name.clone(),
            file_count: c.file_count,
            files: c.files.iter().map(FileJson::from).collect(),
        }
    }
}

pub async fn run(
    client: &TraumClient,
    globals: Globals,
    command: CollectionCommand,
) -> anyhow::Result<Outcome> {
    let mut audio = client.audio();
    let update = |collection_id: String| UpdateCollectionRequest {
        collection_id,
        ..Default::default()
    };
    let shown = match command {
        CollectionCommand::Ls { file } => {
            let request = ListCollectionsRequest {
                file_id: file.unwrap_or_default(),
            };
            let collections = rpc(audio.list_collections(request).await)?.collections;
            if globals.json {
                print_json(&collections.iter().map(CollectionJson::from).collect::<Vec<_>>())?;
            } else {
                let rows: Vec<Vec<String>> = collections
                    .iter()
                    .map(|c| vec![c.collection_id.clone(), c.name.clone(), c.file_count.to_string()])
                    .collect();
                print_table(&["ID", "NAME", "FILES"], &rows);
            }
            return Ok(Outcome::Success);
        }
        CollectionCommand::Delete { collection_id } => {
            rpc(audio
                .delete_collection(DeleteCollectionRequest {
                    collection_id: collection_id.clone(),
                })
                .await)?;
            if globals.json {
                print_json(&serde_json::json!({ "deleted": collection_id }))?;
            } else {
                println!("deleted collection {collection_id}");
            }
            return Ok(Outcome::Success);
        }
        CollectionCommand::Create { name, file_ids } => rpc(audio
            .create_collection(CreateCollectionRequest { name, file_ids })
            .await)?,
        CollectionCommand::Show { collection_id } => {
            rpc(audio.get_collection(GetCollectionRequest { collection_id }).await)?
        }
        CollectionCommand::Add {
            collection_id,
            file_ids,
        } => rpc(audio
            .update_collection(UpdateCollectionRequest {
                add_file_ids: file_ids,
                ..update(collection_id)
            })
            .await)?,
        CollectionCommand::Remove {
            collection_id,
            file_ids,
        } => rpc(audio
            .update_collection(UpdateCollectionRequest {
                remove_file_ids: file_ids,
                ..update(collection_id)
            })
            .await)?,
        CollectionCommand::Rename { collection_id, name } => rpc(audio
            .update_collection(UpdateCollectionRequest {
                name: Some(name),
                ..update(collection_id)
            })
            .await)?,
        CollectionCommand::Move {
            collection_id,
            file_id,
            to,
        } => {
            let current = rpc(audio
                .get_collection(GetCollectionRequest {
                    collection_id: collection_id.clone(),
                })
                .await)?;
            let mut order: Vec<String> = current.files.iter().map(|f| f.file_id.clone()).collect();
            let from = order
                .iter()
                .position(|id| *id == file_id)
                .with_context(|| format!("file {file_id} is not in collection {collection_id}"))?;
            let id = order.remove(from);
            order.insert(to.clamp(1, order.len() + 1) - 1, id);
            rpc(audio
                .update_collection(UpdateCollectionRequest {
                    replace_file_ids: Some(FileIdList { file_ids: order }),
                    ..update(collection_id)
                })
                .await)?
        }
    };
    if globals.json {
        print_json(&CollectionJson::from(&shown))?;
    } else {
        println!(
            "{} ({}, {} files)",
            shown.name, shown.collection_id, shown.file_count
        );
        let rows: Vec<Vec<String>> = shown
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                vec![
                    (i + 1).to_string(),
                    f.file_id.clone(),
                    f.filename.clone(),
                    format_short(f.format),
                    f.properties
                        .as_ref()
                        .map_or("-".into(), |p| minutes_seconds(p.duration_seconds)),
                ]
            })
            .collect();
        print_table(&["#", "ID", "NAME", "FORMAT", "DURATION"], &rows);
    }
    Ok(Outcome::Success)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
    M3u8,
    Zip,
}

impl ExportFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::M3u8 => "m3u8",
            Self::Zip => "zip",
        }
    }
}

#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// The collection to export.
    collection_id: String,

    /// What to write: a spreadsheet, JSON, a playlist of audio URLs, or the original files.
    #[arg(long, default_value = "csv")]
    format: ExportFormat,

    /// Output file; `-` (the default) is standard output.
    #[arg(short, long, default_value = "-")]
    output: PathBuf,

    /// The server's web port, which serves exports.
    #[arg(long, env = "TRAUM_WEB_ADDR", default_value = "http://127.0.0.1:8080")]
    web_addr: String,
}

/// How `traum export` reaches an HTTPS web port: the CA to trust and the
/// client certificate to present, the same files as for the gRPC port.
#[derive(Clone, Debug, Default)]
pub struct WebTls {
    pub ca_cert: Option<PathBuf>,
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

pub async fn export(args: ExportArgs, api_key: Option<&str>, tls: WebTls) -> anyhow::Result<Outcome> {
    let url = format!(
        "{}/api/collections/{}/export?format={}",
        args.web_addr.trim_end_matches('/'),
        args.collection_id,
        args.format.as_str()
    );
    let mut client = reqwest::Client::builder();
    if let Some(path) = &tls.ca_cert {
        let pem = tokio::fs::read(path)
            .await
            .with_context(|| format!("reading CA certificate {}", path.display()))?;
        client = client
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    if let Some((cert, key)) = &tls.client_identity {
        let mut pem = tokio::fs::read(cert)
            .await
            .with_context(|| format!("reading client certificate {}", cert.display()))?;
        pem.extend(
            tokio::fs::read(key)
                .await
                .with_context(|| format!("reading client key {}", key.display()))?,
        );
        client = client.identity(reqwest::Identity::from_pem(&pem)?);
    }
    let mut request = client.build()?.get(&url);
    if let Some(key) = api_key {
        request = request.header(traum_client::API_KEY_HEADER, key);
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the web port at {}", args.web_addr))?;
    if !response.status().is_success() {
        let status = response.status();
        let message = response.text().await.unwrap_or_default();
        anyhow::bail!("export failed ({status}): {}", message.trim());
    }
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = if args.output.as_os_str() == "-" {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(&args.output)
                .await
                .with_context(|| format!("cannot create {}", args.output.display()))?,
        )
    };
    // Chunk by chunk: a zip of a large collection never sits in memory.
    while let Some(chunk) = response.chunk().await.context("the export stopped mid-way")? {
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(Outcome::Success)
}
