//! Upload handling: streamed and resumable uploads, validation of size,
//! checksum and content, and hand-over to the blob store and the job queue.
//! Nothing rejected or interrupted is kept, except a resumable session,
//! which lives until it is finished or expires.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};

use traum_audio::{Stage, probe_file, sniff_file};

use crate::blob::{self, BlobStore, StreamingWriter, Written};
use crate::domain::{UploadHeader, UploadOutcome, UploadSession};
use crate::error::{Entity, Error, Result};
use crate::isolation::guarded;
use crate::jobs::Jobs;
use crate::search::Search;
use crate::store::{NewBlob, Store, UsageKind, UsageRow, to_i64};
use crate::telemetry::metrics;
use crate::usage::UsageRecorder;
use crate::validate;

/// Chunks buffered between the network and the writer thread; bounds the
/// memory one upload can hold.
const WRITER_QUEUE: usize = 8;

/// Upload limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_chunk_bytes: u64,
    pub upload_ttl: Duration,
    /// Longest audio accepted; checked against the probed duration.
    pub max_duration: Duration,
}

/// Cheap handle to the ingestion service.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    /// Where accepted uploads go: bytes, rows, then the job queue.
    blobs: BlobStore,
    store: Store,
    jobs: Jobs,
    /// Who hears about them: the keyword index and the usage log.
    search: Search,
    usage: UsageRecorder,
    /// One lock per resumable session, so concurrent chunks cannot interleave.
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Deletes a temp file when dropped, unless it was handed over.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Decrements the in-flight gauge however an upload ends.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::UPLOADS_IN_FLIGHT.increment([], 1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::UPLOADS_IN_FLIGHT.decrement([], 1.0);
    }
}

impl Ingest {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        jobs: Jobs,
        usage: UsageRecorder,
        search: Search,
        limits: Limits,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                blobs,
                store,
                jobs,
                search,
                usage,
                session_locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Normalises a header and checks it against the limits.
    fn validated(&self, raw: UploadHeader) -> Result<UploadHeader> {
        let header = UploadHeader {
            // Field paths as in `UploadHeader`, which both upload paths send as `header`.
            filename: validate::filename(&raw.filename).map_err(|e| e.at("header.filename"))?,
            tags: validate::tags(&raw.tags).map_err(|e| e.at("header.tags"))?,
            declared_sha256: raw
                .declared_sha256
                .as_deref()
                .map(validate::sha256)
                .transpose()
                .map_err(|e| e.at("header.sha256"))?,
            ..raw
        };
        if let Some(size) = header.declared_size {
            self.check_size(size)?;
            if size == 0 {
                return Err(Error::InvalidArgument(
                    "file is empty (declared size is 0 bytes)".into(),
                ));
            }
        }
        Ok(header)
    }

    fn check_size(&self, size: u64) -> Result<()> {
        let max = self.inner.limits.max_upload_bytes;
        if size > max {
            return Err(Error::TooLarge(format!(
                "file is {size} bytes; the server accepts at most {max} bytes"
            )));
        }
        Ok(())
    }

