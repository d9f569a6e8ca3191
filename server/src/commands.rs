//! Subcommands of the `traum-server` binary besides serving.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use traum_clap::hub::{DEFAULT_REPO, HubOptions, ModelSource};

use traum_audio::{DecodeOptions, OUTPUT_SAMPLE_RATE, decode_to_vec};

use crate::embed::{Engine, ModelSettings, TextSettings, source_name};

/// `traum-server embed`: CLAP vectors of files and texts, computed exactly
/// as the server computes them, without starting it.
#[derive(Debug, Clone, Args)]
pub struct EmbedArgs {
    /// Local checkpoint directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json).
    #[arg(long, env = "TRAUM_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Hub repo id, used when --model-dir is not given.
    #[arg(long, default_value = DEFAULT_REPO)]
    pub model: String,
    /// Hub cache directory for --model.
    #[arg(long, env = "TRAUM_MODEL_CACHE_DIR", default_value = "./data/models")]
    pub model_cache_dir: PathBuf,
    /// Audio files to embed (each gives per-window and pooled vectors).
    #[arg(long = "audio", value_name = "FILE")]
    pub audio: Vec<PathBuf>,
    /// Texts to embed.
    #[arg(long = "text", value_name = "TEXT")]
    pub text: Vec<String>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Print every vector as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs `embed`; the error is a message for stderr.
pub fn embed(args: &EmbedArgs) -> Result<String, String> {
    if args.audio.is_empty() && args.text.is_empty() {
        return Err("nothing to embed: give --audio FILE and/or --text TEXT".into());
    }
    if !(1..=256).contains(&args.batch_size) {
        return Err("--batch-size must be between 1 and 256".into());
    }
    let source = match &args.model_dir {
        Some(dir) => ModelSource::Dir(dir.clone()),
        None => ModelSource::Hub {
            repo: args.model.clone(),
            revision: "main".into(),
            cache_dir: args.model_cache_dir.clone(),
        },
    };
    let dir = source
        .resolve(&HubOptions::from_env())
        .map_err(|err| format!("cannot get the model: {err}"))?;
    let settings = ModelSettings {
        source: Some(source.clone()),
        hub: HubOptions::from_env(),
        batch_size: args.batch_size,
        threads: std::thread::available_parallelism().map_or(2, usize::from),
        text: TextSettings::default(),
    };
    let engine = Arc::new(Engine::start(&dir, &settings).map_err(|err| err.to_string())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let mut audio = Vec::new();
    for path in &args.audio {
        let options = DecodeOptions {
            max_duration: std::time::Duration::from_secs(24 * 3600),
            format_hint: None,
        };
        let (samples, _) =
            decode_to_vec(path, &options, |_| {}).map_err(|err| format!("{}: {err}", path.display()))?;
        let duration = samples.len() as f64 / f64::from(OUTPUT_SAMPLE_RATE);
        let embedded = runtime
            .block_on(engine.embed_audio(Arc::new(samples), |_| {}))
            .map_err(|err| format!("{}: {err}", path.display()))?;
        audio.push(json!({
            "path": path.display().to_string(),
            "duration_seconds": duration,
            "embedding": embedded.file,
            "windows": embedded.windows.iter().map(|w| json!({
                "index": w.index,
                "start_seconds": w.start_seconds,
                "end_seconds": w.end_seconds,
                "embedding": w.vector,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut texts = Vec::new();
    for text in &args.text {
        let vector = runtime
            .block_on(engine.embed_text(text))
            .map_err(|err| format!("text {text:?}: {err}"))?;
        texts.push(json!({ "text": text, "embedding": vector.as_slice() }));
    }
    let output = json!({
        "model": { "name": source_name(&source), "model_id": engine.model_id(), "dim": engine.dim() },
        "audio": audio,
        "text": texts,
    });
    if args.json {
        return serde_json::to_string_pretty(&output).map_err(|err| err.to_string());
    }
    let mut lines = vec![format!(
        "model {} (id {}, {} dimensions)",
        source_name(&source),
        engine.model_id(),
        engine.dim()
    )];
    let head = |v: &serde_json::Value| {
        let values: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .take(4)
                    .map(|x| format!("{:+.4}", x.as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default();
        format!("[{}, …]", values.join(", "))
    };
    for item in &audio {
        lines.push(format!(
            "audio {}: {:.2} s, {} windows, pooled {}",
            item["path"].as_str().unwrap_or_default(),
            item["duration_seconds"].as_f64().unwrap_or(0.0),
            item["windows"].as_array().map_or(0, Vec::len),
            head(&item["embedding"])
        ));
    }
    for item in &texts {
        lines.push(format!(
            "text {:?}: {}",
            item["text"].as_str().unwrap_or_default(),
            head(&item["embedding"])
        ));
    }
    Ok(lines.join("\n"))
}

/// `traum-server keys`: API keys, managed on the database directly, so the
/// first admin key can exist before any server runs.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// TOML file of the server (only its data_dir and database_url are used).
    #[arg(long, env = "TRAUM_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: ./data].
    #[arg(long, env = "TRAUM_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The server's database URL [default: sqlite in the data dir].
    #[arg(long, env = "TRAUM_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysAction {
    /// Create a key; its secret is printed once, as the last line.
    Create {
        /// What the key allows.
        #[arg(long, value_parser = ["read", "write", "admin"])]
        role: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

/// Runs `keys`; the error is a message for stderr.
pub fn keys(args: &KeysArgs) -> Result<String, String> {
    let config = crate::Config::resolve(crate::ConfigArgs {
        config: args.config.clone(),
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        // Only the database is used: no listener is opened.
        listen: Some("127.0.0.1:0".into()),
        web_listen: Some("off".into()),
        model: Some("none".into()),
        ..crate::ConfigArgs::default()
    })
    .map_err(|err| err.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async {
        if config.database_url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|err| format!("cannot create {}: {err}", config.data_dir.display()))?;
        }
        let store = crate::store::Store::connect(&config.database_url)
            .await
            .map_err(|err| format!("cannot open the database: {err}"))?;
        match &args.action {
            KeysAction::Create { role, name } => {
                let role = crate::auth::Role::parse(role).ok_or_else(|| format!("unknown role {role}"))?;
                let (key, secret) = crate::auth::create_key(&store, name, role)
                    .await
                    .map_err(|err| err.to_string())?;
                audit_locally(
                    &store,
                    "traum-server keys create",
                    format!("key {} ({}, {})", key.id, key.name, key.role),
                )
                .await?;
                Ok(format!(
                    "created {} key `{}` (id {}); it is shown only now:\n{secret}",
                    key.role, key.name, key.id
                ))
            }
            KeysAction::List => {
                let keys = store.list_api_keys().await.map_err(|err| err.to_string())?;
                let mut lines = vec![format!(
                    "{:<36}  {:<6}  {:<12}  {:<20}  {:<20}  {:<20}  NAME",
                    "ID", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED"
                )];
                let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
                    at.map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                };
                for key in keys {
                    lines.push(format!(
                        "{:<36}  {:<6}  {:<12}  {:<20}  {:<20}  {:<20}  {}",
                        key.id,
                        key.role,
                        key.prefix,
                        time(Some(key.created_at)),
                        time(key.last_used_at),
                        time(key.revoked_at),
                        key.name
                    ));
                }
                Ok(lines.join("\n"))
            }
            KeysAction::Revoke { key_id } => {
                let id = crate::validate::id("key id", key_id).map_err(|err| err.to_string())?;
                let key = store
                    .revoke_api_key(&id, chrono::Utc::now())
                    .await
                    .map_err(|err| err.to_string())?;
                audit_locally(&store, "traum-server keys revoke", format!("key {}", key.id)).await?;
                Ok(format!("revoked key `{}` ({})", key.name, key.id))
            }
        }
    })
}

/// Key changes made on the database directly are audited like the RPCs.
async fn audit_locally(store: &crate::store::Store, command: &str, target: String) -> Result<(), String> {
    let entry = crate::audit::AuditEntry {
        at: chrono::Utc::now(),
        principal: "local".into(),
        role: None,
        method: command.into(),
        target: Some(target),
        code: 0,
    };
    store
        .insert_audit(&entry)
        .await
        .map_err(|err| format!("the key changed, but its audit entry could not be written: {err}"))
}
