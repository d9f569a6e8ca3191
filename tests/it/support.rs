//! Test harness: a real server on 127.0.0.1:0 with a temp data dir, talked
//! to through the generated clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic_web::{GrpcWebCall, GrpcWebClientLayer, GrpcWebClientService};
use tower::ServiceBuilder;
use tower::util::MapRequest;
use traum_proto::v1 as pb;
use traum_proto::v1::analytics_service_client::AnalyticsServiceClient;
use traum_proto::v1::audio_service_client::AudioServiceClient;
use traum_proto::v1::search_service_client::SearchServiceClient;
use traum_server::Config;

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares a scenario once and runs it on SQLite and, when
/// `TRAUM_TEST_POSTGRES_URL` is set, on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::support::postgres_url().is_none() {
                    eprintln!("TRAUM_TEST_POSTGRES_URL is not set; PostgreSQL variant not run");
                    return;
                }
                super::$scenario($crate::support::Backend::Postgres).await;
            }
        }
    };
}

pub fn postgres_url() -> Option<String> {
    std::env::var("TRAUM_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A private database for one test: a temp SQLite file or a fresh
/// PostgreSQL database that is dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(backend: Backend, data_dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}?mode=rwc", data_dir.join("traum.db").display()),
                postgres: None,
            },
            Backend::Postgres => {
                let base = postgres_url().expect("TRAUM_TEST_POSTGRES_URL");
                let name = format!("traum_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&base).await.expect("connect to PostgreSQL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let url = replace_database(&base, &name);
                Self {
                    url,
                    postgres: Some((base, name)),
                }
            }
        }
    }

    pub async fn drop_database(&self) {
        if let Some((base, name)) = &self.postgres
            && let Ok(admin) = Database::connect(base).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            admin.close().await.ok();
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let prefix_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[prefix_end..].find('/').map(|i| i + prefix_end);
    let host = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(query) => format!("{host}/{name}?{query}"),
        None => format!("{host}/{name}"),
    }
}

/// The origin of the page the browser-like clients claim to come from.
pub const BROWSER_ORIGIN: &str = "http://localhost:3000";

/// gRPC-Web over HTTP/1.1, as a browser speaks it: tonic-web's client layer
/// re-frames tonic's calls (trailers in the body, `application/grpc-web`),
/// and the outer map adds what browser gRPC-Web libraries send besides.
pub type WebChannel = MapRequest<
    GrpcWebClientService<Client<HttpConnector, GrpcWebCall<Body>>>,
    fn(http::Request<Body>) -> http::Request<Body>,
>;

pub fn browser_headers(mut request: http::Request<Body>) -> http::Request<Body> {
    let headers = request.headers_mut();
    headers.insert("x-grpc-web", http::HeaderValue::from_static("1"));
    headers.insert(
        "x-user-agent",
        http::HeaderValue::from_static("grpc-web-javascript/0.1"),
    );
    headers.insert(
        http::header::ORIGIN,
        http::HeaderValue::from_static(BROWSER_ORIGIN),
    );
    request
}

pub fn web_channel() -> WebChannel {
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new()
        .map_request(browser_headers as fn(http::Request<Body>) -> http::Request<Body>)
        .layer(GrpcWebClientLayer::new())
        .service(http1)
}

pub fn origin(addr: SocketAddr) -> http::Uri {
    format!("http://{addr}").parse().expect("origin URI")
}

/// A browser's resumable upload: `StartUpload`, `PutUploadChunk` in pieces
/// of `chunk` bytes (each acknowledged offset checked), `FinishUpload`.
/// Returns the session as started, the number of chunks and the result.
pub async fn resumable_upload<T>(
    audio: &mut AudioServiceClient<T>,
    filename: &str,
    tags: &[&str],
    data: &[u8],
    chunk: usize,
) -> (pb::UploadSession, usize, pb::UploadResult)
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: filename.into(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                size_bytes: Some(data.len() as u64),
                sha256: Some(sha256_hex(data)),
                always_create_file: false,
            }),
        })
        .await
        .expect("StartUpload")
        .into_inner();
    let mut offset = 0u64;
    let mut chunks = 0;
    for piece in data.chunks(chunk) {
        let state = audio
            .put_upload_chunk(pb::PutUploadChunkRequest {
                upload_id: session.upload_id.clone(),
                offset,
                data: bytes::Bytes::copy_from_slice(piece),
            })
            .await
            .expect("PutUploadChunk")
            .into_inner();
        offset += piece.len() as u64;
        chunks += 1;
        assert_eq!(state.received_bytes, offset);
    }
    let result = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .expect("FinishUpload")
        .into_inner();
    (session, chunks, result)
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The web port (gRPC-Web and audio over HTTP), when the test enabled it.
    pub web_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), traum_server::StartError>>>,
    channel: Channel,
}

