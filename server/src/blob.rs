//! Content-addressed blob store: `ab/cd/<sha256>` in a directory (`blobs` in
//! the data dir unless `--blob-store` names another, which several replicas
//! may share) or under a prefix of an S3-compatible bucket. Either way a key
//! holds complete content or does not exist: files land in a temp file, are
//! fsynced and renamed into place; objects are written whole (one PUT, or a
//! multipart upload that only appears when completed) and checked after.
//!
//! Resumable upload sessions live beside the blobs (`.uploads`), so every
//! replica that shares the store shares them. Local temp files (streamed
//! uploads, assembled sessions, the pipeline's copy of an object) stay in
//! `DATA_DIR/tmp`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// Files read per hashing step; also the unit of progress reports.
const READ_BUFFER: usize = 1024 * 1024;
/// Part size of multipart writes and of ranged reads from an object store:
/// S3 wants parts of at least 5 MiB, and memory holds a few parts at most.
const OBJECT_PART: usize = 8 * 1024 * 1024;
/// Parts of one multipart write in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Directory (or key prefix) of resumable upload sessions.
const SESSIONS: &str = ".uploads";

/// Where blobs live, as configured by `--blob-store`.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// `file://PATH`.
    Directory(PathBuf),
    /// `s3://BUCKET/PREFIX`.
    S3(S3Location),
}

/// An S3-compatible bucket and key prefix. Every other setting comes from
/// the standard `AWS_*` variables (endpoint, region, credentials,
/// `AWS_ALLOW_HTTP`); the optional fields here override them, for callers
/// that cannot set the process environment (tests, several servers in one
/// process).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing slashes; empty for the bucket's root.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`, checking the bucket name as S3 does.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{text}` does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "`{bucket}` is not a bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
            && !prefix.is_empty()
        {
            return Err(format!("prefix `{prefix}` has an empty, `.` or `..` segment"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            ..Self::default()
        })
    }

    /// The client, from the `AWS_*` environment and then this location's
    /// overrides. Builds no connection; bad settings fail here.
    fn client(&self) -> std::result::Result<AmazonS3, object_store::Error> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        // The AWS SDKs' name for a custom endpoint; object_store reads only
        // AWS_ENDPOINT.
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL")
            && std::env::var_os("AWS_ENDPOINT").is_none()
        {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(allow) = self.allow_http {
            builder = builder.with_allow_http(allow);
        }
        // The store checks each body (a whole object or one part) against
        // the SHA-256 sent with it and refuses one damaged on the way.
        if std::env::var_os("AWS_CHECKSUM_ALGORITHM").is_none() {
            builder = builder.with_checksum_algorithm(Checksum::SHA256);
        }
        // A request waits out a short outage, not a long one: the caller
        // gets UNAVAILABLE and retries at its own pace.
        builder
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(15),
            })
            // Set key by key: replacing the client options would drop what
            // the environment and `allow_http` put there.
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "120s")
            .build()
    }

    /// Checks the settings without connecting (for config validation).
    pub fn check(&self) -> std::result::Result<(), String> {
        self.client().map(drop).map_err(|err| err.to_string())
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

// The secret never reaches a log line.
impl fmt::Debug for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<set>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => write!(f, "file://{}", path.display()),
            Self::S3(location) => location.fmt(f),
        }
    }
}

impl fmt::Debug for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => f.debug_tuple("Directory").field(path).finish(),
            Self::S3(location) => f.debug_tuple("S3").field(location).finish(),
        }
    }
}

/// Layout of the byte stores; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    backend: Arc<Backend>,
    tmp: PathBuf,
    /// Serialises blob placement against blob removal in this process, so a
    /// delete never removes bytes that a concurrent upload just started
    /// referencing (the store's advisory lock does it across replicas).
    placement: Arc<tokio::sync::Mutex<()>>,
}

enum Backend {
    Directory {
        blobs: PathBuf,
        uploads: PathBuf,
    },
    Objects {
        client: AmazonS3,
        location: S3Location,
        /// `PREFIX/` as an object path (empty for the bucket root).
        root: ObjectPath,
    },
}

