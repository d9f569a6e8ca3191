//! Subcommands of the `traum-server` binary besides serving.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::json;
use traum_clap::hub::{DEFAULT_REPO, HubOptions, ModelSource};

use traum_audio::{DecodeOptions, OUTPUT_SAMPLE_RATE, decode_to_vec};

use crate::embed::{Engine, ModelSettings, TextSettings, source_name};
use crate::zero_shot::{LabelVectors, Vocabularies, probabilities};

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

/// The model of a command (a local directory, or a hub repo fetched into
/// the cache), loaded with its inference thread, and a runtime to drive it.
fn start_engine(
    model_dir: &Option<PathBuf>,
    model: &str,
    model_cache_dir: &std::path::Path,
    batch_size: usize,
) -> Result<(ModelSource, Arc<Engine>, tokio::runtime::Runtime), String> {
    let source = match model_dir {
        Some(dir) => ModelSource::Dir(dir.clone()),
        None => ModelSource::Hub {
            repo: model.to_owned(),
            revision: "main".into(),
            cache_dir: model_cache_dir.to_path_buf(),
        },
    };
    let dir = source
        .resolve(&HubOptions::from_env())
        .map_err(|err| format!("cannot get the model: {err}"))?;
    let settings = ModelSettings {
        source: Some(source.clone()),
        hub: HubOptions::from_env(),
        batch_size,
        threads: std::thread::available_parallelism().map_or(2, usize::from),
        precision: Default::default(),
        text: TextSettings::default(),
    };
    let engine = Arc::new(Engine::start(&dir, &settings).map_err(|err| err.to_string())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    Ok((source, engine, runtime))
}

/// Runs `embed`; the error is a message for stderr.
pub fn embed(args: &EmbedArgs) -> Result<String, String> {
    if args.audio.is_empty() && args.text.is_empty() {
        return Err("nothing to embed: give --audio FILE and/or --text TEXT".into());
    }
    if !(1..=256).contains(&args.batch_size) {
        return Err("--batch-size must be between 1 and 256".into());
    }
    let (source, engine, runtime) = start_engine(
        &args.model_dir,
        &args.model,
        &args.model_cache_dir,
        args.batch_size,
    )?;
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

/// `traum-server eval-tags`: the accuracy of zero-shot tags on a labelled
/// folder, `DIR/VOCABULARY/LABEL/<audio files>`.
#[derive(Debug, Clone, Args)]
pub struct EvalTagsArgs {
    /// Folder with one subfolder per vocabulary (e.g. `genre`) holding one
    /// subfolder per label (e.g. `techno`) with that label's audio files.
    pub dir: PathBuf,
    /// Local checkpoint directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json).
    #[arg(long, env = "TRAUM_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Hub repo id, used when --model-dir is not given.
    #[arg(long, default_value = DEFAULT_REPO)]
    pub model: String,
    /// Hub cache directory for --model.
    #[arg(long, env = "TRAUM_MODEL_CACHE_DIR", default_value = "./data/models")]
    pub model_cache_dir: PathBuf,
    /// Vocabulary file, as the server's --tag-vocabulary [default: the built-in vocabularies].
    #[arg(long, env = "TRAUM_TAG_VOCABULARY")]
    pub tag_vocabulary: Option<PathBuf>,
    /// Print the results (and every file's ranking) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One labelled file of an evaluation folder.
struct LabelledFile {
    path: PathBuf,
    vocabulary: String,
    label: String,
}

/// The labelled files under `dir`, sorted; a vocabulary or label the
/// vocabularies lack is an error naming what exists.
fn labelled_files(dir: &std::path::Path, vocabularies: &Vocabularies) -> Result<Vec<LabelledFile>, String> {
    let subfolders = |path: &std::path::Path| -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?
        {
            let entry = entry.map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            out.push(entry.path());
        }
        out.sort();
        Ok(out)
    };
    let mut files = Vec::new();
    for vocabulary_dir in subfolders(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = file_name(&vocabulary_dir).to_lowercase();
        let Some(vocabulary) = vocabularies.get(&name) else {
            let known: Vec<&str> = vocabularies.iter().map(|v| v.name.as_str()).collect();
            return Err(format!(
                "{} is not a vocabulary; subfolders of {} must be one of: {}",
                vocabulary_dir.display(),
                dir.display(),
                known.join(", ")
            ));
        };
        for label_dir in subfolders(&vocabulary_dir)?.into_iter().filter(|p| p.is_dir()) {
            let label = file_name(&label_dir).trim().to_lowercase();
            if !vocabulary.labels.contains(&label) {
                return Err(format!(
                    "{} is not a label of vocabulary `{name}`, which has: {}",
                    label_dir.display(),
                    vocabulary.labels.join(", ")
                ));
            }
            for path in subfolders(&label_dir)?.into_iter().filter(|p| p.is_file()) {
                files.push(LabelledFile {
                    path,
                    vocabulary: name.clone(),
                    label: label.clone(),
                });
            }
        }
    }
    if files.is_empty() {
        return Err(format!(
            "no labelled audio under {}: expected {0}/VOCABULARY/LABEL/FILE, e.g. {0}/genre/techno/loop.wav",
            dir.display()
        ));
    }
    Ok(files)
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `eval-tags`; the error is a message for stderr.
pub fn eval_tags(args: &EvalTagsArgs) -> Result<String, String> {
    let vocabularies = match &args.tag_vocabulary {
        Some(path) => Vocabularies::from_file(path)?,
        None => Vocabularies::default(),
    };
    let files = labelled_files(&args.dir, &vocabularies)?;
    let (source, engine, runtime) = start_engine(&args.model_dir, &args.model, &args.model_cache_dir, 2)?;
    let labels = runtime
        .block_on(LabelVectors::encode(&vocabularies, &engine))
        .map_err(|err| format!("cannot encode the labels: {err}"))?;
    // (files, top-1 hits, top-3 hits, stored as a suggestion) per vocabulary.
    let mut tallies: Vec<(String, [usize; 4])> = Vec::new();
    let mut rankings = Vec::new();
    for file in &files {
        let options = DecodeOptions {
            max_duration: std::time::Duration::from_secs(30 * 60),
            format_hint: None,
        };
        let (samples, _) = decode_to_vec(&file.path, &options, |_| {})
            .map_err(|err| format!("{}: {err}", file.path.display()))?;
        let embedded = runtime
            .block_on(engine.embed_audio(Arc::new(samples), |_| {}))
            .map_err(|err| format!("{}: {err}", file.path.display()))?;
        let (index, vocabulary) = vocabularies
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == file.vocabulary)
            .ok_or_else(|| format!("vocabulary `{}` vanished", file.vocabulary))?;
        let probabilities = probabilities(labels.scale, &labels.vectors[index], &embedded.file);
        let mut ranked: Vec<(usize, f64)> = probabilities.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let rank = ranked
            .iter()
            .position(|&(i, _)| vocabulary.labels[i] == file.label)
            .unwrap_or(usize::MAX);
        let stored = ranked
            .iter()
            .take(vocabulary.max_labels)
            .any(|&(i, p)| vocabulary.labels[i] == file.label && p >= vocabulary.threshold);
        let tally = match tallies.iter_mut().find(|(name, _)| *name == file.vocabulary) {
            Some((_, tally)) => tally,
            None => {
                tallies.push((file.vocabulary.clone(), [0; 4]));
                &mut tallies.last_mut().ok_or("no tally")?.1
            }
        };
        tally[0] += 1;
        tally[1] += usize::from(rank == 0);
        tally[2] += usize::from(rank < 3);
        tally[3] += usize::from(stored);
        rankings.push(json!({
            "path": file.path.display().to_string(),
            "vocabulary": file.vocabulary,
            "label": file.label,
            "rank": rank + 1,
            "top": ranked.iter().take(3).map(|&(i, p)| json!({"label": vocabulary.labels[i], "probability": p})).collect::<Vec<_>>(),
        }));
    }
    let share = |hits: usize, total: usize| hits as f64 / total.max(1) as f64;
    if args.json {
        let output = json!({
            "model": { "name": source_name(&source), "model_id": engine.model_id() },
            "vocabularies": tallies.iter().map(|(name, [n, top1, top3, stored])| json!({
                "vocabulary": name,
                "files": n,
                "top1_accuracy": share(*top1, *n),
                "top3_accuracy": share(*top3, *n),
                "suggested_share": share(*stored, *n),
            })).collect::<Vec<_>>(),
            "files": rankings,
        });
        return serde_json::to_string_pretty(&output).map_err(|err| err.to_string());
    }
    let mut lines = vec![
        format!("model {} (id {})", source_name(&source), engine.model_id()),
        format!(
            "{:<16} {:>6} {:>7} {:>7} {:>10}",
            "vocabulary", "files", "top-1", "top-3", "suggested"
        ),
    ];
    for (name, [n, top1, top3, stored]) in &tallies {
        lines.push(format!(
            "{name:<16} {n:>6} {:>6.1}% {:>6.1}% {:>9.1}%",
            100.0 * share(*top1, *n),
            100.0 * share(*top3, *n),
            100.0 * share(*stored, *n)
        ));
    }
    lines.push("top-k: the true label among the k most probable; suggested: stored as a suggestion (above the threshold)".into());
    Ok(lines.join("\n"))
}

/// The database a command works on, named as the server names it.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// TOML file of the server (only its data_dir and database_url are used).
    #[arg(long, env = "TRAUM_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: ./data].
    #[arg(long, env = "TRAUM_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The server's database URL [default: sqlite in the data dir].
    #[arg(long, env = "TRAUM_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

/// `traum-server keys`: API keys, managed on the database directly, so the
/// first admin key can exist before any server runs.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
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

/// The configuration of a command that works on the server's database
/// (and, given `blob_store`, its blobs) without serving.
fn command_config(args: &DatabaseArgs, blob_store: Option<String>) -> Result<crate::Config, String> {
    crate::Config::resolve(crate::ConfigArgs {
        config: args.config.clone(),
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        blob_store,
        // Only the database is used: no listener is opened.
        listen: Some("127.0.0.1:0".into()),
        web_listen: Some("off".into()),
        model: Some("none".into()),
        ..crate::ConfigArgs::default()
    })
    .map_err(|err| err.to_string())
}

async fn open_store(config: &crate::Config) -> Result<crate::store::Store, String> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|err| format!("cannot create {}: {err}", config.data_dir.display()))?;
    }
    crate::store::Store::connect(&config.database_url)
        .await
        .map_err(|err| format!("cannot open the database: {err}"))
}