/// Owns the temp dir and database across restarts.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub db: TestDatabase,
}

impl TestEnv {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::create(backend, dir.path()).await;
        Self { dir, db }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::with_data_dir(self.dir.path().join("data"));
        config.database_url = self.db.url.clone();
        config.workers = 2;
        config.shutdown_grace = Duration::from_secs(10);
        config.log = "warn".into();
        // Most scenarios need no model; search scenarios opt in with
        // `with_fixture_model`.
        config.model = None;
        config.embed_threads = 1;
        // Scenarios that need the web port give it a free one.
        config.web_listen = None;
        // Scenarios make calls far faster than people do, all from one
        // address; the limits' own tests turn them on.
        config.limits = traum_server::auth::Limits {
            search: traum_server::auth::Rate {
                per_second: 0.0,
                burst: 1,
            },
            upload: traum_server::auth::Rate {
                per_second: 0.0,
                burst: 1,
            },
            max_concurrent_uploads: 0,
            max_failure_delay: Duration::ZERO,
        };
        config
    }

    pub async fn start(&self) -> TestServer {
        self.start_with(|_| {}).await
    }

    pub async fn start_with(&self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = self.config();
        adjust(&mut config);
        TestServer::start(config).await
    }

    pub async fn finish(self) {
        self.db.drop_database().await;
    }

    /// Runs SQL on the test's database, e.g. to put it in the state an
    /// older server version left it in.
    pub async fn execute_sql(&self, sql: &str) {
        let db = Database::connect(&self.db.url)
            .await
            .expect("connect to the test database");
        db.execute_unprepared(sql).await.expect("execute SQL");
        db.close().await.ok();
    }
}