/// A blob as the store lists it.
#[derive(Debug, Clone)]
pub struct ListedBlob {
    pub sha256: String,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// Whether `name` can be a blob's name (lowercase hex SHA-256).
pub fn is_sha256(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Result of streaming bytes into a temp file.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// A blob's bytes as a local file, for the audio code that reads paths: the
/// blob itself in a directory store, a fetched copy (removed on drop) in an
/// object store.
pub struct LocalBlob {
    path: PathBuf,
    fetched: bool,
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalBlob {
    fn drop(&mut self) {
        if self.fetched {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A session's bytes gathered into one local file for the checks and the
/// hash; removed on drop unless [`Self::take`] hands the file on.
pub struct AssembledSession {
    pub path: PathBuf,
    /// True when `path` is a copy; the session's own file is never removed
    /// here (finishing the session does that).
    copy: bool,
}

impl Drop for AssembledSession {
    fn drop(&mut self) {
        if self.copy {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    /// Opens the store, creating directories as needed. An object store is
    /// asked for one listing, so a wrong bucket or endpoint fails at start.
    /// Session files an older server kept in `DATA_DIR/uploads` are moved
    /// beside the blobs of a directory store.
    pub async fn open(data_dir: &Path, location: &BlobLocation) -> Result<Self> {
        let tmp = data_dir.join("tmp");
        let (made, old) = (tmp.clone(), data_dir.join("uploads"));
        let directory = match location {
            BlobLocation::Directory(blobs) => Some(blobs.clone()),
            BlobLocation::S3(_) => None,
        };
        let uploads = tokio::task::spawn_blocking(move || -> io::Result<Option<PathBuf>> {
            fs::create_dir_all(&made)?;
            let Some(blobs) = directory else {
                return Ok(None);
            };
            let uploads = blobs.join(SESSIONS);
            fs::create_dir_all(&uploads)?;
            move_old_sessions(&old, &uploads)?;
            Ok(Some(uploads))
        })
        .await??;
        let backend = match (location, uploads) {
            (BlobLocation::Directory(blobs), Some(uploads)) => Backend::Directory {
                blobs: blobs.clone(),
                uploads,
            },
            (BlobLocation::Directory(_), None) => {
                unreachable!("a directory store made its session directory")
            }
            (BlobLocation::S3(location), _) => {
                let client = location.client().map_err(|source| Error::BlobStore {
                    message: format!("blob store {location} is misconfigured: {source}"),
                    source: Box::new(source),
                })?;
                let root = ObjectPath::from(location.prefix.as_str());
                let backend = Backend::Objects {
                    client,
                    location: location.clone(),
                    root,
                };
                if let Backend::Objects { client, root, .. } = &backend {
                    client
                        .list_with_delimiter(Some(root))
                        .await
                        .map_err(|err| backend.unavailable("be listed", err))?;
                }
                backend
            }
        };
        Ok(Self {
            backend: Arc::new(backend),
            tmp,
            placement: Arc::default(),
        })
    }

    /// Holds off every other placement and removal in this process while
    /// the guard lives: take it around "put the bytes in place + reference
    /// them in the database" and around "unreference + remove".
    pub async fn placement(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.placement.lock().await
    }

    /// Where the blobs live, for messages.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Directory { blobs, .. } => format!("file://{}", blobs.display()),
            Backend::Objects { location, .. } => location.to_string(),
        }
    }

    /// A fresh temp file path for an in-flight streamed upload.
    pub fn temp_path(&self) -> PathBuf {
        self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()))
    }

    /// Removes every stray temp file (left by a crash mid-upload).
    pub fn clear_temp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            fs::remove_file(entry?.path())?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Moves a complete, fsynced temp file into place as the blob `sha256`
    /// and removes the temp file. A blob already in place is kept: equal
    /// digests mean equal content.
    pub async fn commit(&self, temp: &Path, sha256: &str, size: u64) -> Result<()> {
        match &*self.backend {
            Backend::Directory { blobs, .. } => {
                let (blobs, temp, target) = (blobs.clone(), temp.to_owned(), blob_path(blobs, sha256));
                tokio::task::spawn_blocking(move || commit_file(&blobs, &temp, &target)).await??;
                Ok(())
            }
            Backend::Objects { client, .. } => {
                let key = self.key(sha256);
                match client.head(&key).await {
                    Ok(meta) if meta.size == size => {}
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                        self.upload_file(client, &key, temp, size).await?;
                    }
                    Err(err) => return Err(self.backend.unavailable("be read", err)),
                }
                tokio::fs::remove_file(temp).await?;
                Ok(())
            }
        }
    }

    /// Writes a local file to `key` in parts of bounded size, then checks
    /// that the stored object has the file's length.
    async fn upload_file(&self, client: &AmazonS3, key: &ObjectPath, source: &Path, size: u64) -> Result<()> {
        let mut file = tokio::fs::File::open(source).await?;
        if size <= OBJECT_PART as u64 {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut bytes).await?;
            client
                .put(key, PutPayload::from(bytes))
                .await
                .map_err(|err| self.backend.unavailable("be written", err))?;
        } else {
            let upload = client
                .put_multipart(key)
                .await
                .map_err(|err| self.backend.unavailable("be written", err))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, OBJECT_PART);
            let streamed: Result<()> = async {
                let mut buffer = vec![0u8; OBJECT_PART];
                loop {
                    writer
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(|err| self.backend.unavailable("be written", err))?;
                    let read = read_full(&mut file, &mut buffer).await?;
                    if read == 0 {
                        return Ok(());
                    }
                    writer.write(&buffer[..read]);
                }
            }
            .await;
            match streamed {
                Ok(()) => {
                    writer
                        .finish()
                        .await
                        .map_err(|err| self.backend.unavailable("be written", err))?;
                }
                Err(err) => {
                    // An uncompleted upload stores nothing; aborting frees
                    // its parts now rather than at the bucket's lifecycle.
                    let _ = writer.abort().await;
                    return Err(err);
                }
            }
        }
        let stored = client
            .head(key)
            .await
            .map_err(|err| self.backend.unavailable("be read", err))?;
        if stored.size != size {
            return Err(Error::Internal(format!(
                "blob store {} holds {} bytes under {key} right after {size} bytes were written",
                self.describe(),
                stored.size
            )));
        }
        Ok(())
    }

    /// The stored size of the blob `sha256`, or `None` when the store does
    /// not hold it.
    pub async fn stored_size(&self, sha256: &str) -> Result<Option<u64>> {
        match &*self.backend {
            Backend::Directory { blobs, .. } => match tokio::fs::metadata(blob_path(blobs, sha256)).await {
                Ok(meta) => Ok(Some(meta.len())),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(Error::Io(err)),
            },
            Backend::Objects { client, .. } => match client.head(&self.key(sha256)).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(self.backend.unavailable("be read", err)),
            },
        }
    }

