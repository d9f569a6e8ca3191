//! Assembles and runs the server on a bound listener until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use traum_proto::service_names;
use traum_proto::v1::admin_service_server::AdminServiceServer;
use traum_proto::v1::analytics_service_server::AnalyticsServiceServer;
use traum_proto::v1::audio_service_server::AudioServiceServer;
use traum_proto::v1::search_service_server::SearchServiceServer;

use traum_index::vector::VectorIndexConfig;

use crate::analytics::Analytics;
use crate::audit::Audit;
use crate::auth::{Auth, TokenVerifier};
use crate::blob::BlobStore;
use crate::cluster::Chores;
use crate::config::{Config, ConfigError, MAX_MESSAGE_BYTES, redact_url};
use crate::duplicates::Duplicates;
use crate::embed::{Embedder, ModelSettings};
use crate::grpc::{AdminApi, AnalyticsApi, AudioApi, AuthLayer, SearchApi, UploadIdleLayer};
use crate::ingest::{Ingest, Limits};
use crate::jobs::{Jobs, PipelineServices};
use crate::library::Library;
use crate::search::Search;
use crate::state::App;
use crate::store::{JobClaim, Store};
use crate::telemetry::{self, RpcTelemetryLayer};
use crate::usage::UsageRecorder;
use crate::zero_shot::ZeroShot;

/// The standard health service's name, as clients call it.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// HTTP/2 flow-control windows large enough for loopback-speed uploads; the
/// writer queue, not the window, bounds memory per upload.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot prepare the data directory: {0}")]
    DataDir(std::io::Error),
    #[error("{what} is in use by another traum-server (it holds {}); {advice}", lock.display())]
    InUse {
        what: String,
        lock: std::path::PathBuf,
        advice: &'static str,
    },
    #[error("cannot open the database {url}: {source}")]
    Database {
        url: String,
        #[source]
        source: crate::error::Error,
    },
    #[error("cannot open the blob store {location}: {source}")]
    BlobStore {
        location: String,
        #[source]
        source: crate::error::Error,
    },
    #[error("cannot bind the metrics listener on {addr}: {source}")]
    MetricsListener {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind the web listener on {addr}: {source}")]
    WebListener {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the token keys: {0}")]
    TokenKeys(String),
    #[error("cannot use the TLS certificate: {0}")]
    Tls(String),
    #[error("cannot build the search indexes: {0}")]
    Index(#[source] crate::error::Error),
    #[error("reflection descriptors are invalid: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("a start-up task failed: {0}")]
    Startup(#[from] tokio::task::JoinError),
}

/// What `prepare` hands on.
struct Prepared {
    config: Config,
    /// Held until the server stops: no second server may use the data
    /// directory (its temp files and index snapshots are this server's) or
    /// a SQLite database (one server per SQLite file).
    _locks: Vec<std::fs::File>,
}

/// Validates the configuration, locks the data directory (and a SQLite
/// database) for this server, and prepares the directory.
fn prepare(config: Config) -> Result<Prepared, StartError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(StartError::DataDir)?;
    let mut locks = vec![lock_for_this_server(
        &config.data_dir.join("traum.lock"),
        format!("the data directory {}", config.data_dir.display()),
        "give each server its own --data-dir",
    )?];
    if let Some(database) = sqlite_path(&config.database_url) {
        let lock = database.with_file_name(format!(
            "{}.lock",
            database
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("traum.db")
        ));
        locks.push(lock_for_this_server(
            &lock,
            format!("the SQLite database {}", database.display()),
            "SQLite serves one server; replicas share a PostgreSQL database",
        )?);
    }
    Ok(Prepared {
        config,
        _locks: locks,
    })
}

/// Takes an exclusive advisory lock on `path` (created if missing); the
/// operating system drops it when the process ends, however it ends.
fn lock_for_this_server(
    path: &std::path::Path,
    what: String,
    advice: &'static str,
) -> Result<std::fs::File, StartError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(StartError::DataDir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(StartError::DataDir)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::InUse {
            what,
            lock: path.to_owned(),
            advice,
        }),
        Err(std::fs::TryLockError::Error(err)) => Err(StartError::DataDir(err)),
    }
}

