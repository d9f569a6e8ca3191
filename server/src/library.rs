//! The library: listing, reading, renaming and retagging (and re-indexing),
//! deleting, downloading and reprocessing stored files.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use traum_audio::{DecodeOptions, OUTPUT_SAMPLE_RATE, Stage, decode_to_vec};

use crate::blob::BlobStore;
use crate::domain::{
    CollectionRecord, CollectionUpdate, DuplicateGroup, FileQuery, FileRecord, FileState, FileUpdate,
    JobRecord, LibraryEvent, Page, StoredWaveform, TagVerdict,
};
use crate::duplicates::Duplicates;
use crate::error::{Error, Result};
use crate::isolation::guarded;
use crate::jobs::Jobs;
use crate::search::Search;
use crate::store::{DeletedFile, Store};
use crate::telemetry::metrics;
use crate::zero_shot::Vocabularies;

/// Bytes per downloaded chunk.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// Blobs looked up in the database at once by the orphan sweep.
const ORPHAN_CHECK_BATCH: usize = 500;

/// Cheap handle to the library service.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blobs: BlobStore,
    search: Search,
    jobs: Jobs,
    duplicates: Duplicates,
    /// Longest audio decoded for a waveform computed on demand.
    max_duration: std::time::Duration,
    /// Zero-shot vocabularies, to refuse filters on unknown ones.
    vocabularies: Vocabularies,
}

/// Chunks of a file's bytes, read from disk as they are sent, so memory stays
/// bounded by one chunk whatever the file's size.
pub type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<DownloadChunk>> + Send>>;

/// A file's original bytes from an offset on.
pub struct Download {
    /// Size of the whole file.
    pub total: u64,
    pub chunks: Chunks,
}

/// A stored file, opened.
pub struct OpenFile {
    pub record: FileRecord,
    blobs: BlobStore,
}

impl OpenFile {
    /// Size of the whole file, in bytes.
    pub fn size(&self) -> u64 {
        self.record.size_bytes
    }

    /// Bytes `start..end` of the file; the caller keeps the range inside it.
    pub async fn read(self, start: u64, end: u64) -> Result<Chunks> {
        debug_assert!(start <= end && end <= self.size());
        let mut pieces = self
            .blobs
            .read(&self.record.sha256, start..end, DOWNLOAD_CHUNK)
            .await?;
        Ok(Box::pin(async_stream::try_stream! {
            let mut offset = start;
            while let Some(data) = pieces.next().await {
                let data = data?;
                let length = data.len() as u64;
                yield DownloadChunk { offset, data };
                offset += length;
            }
            if offset != end {
                Err(Error::Internal(format!(
                    "blob {} ended at byte {offset}; {end} bytes were expected",
                    self.record.sha256
                )))?;
            }
        }))
    }
}

/// A collection with its files, in order.
#[derive(Debug, Clone)]
pub struct Collection {
    pub record: CollectionRecord,
    pub files: Vec<FileRecord>,
}

/// One piece of a [`Download`].
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadChunk {
    /// Where `data` starts in the file.
    pub offset: u64,
    pub data: Bytes,
}