    /// Every blob the store holds, with when it was last written (not the
    /// upload sessions).
    pub async fn list_blobs(&self) -> Result<Vec<ListedBlob>> {
        match &*self.backend {
            Backend::Directory { blobs, .. } => {
                let blobs = blobs.clone();
                let listed = tokio::task::spawn_blocking(move || -> io::Result<Vec<ListedBlob>> {
                    let mut listed = Vec::new();
                    let walk = walkdir::WalkDir::new(&blobs)
                        .into_iter()
                        .filter_entry(|entry| entry.file_name() != SESSIONS);
                    for entry in walk {
                        let entry = entry.map_err(io::Error::other)?;
                        let Some(name) = entry.file_name().to_str().filter(|name| is_sha256(name)) else {
                            continue;
                        };
                        if entry.file_type().is_file() {
                            let modified = entry.metadata().map_err(io::Error::other)?.modified()?;
                            listed.push(ListedBlob {
                                sha256: name.to_owned(),
                                modified: modified.into(),
                            });
                        }
                    }
                    Ok(listed)
                })
                .await??;
                Ok(listed)
            }
            Backend::Objects { client, root, .. } => {
                let objects: Vec<_> = client
                    .list(Some(root))
                    .try_collect()
                    .await
                    .map_err(|err| self.backend.unavailable("be listed", err))?;
                Ok(objects
                    .into_iter()
                    .filter_map(|meta| {
                        let name = meta.location.filename().filter(|name| is_sha256(name))?;
                        Some(ListedBlob {
                            sha256: name.to_owned(),
                            modified: meta.last_modified,
                        })
                    })
                    .collect())
            }
        }
    }