/// The file of a `sqlite:` URL; `None` for PostgreSQL and in-memory SQLite.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Runs Traum on `listener` until `shutdown` completes, then drains: stops
/// accepting, ends watch streams, lets running job stages finish and
/// checkpoints their jobs, all within `config.shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // Validation looks at paths, and preparing the data directory sweeps it:
    // file-system work, so on the blocking pool.
    let Prepared { config, _locks } = tokio::task::spawn_blocking(move || prepare(config)).await??;
    let blobs = BlobStore::open(&config.data_dir, &config.blob_store)
        .await
        .map_err(|source| StartError::BlobStore {
            location: config.blob_store.to_string(),
            source,
        })?;
    let cleared = blobs.clone();
    let stale = tokio::task::spawn_blocking(move || cleared.clear_temp())
        .await?
        .map_err(StartError::DataDir)?;
    let tokens = TokenVerifier::from_files(
        config.jwt_hs256_secret_file.as_deref(),
        config.jwt_public_key_file.as_deref(),
    )
    .map_err(StartError::TokenKeys)?;
    let tls = match config.tls.clone() {
        Some(files) => {
            let load = move || -> Result<_, String> {
                let grpc = crate::tls::Reloadable::load(files.clone(), &[b"h2"])?;
                let web = crate::tls::Reloadable::load(files, &[b"http/1.1"])?;
                Ok((grpc, web))
            };
            Some(
                tokio::task::spawn_blocking(load)
                    .await?
                    .map_err(StartError::Tls)?,
            )
        }
        None => None,
    };
    if stale > 0 {
        tracing::info!(files = stale, "removed temp files of interrupted uploads");
    }
    let store = Store::connect(&config.database_url)
        .await
        .map_err(|source| StartError::Database {
            url: redact_url(&config.database_url),
            source,
        })?;
    // On SQLite this server is the only one (the lock says so): a running
    // job is a crash's leftover. On PostgreSQL it may be a live replica's;
    // a dead one's jobs are taken over once their lease passes.
    if store.is_sqlite() {
        let resumed = store
            .requeue_running_jobs()
            .await
            .map_err(|source| StartError::Database {
                url: redact_url(&config.database_url),
                source,
            })?;
        if resumed > 0 {
            tracing::info!(
                jobs = resumed,
                "re-queued jobs interrupted by the previous shutdown or crash"
            );
        }
    }
    tracing::info!(replica = %config.replica_id, lease = ?config.job_lease, "replica id");

    let (stop_tx, stop_rx) = watch::channel(false);
    let usage = UsageRecorder::start(store.clone());
    let audit = Audit::start(store.clone());
    let embedder = Embedder::start(ModelSettings {
        source: config.model_source(),
        hub: traum_clap::hub::HubOptions::from_env(),
        batch_size: config.embed_batch_size,
        threads: config.embed_threads,
        precision: config.precision,
        text: config.text_settings(),
    });
    let vector_config = VectorIndexConfig {
        hnsw: config.hnsw.clone(),
        persist_dir: Some(config.data_dir.join("index").join("vectors")),
        ..VectorIndexConfig::default()
    };
    let zero_shot = ZeroShot::new(store.clone(), config.tag_vocabularies.clone());
    let duplicates = Duplicates::new(store.clone(), blobs.clone(), config.max_duration);
    let search = Search::new(
        store.clone(),
        embedder.clone(),
        usage.clone(),
        vector_config,
        config.max_upload_bytes,
        config.tag_vocabularies.clone(),
        duplicates.clone(),
    )
    .map_err(StartError::Index)?;
    search.load_keywords().await.map_err(StartError::Index)?;
    let jobs = Jobs::new(
        store.clone(),
        blobs.clone(),
        stop_rx.clone(),
        config.max_duration,
        JobClaim {
            holder: config.replica_id.clone(),
            lease: config.job_lease,
        },
        PipelineServices {
            embedder: embedder.clone(),
            search: search.clone(),
            zero_shot: zero_shot.clone(),
            duplicates: duplicates.clone(),
        },
    );
    let limits = Limits {
        max_upload_bytes: config.max_upload_bytes,
        max_chunk_bytes: config.max_chunk_bytes,
        upload_ttl: config.upload_ttl,
        max_duration: config.max_duration,
    };
    let ingest = Ingest::new(
        store.clone(),
        blobs.clone(),
        jobs.clone(),
        usage.clone(),
        search.clone(),
        limits,
    );
    let app = Arc::new(App {
        ingest: ingest.clone(),
        jobs: jobs.clone(),
        library: Library::new(
            store.clone(),
            blobs,
            search.clone(),
            jobs.clone(),
            duplicates.clone(),
            config.max_duration,
            config.tag_vocabularies.clone(),
        ),
        search: search.clone(),
        analytics: Analytics::new(store.clone(), search.clone(), embedder.clone(), usage.clone()),
        auth: Auth::new(config.auth, store.clone(), tokens, config.limits),
        audit: audit.clone(),
    });
    if config.auth == crate::auth::AuthMode::Off {
        tracing::warn!("--auth is off: every caller may read, change and delete everything");
    }

    let metrics = telemetry::metrics_handle();
    if let Some(addr) = config.metrics_listen {
        let metrics_listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::MetricsListener { addr, source })?;
        tracing::info!(addr = %metrics_listener.local_addr().unwrap_or(addr), "metrics at /metrics");
        let serving = crate::http::serve(
            metrics_listener,
            crate::http::metrics_router(metrics),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            if let Err(err) = serving.await {
                tracing::error!(error = %err, "the metrics listener failed");
            }
        });
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(service_names::AUDIO, ServingStatus::Serving)
        .await;
    health
        .set_service_status(service_names::ANALYTICS, ServingStatus::Serving)
        .await;
    health
        .set_service_status(service_names::ADMIN, ServingStatus::Serving)
        .await;
    // Search serves once the model and the vector index are loaded.
    health
        .set_service_status(service_names::SEARCH, ServingStatus::NotServing)
        .await;
    let readiness = tokio::spawn(follow_model(
        embedder.clone(),
        search.clone(),
        jobs.clone(),
        health.clone(),
        stop_rx.clone(),
    ));

    // Loaded (and locked) before any worker can analyse a file.
    let fingerprints = duplicates.start();
    // After the fingerprint index is locked for its load, so the first
    // changes applied to it wait for the load.
    let following = search.follow(stop_rx.clone());
    let heartbeat = jobs.spawn_heartbeat();
    let mut workers = jobs.spawn_workers(config.workers);
    let chores = tokio::spawn(
        Chores {
            store,
            holder: config.replica_id.clone(),
            lease: config.job_lease,
            jobs: jobs.clone(),
            search: search.clone(),
            embedder,
            zero_shot,
            duplicates,
            ingest,
            library: app.library.clone(),
            audit: audit.clone(),
            orphan_blob_grace: config.orphan_blob_grace,
            usage_retention: config.usage_retention,
            audit_retention: config.audit_retention,
        }
        .run(stop_rx.clone()),
    );

    let audio = AudioServiceServer::new(AudioApi::new(app.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let search = SearchServiceServer::new(SearchApi::new(app.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let analytics = AnalyticsServiceServer::new(AnalyticsApi::new(app.clone()));
    let admin = AdminServiceServer::new(AdminApi::new(app.clone()));

    if let Some(addr) = config.web_listen {
        let web_listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::WebListener { addr, source })?;
        let bound = web_listener.local_addr().unwrap_or(addr);
        let routes = Routes::new(audio.clone())
            .add_service(search.clone())
            .add_service(analytics.clone())
            .add_service(admin.clone())
            .add_service(health_service.clone());
        let services = [
            service_names::AUDIO,
            service_names::SEARCH,
            service_names::ANALYTICS,
            service_names::ADMIN,
            HEALTH_SERVICE,
        ];
        let router = crate::web::router(
            routes,
            &services,
            app.library.clone(),
            app.auth.clone(),
            RpcTelemetryLayer::new(usage.clone(), audit.clone()),
            UploadIdleLayer::new(config.upload_idle_timeout),
            config.cors_origins.clone(),
        );
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = %bound, "web app at {scheme}://{bound}/ (with gRPC-Web and audio)");
        let stop = stop_rx.clone();
        let tls_web = tls.as_ref().map(|(_, web)| web.clone());
        tokio::spawn(async move {
            let served = match tls_web {
                Some(web_tls) => {
                    let listener = crate::tls::TlsListener {
                        incoming: crate::tls::accept(web_listener, web_tls, stop.clone()),
                        local: bound,
                    };
                    crate::http::serve_tls(listener, router, stop).await
                }
                None => crate::http::serve(web_listener, router, stop).await,
            };
            if let Err(err) = served {
                tracing::error!(error = %err, "the web listener failed");
            }
        });
    }

    let local = listener.local_addr().ok();
    tracing::info!(
        addr = ?local,
        data_dir = %config.data_dir.display(),
        database = %redact_url(&config.database_url),
        workers = config.workers,
        "traum-server listening"
    );

    let mut signal = stop_rx.clone();
    let router = Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(RpcTelemetryLayer::new(usage.clone(), audit.clone()))
        .layer(AuthLayer::new(app.auth.clone()))
        .layer(UploadIdleLayer::new(config.upload_idle_timeout))
        .add_service(health_service)
        .add_service(reflection_v1()?)
        .add_service(reflection_v1alpha()?)
        .add_service(audio)
        .add_service(search)
        .add_service(analytics)
        .add_service(admin);
    // The builder's `tcp_nodelay` only reaches sockets tonic accepts itself;
    // with our own listener, Nagle's algorithm would hold each small unary
    // response back until the client's delayed ACK (about 40 ms).
    let until_stopped = async move {
        let _ = signal.wait_for(|stop| *stop).await;
    };
    let mut serving = match &tls {
        Some((grpc_tls, web_tls)) => {
            let incoming = tokio_stream::wrappers::ReceiverStream::new(crate::tls::accept(
                listener,
                grpc_tls.clone(),
                stop_rx.clone(),
            ))
            .map(|(stream, _)| Ok::<_, std::io::Error>(stream));
            tokio::spawn(reload_on_hangup(
                [grpc_tls.clone(), web_tls.clone()],
                stop_rx.clone(),
            ));
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, until_stopped))
        }
        None => {
            let incoming = TcpListenerStream::new(listener).map(|accepted| {
                accepted.and_then(|stream| {
                    stream.set_nodelay(true)?;
                    Ok(stream)
                })
            });
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, until_stopped))
        }
    };

    let served_early = tokio::select! {
        result = &mut serving => Some(result),
        () = shutdown => None,
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for name in [
        "",
        service_names::AUDIO,
        service_names::ANALYTICS,
        service_names::ADMIN,
        service_names::SEARCH,
    ] {
        health.set_service_status(name, ServingStatus::NotServing).await;
    }
    let grace = config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let server_result = match served_early {
        Some(result) => result,
        None => match tokio::time::timeout_at(deadline, &mut serving).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    "connections still open after the grace period; closing them"
                );
                serving.abort();
                Ok(Ok(()))
            }
        },
    };
    if tokio::time::timeout_at(deadline, async { while workers.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "job stages still running after the grace period; they resume after restart"
        );
        workers.abort_all();
    }
    heartbeat.abort();
    match jobs.release_leases().await {
        Ok(0) => {}
        Ok(released) => tracing::info!(
            jobs = released,
            "released the jobs still running for other replicas"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "cannot release job leases; other replicas take the jobs when they pass")
        }
    }
    // It saw the stop signal and releases its lease; give it the time.
    if tokio::time::timeout(Duration::from_secs(5), chores)
        .await
        .is_err()
    {
        tracing::warn!("the chores did not stop in time");
    }
    readiness.abort();
    fingerprints.abort();
    following.abort();
    if let Err(err) = app.search.save_vectors().await {
        tracing::warn!(error = %err, "cannot save the vector index; the next start rebuilds it");
    }
    // Flushing last records the calls made during the drain.
    usage.flush().await;
    audit.flush().await;
    tracing::info!("stopped");
    match server_result {
        Ok(result) => result.map_err(StartError::from),
        Err(join) if join.is_cancelled() => Ok(()),
        Err(join) => {
            tracing::error!(error = %join, "server task failed");
            Ok(())
        }
    }
}

