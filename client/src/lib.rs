//! Typed async client for the Traum gRPC API.
//!
//! [`TraumClient`] owns one [`Channel`] shared by the generated service
//! clients, so every RPC can be called directly through [`TraumClient::audio`],
//! [`TraumClient::search`], [`TraumClient::analytics`], [`TraumClient::admin`]
//! and [`TraumClient::health`]. On top of that it offers the multi-step
//! workflows that are easy to get wrong by hand: streaming uploads and
//! searches by example, resumable uploads that survive failed chunks, job
//! watching and atomic downloads. Server errors keep their structured
//! details ([`ClientError::details`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_types::StatusExt as _;

pub use tonic_health::pb::health_check_response::ServingStatus;
pub use tonic_types::{ErrorDetails, FieldViolation, ResourceInfo};
pub use traum_proto::v1;

use v1::admin_service_client::AdminServiceClient;
use v1::analytics_service_client::AnalyticsServiceClient;
use v1::audio_service_client::AudioServiceClient;
use v1::search_by_audio_request::Payload as SearchPayload;
use v1::search_service_client::SearchServiceClient;
use v1::upload_audio_request::Payload;
use v1::{
    DownloadAudioRequest, FinishUploadRequest, GetUploadRequest, JobEvent, PutUploadChunkRequest,
    SearchByAudioHeader, SearchByAudioRequest, SearchFilters, SearchOptions, SearchResponse,
    StartUploadRequest, UploadAudioRequest, UploadHeader, UploadResult, WatchJobRequest,
};

/// Largest message the generated clients send or accept. The server's own
/// limits are lower; this only keeps the client from being the bottleneck.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Size of the chunks sent by [`TraumClient::upload_file`].
pub const UPLOAD_CHUNK_BYTES: usize = 1024 * 1024;

/// Metadata key carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Default server address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

/// The channel type every generated client runs on.
pub type AuthChannel = InterceptedService<Channel, ApiKeyInterceptor>;
/// Generated `AudioService` client as returned by [`TraumClient::audio`].
pub type AudioClient = AudioServiceClient<AuthChannel>;
/// Generated `SearchService` client as returned by [`TraumClient::search`].
pub type SearchClient = SearchServiceClient<AuthChannel>;
/// Generated `AnalyticsService` client as returned by [`TraumClient::analytics`].
pub type AnalyticsClient = AnalyticsServiceClient<AuthChannel>;
/// Generated `AdminService` client as returned by [`TraumClient::admin`].
pub type AdminClient = AdminServiceClient<AuthChannel>;
/// The gRPC health protocol's client as returned by [`TraumClient::health`].
pub type HealthClient = tonic_health::pb::health_client::HealthClient<AuthChannel>;

/// Names under which the server reports health, besides the overall `""`.
pub const SERVICE_NAMES: [&str; 4] = [
    traum_proto::service_names::AUDIO,
    traum_proto::service_names::SEARCH,
    traum_proto::service_names::ANALYTICS,
    traum_proto::service_names::ADMIN,
];

/// Errors of the client library.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be established or broke down.
    #[error("{}", error_chain(.0))]
    Transport(tonic::transport::Error),
    /// The server answered with a non-OK status. Displayed as `CODE: message`,
    /// then one indented line per detail the server attached (see
    /// [`detail_lines`]).
    #[error("{}", status_text(.0))]
    Status(tonic::Status),
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The [`ClientConfig`] is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The server answered something that violates the API contract.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The gRPC status code, when the error came from the server.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Status(status) => Some(status.code()),
            _ => None,
        }
    }

    /// The structured details the server attached to its error status (a
    /// `google.rpc.Status` in the `grpc-status-details-bin` trailer). `None`
    /// when the error did not come from the server, or came without details.
    pub fn details(&self) -> Option<ErrorDetails> {
        match self {
            Self::Status(status) => status_details(status),
            _ => None,
        }
    }

    /// The request fields the server rejected (`google.rpc.BadRequest`), with
    /// their paths in proto names, e.g. `options.limit`.
    pub fn field_violations(&self) -> Vec<FieldViolation> {
        self.details()
            .and_then(|details| details.bad_request().map(|bad| bad.field_violations.clone()))
            .unwrap_or_default()
    }

    /// What the error is about, e.g. the file that was not found
    /// (`google.rpc.ResourceInfo`).
    pub fn resource(&self) -> Option<ResourceInfo> {
        self.details()
            .and_then(|details| details.resource_info().cloned())
    }

    /// How long the server asks the caller to wait before trying again: its
    /// `google.rpc.RetryInfo`, else its `retry-after` header (whole seconds).
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            Self::Status(status) => retry_delay(status),
            _ => None,
        }
    }
}