    /// Deletes a blob's bytes; a missing blob is not an error.
    pub async fn remove(&self, sha256: &str) -> Result<()> {
        match &*self.backend {
            Backend::Directory { blobs, .. } => {
                let path = blob_path(blobs, sha256);
                tokio::task::spawn_blocking(move || remove_if_present(&path)).await??;
                Ok(())
            }
            Backend::Objects { client, .. } => match client.delete(&self.key(sha256)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(self.backend.unavailable("delete from", err)),
            },
        }
    }

    /// Bytes `range` of the blob `sha256`, in pieces of at most `piece`
    /// bytes, read as they are consumed.
    pub async fn read(
        &self,
        sha256: &str,
        range: Range<u64>,
        piece: usize,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        match &*self.backend {
            Backend::Directory { blobs, .. } => {
                let mut file = tokio::fs::File::open(blob_path(blobs, sha256))
                    .await
                    .map_err(|err| self.missing(sha256, err))?;
                file.seek(SeekFrom::Start(range.start)).await?;
                Ok(Box::pin(async_stream::try_stream! {
                    let mut offset = range.start;
                    while offset < range.end {
                        let length = usize::try_from(range.end - offset).map_or(piece, |left| left.min(piece));
                        let mut buffer = vec![0u8; length];
                        file.read_exact(&mut buffer).await?;
                        yield Bytes::from(buffer);
                        offset += length as u64;
                    }
                }))
            }
            Backend::Objects { client, .. } => {
                if range.is_empty() {
                    return Ok(Box::pin(futures::stream::empty()));
                }
                let options = GetOptions {
                    range: Some(range.into()),
                    ..GetOptions::default()
                };
                let got = client
                    .get_opts(&self.key(sha256), options)
                    .await
                    .map_err(|err| self.object_error(sha256, err))?;
                let backend = self.backend.clone();
                let stream = got
                    .into_stream()
                    .map_err(move |err| backend.unavailable("be read", err))
                    .map_ok(move |bytes| futures::stream::iter(split(bytes, piece).into_iter().map(Ok)))
                    .try_flatten();
                Ok(Box::pin(stream))
            }
        }
    }

    /// The blob as a local file for decoding: in place in a directory store;
    /// fetched in ranged parts into the temp directory from an object store.
    pub async fn local(&self, sha256: &str, size: u64) -> Result<LocalBlob> {
        match &*self.backend {
            Backend::Directory { blobs, .. } => Ok(LocalBlob {
                path: blob_path(blobs, sha256),
                fetched: false,
            }),
            Backend::Objects { client, .. } => {
                let local = LocalBlob {
                    path: self.tmp.join(format!("{}.blob", uuid::Uuid::new_v4())),
                    fetched: true,
                };
                let key = self.key(sha256);
                let mut file = tokio::fs::File::create(&local.path).await?;
                let mut offset = 0u64;
                while offset < size {
                    let end = (offset + OBJECT_PART as u64).min(size);
                    let part = client
                        .get_range(&key, offset..end)
                        .await
                        .map_err(|err| self.object_error(sha256, err))?;
                    file.write_all(&part).await?;
                    offset = end;
                }
                file.sync_all().await?;
                Ok(local)
            }
        }
    }

    /// Makes an empty session.
    pub async fn start_session(&self, id: &str) -> Result<()> {
        match &*self.backend {
            Backend::Directory { uploads, .. } => {
                let path = session_path(uploads, id);
                tokio::task::spawn_blocking(move || write_at(&path, 0, &[])).await??;
                Ok(())
            }
            // Chunks are objects of their own: nothing to make up front.
            Backend::Objects { .. } => Ok(()),
        }
    }