/// Reads the certificates again on every SIGHUP (e.g. after a renewal).
async fn reload_on_hangup(acceptors: [Arc<crate::tls::Reloadable>; 2], mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; certificates are read only at start");
            return;
        };
        loop {
            tokio::select! {
                received = hangups.recv() => if received.is_none() { return },
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let acceptors = acceptors.clone();
            let reloaded =
                tokio::task::spawn_blocking(move || acceptors.iter().try_for_each(|tls| tls.reload())).await;
            match reloaded {
                Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificates read again; new connections use them"),
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "SIGHUP: cannot read the TLS certificates; keeping the old ones")
                }
                Err(err) => tracing::error!(error = %err, "SIGHUP: the certificate reload failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (acceptors, stop.wait_for(|stop| *stop).await);
    }
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(traum_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(service_names::AUDIO)
        .with_service_name(service_names::SEARCH)
        .with_service_name(service_names::ANALYTICS)
        .with_service_name(service_names::ADMIN)
        .with_service_name(HEALTH_SERVICE)
        .include_reflection_service(false)
}

fn reflection_v1() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    StartError,
> {
    Ok(reflection_builder().build_v1()?)
}

fn reflection_v1alpha() -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    StartError,
> {
    Ok(reflection_builder().build_v1alpha()?)
}

/// Waits for the model, loads the vector index for it, then lets search
/// serve and wakes jobs waiting to embed (the backfills are chores).
async fn follow_model(
    embedder: Embedder,
    search: Search,
    jobs: Jobs,
    health: tonic_health::server::HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut states = embedder.subscribe();
    let engine = loop {
        if let Some(engine) = embedder.engine() {
            break engine;
        }
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    };
    match search.load_vectors(&engine).await {
        Ok(()) => {
            health
                .set_service_status(service_names::SEARCH, ServingStatus::Serving)
                .await;
            jobs.wake();
        }
        Err(err) => tracing::error!(error = %err, "cannot load the vector index; search stays unavailable"),
    }
}