    /// Receives a streamed upload: `chunks` yields the bytes after the
    /// header. The header is checked before any chunk is read.
    pub async fn upload_stream<S>(&self, header: UploadHeader, mut chunks: S) -> Result<UploadOutcome>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let header = self.validated(header)?;
        let _in_flight = InFlight::start();
        let temp = self.inner.blobs.temp_path();
        let mut guard = TempGuard(Some(temp.clone()));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITER_QUEUE);
        // Hashing and writing run on the blocking pool; the network side only
        // forwards chunks, so memory stays bounded by the queue.
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<Written> {
            let mut writer = StreamingWriter::create(temp)?;
            while let Some(chunk) = rx.blocking_recv() {
                writer.write(&chunk)?;
            }
            writer.finish()
        });
        let mut received: u64 = 0;
        let streamed: Result<()> = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                received += chunk.len() as u64;
                self.check_size(received)?;
                if let Some(declared) = header.declared_size
                    && received > declared
                {
                    return Err(Error::InvalidArgument(format!(
                        "received more than the declared {declared} bytes"
                    )));
                }
                metrics::UPLOAD_BYTES.increment([], chunk.len() as u64);
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let written = writer.await?;
        streamed?;
        let written = written?;
        let outcome = self.accept(&header, written).await?;
        guard.disarm();
        Ok(outcome)
    }

    /// Checks a complete temp file, stores it as a blob and records the file
    /// and its job. Removes the temp file on every path.
    async fn accept(&self, header: &UploadHeader, written: Written) -> Result<UploadOutcome> {
        let mut guard = TempGuard(Some(written.path.clone()));
        if written.size == 0 {
            return Err(Error::InvalidArgument("file is empty (0 bytes received)".into()));
        }
        if let Some(declared) = header.declared_size
            && declared != written.size
        {
            return Err(Error::InvalidArgument(format!(
                "declared size is {declared} bytes but {} bytes were received",
                written.size
            )));
        }
        if let Some(declared) = &header.declared_sha256
            && *declared != written.sha256
        {
            return Err(Error::ChecksumMismatch(format!(
                "checksum mismatch: declared sha256 {declared}, received content hashes to {}",
                written.sha256
            )));
        }
        let path = written.path.clone();
        let max_duration = self.inner.limits.max_duration;
        let upload = format!("upload {}", written.sha256);
        let format = tokio::task::spawn_blocking(move || -> Result<_> {
            let format = guarded(Stage::Sniff, &upload, || Ok(sniff_file(&path)?))?;
            // A full probe here refuses corrupt and truncated files before
            // anything is stored.
            let properties = guarded(Stage::Probe, &upload, || Ok(probe_file(&path, format, |_| {})?))?;
            if properties.duration_seconds > max_duration.as_secs_f64() {
                return Err(Error::TooLarge(format!(
                    "audio lasts {:.1} s; the server accepts at most {:.0} s",
                    properties.duration_seconds,
                    max_duration.as_secs_f64()
                )));
            }
            Ok(format)
        })
        .await??;
        let blob = NewBlob {
            sha256: written.sha256.clone(),
            size_bytes: written.size,
            format,
        };
        let (outcome, job) = {
            let _placement = self.inner.blobs.placement().await;
            let _shared = self.inner.store.lock_blob(&written.sha256).await?;
            self.inner
                .blobs
                .commit(&written.path, &written.sha256, written.size)
                .await?;
            guard.disarm();
            self.inner.store.create_file(&blob, header).await?
        };
        if let Some(job) = &job {
            self.inner.search.follow_own_write().await;
            self.inner.jobs.enqueued(job).await;
        }
        self.inner.usage.record(UsageRow {
            at_ms: Utc::now().timestamp_millis(),
            kind: UsageKind::Upload,
            method: "upload".to_owned(),
            code: 0,
            latency_ms: 0.0,
            query: None,
            upload_bytes: Some(to_i64(written.size)),
        });
        tracing::info!(
            file_id = %outcome.file_id,
            sha256 = %outcome.sha256,
            bytes = outcome.size_bytes,
            format = %outcome.format,
            duplicate = outcome.duplicate,
            "upload accepted"
        );
        Ok(outcome)
    }

    /// Opens a resumable upload session.
    pub async fn start_upload(&self, header: UploadHeader) -> Result<UploadSession> {
        let header = self.validated(header)?;
        let expires_at = self.expiry();
        let session = self.inner.store.create_upload(&header, expires_at).await?;
        self.inner.blobs.start_session(&session.id).await?;
        Ok(session)
    }

    /// Returns a live session.
    pub async fn get_upload(&self, id: &str) -> Result<UploadSession> {
        let session = self.inner.store.get_upload(id).await?;
        if session.expires_at < Utc::now() {
            return Err(Error::not_found(Entity::ExpiredUploadSession, id));
        }
        Ok(session)
    }

    /// Appends `data` at `offset` of a session.
    pub async fn put_chunk(&self, id: &str, offset: u64, data: Bytes) -> Result<UploadSession> {
        let max_chunk = self.inner.limits.max_chunk_bytes;
        if data.len() as u64 > max_chunk {
            return Err(Error::InvalidArgument(format!(
                "chunk is {} bytes; send at most {max_chunk} bytes per PutUploadChunk",
                data.len()
            )));
        }
        let lock = self.session_lock(id);
        let _held = lock.lock().await;
        // Replicas share the session's file: a chunk retried through another
        // replica must not write while this one does.
        let _shared = self.inner.store.lock_upload(id).await?;
        let mut session = self.get_upload(id).await?;
        if offset != session.received_bytes {
            return Err(Error::FailedPrecondition(format!(
                "offset {offset} does not match the {} bytes already received; resume at offset {}",
                session.received_bytes, session.received_bytes
            )));
        }
        let end = offset + data.len() as u64;
        self.check_size(end)?;
        if let Some(declared) = session.declared_size
            && end > declared
        {
            return Err(Error::InvalidArgument(format!(
                "chunk ends at byte {end}, beyond the declared size of {declared} bytes"
            )));
        }
        let length = data.len() as u64;
        self.inner.blobs.write_session(id, offset, data).await?;
        let expires_at = self.expiry();
        self.inner
            .store
            .advance_upload(id, offset, end, expires_at)
            .await?;
        metrics::UPLOAD_BYTES.increment([], length);
        session.received_bytes = end;
        session.expires_at = expires_at;
        Ok(session)
    }

    /// Completes a session: the received bytes go through the same checks
    /// as a streamed upload.
    pub async fn finish_upload(&self, id: &str) -> Result<UploadOutcome> {
        let lock = self.session_lock(id);
        let _held = lock.lock().await;
        let _shared = self.inner.store.lock_upload(id).await?;
        let session = self.get_upload(id).await?;
        if let Some(declared) = session.declared_size
            && session.received_bytes < declared
        {
            return Err(Error::FailedPrecondition(format!(
                "only {} of the declared {declared} bytes were received; send the rest from offset {}",
                session.received_bytes, session.received_bytes
            )));
        }
        let assembled = self
            .inner
            .blobs
            .assemble_session(id, session.received_bytes)
            .await?;
        let hashed = assembled.path.clone();
        let (sha256, size) = tokio::task::spawn_blocking(move || blob::hash_file(&hashed, |_| {})).await??;
        let header = UploadHeader {
            filename: session.filename.clone(),
            tags: session.tags.clone(),
            declared_size: session.declared_size,
            declared_sha256: session.declared_sha256.clone(),
            always_create_file: false,
        };
        let result = self
            .accept(
                &header,
                Written {
                    path: assembled.path.clone(),
                    sha256,
                    size,
                },
            )
            .await;
        // A blob store that failed to take the bytes leaves the session as
        // it was: the client finishes again once the store is back.
        if let Err(err @ Error::BlobStore { .. }) = result {
            return Err(err);
        }
        // Success consumed the bytes; a rejection is final for this content.
        // Either way the session is over.
        self.inner.store.delete_upload(id).await?;
        if let Err(err) = self.inner.blobs.remove_session(id).await {
            // The stray sweep removes them later.
            tracing::warn!(upload_id = id, error = %err, "cannot remove a finished session's chunks");
        }
        self.forget_session_lock(id);
        result
    }

    /// Removes expired sessions (when `expire`: one replica does that for
    /// all) and this replica's session files whose session is gone.
    /// Returns how many sessions and files were removed.
    pub async fn clean_up(&self, expire: bool) -> Result<usize> {
        let expired = if expire {
            self.inner.store.expired_uploads(Utc::now()).await?
        } else {
            Vec::new()
        };
        for id in &expired {
            self.inner.store.delete_upload(id).await?;
            self.forget_session_lock(id);
        }
        let removed = expired.len();
        for id in &expired {
            self.inner.blobs.remove_session(id).await?;
        }
        // The sessions with bytes are listed before the live sessions are
        // read: a session's row exists before its bytes, so bytes listed
        // without a row read after them are strays, never a session that
        // started in between.
        let stored = self.inner.blobs.session_ids().await?;
        let live: std::collections::HashSet<String> =
            self.inner.store.upload_ids().await?.into_iter().collect();
        let strays: Vec<String> = stored.into_iter().filter(|id| !live.contains(id)).collect();
        for id in &strays {
            self.inner.blobs.remove_session(id).await?;
        }
        let stray_count = strays.len();
        Ok(removed + stray_count)
    }

    fn expiry(&self) -> chrono::DateTime<Utc> {
        let ttl =
            chrono::Duration::from_std(self.inner.limits.upload_ttl).unwrap_or(chrono::Duration::days(1));
        Utc::now() + ttl
    }

    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .session_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn forget_session_lock(&self, id: &str) {
        let mut locks = self
            .inner
            .session_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.remove(id);
    }
}
