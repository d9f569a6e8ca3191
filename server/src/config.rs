//! Server configuration: one struct, filled from flags, `TRAUM_*` environment
//! variables and an optional TOML file (in that order of precedence), and
//! validated before any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::blob::{BlobLocation, S3Location};

pub use crate::auth::AuthMode;

/// Exit code for an unusable configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

const MIB: u64 = 1024 * 1024;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Raw settings as given on the command line or in the environment. Every
/// field is optional so that the TOML file and the defaults can fill gaps.
#[derive(Debug, Default, Clone, Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (keys in snake_case).
    #[arg(long, env = "TRAUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the gRPC listener [default: 127.0.0.1:50051].
    #[arg(long, env = "TRAUM_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the database, blobs and upload sessions [default: ./data].
    #[arg(long, env = "TRAUM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://…` [default: sqlite in the data dir].
    #[arg(long, env = "TRAUM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address of the Prometheus `/metrics` listener, or `off` [default: 127.0.0.1:9464].
    #[arg(long, env = "TRAUM_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Address of the web port (gRPC-Web for every RPC, and files' audio over
    /// HTTP), or `off` [default: 127.0.0.1:8080].
    #[arg(long, env = "TRAUM_WEB_LISTEN")]
    pub web_listen: Option<String>,
    /// Log format [default: human].
    #[arg(long, env = "TRAUM_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter in `tracing` syntax, e.g. `info,traum_server=debug` [default: info].
    #[arg(long, env = "TRAUM_LOG")]
    pub log: Option<String>,
    /// Largest accepted upload, in bytes [default: 536870912 = 512 MiB].
    #[arg(long, env = "TRAUM_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Largest `data` of one resumable-upload chunk, in bytes [default: 4194304].
    #[arg(long, env = "TRAUM_MAX_CHUNK_BYTES")]
    pub max_chunk_bytes: Option<u64>,
    /// Jobs processed concurrently [default: 3].
    #[arg(long, env = "TRAUM_WORKERS")]
    pub workers: Option<usize>,
    /// How long shutdown waits for streams and jobs, e.g. `30s` [default: 30s].
    #[arg(long, env = "TRAUM_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Idle time after which a resumable upload session expires, e.g. `24h` [default: 24h].
    #[arg(long, env = "TRAUM_UPLOAD_TTL", value_parser = humantime::parse_duration)]
    pub upload_ttl: Option<Duration>,
    /// This replica's name among the servers of one database; unique per
    /// running server [default: the host name and a random suffix].
    #[arg(long, env = "TRAUM_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// How long a claimed job stays this replica's without a heartbeat; a
    /// replica that dies loses its jobs to the others after it, e.g. `30s` [default: 30s].
    #[arg(long, env = "TRAUM_JOB_LEASE", value_parser = humantime::parse_duration)]
    pub job_lease: Option<Duration>,
    /// Where audio bytes live: `file://PATH` (a directory, which replicas
    /// may share) or `s3://BUCKET/PREFIX` (any S3-compatible store, set up by
    /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP) [default: file://DATA_DIR/blobs].
    #[arg(long, env = "TRAUM_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// Age after which a blob that no file references is removed from the
    /// blob store by the cluster's chores (left by a delete during a store
    /// outage, or by a crash between writing bytes and their record), e.g.
    /// `1h` [default: 1h].
    #[arg(long, env = "TRAUM_ORPHAN_BLOB_GRACE", value_parser = humantime::parse_duration)]
    pub orphan_blob_grace: Option<Duration>,
    /// Age after which recorded usage events are pruned, e.g. `90d` [default: 90d].
    #[arg(long, env = "TRAUM_USAGE_RETENTION", value_parser = humantime::parse_duration)]
    pub usage_retention: Option<Duration>,
    /// How long an upload stream or chunk may send nothing before it is
    /// ended with DEADLINE_EXCEEDED, e.g. `60s` [default: 60s].
    #[arg(long, env = "TRAUM_UPLOAD_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub upload_idle_timeout: Option<Duration>,
    /// Age after which audit log entries are pruned, e.g. `365d` [default: 365d].
    #[arg(long, env = "TRAUM_AUDIT_RETENTION", value_parser = humantime::parse_duration)]
    pub audit_retention: Option<Duration>,
    /// Longest audio accepted for analysis, e.g. `30m` [default: 30m].
    #[arg(long, env = "TRAUM_MAX_DURATION", value_parser = humantime::parse_duration)]
    pub max_duration: Option<Duration>,
    /// Local CLAP checkpoint directory (config.json, model.safetensors or
    /// pytorch_model.bin, tokenizer.json); takes precedence over --model.
    #[arg(long, env = "TRAUM_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Hugging Face repo id of the CLAP checkpoint, downloaded once into the
    /// model cache; `none` runs without a model
    /// [default: laion/larger_clap_music_and_speech].
    #[arg(long, env = "TRAUM_MODEL")]
    pub model: Option<String>,
    /// Branch, tag or commit of --model [default: main].
    #[arg(long, env = "TRAUM_MODEL_REVISION")]
    pub model_revision: Option<String>,
    /// Where downloaded checkpoints are kept (hub cache layout)
    /// [default: DATA_DIR/models].
    #[arg(long, env = "TRAUM_MODEL_CACHE_DIR")]
    pub model_cache_dir: Option<PathBuf>,
    /// Audio windows per forward pass, gathered across files [default: 2;
    /// on the CPU larger batches are slower per window once activations
    /// outgrow the cache, on a GPU raise it].
    #[arg(long, env = "TRAUM_EMBED_BATCH_SIZE")]
    pub embed_batch_size: Option<usize>,
    /// Threads of the inference pool [default: number of CPUs].
    #[arg(long, env = "TRAUM_EMBED_THREADS")]
    pub embed_threads: Option<usize>,
    /// What CLAP's matrix products compute in on the CPU: `f32`, or `bf16`
    /// (faster where the CPU has AMX or AVX512-BF16; fidelity to f32 in
    /// README → Benchmarks) [default: f32].
    #[arg(long, env = "TRAUM_PRECISION")]
    pub precision: Option<traum_clap::Precision>,
    /// Most text queries encoded in one forward pass, gathered across
    /// concurrent searches [default: 16].
    #[arg(long, env = "TRAUM_TEXT_BATCH_SIZE")]
    pub text_batch_size: Option<usize>,
    /// How long the first new text query of a batch waits for others to join
    /// it, e.g. `5ms`; `0s` takes only what is already queued [default: 5ms].
    #[arg(long, env = "TRAUM_TEXT_BATCH_WAIT", value_parser = humantime::parse_duration)]
    pub text_batch_wait: Option<Duration>,
    /// Text query vectors kept in memory and in DATA_DIR/cache, so repeated
    /// queries skip the text encoder, across restarts too; 0 turns the cache
    /// off [default: 4096].
    #[arg(long, env = "TRAUM_TEXT_CACHE_ENTRIES")]
    pub text_cache_entries: Option<usize>,
    /// HNSW neighbours per node ("M"; layer 0 gets 2·M) [default: 16].
    #[arg(long, env = "TRAUM_HNSW_M")]
    pub hnsw_m: Option<usize>,
    /// HNSW candidate list size while building [default: 100].
    #[arg(long, env = "TRAUM_HNSW_EF_CONSTRUCTION")]
    pub hnsw_ef_construction: Option<usize>,
    /// HNSW candidate list size while searching [default: 128].
    #[arg(long, env = "TRAUM_HNSW_EF_SEARCH")]
    pub hnsw_ef_search: Option<usize>,
    /// Recall@10 each built graph must reach on a sample of its own items;
    /// the candidate list grows until it does, and where that costs more than
    /// scoring every vector, searches score every vector. 0 turns the check
    /// off [default: 0.95].
    #[arg(long, env = "TRAUM_HNSW_TARGET_RECALL")]
    pub hnsw_target_recall: Option<f64>,
    /// TOML file of zero-shot tag vocabularies (`[[vocabulary]]` tables with
    /// `name`, `labels` and optionally `template`, `threshold`, `max_labels`);
    /// it replaces the built-in genre, instrument, mood and kind vocabularies.
    #[arg(long, env = "TRAUM_TAG_VOCABULARY")]
    pub tag_vocabulary: Option<PathBuf>,
    /// Whether calls need an API key or token: `off` or `required` [default: off].
    #[arg(long, env = "TRAUM_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Start with `--auth off` on an address outside loopback: anyone who
    /// reaches the port can read, change and delete everything.
    #[arg(long, env = "TRAUM_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// File holding the shared secret (at least 32 bytes) that HS256 tokens are signed with.
    #[arg(long, env = "TRAUM_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// PEM public key (RSA for RS256, P-256 for ES256) that tokens are signed against.
    #[arg(long, env = "TRAUM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM certificate chain for TLS on the gRPC and web listeners (with --tls-key).
    #[arg(long, env = "TRAUM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TRAUM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates; clients must present a certificate they signed (mutual TLS).
    #[arg(long, env = "TRAUM_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// A browser origin (e.g. `https://app.example.com`) allowed to call the
    /// web port from another site; repeatable, or space-separated in the
    /// environment [default: none, the app's own origin only].
    #[arg(long = "cors-origin", env = "TRAUM_CORS_ORIGIN", value_delimiter = ' ')]
    pub cors_origins: Vec<String>,
    /// Searches per second per caller (key, token or IP); 0 is unlimited [default: 50].
    #[arg(long, env = "TRAUM_SEARCH_RATE")]
    pub search_rate: Option<f64>,
    /// Searches a caller may make at once above the rate [default: 100].
    #[arg(long, env = "TRAUM_SEARCH_BURST")]
    pub search_burst: Option<u32>,
    /// New uploads per second per caller; 0 is unlimited [default: 10].
    #[arg(long, env = "TRAUM_UPLOAD_RATE")]
    pub upload_rate: Option<f64>,
    /// New uploads a caller may start at once above the rate [default: 50].
    #[arg(long, env = "TRAUM_UPLOAD_BURST")]
    pub upload_burst: Option<u32>,
    /// Upload streams and chunk calls in flight per caller; 0 is unlimited [default: 16].
    #[arg(long, env = "TRAUM_MAX_CONCURRENT_UPLOADS")]
    pub max_concurrent_uploads: Option<usize>,
    /// Longest hold-back of the answer to a failed credential, doubling from
    /// 50 ms per failure within a minute; `0s` is off [default: 2s].
    #[arg(long, env = "TRAUM_AUTH_FAILURE_DELAY", value_parser = humantime::parse_duration)]
    pub auth_failure_delay: Option<Duration>,
}

