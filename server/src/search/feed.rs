//! How this replica's in-memory indexes (keywords, vectors, fingerprints)
//! follow the database, whichever replica wrote: the change feed names the
//! files whose name, tags, vectors or fingerprint changed, and each named
//! file is re-read and its entries in every index replaced by what the
//! database holds now. Re-reading makes applying a change twice, or late,
//! harmless; one cursor lock makes reads and applies take turns, so the
//! last apply of a file always saw its latest state.
//!
//! The feed is read when this replica wrote (so its own writes are
//! searchable when the call that made them returns), when PostgreSQL
//! notifies a commit on the feed's channel, and once a second regardless
//! (SQLite has no notifications; a notification lost with its connection
//! costs at most that second).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Mutex, Notify, watch};

use crate::duplicates::Duplicates;
use crate::error::Result;
use crate::store::{FEED_CHANNEL, FeedPosition, Store};
use crate::telemetry::metrics::{INDEX_FEED_FILES, INDEX_FEED_POSITION};

use super::keywords::Keywords;
use super::vectors::VectorSet;

/// How often the feed is read without a notification.
pub(super) const POLL: Duration = Duration::from_secs(1);
/// Files re-read per round trip.
const APPLY_BATCH: usize = 256;

/// Where this replica stands in the feed.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// Every change below it is applied (`None` until the first load).
    position: Option<FeedPosition>,
    /// Seqs at or above `position` that are applied too.
    applied: HashSet<i64>,
}

/// The feed reader of one replica.
pub(super) struct Follower {
    cursor: Mutex<Cursor>,
    /// True once a read reached the end of the feed after the vector index
    /// was loaded: search may serve.
    caught_up: watch::Sender<bool>,
}

impl Follower {
    pub fn new() -> Self {
        Self {
            cursor: Mutex::new(Cursor::default()),
            caught_up: watch::channel(false).0,
        }
    }

    /// Starts following at `position` (taken before the indexes were
    /// loaded, so nothing committed during the load is missed).
    pub async fn start_at(&self, position: FeedPosition) {
        let mut cursor = self.cursor.lock().await;
        *cursor = Cursor {
            position: Some(position),
            applied: HashSet::new(),
        };
    }

    /// Makes the next read start at `position` if that is further back (an
    /// index loaded at an older position replays from there).
    pub async fn rewind(&self, position: FeedPosition) {
        let mut cursor = self.cursor.lock().await;
        if cursor.position.is_none_or(|current| position < current) {
            cursor.position = Some(position);
            cursor.applied.clear();
        }
    }

    pub fn mark_caught_up(&self) {
        self.caught_up.send_replace(true);
    }

    pub fn is_caught_up(&self) -> bool {
        *self.caught_up.borrow()
    }

    /// Holds the cursor while `save` runs, so what is saved holds every
    /// change below the position handed to it.
    pub async fn at_rest<F, T>(&self, save: impl FnOnce(Option<FeedPosition>) -> F) -> T
    where
        F: Future<Output = T>,
    {
        let cursor = self.cursor.lock().await;
        save(cursor.position).await
    }

    /// Reads the feed from the cursor and applies every file it names.
    /// Returns the files applied.
    pub async fn catch_up(&self, indexes: &Indexes<'_>) -> Result<usize> {
        let mut cursor = self.cursor.lock().await;
        let Some(from) = cursor.position else {
            return Ok(0);
        };
        let read = indexes.store.read_feed(from, &cursor.applied).await?;
        let mut seen = HashSet::new();
        let files: Vec<String> = read
            .changes
            .into_iter()
            .filter_map(|change| seen.insert(change.file_id.clone()).then_some(change.file_id))
            .collect();
        for batch in files.chunks(APPLY_BATCH) {
            indexes.apply(batch).await?;
        }
        cursor.position = Some(read.next);
        cursor.applied = read.pending;
        INDEX_FEED_FILES.increment([], files.len() as u64);
        INDEX_FEED_POSITION.set([], read.next as f64);
        Ok(files.len())
    }
}

/// The indexes a change is applied to.
pub(super) struct Indexes<'a> {
    pub store: &'a Store,
    pub keywords: &'a Keywords,
    pub vectors: &'a Arc<VectorSet>,
    pub duplicates: &'a Duplicates,
}

impl Indexes<'_> {
    async fn apply(&self, files: &[String]) -> Result<()> {
        let texts = self.store.text_records_of(files).await?;
        self.keywords.follow(files, texts).await?;
        if let Some(model_id) = self.vectors.model_id() {
            let rows = self.store.embeddings_of_files(files, &model_id).await?;
            let (vectors, files) = (self.vectors.clone(), files.to_vec());
            tokio::task::spawn_blocking(move || vectors.follow(&files, rows)).await??;
        }
        self.duplicates.follow(files).await
    }
}

/// Wakes `wake` on every notification of the feed's channel until `stop`;
/// reconnects after a lost connection. Does nothing on SQLite.
pub(super) async fn listen(store: Store, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let Some(pool) = store.postgres_pool() else { return };
    loop {
        let failed = tokio::select! {
            Err(err) = relay(&pool, &wake) => err,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        tracing::warn!(error = %failed, "lost the change feed's notifications; reading it every second until they are back");
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

async fn relay(pool: &sqlx::PgPool, wake: &Notify) -> std::result::Result<Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(FEED_CHANNEL).await?;
    loop {
        listener.recv().await?;
        wake.notify_one();
    }
}