pub fn free_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr")
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::start_reached_by(config, |addr| {
            Endpoint::from_shared(format!("http://{addr}")).expect("endpoint")
        })
        .await
    }

    /// Starts a server the test reaches through `endpoint` (e.g. over TLS).
    ///
    /// The metrics and web ports are picked free and then handed to the
    /// server, so a parallel test can take one in between; such a start is
    /// retried on fresh ports (read the chosen one from `web_addr`).
    pub async fn start_reached_by(config: Config, endpoint: impl Fn(SocketAddr) -> Endpoint) -> Self {
        let mut attempts_left = 5;
        loop {
            let mut attempt = config.clone();
            attempt.metrics_listen = Some(free_port());
            if attempt.web_listen.is_some() && attempts_left < 5 {
                attempt.web_listen = Some(free_port());
            }
            match Self::try_start(attempt, &endpoint).await {
                Ok(server) => return server,
                Err(
                    traum_server::StartError::MetricsListener { source, .. }
                    | traum_server::StartError::WebListener { source, .. },
                ) if source.kind() == std::io::ErrorKind::AddrInUse && attempts_left > 1 => {
                    attempts_left -= 1;
                }
                Err(error) => panic!("server stopped while starting: {error}"),
            }
        }
    }

    async fn try_start(
        config: Config,
        endpoint: &impl Fn(SocketAddr) -> Endpoint,
    ) -> Result<Self, traum_server::StartError> {
        let metrics_addr = config.metrics_listen.expect("a metrics port");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let data_dir = config.data_dir.clone();
        let web_addr = config.web_listen;
        let handle = tokio::spawn(traum_server::run(listener, config, async {
            let _ = rx.await;
        }));
        let channel = connect_to(&endpoint(addr)).await;
        let mut server = Self {
            addr,
            metrics_addr,
            web_addr,
            data_dir,
            shutdown: Some(tx),
            handle: Some(handle),
            channel,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), traum_server::StartError> {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        for _ in 0..200 {
            if let Some(handle) = self.handle.take_if(|handle| handle.is_finished()) {
                return match handle.await {
                    Ok(Err(error)) => Err(error),
                    other => panic!("server stopped while starting: {other:?}"),
                };
            }
            let request = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(response) = health.check(request).await
                && response.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become ready");
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn audio(&self) -> AudioServiceClient<Channel> {
        AudioServiceClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub fn search(&self) -> SearchServiceClient<Channel> {
        SearchServiceClient::new(self.channel.clone())
    }

    pub fn analytics(&self) -> AnalyticsServiceClient<Channel> {
        AnalyticsServiceClient::new(self.channel.clone())
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("server stops in time");
            result.expect("server task").expect("server ran cleanly");
        }
    }

    /// Uploads bytes with the client-streaming RPC.
    pub async fn upload(
        &self,
        filename: &str,
        tags: &[&str],
        data: &[u8],
    ) -> Result<pb::UploadResult, tonic::Status> {
        self.upload_with(
            pb::UploadHeader {
                filename: filename.into(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                size_bytes: Some(data.len() as u64),
                sha256: Some(sha256_hex(data)),
                always_create_file: false,
            },
            data,
        )
        .await
    }

    pub async fn upload_with(
        &self,
        header: pb::UploadHeader,
        data: &[u8],
    ) -> Result<pb::UploadResult, tonic::Status> {
        upload_through(&mut self.audio(), header, data).await
    }

    /// Watches a job to its terminal event and returns every event.
    pub async fn watch_to_end(&self, job_id: &str) -> Vec<pb::JobEvent> {
        let mut stream = self
            .audio()
            .watch_job(pb::WatchJobRequest {
                job_id: job_id.into(),
            })
            .await
            .expect("watch job")
            .into_inner();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Some(event) = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("job finishes in time")
        {
            events.push(event.expect("event"));
        }
        events
    }

    /// Watches a job to its end, which must be success; returns it.
    pub async fn wait_succeeded(&self, job_id: &str) -> pb::Job {
        let events = self.watch_to_end(job_id).await;
        let last = events.last().and_then(|e| e.job.clone()).expect("a final event");
        assert_eq!(
            last.state,
            pb::JobState::Succeeded as i32,
            "job failed: {}",
            last.error
        );
        last
    }

    /// Uploads and waits for the job; returns the final file.
    pub async fn upload_and_process(&self, filename: &str, tags: &[&str], data: &[u8]) -> pb::File {
        let result = self.upload(filename, tags, data).await.expect("upload accepted");
        self.wait_succeeded(&result.job_id).await;
        self.audio()
            .get_file(pb::GetFileRequest {
                file_id: result.file_id,
            })
            .await
            .expect("get file")
            .into_inner()
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics body")
    }
}

/// Uploads bytes with the client-streaming RPC through any client (e.g. of
/// a server running as its own process).
pub async fn upload_through(
    audio: &mut AudioServiceClient<Channel>,
    header: pb::UploadHeader,
    data: &[u8],
) -> Result<pb::UploadResult, tonic::Status> {
    let mut messages = vec![pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Header(header)),
    }];
    for chunk in data.chunks(64 * 1024) {
        messages.push(pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Chunk(
                bytes::Bytes::copy_from_slice(chunk),
            )),
        });
    }
    audio
        .upload_audio(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// The header `TestServer::upload` sends: name, size and digest.
pub fn upload_header(filename: &str, data: &[u8]) -> pb::UploadHeader {
    pb::UploadHeader {
        filename: filename.into(),
        tags: Vec::new(),
        size_bytes: Some(data.len() as u64),
        sha256: Some(sha256_hex(data)),
        always_create_file: false,
    }
}

/// `traum.v1.SearchService`'s health status on `server`.
pub async fn search_status(server: &TestServer) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(server.channel())
        .check(tonic_health::pb::HealthCheckRequest {
            service: traum_proto::service_names::SEARCH.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// Waits (at most a minute) until search serves on `server`.
pub async fn wait_search_serving(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while search_status(server).await
        != tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "search never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Vectors in `server`'s vector index, from `GetStats`.
pub async fn vector_entries(server: &TestServer) -> u64 {
    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    stats
        .indexes
        .iter()
        .find(|i| i.name == "vectors")
        .expect("vector index stats")
        .entries
}

/// Every byte of a stored file, through `DownloadAudio`.
pub async fn download_through(audio: &mut AudioServiceClient<Channel>, file_id: &str) -> Vec<u8> {
    let mut stream = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: file_id.into(),
            start_offset: 0,
        })
        .await
        .expect("download")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("chunk").data);
    }
    bytes
}