/// The same settings as read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    metrics_listen: Option<String>,
    web_listen: Option<String>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    max_upload_bytes: Option<u64>,
    max_chunk_bytes: Option<u64>,
    workers: Option<usize>,
    #[serde(default, with = "opt_duration")]
    shutdown_grace: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    upload_ttl: Option<Duration>,
    replica_id: Option<String>,
    #[serde(default, with = "opt_duration")]
    job_lease: Option<Duration>,
    blob_store: Option<String>,
    #[serde(default, with = "opt_duration")]
    orphan_blob_grace: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    usage_retention: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    audit_retention: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    upload_idle_timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    max_duration: Option<Duration>,
    model_dir: Option<PathBuf>,
    model: Option<String>,
    model_revision: Option<String>,
    model_cache_dir: Option<PathBuf>,
    embed_batch_size: Option<usize>,
    embed_threads: Option<usize>,
    precision: Option<String>,
    text_batch_size: Option<usize>,
    #[serde(default, with = "opt_duration")]
    text_batch_wait: Option<Duration>,
    text_cache_entries: Option<usize>,
    hnsw_m: Option<usize>,
    hnsw_ef_construction: Option<usize>,
    hnsw_ef_search: Option<usize>,
    hnsw_target_recall: Option<f64>,
    tag_vocabulary: Option<PathBuf>,
    auth: Option<AuthMode>,
    allow_unauthenticated: Option<bool>,
    jwt_hs256_secret_file: Option<PathBuf>,
    jwt_public_key_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    cors_origins: Option<Vec<String>>,
    search_rate: Option<f64>,
    search_burst: Option<u32>,
    upload_rate: Option<f64>,
    upload_burst: Option<u32>,
    max_concurrent_uploads: Option<usize>,
    #[serde(default, with = "opt_duration")]
    auth_failure_delay: Option<Duration>,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listener address (used by `main`; `run` takes a bound listener).
    pub listen: SocketAddr,
    /// Root of all stored state.
    pub data_dir: PathBuf,
    /// sea-orm connection URL.
    pub database_url: String,
    /// Prometheus listener; `None` disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// The web port (gRPC-Web and audio over HTTP); `None` disables it.
    pub web_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log: String,
    pub max_upload_bytes: u64,
    pub max_chunk_bytes: u64,
    pub workers: usize,
    pub shutdown_grace: Duration,
    pub upload_ttl: Duration,
    /// This server's name in job leases and the chores lease.
    pub replica_id: String,
    pub job_lease: Duration,
    /// Where content-addressed blobs and upload sessions live.
    pub blob_store: BlobLocation,
    /// How old an unreferenced blob must be before the chores remove it.
    pub orphan_blob_grace: Duration,
    pub usage_retention: Duration,
    pub audit_retention: Duration,
    pub upload_idle_timeout: Duration,
    /// Longest audio the pipeline decodes and analyses.
    pub max_duration: Duration,
    /// Local checkpoint directory; wins over `model`.
    pub model_dir: Option<PathBuf>,
    /// Hub repo id; `None` runs without a model.
    pub model: Option<String>,
    pub model_revision: String,
    pub model_cache_dir: PathBuf,
    pub embed_batch_size: usize,
    pub embed_threads: usize,
    /// What the encoders' linear layers compute in.
    pub precision: traum_clap::Precision,
    /// Text queries per forward pass, gathered across concurrent searches.
    pub text_batch_size: usize,
    /// How long a new text query waits for others to share its forward pass.
    pub text_batch_wait: Duration,
    /// Bound of the text cache (and of its file under `data_dir/cache`).
    pub text_cache_entries: usize,
    /// Parameters of the vector index's graph.
    pub hnsw: traum_index::vector::HnswParams,
    /// Vocabularies of zero-shot tags (the built-in ones unless a file replaces them).
    pub tag_vocabularies: crate::zero_shot::Vocabularies,
    pub auth: AuthMode,
    /// Lets `auth: off` listen beyond loopback.
    pub allow_unauthenticated: bool,
    pub jwt_hs256_secret_file: Option<PathBuf>,
    pub jwt_public_key_file: Option<PathBuf>,
    /// Per-caller rate and concurrency limits.
    pub limits: crate::auth::Limits,
    /// TLS on both listeners; `None` serves plaintext.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Origins granted cross-origin access to the web port, exactly.
    pub cors_origins: Vec<String>,
}