fn status_details(status: &tonic::Status) -> Option<ErrorDetails> {
    if status.details().is_empty() {
        return None;
    }
    // Details that do not decode are dropped: the code and message still
    // say what went wrong.
    status.check_error_details().ok()
}

fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    status_details(status)
        .and_then(|details| details.retry_info().and_then(|info| info.retry_delay))
        .or_else(|| {
            status
                .metadata()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        })
}

fn status_text(status: &tonic::Status) -> String {
    let mut out = format!("{}: {}", code_name(status.code()), status.message());
    // A status the client made from a broken connection says only
    // "transport error"; the cause is in its source chain.
    if let Some(source) = std::error::Error::source(status) {
        let chain = error_chain(source);
        // The chain often repeats the message as its first link.
        let cause = chain
            .strip_prefix(status.message())
            .map_or(chain.as_str(), |rest| rest.trim_start_matches(": "));
        if !cause.is_empty() && !status.message().ends_with(cause) {
            out.push_str(": ");
            out.push_str(cause);
        }
    }
    let mut lines = status_details(status)
        .map(|details| lines_of(&details, status.message()))
        .unwrap_or_default();
    // Rate limits send `retry-after` even without a RetryInfo detail.
    if !lines.iter().any(|line| line.starts_with("retry after"))
        && let Some(delay) = retry_delay(status)
    {
        lines.push(retry_line(delay));
    }
    for line in lines {
        out.push_str("\n  ");
        out.push_str(&line);
    }
    out
}

/// One line per error detail, for people: `field options.limit: ...`,
/// `resource traum.v1.File 0193...`, `retry after 2s`, ...
pub fn detail_lines(details: &ErrorDetails) -> Vec<String> {
    lines_of(details, "")
}

/// [`detail_lines`], leaving out descriptions that only repeat `message`.
fn lines_of(details: &ErrorDetails, message: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(bad) = details.bad_request() {
        for violation in &bad.field_violations {
            lines.push(format!("field {}: {}", violation.field, violation.description));
        }
    }
    if let Some(failure) = details.precondition_failure() {
        for violation in &failure.violations {
            lines.push(format!(
                "precondition {} {}: {}",
                violation.r#type, violation.subject, violation.description
            ));
        }
    }
    if let Some(resource) = details.resource_info() {
        let mut line = format!("resource {} {}", resource.resource_type, resource.resource_name);
        if !resource.description.is_empty() && resource.description != message {
            line.push_str(": ");
            line.push_str(&resource.description);
        }
        lines.push(line);
    }
    if let Some(delay) = details.retry_info().and_then(|info| info.retry_delay) {
        lines.push(retry_line(delay));
    }
    if let Some(help) = details.help() {
        for link in &help.links {
            lines.push(format!("see {}: {}", link.description, link.url));
        }
    }
    lines
}

fn retry_line(delay: Duration) -> String {
    // Millisecond precision: a delay is a hint, not a schedule.
    let rounded = Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    format!("retry after {}", humantime::format_duration(rounded))
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

// Manual impl: `tonic::transport::Error`'s own Display is just "transport
// error", so the useful part lives in its source chain, which we flatten.
impl From<tonic::transport::Error> for ClientError {
    fn from(err: tonic::transport::Error) -> Self {
        Self::Transport(err)
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Canonical upper-case name of a gRPC status code, e.g. `NOT_FOUND`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Server URI, e.g. `http://127.0.0.1:50051`; `https://` enables TLS. A
    /// bare `host:port` is taken as `http://host:port`.
    pub endpoint: String,
    /// Sent as `x-api-key` on every call when set.
    pub api_key: Option<String>,
    /// PEM bundle of CAs to trust instead of the system roots (TLS only).
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Name to verify the server certificate against, when it differs from
    /// the endpoint's host.
    pub tls_domain: Option<String>,
    /// PEM certificate and key presented to a server that requires client
    /// certificates (mutual TLS).
    pub tls_client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Limit for establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            api_key: None,
            tls_ca_pem: None,
            tls_domain: None,
            tls_client_identity: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Adds the `x-api-key` header to every request when a key is configured.
#[derive(Clone, Debug, Default)]
pub struct ApiKeyInterceptor {
    key: Option<MetadataValue<Ascii>>,
}

impl ApiKeyInterceptor {
    /// Builds the interceptor; fails if the key is not a valid header value.
    pub fn new(api_key: Option<&str>) -> Result<Self, ClientError> {
        let key = api_key
            .map(|key| {
                MetadataValue::try_from(key).map_err(|_| {
                    ClientError::InvalidConfig(
                        "the API key must be printable ASCII without control characters".to_owned(),
                    )
                })
            })
            .transpose()?;
        Ok(Self { key })
    }
}

impl Interceptor for ApiKeyInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(key) = &self.key {
            request.metadata_mut().insert(API_KEY_HEADER, key.clone());
        }
        Ok(request)
    }
}

/// Connected client for all Traum services. Cheap to clone; clones share
/// the underlying HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct TraumClient {
    audio: AudioClient,
    search: SearchClient,
    analytics: AnalyticsClient,
    admin: AdminClient,
    health: HealthClient,
}