/// The database and the blob store `config` names.
async fn open_library(
    config: &crate::Config,
) -> Result<(crate::store::Store, crate::blob::BlobStore), String> {
    let store = open_store(config).await?;
    let blobs = crate::blob::BlobStore::open(&config.data_dir, &config.blob_store)
        .await
        .map_err(|err| format!("cannot open the blob store: {err}"))?;
    Ok((store, blobs))
}

fn command_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))
}

/// Opens (and migrates) the database `args` name, on a runtime of its own,
/// and runs `work` on it.
fn with_store<F>(args: &DatabaseArgs, work: impl FnOnce(crate::store::Store) -> F) -> Result<String, String>
where
    F: Future<Output = Result<String, String>>,
{
    let config = command_config(args, None)?;
    command_runtime()?.block_on(async {
        let store = open_store(&config).await?;
        work(store).await
    })
}

/// `traum-server backup`: a consistent snapshot of a running library.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The server's blob store, `file://PATH` or `s3://BUCKET/PREFIX` [default: DATA_DIR/blobs].
    #[arg(long, env = "TRAUM_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// The backup directory: each backup adds a snapshot to it and copies
    /// only the blobs it does not hold yet.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "verify",
        conflicts_with = "verify"
    )]
    pub to: Option<PathBuf>,
    /// Checks a backup (its latest snapshot, or the snapshot directory
    /// given) without restoring it: checksums, rows and blobs.
    #[arg(long, value_name = "DIR")]
    pub verify: Option<PathBuf>,
}