/// A configuration that cannot be used, with a message naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Returns the defaults with `data_dir` as the root of stored state; what
    /// tests and embedders start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let model_cache_dir = data_dir.join("models");
        let blob_store = BlobLocation::Directory(data_dir.join("blobs"));
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: default_database_url(&data_dir),
            data_dir,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            web_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            log_format: LogFormat::Human,
            log: "info".to_owned(),
            max_upload_bytes: 512 * MIB,
            max_chunk_bytes: 4 * MIB,
            workers: 3,
            shutdown_grace: Duration::from_secs(30),
            upload_ttl: Duration::from_secs(24 * 3600),
            replica_id: default_replica_id(),
            job_lease: Duration::from_secs(30),
            blob_store,
            orphan_blob_grace: Duration::from_secs(3600),
            usage_retention: Duration::from_secs(90 * 24 * 3600),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            upload_idle_timeout: Duration::from_secs(60),
            max_duration: Duration::from_secs(30 * 60),
            model_dir: None,
            model: Some(traum_clap::hub::DEFAULT_REPO.to_owned()),
            model_revision: "main".to_owned(),
            model_cache_dir,
            embed_batch_size: 8,
            embed_threads: std::thread::available_parallelism().map_or(2, usize::from),
            precision: traum_clap::Precision::F32,
            text_batch_size: crate::embed::TextSettings::DEFAULT.batch_size,
            text_batch_wait: crate::embed::TextSettings::DEFAULT.batch_wait,
            text_cache_entries: crate::embed::TextSettings::DEFAULT.cache_entries,
            hnsw: traum_index::vector::HnswParams::default(),
            tag_vocabularies: crate::zero_shot::Vocabularies::default(),
            auth: AuthMode::Off,
            allow_unauthenticated: false,
            jwt_hs256_secret_file: None,
            jwt_public_key_file: None,
            limits: crate::auth::Limits {
                search: crate::auth::Rate {
                    per_second: 50.0,
                    burst: 100,
                },
                upload: crate::auth::Rate {
                    per_second: 10.0,
                    burst: 50,
                },
                max_concurrent_uploads: 16,
                max_failure_delay: Duration::from_secs(2),
            },
            tls: None,
            cors_origins: Vec::new(),
        }
    }

    /// How the engine batches and caches text queries; the cache is kept
    /// across restarts under `data_dir/cache`.
    pub fn text_settings(&self) -> crate::embed::TextSettings {
        crate::embed::TextSettings {
            batch_size: self.text_batch_size,
            batch_wait: self.text_batch_wait,
            cache_entries: self.text_cache_entries,
            cache_dir: Some(self.data_dir.join("cache")),
        }
    }

    /// Where the model comes from, or `None` to run without one.
    pub fn model_source(&self) -> Option<traum_clap::hub::ModelSource> {
        use traum_clap::hub::ModelSource;
        if let Some(dir) = &self.model_dir {
            return Some(ModelSource::Dir(dir.clone()));
        }
        self.model.as_ref().map(|repo| ModelSource::Hub {
            repo: repo.clone(),
            revision: self.model_revision.clone(),
            cache_dir: self.model_cache_dir.clone(),
        })
    }

    /// Merges flags/env with the TOML file named by `--config` and the
    /// defaults, then validates the result.
    pub fn resolve(args: ConfigArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let mut config = Self::with_data_dir(data_dir);
        if let Some(listen) = args.listen.or(file.listen) {
            config.listen = parse_addr("listen", &listen)?;
        }
        if let Some(url) = args.database_url.or(file.database_url) {
            config.database_url = url;
        }
        if let Some(metrics) = args.metrics_listen.or(file.metrics_listen) {
            config.metrics_listen = parse_optional_addr("metrics_listen", &metrics)?;
        }
        if let Some(web) = args.web_listen.or(file.web_listen) {
            config.web_listen = parse_optional_addr("web_listen", &web)?;
        }
        if let Some(format) = args.log_format.or(file.log_format) {
            config.log_format = format;
        }
        if let Some(log) = args.log.or(file.log) {
            config.log = log;
        }
        if let Some(v) = args.max_upload_bytes.or(file.max_upload_bytes) {
            config.max_upload_bytes = v;
        }
        if let Some(v) = args.max_chunk_bytes.or(file.max_chunk_bytes) {
            config.max_chunk_bytes = v;
        }
        if let Some(v) = args.workers.or(file.workers) {
            config.workers = v;
        }
        if let Some(v) = args.shutdown_grace.or(file.shutdown_grace) {
            config.shutdown_grace = v;
        }
        if let Some(v) = args.upload_ttl.or(file.upload_ttl) {
            config.upload_ttl = v;
        }
        if let Some(v) = args.replica_id.or(file.replica_id) {
            config.replica_id = v;
        }
        if let Some(v) = args.job_lease.or(file.job_lease) {
            config.job_lease = v;
        }
        if let Some(v) = args.blob_store.or(file.blob_store) {
            config.blob_store = parse_blob_store(&v)?;
        }
        if let Some(v) = args.orphan_blob_grace.or(file.orphan_blob_grace) {
            config.orphan_blob_grace = v;
        }
        if let Some(v) = args.usage_retention.or(file.usage_retention) {
            config.usage_retention = v;
        }
        if let Some(v) = args.upload_idle_timeout.or(file.upload_idle_timeout) {
            config.upload_idle_timeout = v;
        }
        if let Some(v) = args.audit_retention.or(file.audit_retention) {
            config.audit_retention = v;
        }
        if let Some(v) = args.max_duration.or(file.max_duration) {
            config.max_duration = v;
        }
        if let Some(dir) = args.model_dir.or(file.model_dir) {
            config.model_dir = Some(dir);
        }
        if let Some(model) = args.model.or(file.model) {
            config.model = match model.trim() {
                "none" | "off" | "" => None,
                repo => Some(repo.to_owned()),
            };
        }
        if let Some(revision) = args.model_revision.or(file.model_revision) {
            config.model_revision = revision;
        }
        if let Some(dir) = args.model_cache_dir.or(file.model_cache_dir) {
            config.model_cache_dir = dir;
        }
        if let Some(v) = args.embed_batch_size.or(file.embed_batch_size) {
            config.embed_batch_size = v;
        }
        if let Some(v) = args.embed_threads.or(file.embed_threads) {
            config.embed_threads = v;
        }
        if let Some(v) = args.precision {
            config.precision = v;
        } else if let Some(name) = file.precision {
            config.precision = name
                .parse()
                .map_err(|message| ConfigError(format!("precision in the config file: {message}")))?;
        }
        if let Some(v) = args.text_batch_size.or(file.text_batch_size) {
            config.text_batch_size = v;
        }
        if let Some(v) = args.text_batch_wait.or(file.text_batch_wait) {
            config.text_batch_wait = v;
        }
        if let Some(v) = args.text_cache_entries.or(file.text_cache_entries) {
            config.text_cache_entries = v;
        }
        if let Some(m) = args.hnsw_m.or(file.hnsw_m) {
            config.hnsw.m = m;
            config.hnsw.m0 = 2 * m;
        }
        if let Some(v) = args.hnsw_ef_construction.or(file.hnsw_ef_construction) {
            config.hnsw.ef_construction = v;
        }
        if let Some(v) = args.hnsw_ef_search.or(file.hnsw_ef_search) {
            config.hnsw.ef_search = v;
        }
        if let Some(v) = args.hnsw_target_recall.or(file.hnsw_target_recall) {
            config.hnsw.target_recall = v;
        }
        if let Some(path) = args.tag_vocabulary.or(file.tag_vocabulary) {
            config.tag_vocabularies =
                crate::zero_shot::Vocabularies::from_file(&path).map_err(ConfigError)?;
        }
        if let Some(mode) = args.auth.or(file.auth) {
            config.auth = mode;
        }
        config.allow_unauthenticated =
            args.allow_unauthenticated || file.allow_unauthenticated.unwrap_or(false);
        if let Some(path) = args.jwt_hs256_secret_file.or(file.jwt_hs256_secret_file) {
            config.jwt_hs256_secret_file = Some(path);
        }
        if let Some(path) = args.jwt_public_key_file.or(file.jwt_public_key_file) {
            config.jwt_public_key_file = Some(path);
        }
        let tls_cert = args.tls_cert.or(file.tls_cert);
        let tls_key = args.tls_key.or(file.tls_key);
        let tls_client_ca = args.tls_client_ca.or(file.tls_client_ca);
        config.tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert,
                key,
                client_ca: tls_client_ca,
            }),
            (None, None) if tls_client_ca.is_none() => None,
            (None, None) => {
                return Err(ConfigError(
                    "tls_client_ca needs tls_cert and tls_key: mutual TLS is TLS first".into(),
                ));
            }
            _ => {
                return Err(ConfigError(
                    "tls_cert and tls_key go together: give both or neither".into(),
                ));
            }
        };
        let cors: Vec<String> = args
            .cors_origins
            .into_iter()
            .filter(|o| !o.trim().is_empty())
            .collect();
        if !cors.is_empty() {
            config.cors_origins = cors;
        } else if let Some(origins) = file.cors_origins {
            config.cors_origins = origins;
        }
        if let Some(v) = args.search_rate.or(file.search_rate) {
            config.limits.search.per_second = v;
        }
        if let Some(v) = args.search_burst.or(file.search_burst) {
            config.limits.search.burst = v;
        }
        if let Some(v) = args.upload_rate.or(file.upload_rate) {
            config.limits.upload.per_second = v;
        }
        if let Some(v) = args.upload_burst.or(file.upload_burst) {
            config.limits.upload.burst = v;
        }
        if let Some(v) = args.max_concurrent_uploads.or(file.max_concurrent_uploads) {
            config.limits.max_concurrent_uploads = v;
        }
        if let Some(v) = args.auth_failure_delay.or(file.auth_failure_delay) {
            config.limits.max_failure_delay = v;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting; `run` calls it too, so embedders get the same
    /// guarantees as the binary.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let scheme_ok = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| self.database_url.starts_with(scheme));
        if !scheme_ok {
            return Err(ConfigError(format!(
                "database_url `{}` must start with sqlite: or postgres://",
                redact_url(&self.database_url)
            )));
        }
        let listeners = [
            ("listen", Some(self.listen)),
            ("metrics_listen", self.metrics_listen),
            ("web_listen", self.web_listen),
        ];
        for (i, (name, addr)) in listeners.iter().enumerate() {
            if let Some(addr) = addr
                && addr.port() != 0
                && let Some((other, _)) = listeners[i + 1..].iter().find(|(_, a)| *a == Some(*addr))
            {
                return Err(ConfigError(format!(
                    "{name} and {other} are both {addr}; give each its own port"
                )));
            }
        }
        if self.max_upload_bytes == 0 {
            return Err(ConfigError("max_upload_bytes must be greater than 0".into()));
        }
        if !(64 * 1024..=MAX_MESSAGE_BYTES as u64 - 64 * 1024).contains(&self.max_chunk_bytes) {
            return Err(ConfigError(format!(
                "max_chunk_bytes must be between 65536 and {} (got {})",
                MAX_MESSAGE_BYTES - 64 * 1024,
                self.max_chunk_bytes
            )));
        }
        if !(1..=256).contains(&self.workers) {
            return Err(ConfigError(format!(
                "workers must be between 1 and 256 (got {})",
                self.workers
            )));
        }
        if self.shutdown_grace > Duration::from_secs(3600) {
            return Err(ConfigError("shutdown_grace must be at most 1h".into()));
        }
        let replica_ok = (1..=64).contains(&self.replica_id.len())
            && self
                .replica_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !replica_ok {
            return Err(ConfigError(format!(
                "replica_id `{}` must be 1-64 characters of letters, digits, `-`, `_` and `.`",
                self.replica_id
            )));
        }
        if self.job_lease < Duration::from_secs(1) || self.job_lease > Duration::from_secs(600) {
            return Err(ConfigError(format!(
                "job_lease must be between 1s and 10m (got {})",
                humantime::format_duration(self.job_lease)
            )));
        }
        if self.upload_ttl < Duration::from_secs(60) {
            return Err(ConfigError("upload_ttl must be at least 1m".into()));
        }
        if self.usage_retention < Duration::from_secs(3600) {
            return Err(ConfigError("usage_retention must be at least 1h".into()));
        }
        for (name, rate) in [("search", self.limits.search), ("upload", self.limits.upload)] {
            if !(rate.per_second.is_finite() && rate.per_second >= 0.0) {
                return Err(ConfigError(format!(
                    "{name}_rate must be 0 (unlimited) or a positive number (got {})",
                    rate.per_second
                )));
            }
            if rate.per_second > 0.0 && rate.burst == 0 {
                return Err(ConfigError(format!("{name}_burst must be at least 1")));
            }
        }
        if self.limits.max_failure_delay > Duration::from_secs(60) {
            return Err(ConfigError("auth_failure_delay must be at most 60s".into()));
        }
        if self.upload_idle_timeout < Duration::from_millis(100)
            || self.upload_idle_timeout > Duration::from_secs(3600)
        {
            return Err(ConfigError(
                "upload_idle_timeout must be between 100ms and 1h".into(),
            ));
        }
        for origin in &self.cors_origins {
            let well_formed = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .is_some_and(|host| {
                    !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
                });
            if !well_formed {
                return Err(ConfigError(format!(
                    "cors_origin `{origin}` must be an origin like https://app.example.com (scheme, host, optional \
                     port; no path, no `*`)"
                )));
            }
        }
        if self.audit_retention < Duration::from_secs(24 * 3600) {
            return Err(ConfigError("audit_retention must be at least 1d".into()));
        }
        if self.max_duration < Duration::from_secs(1) || self.max_duration > Duration::from_secs(24 * 3600) {
            return Err(ConfigError("max_duration must be between 1s and 24h".into()));
        }
        if !(1..=256).contains(&self.embed_batch_size) {
            return Err(ConfigError(format!(
                "embed_batch_size must be between 1 and 256 (got {})",
                self.embed_batch_size
            )));
        }
        if !(1..=1024).contains(&self.embed_threads) {
            return Err(ConfigError(format!(
                "embed_threads must be between 1 and 1024 (got {})",
                self.embed_threads
            )));
        }
        if !(1..=256).contains(&self.text_batch_size) {
            return Err(ConfigError(format!(
                "text_batch_size must be between 1 and 256 (got {})",
                self.text_batch_size
            )));
        }
        // A wait is added to a search's latency when nothing else arrives.
        if self.text_batch_wait > Duration::from_millis(100) {
            return Err(ConfigError(format!(
                "text_batch_wait must be at most 100ms (got {})",
                humantime::format_duration(self.text_batch_wait)
            )));
        }
        if self.text_cache_entries > 1_000_000 {
            return Err(ConfigError(format!(
                "text_cache_entries must be at most 1000000 (got {})",
                self.text_cache_entries
            )));
        }
        let h = &self.hnsw;
        if !(2..=256).contains(&h.m)
            || !(1..=4096).contains(&h.ef_construction)
            || !(1..=4096).contains(&h.ef_search)
        {
            return Err(ConfigError(format!(
                "hnsw_m must be 2 to 256 and hnsw_ef_construction, hnsw_ef_search 1 to 4096 (got {}, {}, {})",
                h.m, h.ef_construction, h.ef_search
            )));
        }
        if !(0.0..=1.0).contains(&h.target_recall) {
            return Err(ConfigError(format!(
                "hnsw_target_recall must be between 0 and 1 (got {})",
                h.target_recall
            )));
        }
        if let Some(repo) = &self.model {
            let parts: Vec<&str> = repo.split('/').collect();
            let well_formed = parts.len() == 2
                && parts.iter().all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                });
            if !well_formed {
                return Err(ConfigError(format!(
                    "model `{repo}` is not a Hugging Face repo id like laion/larger_clap_music_and_speech \
                     (use model_dir for a local directory, or `none`)"
                )));
            }
        }
        if let Some(dir) = &self.model_dir
            && !dir.is_dir()
        {
            return Err(ConfigError(format!(
                "model_dir {} is not a directory",
                dir.display()
            )));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(ConfigError(format!(
                "log filter `{}` is invalid: {err}",
                self.log
            )));
        }
        if self.auth == AuthMode::Off && !self.allow_unauthenticated {
            let exposed = [("--listen", Some(self.listen)), ("--web-listen", self.web_listen)]
                .into_iter()
                .find_map(|(flag, addr)| addr.filter(|a| !a.ip().is_loopback()).map(|a| (flag, a)));
            if let Some((flag, addr)) = exposed {
                return Err(ConfigError(format!(
                    "{flag} {addr} is reachable from other machines but --auth is off, so anyone there could \
                     read, change and delete the library; use --auth required (with an API key from \
                     `traum-server keys create`), a loopback address, or --allow-unauthenticated"
                )));
            }
        }
        let tls_files = self.tls.as_ref().map_or([None, None, None], |tls| {
            [
                Some(tls.cert.clone()),
                Some(tls.key.clone()),
                tls.client_ca.clone(),
            ]
        });
        for (name, path) in [
            ("jwt_hs256_secret_file", &self.jwt_hs256_secret_file),
            ("jwt_public_key_file", &self.jwt_public_key_file),
            ("tls_cert", &tls_files[0]),
            ("tls_key", &tls_files[1]),
            ("tls_client_ca", &tls_files[2]),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                return Err(ConfigError(format!("{name} {} is not a file", path.display())));
            }
        }
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            return Err(ConfigError(format!(
                "data_dir {} is not a directory",
                self.data_dir.display()
            )));
        }
        Ok(())
    }
}