impl Library {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        search: Search,
        jobs: Jobs,
        duplicates: Duplicates,
        max_duration: std::time::Duration,
        vocabularies: Vocabularies,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                blobs,
                search,
                jobs,
                duplicates,
                max_duration,
                vocabularies,
            }),
        }
    }

    /// Files matching `query`, with the total over all pages.
    pub async fn list(&self, query: &FileQuery) -> Result<Page<FileRecord>> {
        for (index, condition) in query.suggested.iter().enumerate() {
            self.inner
                .vocabularies
                .check_known(&format!("suggested.{index}.vocabulary"), &condition.vocabulary)?;
        }
        self.inner.store.list_files(query).await
    }

    /// Accepts a zero-shot suggestion (the label becomes an ordinary tag and
    /// the keyword index follows) or rejects it (it is never suggested for
    /// the file again).
    pub async fn review_suggested_tag(
        &self,
        id: &str,
        vocabulary: &str,
        label: &str,
        verdict: TagVerdict,
    ) -> Result<FileRecord> {
        self.inner
            .store
            .review_suggested_tag(id, vocabulary, label, verdict)
            .await?;
        if verdict == TagVerdict::Accept {
            self.inner.search.follow_own_write().await;
        }
        let file = self.inner.store.get_file(id).await?;
        self.inner
            .jobs
            .announce(LibraryEvent::File(Box::new(file.clone())));
        Ok(file)
    }

    /// One file with its tags and everything measured about it.
    pub async fn get(&self, id: &str) -> Result<FileRecord> {
        self.inner.store.get_file(id).await
    }

    /// One file, and the group of near-duplicates it is in, if any.
    pub async fn get_with_duplicates(&self, id: &str) -> Result<(FileRecord, Option<DuplicateGroup>)> {
        let file = self.inner.store.get_file(id).await?;
        let group = self.inner.duplicates.group_of(id).await?;
        Ok((file, group))
    }

    /// A page of the groups of files that are the same recording, ordered
    /// by each group's first (earliest uploaded) file.
    pub async fn duplicates(&self, offset: u64, limit: u64) -> Result<Page<DuplicateGroup>> {
        self.inner.duplicates.list(offset, limit).await
    }

    /// Renames and retags a file atomically, then follows the change in the
    /// keyword index.
    pub async fn update(&self, id: &str, update: &FileUpdate) -> Result<FileRecord> {
        let file = self.inner.store.update_file(id, update).await?;
        self.inner.search.follow_own_write().await;
        self.inner
            .jobs
            .announce(LibraryEvent::File(Box::new(file.clone())));
        Ok(file)
    }

    /// Deletes a file everywhere; its blob goes too once no file references it.
    pub async fn delete(&self, id: &str) -> Result<DeletedFile> {
        let _placement = self.inner.blobs.placement().await;
        let record = self.inner.store.get_file(id).await?;
        let _shared = self.inner.store.lock_blob(&record.sha256).await?;
        let deleted = self.inner.store.delete_file(id).await?;
        self.inner.search.follow_own_write().await;
        if deleted.blob_orphaned
            && let Err(err) = self.inner.blobs.remove(&deleted.sha256).await
        {
            // The file is gone from the library either way; only its bytes
            // stay behind, unreferenced, which costs space but no data.
            tracing::warn!(file_id = id, sha256 = %deleted.sha256, error = %err, "cannot remove an unreferenced blob");
            metrics::BLOBS_LEFT_BEHIND.increment([], 1);
        }
        self.inner.jobs.announce(LibraryEvent::Deleted(id.to_owned()));
        Ok(deleted)
    }

    /// Removes the blobs no file references that were last written before
    /// `written_before` (the grace keeps the bytes a restore has copied but
    /// not yet recorded). Each removal holds the blob's lock and checks the
    /// database again, so an upload of the same bytes either sees its blob
    /// removed first or keeps it. Returns how many were removed.
    pub async fn sweep_orphaned_blobs(&self, written_before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let candidates: Vec<String> = self
            .inner
            .blobs
            .list_blobs()
            .await?
            .into_iter()
            .filter(|blob| blob.modified < written_before)
            .map(|blob| blob.sha256)
            .collect();
        let mut removed = 0;
        for chunk in candidates.chunks(ORPHAN_CHECK_BATCH) {
            let known = self.inner.store.known_blobs(chunk).await?;
            for sha256 in chunk.iter().filter(|sha256| !known.contains(*sha256)) {
                let _placement = self.inner.blobs.placement().await;
                let _shared = self.inner.store.lock_blob(sha256).await?;
                if !self
                    .inner
                    .store
                    .known_blobs(std::slice::from_ref(sha256))
                    .await?
                    .is_empty()
                {
                    continue;
                }
                self.inner.blobs.remove(sha256).await?;
                metrics::BLOBS_SWEPT.increment([], 1);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A file's record with its stored bytes opened for reading.
    pub async fn open(&self, id: &str) -> Result<OpenFile> {
        let record = self.inner.store.get_file(id).await?;
        Ok(OpenFile {
            record,
            blobs: self.inner.blobs.clone(),
        })
    }

    /// The original bytes of a file from `start_offset` on.
    pub async fn download(&self, id: &str, start_offset: u64) -> Result<Download> {
        let file = self.open(id).await?;
        let total = file.size();
        if start_offset > total {
            return Err(Error::OutOfRange(format!(
                "start_offset {start_offset} is beyond the end of the file ({total} bytes)"
            )));
        }
        Ok(Download {
            total,
            chunks: file.read(start_offset, total).await?,
        })
    }

    /// A file's waveform. One analysed before waveforms existed gets it
    /// now, decoded once and stored; one still processing has none yet.
    pub async fn waveform(&self, id: &str) -> Result<StoredWaveform> {
        if let Some(waveform) = self.inner.store.get_waveform(id).await? {
            return Ok(waveform);
        }
        let file = self.inner.store.get_file(id).await?;
        if file.state == FileState::Processing {
            return Err(Error::FailedPrecondition(format!(
                "file {id} is still being processed; its waveform is computed by the analyse stage"
            )));
        }
        let local = self.inner.blobs.local(&file.sha256, file.size_bytes).await?;
        let options = DecodeOptions {
            max_duration: self.inner.max_duration,
            format_hint: Some(file.format),
        };
        let file_id = id.to_owned();
        let waveform = tokio::task::spawn_blocking(move || {
            guarded(Stage::Decode, &file_id, || {
                let (samples, _) = decode_to_vec(local.path(), &options, |_| {})?;
                Ok(StoredWaveform::of(&samples, OUTPUT_SAMPLE_RATE))
            })
        })
        .await??;
        self.inner.store.put_waveform(id, &waveform).await?;
        Ok(waveform)
    }

    /// Every change to the library from now on, until shutdown.
    pub fn watch(&self) -> impl Stream<Item = Result<LibraryEvent>> + Send + 'static {
        let mut events = self.inner.jobs.subscribe();
        let jobs = self.inner.jobs.clone();
        async_stream::try_stream! {
            loop {
                let event = tokio::select! {
                    event = events.recv() => Some(event),
                    () = jobs.shutting_down() => None,
                };
                match event {
                    Some(Ok(event)) => yield event,
                    Some(Err(broadcast::error::RecvError::Lagged(_))) => yield LibraryEvent::Resync,
                    Some(Err(broadcast::error::RecvError::Closed)) => break,
                    None => {
                        Err(Error::Unavailable("server is shutting down; watch the library again once it is back".into()))?;
                    }
                }
            }
        }
    }

    /// Creates a collection of `file_ids`, in order.
    pub async fn create_collection(&self, name: &str, file_ids: &[String]) -> Result<Collection> {
        let id = uuid::Uuid::now_v7().to_string();
        let record = self.inner.store.create_collection(&id, name, file_ids).await?;
        self.with_files(record).await
    }

    /// Every collection (or those holding `file_id`), without their files.
    pub async fn list_collections(&self, file_id: Option<&str>) -> Result<Vec<CollectionRecord>> {
        self.inner.store.list_collections(file_id).await
    }

    /// A collection with its files.
    pub async fn collection(&self, id: &str) -> Result<Collection> {
        let record = self.inner.store.get_collection(id).await?;
        self.with_files(record).await
    }

    /// Renames a collection and changes its files.
    pub async fn update_collection(&self, id: &str, update: &CollectionUpdate) -> Result<Collection> {
        let record = self.inner.store.update_collection(id, update).await?;
        self.with_files(record).await
    }

    /// Deletes a collection; its files stay.
    pub async fn delete_collection(&self, id: &str) -> Result<()> {
        self.inner.store.delete_collection(id).await
    }

    async fn with_files(&self, record: CollectionRecord) -> Result<Collection> {
        let mut by_id = self.inner.store.files_by_ids(&record.file_ids).await?;
        // A file deleted between the two reads is simply gone from the list.
        let files = record.file_ids.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok(Collection { record, files })
    }

    /// Runs a file's whole pipeline again, unless a run is active.
    pub async fn reprocess(&self, id: &str) -> Result<JobRecord> {
        self.inner.jobs.reprocess(id).await
    }
}