    /// Writes `data` at `offset` of a session, dropping anything after the
    /// offset first (a chunk half-written before a crash). In an object
    /// store each chunk is an object keyed by its offset; a retried chunk
    /// replaces the object it repeats.
    pub async fn write_session(&self, id: &str, offset: u64, data: Bytes) -> Result<()> {
        match &*self.backend {
            Backend::Directory { uploads, .. } => {
                let path = session_path(uploads, id);
                tokio::task::spawn_blocking(move || write_at(&path, offset, &data)).await??;
                Ok(())
            }
            Backend::Objects { client, .. } => {
                client
                    .put(&self.chunk_key(id, offset), PutPayload::from(data))
                    .await
                    .map_err(|err| self.backend.unavailable("be written", err))?;
                Ok(())
            }
        }
    }

    /// The first `received` bytes of a session as one local file.
    pub async fn assemble_session(&self, id: &str, received: u64) -> Result<AssembledSession> {
        match &*self.backend {
            Backend::Directory { uploads, .. } => Ok(AssembledSession {
                path: session_path(uploads, id),
                copy: false,
            }),
            Backend::Objects { client, .. } => {
                let assembled = AssembledSession {
                    path: self.temp_path(),
                    copy: true,
                };
                let mut chunks = self.session_chunks(client, id).await?;
                chunks.sort_unstable_by_key(|(offset, _)| *offset);
                let mut file = tokio::fs::File::create(&assembled.path).await?;
                let mut at = 0u64;
                for (offset, key) in chunks {
                    // A chunk at or past `received` was written but never
                    // acknowledged: it is not part of the session.
                    if offset >= received {
                        continue;
                    }
                    if offset != at {
                        return Err(Error::Internal(format!(
                            "upload session {id} has no chunk at byte {at} in {}",
                            self.describe()
                        )));
                    }
                    let bytes = client
                        .get(&key)
                        .await
                        .map_err(|err| self.backend.unavailable("be read", err))?
                        .bytes()
                        .await
                        .map_err(|err| self.backend.unavailable("be read", err))?;
                    file.write_all(&bytes).await?;
                    at += bytes.len() as u64;
                }
                if at != received {
                    return Err(Error::Internal(format!(
                        "upload session {id} holds {at} bytes in {}, its record says {received}",
                        self.describe()
                    )));
                }
                file.sync_all().await?;
                Ok(assembled)
            }
        }
    }

    /// Removes a session's bytes; a missing session is not an error.
    pub async fn remove_session(&self, id: &str) -> Result<()> {
        match &*self.backend {
            Backend::Directory { uploads, .. } => {
                let path = session_path(uploads, id);
                tokio::task::spawn_blocking(move || remove_if_present(&path)).await??;
                Ok(())
            }
            Backend::Objects { client, .. } => {
                for (_, key) in self.session_chunks(client, id).await? {
                    match client.delete(&key).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(err) => return Err(self.backend.unavailable("delete from", err)),
                    }
                }
                Ok(())
            }
        }
    }

    /// Ids of the sessions that have bytes in the store.
    pub async fn session_ids(&self) -> Result<Vec<String>> {
        match &*self.backend {
            Backend::Directory { uploads, .. } => {
                let uploads = uploads.clone();
                let ids = tokio::task::spawn_blocking(move || -> io::Result<Vec<String>> {
                    let mut ids = Vec::new();
                    for entry in fs::read_dir(&uploads)? {
                        let path = entry?.path();
                        if let Some(id) = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.strip_suffix(".part"))
                        {
                            ids.push(id.to_owned());
                        }
                    }
                    Ok(ids)
                })
                .await??;
                Ok(ids)
            }
            Backend::Objects { client, root, .. } => {
                let sessions = root.clone().join(SESSIONS);
                let listed = client
                    .list_with_delimiter(Some(&sessions))
                    .await
                    .map_err(|err| self.backend.unavailable("be listed", err))?;
                Ok(listed
                    .common_prefixes
                    .iter()
                    .filter_map(|prefix| prefix.filename().map(str::to_owned))
                    .collect())
            }
        }
    }

    async fn session_chunks(&self, client: &AmazonS3, id: &str) -> Result<Vec<(u64, ObjectPath)>> {
        let prefix = self.session_prefix(id);
        let objects: Vec<_> = client
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|err| self.backend.unavailable("be listed", err))?;
        Ok(objects
            .into_iter()
            .filter_map(|meta| {
                let offset = meta.location.filename()?.parse().ok()?;
                Some((offset, meta.location))
            })
            .collect())
    }

    fn key(&self, sha256: &str) -> ObjectPath {
        let (a, b) = (sha256.get(..2).unwrap_or("xx"), sha256.get(2..4).unwrap_or("xx"));
        let root = match &*self.backend {
            Backend::Objects { root, .. } => root.clone(),
            Backend::Directory { .. } => ObjectPath::default(),
        };
        root.clone().join(a).join(b).join(sha256)
    }

    fn session_prefix(&self, id: &str) -> ObjectPath {
        match &*self.backend {
            Backend::Objects { root, .. } => root.clone().join(SESSIONS).join(id),
            Backend::Directory { .. } => ObjectPath::from(SESSIONS).join(id),
        }
    }

    /// Offsets are zero-padded so that keys list in byte order.
    fn chunk_key(&self, id: &str, offset: u64) -> ObjectPath {
        self.session_prefix(id).join(format!("{offset:020}"))
    }

    fn missing(&self, sha256: &str, err: io::Error) -> Error {
        if err.kind() == io::ErrorKind::NotFound {
            Error::Internal(format!(
                "stored blob {sha256} is missing from the blob store {}",
                self.describe()
            ))
        } else {
            Error::Io(err)
        }
    }

    fn object_error(&self, sha256: &str, err: object_store::Error) -> Error {
        match err {
            object_store::Error::NotFound { .. } => Error::Internal(format!(
                "stored blob {sha256} is missing from the blob store {}",
                self.describe()
            )),
            err => self.backend.unavailable("be read", err),
        }
    }
}