/// Largest gRPC message the server decodes or encodes. Upload chunks and
/// unary audio clips must fit in it; streams are not limited by it.
pub const MAX_MESSAGE_BYTES: usize = 16 * MIB as usize;

/// The host's name (a pod's name on Kubernetes) and a random suffix, so
/// two servers on one host never share an id by accident.
fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| {
            name.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .take(48)
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "traum".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// `file://PATH` (a directory) or `s3://BUCKET/PREFIX` (an S3-compatible
/// bucket, configured by the `AWS_*` variables, which are checked here so
/// that a bad endpoint fails before any port is bound).
fn parse_blob_store(text: &str) -> Result<BlobLocation, ConfigError> {
    if let Some(path) = text.strip_prefix("file://")
        && !path.is_empty()
    {
        return Ok(BlobLocation::Directory(PathBuf::from(path)));
    }
    if text.starts_with("s3://") {
        let location = S3Location::parse(text).map_err(|err| ConfigError(format!("blob_store: {err}")))?;
        location
            .check()
            .map_err(|err| ConfigError(format!("blob_store `{text}`: {err}")))?;
        return Ok(BlobLocation::S3(location));
    }
    Err(ConfigError(format!(
        "blob_store `{text}` must be file://PATH or s3://BUCKET/PREFIX, e.g. file:///var/lib/traum/blobs"
    )))
}

fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("traum.db").display())
}