impl TraumClient {
    /// Connects to the server described by `config`.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        // Checked before connecting so a bad key is reported as such, not
        // hidden behind a connection error.
        ApiKeyInterceptor::new(config.api_key.as_deref())?;
        let endpoint = build_endpoint(&config)?;
        let channel = endpoint.connect().await?;
        Self::from_channel(channel, config.api_key.as_deref())
    }

    /// Wraps an already established channel (e.g. one built with custom
    /// options or an in-process connector).
    pub fn from_channel(channel: Channel, api_key: Option<&str>) -> Result<Self, ClientError> {
        let interceptor = ApiKeyInterceptor::new(api_key)?;
        let audio = AudioServiceClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let search = SearchServiceClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let analytics = AnalyticsServiceClient::with_interceptor(channel.clone(), interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let admin = AdminServiceClient::with_interceptor(channel.clone(), interceptor.clone());
        let health = tonic_health::pb::health_client::HealthClient::with_interceptor(channel, interceptor);
        Ok(Self {
            audio,
            search,
            analytics,
            admin,
            health,
        })
    }

    /// Generated `AudioService` client.
    pub fn audio(&self) -> AudioClient {
        self.audio.clone()
    }

    /// Generated `SearchService` client.
    pub fn search(&self) -> SearchClient {
        self.search.clone()
    }

    /// Generated `AnalyticsService` client.
    pub fn analytics(&self) -> AnalyticsClient {
        self.analytics.clone()
    }

    /// Generated `AdminService` client (API keys, the audit log).
    pub fn admin(&self) -> AdminClient {
        self.admin.clone()
    }

    /// The gRPC health protocol (`grpc.health.v1.Health`), which the server
    /// answers without credentials.
    pub fn health(&self) -> HealthClient {
        self.health.clone()
    }

    /// Health of one service (one of [`SERVICE_NAMES`]), or of the server as
    /// a whole for `""`. An unknown name is a NOT_FOUND error.
    pub async fn check_health(&self, service: &str) -> Result<ServingStatus, ClientError> {
        let response = self
            .health()
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?
            .into_inner();
        ServingStatus::try_from(response.status).map_err(|_| {
            ClientError::Protocol(format!(
                "health status {} of {service:?} is not in the protocol",
                response.status
            ))
        })
    }

    /// Uploads a file with the client-streaming `UploadAudio` RPC.
    ///
    /// The file is hashed first (one streaming pass) so the server can verify
    /// the content end to end, then sent in [`UPLOAD_CHUNK_BYTES`] chunks.
    /// `progress` receives the number of bytes sent so far after each chunk.
    pub async fn upload_file(
        &self,
        path: &Path,
        tags: Vec<String>,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<UploadResult, ClientError> {
        let filename = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: file name is not valid UTF-8", path.display()),
                )
            })?
            .to_owned();
        let metadata = tokio::fs::metadata(path).await?;
        if !metadata.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            )
            .into());
        }
        let sha256 = sha256_file(path.to_path_buf()).await?;
        let header = UploadHeader {
            filename,
            tags,
            size_bytes: Some(metadata.len()),
            sha256: Some(sha256),
            always_create_file: false,
        };
        let file = tokio::fs::File::open(path).await?;
        let first = UploadAudioRequest {
            payload: Some(Payload::Header(header)),
        };
        let chunk = |data: Vec<u8>| UploadAudioRequest {
            payload: Some(Payload::Chunk(data.into())),
        };
        let mut client = self.audio();
        stream_file(file, first, chunk, progress, move |stream| async move {
            client.upload_audio(stream).await
        })
        .await
    }

    /// Searches for files that sound like the audio file at `path` (any
    /// supported format), streamed with `SearchByAudio`: the header with
    /// `filters` and `options` first, then the file in chunks. Errors reading
    /// the file name its path.
    pub async fn search_by_audio_file(
        &self,
        path: &Path,
        filters: Option<SearchFilters>,
        options: Option<SearchOptions>,
    ) -> Result<SearchResponse, ClientError> {
        let named =
            |err: std::io::Error| std::io::Error::new(err.kind(), format!("{}: {err}", path.display()));
        let metadata = tokio::fs::metadata(path).await.map_err(named)?;
        if !metadata.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            )
            .into());
        }
        let file = tokio::fs::File::open(path).await.map_err(named)?;
        let first = SearchByAudioRequest {
            payload: Some(SearchPayload::Header(SearchByAudioHeader { filters, options })),
        };
        let chunk = |data: Vec<u8>| SearchByAudioRequest {
            payload: Some(SearchPayload::Chunk(data.into())),
        };
        let mut client = self.search();
        stream_file(
            file,
            first,
            chunk,
            |_| {},
            move |stream| async move { client.search_by_audio(stream).await },
        )
        .await
        .map_err(|err| match err {
            ClientError::Io(io) => ClientError::Io(named(io)),
            other => other,
        })
    }

    /// Uploads `data` through a resumable session (`StartUpload`,
    /// `PutUploadChunk`, `FinishUpload`), in chunks of at most `chunk_size`
    /// bytes (further capped by the server's `max_chunk_bytes`), retrying
    /// failed chunks as [`ResumableOptions::default`] allows.
    pub async fn upload_bytes_resumable(
        &self,
        filename: impl Into<String>,
        tags: Vec<String>,
        data: &[u8],
        chunk_size: usize,
    ) -> Result<UploadResult, ClientError> {
        let header = UploadHeader {
            filename: filename.into(),
            tags,
            size_bytes: Some(data.len() as u64),
            sha256: Some(hex::encode(Sha256::digest(data))),
            always_create_file: false,
        };
        let options = ResumableOptions {
            chunk_bytes: chunk_size,
            ..ResumableOptions::default()
        };
        self.upload_resumable(header, ChunkSource::Memory(data), options, &|_| {})
            .await
    }

    /// Uploads the file at `path` through a resumable session, reading one
    /// chunk at a time. A chunk that fails for a passing reason (the
    /// connection broke, the server was unavailable or rate-limited the call)
    /// is sent again from where the server's `GetUpload` says it stands, up to
    /// [`ResumableOptions::retries`] times in a row. `progress` receives the
    /// number of bytes the server holds after each chunk.
    pub async fn upload_file_resumable(
        &self,
        path: &Path,
        tags: Vec<String>,
        options: ResumableOptions,
        progress: impl Fn(u64) + Send + Sync,
    ) -> Result<UploadResult, ClientError> {
        let filename = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: file name is not valid UTF-8", path.display()),
                )
            })?
            .to_owned();
        let metadata = tokio::fs::metadata(path).await?;
        if !metadata.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            )
            .into());
        }
        let sha256 = sha256_file(path.to_path_buf()).await?;
        let header = UploadHeader {
            filename,
            tags,
            size_bytes: Some(metadata.len()),
            sha256: Some(sha256),
            always_create_file: false,
        };
        let file = tokio::fs::File::open(path).await?;
        self.upload_resumable(header, ChunkSource::File(file), options, &progress)
            .await
    }

    async fn upload_resumable(
        &self,
        header: UploadHeader,
        mut source: ChunkSource<'_>,
        options: ResumableOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<UploadResult, ClientError> {
        // Offset mismatches in a row before giving up: each is answered by
        // asking the server where it stands, so more mean a confused server.
        const MAX_RESYNCS: u32 = 8;

        let total = header.size_bytes.unwrap_or_default();
        let mut client = self.audio();
        // Not retried: a lost answer would leave a second, orphaned session.
        let session = client
            .start_upload(StartUploadRequest { header: Some(header) })
            .await?
            .into_inner();
        let upload_id = session.upload_id;
        let mut chunk = options.chunk_bytes.max(1) as u64;
        if session.max_chunk_bytes > 0 {
            chunk = chunk.min(session.max_chunk_bytes);
        }
        let mut offset = check_offset(session.received_bytes, total)?;
        let mut retry = Retry::new(options);
        let mut resyncs = 0;
        while offset < total {
            let end = offset.saturating_add(chunk).min(total);
            let request = PutUploadChunkRequest {
                upload_id: upload_id.clone(),
                offset,
                data: source.read(offset, end).await?.into(),
            };
            match client.put_upload_chunk(request).await {
                Ok(response) => {
                    let received = check_offset(response.into_inner().received_bytes, total)?;
                    if received <= offset {
                        return Err(ClientError::Protocol(format!(
                            "upload did not advance past offset {offset}"
                        )));
                    }
                    offset = received;
                    progress(offset);
                    retry.succeeded();
                    resyncs = 0;
                }
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    resyncs += 1;
                    if resyncs > MAX_RESYNCS {
                        return Err(status.into());
                    }
                    offset = upload_offset(&mut client, &upload_id, total, &mut retry).await?;
                }
                Err(status) => {
                    retry.failed(status).await?;
                    offset = upload_offset(&mut client, &upload_id, total, &mut retry).await?;
                    progress(offset);
                }
            }
        }
        // Not retried either: a finished session is gone, so a second
        // FinishUpload could only say NOT_FOUND.
        let result = client
            .finish_upload(FinishUploadRequest { upload_id })
            .await?
            .into_inner();
        Ok(result)
    }

    /// Follows a job: its current state first, then every change, ending
    /// after the terminal event.
    pub async fn watch_job(
        &self,
        job_id: impl Into<String>,
    ) -> Result<tonic::Streaming<JobEvent>, ClientError> {
        let stream = self
            .audio()
            .watch_job(WatchJobRequest {
                job_id: job_id.into(),
            })
            .await?
            .into_inner();
        Ok(stream)
    }

    /// Downloads a file's original bytes to `dest`, replacing it if present.
    /// Returns the number of bytes written.
    pub async fn download_to(&self, file_id: impl Into<String>, dest: &Path) -> Result<u64, ClientError> {
        self.download_to_with_progress(file_id, dest, |_, _| {}).await
    }

    /// Like [`TraumClient::download_to`], calling `progress(written, total)`
    /// after each chunk.
    ///
    /// Bytes go to a temporary file in the destination's directory, which is
    /// renamed over `dest` only once complete, so `dest` never holds a
    /// partial download.
    pub async fn download_to_with_progress(
        &self,
        file_id: impl Into<String>,
        dest: &Path,
        progress: impl Fn(u64, u64),
    ) -> Result<u64, ClientError> {
        let mut stream = self
            .audio()
            .download_audio(DownloadAudioRequest {
                file_id: file_id.into(),
                start_offset: 0,
            })
            .await?
            .into_inner();
        let temp = temp_path_for(dest)?;
        let mut file = tokio::fs::File::create(&temp).await?;
        let written = async {
            let mut written = 0u64;
            let mut total = None;
            while let Some(message) = stream.message().await? {
                if message.offset != written {
                    return Err(ClientError::Protocol(format!(
                        "download chunk at offset {} after {written} bytes",
                        message.offset
                    )));
                }
                file.write_all(&message.data).await?;
                written += message.data.len() as u64;
                total = Some(message.total_size_bytes);
                progress(written, message.total_size_bytes);
            }
            if let Some(total) = total
                && total != written
            {
                return Err(ClientError::Protocol(format!(
                    "download ended after {written} of {total} bytes"
                )));
            }
            file.flush().await?;
            file.sync_all().await?;
            Ok(written)
        }
        .await;
        drop(file);
        match written {
            Ok(written) => match tokio::fs::rename(&temp, dest).await {
                Ok(()) => Ok(written),
                Err(err) => {
                    let _ = tokio::fs::remove_file(&temp).await;
                    Err(err.into())
                }
            },
            Err(err) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(err)
            }
        }
    }
}