pub async fn connect(addr: SocketAddr) -> Channel {
    connect_to(&Endpoint::from_shared(format!("http://{addr}")).expect("endpoint")).await
}

pub async fn connect_to(endpoint: &Endpoint) -> Channel {
    let addr = endpoint.uri().clone();
    for _ in 0..200 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot connect to {addr}");
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("fixture {}: {err}", path.display()))
}

/// A 16-bit PCM WAV of a sine at `freq` Hz with a little deterministic
/// noise, so different parameters give different bytes.
pub fn wav(seconds: f64, rate: u32, channels: u16, freq: f64) -> Vec<u8> {
    let frames = (seconds * f64::from(rate)) as u32;
    let mut samples = Vec::with_capacity(frames as usize * usize::from(channels));
    let mut noise: u32 = 0x1234_5678 ^ (freq as u32);
    for n in 0..frames {
        let t = f64::from(n) / f64::from(rate);
        noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let dither = f64::from(noise >> 16) / 65536.0 - 0.5;
        let value = (0.5 * (2.0 * std::f64::consts::PI * freq * t).sin() + 0.01 * dither) * 32767.0;
        for _ in 0..channels {
            samples.push(value as i16);
        }
    }
    let data_len = samples.len() as u32 * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// Files under a directory, recursively (to prove nothing was left behind).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Path of a workspace binary built next to this test binary.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace --all-targets` (the README's test command does)",
        path.display()
    );
    path
}

/// Encodes mono f32 samples as a 16-bit PCM WAV.
pub fn wav_from_samples(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = samples.len() as u32 * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&((sample.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    out
}

/// A drum loop: a kick on every beat, a hat on every eighth, at `bpm`.
pub fn drum_loop(bpm: f64, seconds: f64, rate: u32) -> Vec<u8> {
    let len = (seconds * f64::from(rate)) as usize;
    let mut samples = vec![0f32; len];
    let beat = 60.0 / bpm;
    let mut noise: u32 = 0x9E37_79B9;
    let mut eighth = 0usize;
    loop {
        let start = (eighth as f64 * beat / 2.0 * f64::from(rate)) as usize;
        if start >= len {
            break;
        }
        let is_beat = eighth.is_multiple_of(2);
        let decay = if is_beat { 0.12 } else { 0.03 };
        let end = (start + (decay * 4.0 * f64::from(rate)) as usize).min(len);
        for (i, sample) in samples[start..end].iter_mut().enumerate() {
            let t = i as f64 / f64::from(rate);
            let envelope = (-t / decay).exp();
            let value = if is_beat {
                0.8 * (2.0 * std::f64::consts::PI * (50.0 + 100.0 * (-t / 0.02).exp()) * t).sin()
            } else {
                noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                0.25 * (f64::from(noise >> 8) / f64::from(1u32 << 24) - 0.5)
            };
            *sample += (value * envelope) as f32;
        }
        eighth += 1;
    }
    wav_from_samples(&samples, rate)
}

/// A sustained A-minor triad (A3, C4, E4) with a few harmonics.
pub fn a_minor_chord(seconds: f64, rate: u32) -> Vec<u8> {
    let len = (seconds * f64::from(rate)) as usize;
    let notes = [220.0, 261.63, 329.63, 110.0];
    let samples: Vec<f32> = (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            let value: f64 = notes
                .iter()
                .map(|f| {
                    (1..=4)
                        .map(|h| (2.0 * std::f64::consts::PI * f * f64::from(h) * t).sin() / f64::from(h * h))
                        .sum::<f64>()
                })
                .sum();
            (0.15 * value) as f32
        })
        .collect();
    wav_from_samples(&samples, rate)
}

/// The tiny random-weight HTSAT checkpoint the CLAP parity tests use.
pub fn fixture_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clap-model/htsat-tiny")
}

/// Serves with the fixture model.
pub fn with_fixture_model(config: &mut Config) {
    config.model_dir = Some(fixture_model_dir());
}