impl Backend {
    /// An object store failure after the client's retries: the store is
    /// down or refuses us. The message is for the caller; the cause, which
    /// names hosts and keys, goes to the log.
    fn unavailable(&self, what: &str, source: object_store::Error) -> Error {
        let location = match self {
            Self::Objects { location, .. } => location.to_string(),
            Self::Directory { blobs, .. } => format!("file://{}", blobs.display()),
        };
        tracing::warn!(blob_store = %location, error = %source, "blob store request failed");
        Error::BlobStore {
            message: format!(
                "the blob store {location} cannot {what} right now; nothing was stored or changed by this request, retry once the store is reachable"
            ),
            source: Box::new(source),
        }
    }
}

fn blob_path(blobs: &Path, sha256: &str) -> PathBuf {
    let (a, b) = (sha256.get(..2).unwrap_or("xx"), sha256.get(2..4).unwrap_or("xx"));
    blobs.join(a).join(b).join(sha256)
}

fn session_path(uploads: &Path, id: &str) -> PathBuf {
    uploads.join(format!("{id}.part"))
}

fn move_old_sessions(old: &Path, uploads: &Path) -> io::Result<()> {
    if !old.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(old)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            let target = uploads.join(name);
            if fs::rename(&path, &target).is_err() {
                // Another file system: copy, then drop the original.
                fs::copy(&path, &target)?;
                fs::remove_file(&path)?;
            }
        }
    }
    fs::remove_dir(old)
}

fn commit_file(blobs: &Path, temp: &Path, target: &Path) -> io::Result<()> {
    if target.exists() {
        return fs::remove_file(temp);
    }
    let parent = target.parent().unwrap_or(blobs);
    fs::create_dir_all(parent)?;
    match fs::rename(temp, target) {
        Err(err) if err.kind() == io::ErrorKind::CrossesDevices => {
            // A shared blob directory on another file system: copy next to
            // the target first, so the final rename stays atomic.
            let incoming = blobs.join(".incoming");
            fs::create_dir_all(&incoming)?;
            let staged = incoming.join(format!("{}.part", uuid::Uuid::new_v4()));
            fs::copy(temp, &staged)?;
            File::open(&staged)?.sync_all()?;
            fs::rename(&staged, target)?;
            fs::remove_file(temp)?;
        }
        other => other?,
    }
    // Persist the rename itself, not just the file's bytes.
    File::open(parent)?.sync_all()
}