fn build_endpoint(config: &ClientConfig) -> Result<Endpoint, ClientError> {
    let uri = if config.endpoint.contains("://") {
        config.endpoint.clone()
    } else {
        format!("http://{}", config.endpoint)
    };
    let tls = uri.starts_with("https://");
    if !tls
        && (config.tls_ca_pem.is_some()
            || config.tls_domain.is_some()
            || config.tls_client_identity.is_some())
    {
        return Err(ClientError::InvalidConfig(format!(
            "TLS options need an https:// endpoint, got {uri}"
        )));
    }
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|err| ClientError::InvalidConfig(format!("bad endpoint {uri:?}: {}", error_chain(&err))))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        // Long uploads and job watches sit idle on the client side; pings
        // keep NATs and proxies from dropping the connection meanwhile.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if tls {
        let mut tls_config = ClientTlsConfig::new();
        tls_config = match &config.tls_ca_pem {
            Some(pem) => tls_config.ca_certificate(Certificate::from_pem(pem)),
            None => tls_config.with_native_roots(),
        };
        if let Some(domain) = &config.tls_domain {
            tls_config = tls_config.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &config.tls_client_identity {
            tls_config = tls_config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls_config)?;
    }
    Ok(endpoint)
}

async fn sha256_file(path: PathBuf) -> Result<String, std::io::Error> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; UPLOAD_CHUNK_BYTES];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Runs a client-streaming call whose messages are `first`, then the file in
/// [`UPLOAD_CHUNK_BYTES`] chunks wrapped by `chunk`, read while the call runs.
async fn stream_file<M, R, F>(
    file: tokio::fs::File,
    first: M,
    chunk: fn(Vec<u8>) -> M,
    progress: impl Fn(u64) + Send + 'static,
    call: impl FnOnce(ReceiverStream<M>) -> F,
) -> Result<R, ClientError>
where
    M: Send + 'static,
    F: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    // A small buffer is enough to keep the connection busy while bounding
    // memory to a few chunks regardless of file size.
    let (tx, rx) = tokio::sync::mpsc::channel::<M>(4);
    let mut reader = tokio::spawn(send_file_chunks(file, first, chunk, tx, progress));
    let rpc = call(ReceiverStream::new(rx));
    tokio::pin!(rpc);
    let mut reader_finished = false;
    loop {
        tokio::select! {
            result = &mut rpc => {
                if !reader_finished {
                    reader.abort();
                }
                return Ok(result?.into_inner());
            }
            joined = &mut reader, if !reader_finished => {
                match joined {
                    Ok(Ok(())) => reader_finished = true,
                    // Returning drops the in-flight call, which resets the
                    // stream, so the server never acts on a truncated file.
                    Ok(Err(err)) => return Err(err.into()),
                    Err(err) => return Err(std::io::Error::other(err).into()),
                }
            }
        }
    }
}