/// `traum-server restore`: a backup into an empty database and blob store.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The blob store to fill, `file://PATH` or `s3://BUCKET/PREFIX` [default: DATA_DIR/blobs].
    #[arg(long, env = "TRAUM_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// The backup directory (its latest snapshot) or one snapshot directory.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

fn describe_manifest(manifest: &crate::backup::Manifest) -> String {
    let rows: Vec<String> = manifest
        .tables
        .iter()
        .filter(|table| table.rows > 0)
        .map(|table| format!("{} {}", table.name, table.rows))
        .collect();
    let mut text = format!(
        "{} blobs ({} bytes); rows: {}; index files: {}",
        manifest.blobs.count,
        manifest.blobs.bytes,
        if rows.is_empty() {
            "none".to_owned()
        } else {
            rows.join(", ")
        },
        manifest.index.len()
    );
    if !manifest.left_out_files.is_empty() {
        text.push_str(&format!(
            "\n{} files deleted while the backup ran were left out: {}",
            manifest.left_out_files.len(),
            manifest.left_out_files.join(", ")
        ));
    }
    text
}

/// Runs `backup` (or `backup --verify`); the error is a message for stderr.
pub fn backup(args: &BackupArgs) -> Result<String, String> {
    if let Some(dir) = &args.verify {
        return command_runtime()?.block_on(async {
            let report = crate::backup::verify(dir).await.map_err(|err| err.to_string())?;
            Ok(format!(
                "backup {} is intact: {} blobs checked; {}",
                report.snapshot.display(),
                report.blobs_checked,
                describe_manifest(&report.manifest)
            ))
        });
    }
    let to = args.to.clone().ok_or("give --to DIR or --verify DIR")?;
    if to.to_string_lossy().contains("://") {
        return Err(format!(
            "--to {} names a URL; backups go to a directory (one on a mounted volume, or copied to \
             object storage afterwards, e.g. with `aws s3 sync`)",
            to.display()
        ));
    }
    let config = command_config(&args.database, args.blob_store.clone())?;
    command_runtime()?.block_on(async {
        let (store, blobs) = open_library(&config).await?;
        let source = crate::backup::BackupSource {
            store: &store,
            blobs: &blobs,
            data_dir: &config.data_dir,
        };
        let report = crate::backup::backup(source, &to)
            .await
            .map_err(|err| err.to_string())?;
        Ok(format!(
            "backup written to {}: {}; {} blobs ({} bytes) copied, the others were in the backup already",
            report.snapshot.display(),
            describe_manifest(&report.manifest),
            report.manifest.blobs.copied,
            report.manifest.blobs.copied_bytes
        ))
    })
}