/// Removes a file; one already gone is not an error.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Reads until `buffer` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> io::Result<usize> {
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

fn split(mut bytes: Bytes, piece: usize) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(bytes.len() / piece.max(1) + 1);
    while bytes.len() > piece {
        pieces.push(bytes.split_to(piece));
    }
    if !bytes.is_empty() {
        pieces.push(bytes);
    }
    pieces
}

/// Writes `data` at `offset` of a session file, dropping anything after the
/// offset first (a chunk half-written before a crash), then fsyncs.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)?;
    file.sync_data()
}

/// Computes the SHA-256 and length of a file, reporting bytes read.
pub fn hash_file(path: &Path, mut progress: impl FnMut(u64)) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
        progress(total);
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Reads up to `len` leading bytes of a file.
pub fn read_head(path: &Path, len: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut head = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Incremental writer for streamed uploads: hashes while writing so the
/// content is read once.
pub struct StreamingWriter {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl StreamingWriter {
    /// Creates the temp file.
    pub fn create(path: PathBuf) -> io::Result<Self> {
        let file = OpenOptions::new().create_new(true).write(true).open(&path)?;
        Ok(Self {
            file,
            path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Flushes to disk and returns the digest.
    pub fn finish(self) -> io::Result<Written> {
        self.file.sync_all()?;
        Ok(Written {
            path: self.path,
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
        })
    }

    /// The temp file's path (for cleanup on failure).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(store: &BlobStore, sha256: &str, range: Range<u64>, piece: usize) -> Vec<Bytes> {
        store
            .read(sha256, range, piece)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn commit_is_idempotent_and_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let store = BlobStore::open(dir.path(), &BlobLocation::Directory(blobs.clone()))
            .await
            .unwrap();
        let mut writer = StreamingWriter::create(store.temp_path()).unwrap();
        writer.write(b"hello ").unwrap();
        writer.write(b"world").unwrap();
        let written = writer.finish().unwrap();
        let sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        assert_eq!(written.sha256, sha);
        store.commit(&written.path, sha, 11).await.unwrap();
        let path = blob_path(&blobs, sha);
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        let again = store.temp_path();
        fs::write(&again, b"hello world").unwrap();
        store.commit(&again, sha, 11).await.unwrap();
        assert!(!again.exists());
        assert_eq!(hash_file(&path, |_| {}).unwrap(), (sha.to_owned(), 11));
        let pieces = collect(&store, sha, 3..11, 3).await;
        assert_eq!(pieces, [&b"lo "[..], b"wor", b"ld"]);
        assert_eq!(store.local(sha, 11).await.unwrap().path(), path);
        store.remove(sha).await.unwrap();
        store.remove(sha).await.unwrap();
        assert!(!path.exists());
        let err = store.read(sha, 0..1, 3).await.err().unwrap();
        assert!(err.to_string().contains("missing from the blob store"), "{err}");
    }

    #[test]
    fn write_at_replaces_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.part");
        write_at(&path, 0, b"abcdef").unwrap();
        write_at(&path, 3, b"XY").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abcXY");
    }

    #[test]
    fn s3_locations_are_parsed_and_checked() {
        let plain = S3Location::parse("s3://traum-audio").unwrap();
        assert_eq!(
            (plain.bucket.as_str(), plain.prefix.as_str()),
            ("traum-audio", "")
        );
        let nested = S3Location::parse("s3://traum-audio/prod/blobs/").unwrap();
        assert_eq!(nested.prefix, "prod/blobs");
        assert_eq!(nested.to_string(), "s3://traum-audio/prod/blobs");
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-dash",
            "s3://a_b_c",
            "s3://bucket/a//b",
            "s3://bucket/../x",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad} was accepted");
        }
        let secret = S3Location {
            secret_access_key: Some("hunter2".into()),
            ..plain
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn pieces_never_exceed_their_size() {
        let pieces = split(Bytes::from_static(b"abcdefg"), 3);
        assert_eq!(pieces, [&b"abc"[..], b"def", b"g"]);
        assert!(split(Bytes::new(), 3).is_empty());
    }
}