async fn send_file_chunks<M>(
    mut file: tokio::fs::File,
    first: M,
    chunk: fn(Vec<u8>) -> M,
    tx: tokio::sync::mpsc::Sender<M>,
    progress: impl Fn(u64),
) -> Result<(), std::io::Error> {
    // A closed channel means the call already ended; its status is the
    // outcome that matters, so the reader just stops.
    if tx.send(first).await.is_err() {
        return Ok(());
    }
    let mut sent = 0u64;
    loop {
        let mut buffer = vec![0u8; UPLOAD_CHUNK_BYTES];
        let filled = read_full(&mut file, &mut buffer).await?;
        if filled == 0 {
            return Ok(());
        }
        buffer.truncate(filled);
        if tx.send(chunk(buffer)).await.is_err() {
            return Ok(());
        }
        sent += filled as u64;
        progress(sent);
    }
}

/// How [`TraumClient::upload_file_resumable`] sends its chunks.
#[derive(Clone, Copy, Debug)]
pub struct ResumableOptions {
    /// Largest chunk to send; the server's `max_chunk_bytes` caps it further.
    pub chunk_bytes: usize,
    /// How many failures in a row (of a chunk, or of asking the server where
    /// to resume) are retried before the upload gives up.
    pub retries: u32,
    /// Wait before the first retry; it doubles with every failure in a row,
    /// up to 30 s. A delay the server asks for takes precedence.
    pub backoff: Duration,
}

