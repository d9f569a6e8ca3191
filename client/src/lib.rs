//! Typed async client for the Traum gRPC API.
//!
//! [`TraumClient`] owns one [`Channel`] shared by the three generated service
//! clients, so every RPC can be called directly through [`TraumClient::audio`],
//! [`TraumClient::search`] and [`TraumClient::analytics`]. On top of that it
//! offers the multi-step workflows that are easy to get wrong by hand:
//! streaming uploads, resumable uploads, job watching and atomic downloads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub use traum_proto::v1;

use v1::admin_service_client::AdminServiceClient;
use v1::analytics_service_client::AnalyticsServiceClient;
use v1::audio_service_client::AudioServiceClient;
use v1::search_service_client::SearchServiceClient;
use v1::upload_audio_request::Payload;
use v1::{
    DownloadAudioRequest, FinishUploadRequest, GetUploadRequest, JobEvent, PutUploadChunkRequest,
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

/// Errors of the client library.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be established or broke down.
    #[error("{}", error_chain(.0))]
    Transport(tonic::transport::Error),
    /// The server answered with a non-OK status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
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
        let admin = AdminServiceClient::with_interceptor(channel, interceptor);
        Ok(Self {
            audio,
            search,
            analytics,
            admin,
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

        // A small buffer is enough to keep the connection busy while bounding
        // memory to a few chunks regardless of file size.
        let (tx, rx) = tokio::sync::mpsc::channel::<UploadAudioRequest>(4);
        let mut reader = tokio::spawn(send_file_chunks(file, header, tx, progress));

        let mut client = self.audio();
        let rpc = client.upload_audio(ReceiverStream::new(rx));
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
                        // stream, so the server never stores a truncated file.
                        Ok(Err(err)) => return Err(err.into()),
                        Err(err) => return Err(std::io::Error::other(err).into()),
                    }
                }
            }
        }
    }

    /// Uploads `data` through a resumable session (`StartUpload`,
    /// `PutUploadChunk`, `FinishUpload`), in chunks of at most `chunk_size`
    /// bytes (further capped by the server's `max_chunk_bytes`).
    ///
    /// When the server rejects a chunk with FAILED_PRECONDITION (its offset
    /// differs from ours, e.g. after a lost response), the server's offset is
    /// fetched with `GetUpload` and the upload continues from there.
    pub async fn upload_bytes_resumable(
        &self,
        filename: impl Into<String>,
        tags: Vec<String>,
        data: &[u8],
        chunk_size: usize,
    ) -> Result<UploadResult, ClientError> {
        const MAX_RESYNCS: u32 = 8;

        let mut client = self.audio();
        let total = data.len() as u64;
        let header = UploadHeader {
            filename: filename.into(),
            tags,
            size_bytes: Some(total),
            sha256: Some(hex::encode(Sha256::digest(data))),
            always_create_file: false,
        };
        let session = client
            .start_upload(StartUploadRequest { header: Some(header) })
            .await?
            .into_inner();
        let upload_id = session.upload_id;
        let mut chunk = chunk_size.max(1) as u64;
        if session.max_chunk_bytes > 0 {
            chunk = chunk.min(session.max_chunk_bytes);
        }
        let mut offset = check_offset(session.received_bytes, total)?;
        let mut resyncs = 0;
        while offset < total {
            let end = offset.saturating_add(chunk).min(total);
            let request = PutUploadChunkRequest {
                upload_id: upload_id.clone(),
                offset,
                data: slice(data, offset, end).to_vec().into(),
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
                    resyncs = 0;
                }
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    resyncs += 1;
                    if resyncs > MAX_RESYNCS {
                        return Err(status.into());
                    }
                    let state = client
                        .get_upload(GetUploadRequest {
                            upload_id: upload_id.clone(),
                        })
                        .await?
                        .into_inner();
                    offset = check_offset(state.received_bytes, total)?;
                }
                Err(status) => return Err(status.into()),
            }
        }
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

async fn send_file_chunks(
    mut file: tokio::fs::File,
    header: UploadHeader,
    tx: tokio::sync::mpsc::Sender<UploadAudioRequest>,
    progress: impl Fn(u64),
) -> Result<(), std::io::Error> {
    let first = UploadAudioRequest {
        payload: Some(Payload::Header(header)),
    };
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
        let message = UploadAudioRequest {
            payload: Some(Payload::Chunk(buffer.into())),
        };
        if tx.send(message).await.is_err() {
            return Ok(());
        }
        sent += filled as u64;
        progress(sent);
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