/// An address, or `off` (also `none` or empty) for a listener that is disabled.
fn parse_optional_addr(name: &str, text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match text.trim() {
        "off" | "none" | "" => Ok(None),
        addr => parse_addr(name, addr).map(Some),
    }
}

fn parse_addr(name: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|err| ConfigError(format!("{name} `{text}` is not an IP:port address ({err})")))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError(format!("cannot read config file {}: {err}", path.display())))?;
    toml::from_str(&text).map_err(|err| ConfigError(format!("config file {}: {err}", path.display())))
}

/// Hides a password in a database URL before it reaches a message.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("traum.toml");
        std::fs::write(
            &file,
            "workers = 7\nlisten = \"127.0.0.1:6000\"\nshutdown_grace = \"5s\"\nhnsw_target_recall = 0.9\n\
             text_batch_wait = \"5ms\"\ntext_cache_entries = 10\nprecision = \"bf16\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file),
            listen: Some("127.0.0.1:7000".into()),
            data_dir: Some(dir.path().to_owned()),
            ..ConfigArgs::default()
        };
        let config = Config::resolve(args).unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.workers, 7);
        assert_eq!(config.text_batch_wait, Duration::from_millis(5));
        assert_eq!(config.text_cache_entries, 10);
        assert_eq!(config.precision, traum_clap::Precision::Bf16);
        assert_eq!(
            config.text_batch_size,
            crate::embed::TextSettings::DEFAULT.batch_size
        );
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.hnsw.target_recall, 0.9);
        assert!(config.database_url.starts_with("sqlite://"));
    }

    #[test]
    fn rejects_unknown_file_keys_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("traum.toml");
        std::fs::write(&file, "wokers = 7\n").unwrap();
        let err = Config::resolve(ConfigArgs {
            config: Some(file.clone()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("wokers"), "{err}");
        std::fs::write(&file, "precision = \"int8\"\n").unwrap();
        let err = Config::resolve(ConfigArgs {
            config: Some(file.clone()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("int8 precision is not implemented"),
            "{err}"
        );
        let err = Config::resolve(ConfigArgs {
            workers: Some(0),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        let err = Config::resolve(ConfigArgs {
            database_url: Some("mysql://x".into()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("database_url"), "{err}");
        let err = Config::resolve(ConfigArgs {
            hnsw_target_recall: Some(1.5),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("hnsw_target_recall"), "{err}");
        for args in [
            ConfigArgs {
                text_batch_size: Some(0),
                ..ConfigArgs::default()
            },
            ConfigArgs {
                text_batch_wait: Some(Duration::from_millis(250)),
                ..ConfigArgs::default()
            },
            ConfigArgs {
                text_cache_entries: Some(2_000_000),
                ..ConfigArgs::default()
            },
        ] {
            let name = if args.text_batch_size.is_some() {
                "text_batch_size"
            } else if args.text_batch_wait.is_some() {
                "text_batch_wait must be at most 100ms (got 250ms)"
            } else {
                "text_cache_entries"
            };
            let err = Config::resolve(args).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = Config::resolve(ConfigArgs {
            web_listen: Some("127.0.0.1:9464".into()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("metrics_listen and web_listen"), "{err}");
        let off = Config::resolve(ConfigArgs {
            web_listen: Some("off".into()),
            ..ConfigArgs::default()
        })
        .unwrap();
        assert_eq!(off.web_listen, None);
    }

    #[test]
    fn replica_settings_and_blob_stores_are_validated() {
        let resolve = |args: ConfigArgs| Config::resolve(args).map_err(|err| err.to_string());
        let defaults = resolve(ConfigArgs::default()).unwrap();
        assert_eq!(defaults.job_lease, Duration::from_secs(30));
        assert_eq!(
            defaults.blob_store,
            BlobLocation::Directory(PathBuf::from("./data").join("blobs"))
        );
        let other = resolve(ConfigArgs::default()).unwrap();
        assert_ne!(
            defaults.replica_id, other.replica_id,
            "two servers on one host get two ids"
        );

        let set = resolve(ConfigArgs {
            replica_id: Some("pod-7.eu_west".into()),
            job_lease: Some(Duration::from_secs(5)),
            blob_store: Some("file:///mnt/blobs".into()),
            ..ConfigArgs::default()
        })
        .unwrap();
        assert_eq!(
            (set.replica_id.as_str(), set.job_lease, set.blob_store),
            (
                "pod-7.eu_west",
                Duration::from_secs(5),
                BlobLocation::Directory(PathBuf::from("/mnt/blobs"))
            )
        );

        let err = resolve(ConfigArgs {
            replica_id: Some("a b".into()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.contains("replica_id `a b` must be 1-64 characters"), "{err}");
        let err = resolve(ConfigArgs {
            job_lease: Some(Duration::from_millis(500)),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(
            err.contains("job_lease must be between 1s and 10m (got 500ms)"),
            "{err}"
        );
        let s3 = resolve(ConfigArgs {
            blob_store: Some("s3://traum-audio/prod".into()),
            ..ConfigArgs::default()
        })
        .unwrap();
        assert_eq!(s3.blob_store.to_string(), "s3://traum-audio/prod");
        let err = resolve(ConfigArgs {
            blob_store: Some("s3://No_Such".into()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.contains("`No_Such` is not a bucket name"), "{err}");
        let err = resolve(ConfigArgs {
            blob_store: Some("/mnt/blobs".into()),
            ..ConfigArgs::default()
        })
        .unwrap_err();
        assert!(err.contains("must be file://PATH or s3://BUCKET/PREFIX"), "{err}");
    }

    #[test]
    fn refuses_to_listen_beyond_loopback_without_auth() {
        let open = |listen: &str, web: &str, allow: bool, auth: Option<AuthMode>| {
            Config::resolve(ConfigArgs {
                listen: Some(listen.into()),
                web_listen: Some(web.into()),
                allow_unauthenticated: allow,
                auth,
                ..ConfigArgs::default()
            })
        };
        let err = open("0.0.0.0:50051", "127.0.0.1:8080", false, None).unwrap_err();
        assert!(err.to_string().contains("--listen 0.0.0.0:50051"), "{err}");
        let err = open("127.0.0.1:50051", "[::]:8080", false, None).unwrap_err();
        assert!(err.to_string().contains("--web-listen [::]:8080"), "{err}");
        assert!(open("127.0.0.1:50051", "[::1]:8080", false, None).is_ok());
        assert!(open("0.0.0.0:50051", "off", true, None).is_ok());
        assert!(open("0.0.0.0:50051", "0.0.0.0:8080", false, Some(AuthMode::Required)).is_ok());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