impl Default for ResumableOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: UPLOAD_CHUNK_BYTES,
            retries: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Counts failures in a row and waits between the attempts.
struct Retry {
    options: ResumableOptions,
    failures: u32,
}

impl Retry {
    fn new(options: ResumableOptions) -> Self {
        Self { options, failures: 0 }
    }

    fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Returns the status as the error when it is final or the retries are
    /// spent; otherwise waits before the next attempt.
    async fn failed(&mut self, status: tonic::Status) -> Result<(), ClientError> {
        let asked = retry_delay(&status);
        if !is_transient(&status, asked.is_some()) || self.failures >= self.options.retries {
            return Err(status.into());
        }
        self.failures += 1;
        let doubled = self
            .options
            .backoff
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(Duration::from_secs(30));
        tokio::time::sleep(asked.unwrap_or(doubled)).await;
        Ok(())
    }
}

/// Whether a failed call may succeed when made again: the connection broke
/// or timed out, the server was unavailable, or it rate-limited the call
/// (RESOURCE_EXHAUSTED with a delay to wait; without one it is a size limit,
/// which no retry fixes).
fn is_transient(status: &tonic::Status, has_retry_delay: bool) -> bool {
    use tonic::Code;
    match status.code() {
        // A broken connection surfaces as UNAVAILABLE, UNKNOWN, CANCELLED or
        // INTERNAL depending on where the transport noticed it.
        Code::Unavailable
        | Code::Unknown
        | Code::Cancelled
        | Code::Internal
        | Code::DeadlineExceeded
        | Code::Aborted => true,
        Code::ResourceExhausted => has_retry_delay,
        _ => false,
    }
}