/// Runs `restore`; the error is a message for stderr.
pub fn restore(args: &RestoreArgs) -> Result<String, String> {
    let config = command_config(&args.database, args.blob_store.clone())?;
    command_runtime()?.block_on(async {
        let (store, blobs) = open_library(&config).await?;
        let target = crate::backup::BackupSource {
            store: &store,
            blobs: &blobs,
            data_dir: &config.data_dir,
        };
        let report = crate::backup::restore(target, &args.from)
            .await
            .map_err(|err| err.to_string())?;
        Ok(format!(
            "restored {} into {} and {}: {}{}",
            report.snapshot.display(),
            crate::config::redact_url(&config.database_url),
            blobs.describe(),
            describe_manifest(&report.manifest),
            if report.index_installed {
                "; the saved vector index was installed"
            } else {
                ""
            }
        ))
    })
}

/// Runs `migrate`: brings the schema up to date (what every server does at
/// start), e.g. as a Kubernetes Job before the replicas roll.
pub fn migrate(args: &DatabaseArgs) -> Result<String, String> {
    use traum_migration::MigratorTrait;
    with_store(args, async |_store| {
        Ok(format!(
            "the database schema is current ({} migrations applied)",
            traum_migration::Migrator::migrations().len()
        ))
    })
}

/// Runs `keys`; the error is a message for stderr.
pub fn keys(args: &KeysArgs) -> Result<String, String> {
    with_store(&args.database, async |store| match &args.action {
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