/// Asks the server how many bytes of the session it holds, retrying like the
/// chunks themselves.
async fn upload_offset(
    client: &mut AudioClient,
    upload_id: &str,
    total: u64,
    retry: &mut Retry,
) -> Result<u64, ClientError> {
    loop {
        let request = GetUploadRequest {
            upload_id: upload_id.to_owned(),
        };
        match client.get_upload(request).await {
            Ok(response) => return check_offset(response.into_inner().received_bytes, total),
            Err(status) => retry.failed(status).await?,
        }
    }
}

/// Where the bytes of a resumable upload come from.
enum ChunkSource<'a> {
    Memory(&'a [u8]),
    File(tokio::fs::File),
}

impl ChunkSource<'_> {
    async fn read(&mut self, start: u64, end: u64) -> Result<Vec<u8>, std::io::Error> {
        match self {
            Self::Memory(data) => Ok(slice(data, start, end).to_vec()),
            Self::File(file) => {
                // Seeks every time: a retry may resume before or after where
                // the previous read ended.
                file.seek(std::io::SeekFrom::Start(start)).await?;
                let length = usize::try_from(end.saturating_sub(start)).map_err(std::io::Error::other)?;
                let mut buffer = vec![0u8; length];
                let filled = read_full(file, &mut buffer).await?;
                if filled < length {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the file shrank while uploading: {filled} bytes at offset {start}, expected {length}"
                        ),
                    ));
                }
                Ok(buffer)
            }
        }
    }
}

/// Fills `buffer` as far as the file allows, so chunks are full-sized even
/// when the OS returns short reads.
async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut filled = 0;
    while filled < buffer.len() {
        let read = file.read(&mut buffer[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}

fn check_offset(offset: u64, total: u64) -> Result<u64, ClientError> {
    if offset > total {
        return Err(ClientError::Protocol(format!(
            "server holds {offset} bytes of a {total}-byte upload"
        )));
    }
    Ok(offset)
}

fn slice(data: &[u8], start: u64, end: u64) -> &[u8] {
    // Offsets were checked against `data.len()`, so the conversions are exact.
    let start = usize::try_from(start).unwrap_or(data.len());
    let end = usize::try_from(end).unwrap_or(data.len());
    data.get(start..end).unwrap_or_default()
}

fn temp_path_for(dest: &Path) -> Result<PathBuf, ClientError> {
    let name = dest.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a file path", dest.display()),
        )
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.part", std::process::id()));
    Ok(dest.with_file_name(temp_name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(tonic::Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn status_error_displays_code_and_message() {
        let err = ClientError::from(tonic::Status::not_found("no such file"));
        assert_eq!(err.to_string(), "NOT_FOUND: no such file");
        assert_eq!(err.code(), Some(tonic::Code::NotFound));
    }

    #[test]
    fn status_error_shows_its_details_one_per_line() {
        let mut details = ErrorDetails::with_bad_request_violation("options.limit", "must be 1 to 200");
        details.add_bad_request_violation("query", "must not be empty");
        details.set_retry_info(Some(Duration::from_millis(1500)));
        let status = tonic::Status::with_error_details(tonic::Code::InvalidArgument, "bad search", details);
        let err = ClientError::from(status);
        assert_eq!(
            err.to_string(),
            "INVALID_ARGUMENT: bad search\n  field options.limit: must be 1 to 200\n  \
             field query: must not be empty\n  retry after 1s 500ms"
        );
        let fields: Vec<String> = err.field_violations().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["options.limit", "query"]);
        assert_eq!(err.retry_delay(), Some(Duration::from_millis(1500)));

        let details = ErrorDetails::with_resource_info("traum.v1.File", "0193-id", "", "no such file");
        let err = ClientError::from(tonic::Status::with_error_details(
            tonic::Code::NotFound,
            "file 0193-id not found",
            details,
        ));
        assert_eq!(
            err.to_string(),
            "NOT_FOUND: file 0193-id not found\n  resource traum.v1.File 0193-id: no such file"
        );
        // A description that only repeats the message is not shown twice.
        let same = ErrorDetails::with_resource_info("traum.v1.Job", "j", "", "job j not found");
        let status = tonic::Status::with_error_details(tonic::Code::NotFound, "job j not found", same);
        assert_eq!(
            ClientError::from(status).to_string(),
            "NOT_FOUND: job j not found\n  resource traum.v1.Job j"
        );
        let resource = err.resource().unwrap();
        assert_eq!(
            (resource.resource_type.as_str(), resource.resource_name.as_str()),
            ("traum.v1.File", "0193-id")
        );
        assert!(err.field_violations().is_empty());
    }

    #[test]
    fn retry_after_header_stands_in_for_retry_info() {
        let mut status = tonic::Status::resource_exhausted("slow down");
        status.metadata_mut().insert("retry-after", "3".parse().unwrap());
        let err = ClientError::from(status);
        assert_eq!(err.retry_delay(), Some(Duration::from_secs(3)));
        assert_eq!(err.to_string(), "RESOURCE_EXHAUSTED: slow down\n  retry after 3s");
        assert!(err.details().is_none());
        // Undecodable details are ignored rather than failing the error.
        let garbled = tonic::Status::with_details(tonic::Code::Internal, "oops", vec![0xff, 0x01].into());
        assert_eq!(ClientError::from(garbled).to_string(), "INTERNAL: oops");
    }

    #[test]
    fn only_passing_failures_are_retried() {
        assert!(is_transient(&tonic::Status::unavailable("down"), false));
        assert!(is_transient(&tonic::Status::unknown("connection reset"), false));
        assert!(is_transient(&tonic::Status::resource_exhausted("rate"), true));
        assert!(!is_transient(
            &tonic::Status::resource_exhausted("too large"),
            false
        ));
        assert!(!is_transient(&tonic::Status::invalid_argument("bad"), false));
        assert!(!is_transient(&tonic::Status::not_found("gone"), false));
    }

    #[tokio::test]
    async fn retries_end_after_the_allowed_number() {
        let mut retry = Retry::new(ResumableOptions {
            retries: 2,
            backoff: Duration::ZERO,
            ..ResumableOptions::default()
        });
        assert!(retry.failed(tonic::Status::unavailable("1")).await.is_ok());
        assert!(retry.failed(tonic::Status::unavailable("2")).await.is_ok());
        let err = retry.failed(tonic::Status::unavailable("3")).await.unwrap_err();
        assert_eq!(err.code(), Some(tonic::Code::Unavailable));
        retry.succeeded();
        assert!(retry.failed(tonic::Status::unavailable("again")).await.is_ok());
        let err = retry
            .failed(tonic::Status::permission_denied("no"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(tonic::Code::PermissionDenied));
    }

    #[tokio::test]
    async fn file_chunks_are_read_at_any_offset() {
        let path = std::env::temp_dir().join(format!("traum-client-chunks-{}", std::process::id()));
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        std::fs::write(&path, &data).unwrap();
        let mut source = ChunkSource::File(tokio::fs::File::open(&path).await.unwrap());
        assert_eq!(source.read(600, 700).await.unwrap(), &data[600..700]);
        // Back to an earlier offset, as a resumed upload may need.
        assert_eq!(source.read(100, 400).await.unwrap(), &data[100..400]);
        let err = source.read(900, 1100).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        std::fs::remove_file(&path).unwrap();
        let mut memory = ChunkSource::Memory(&data);
        assert_eq!(memory.read(10, 20).await.unwrap(), &data[10..20]);
    }

    #[test]
    fn tls_options_require_https() {
        let config = ClientConfig {
            tls_ca_pem: Some(Vec::new()),
            ..ClientConfig::default()
        };
        assert!(matches!(
            build_endpoint(&config),
            Err(ClientError::InvalidConfig(_))
        ));
    }

    #[test]
    fn bare_host_port_gets_http_scheme() {
        let config = ClientConfig {
            endpoint: "localhost:50051".to_owned(),
            ..ClientConfig::default()
        };
        let endpoint = build_endpoint(&config).unwrap();
        assert_eq!(endpoint.uri().scheme_str(), Some("http"));
    }

    #[test]
    fn api_key_is_added_as_header() {
        let mut interceptor = ApiKeyInterceptor::new(Some("secret")).unwrap();
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert_eq!(request.metadata().get(API_KEY_HEADER).unwrap(), "secret");
        assert!(ApiKeyInterceptor::new(Some("bad\nkey")).is_err());
    }

    #[test]
    fn temp_file_is_hidden_next_to_destination() {
        let temp = temp_path_for(Path::new("/tmp/out/song.wav")).unwrap();
        assert_eq!(temp.parent(), Some(Path::new("/tmp/out")));
        assert!(
            temp.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".song.wav.") && n.ends_with(".part"))
        );
    }

    #[tokio::test]
    async fn hashes_files_in_chunks() {
        let path = std::env::temp_dir().join(format!("traum-client-hash-{}", std::process::id()));
        let data = vec![7u8; UPLOAD_CHUNK_BYTES + 123];
        std::fs::write(&path, &data).unwrap();
        let hash = sha256_file(path.clone()).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(hash, hex::encode(Sha256::digest(&data)));
    }
}
