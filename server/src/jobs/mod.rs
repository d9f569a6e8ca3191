//! The processing pipeline: jobs persisted in the database, executed by a
//! bounded pool of workers whose CPU-heavy stages run on the blocking pool,
//! and progress broadcast to any number of watchers. The broadcast carries
//! every library event (the library announces renames and deletions on it),
//! so one subscription sees the whole library.

mod stages;
mod state;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

use crate::blob::BlobStore;
use crate::domain::{JobQuery, JobRecord, LibraryEvent, Page};
use crate::duplicates::Duplicates;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::search::Search;
use crate::store::{JobClaim, Store};
use crate::telemetry::metrics;
use crate::zero_shot::ZeroShot;

/// Capacity of the progress broadcast; slow watchers that fall further
/// behind re-read the job from the database.
const EVENT_CAPACITY: usize = 4096;
/// How often a job watcher on PostgreSQL reads the job's row, for progress
/// made by another replica (this replica's own progress comes as events).
const REMOTE_JOB_POLL: Duration = Duration::from_millis(500);

/// Shared handle to the job system.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blobs: BlobStore,
    events: broadcast::Sender<LibraryEvent>,
    wake: Notify,
    shutdown: watch::Receiver<bool>,
    max_duration: Duration,
    embedder: Embedder,
    search: Search,
    zero_shot: ZeroShot,
    duplicates: Duplicates,
    claim: JobClaim,
}

/// The services the pipeline runs files through and whose indexes follow
/// its results.
pub struct PipelineServices {
    pub embedder: Embedder,
    pub search: Search,
    pub zero_shot: ZeroShot,
    pub duplicates: Duplicates,
}

impl Jobs {
    /// Creates the job system; workers start with [`Jobs::spawn_workers`].
    pub fn new(
        store: Store,
        blobs: BlobStore,
        shutdown: watch::Receiver<bool>,
        max_duration: Duration,
        claim: JobClaim,
        services: PipelineServices,
    ) -> Self {
        let PipelineServices {
            embedder,
            search,
            zero_shot,
            duplicates,
        } = services;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                store,
                blobs,
                events,
                wake: Notify::new(),
                shutdown,
                max_duration,
                embedder,
                search,
                zero_shot,
                duplicates,
                claim,
            }),
        }
    }

    /// Renews the leases of this replica's running jobs every third of the
    /// lease, until aborted: abort it only after the workers stopped, so a
    /// stage finishing during the shutdown grace keeps its job.
    pub fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(jobs.inner.claim.lease / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = jobs.inner.store.renew_job_leases(&jobs.inner.claim).await {
                    tracing::warn!(error = %err, "cannot renew job leases; other replicas take the jobs over once they pass");
                }
            }
        })
    }

    /// Gives back the jobs this replica still runs (after its workers were
    /// stopped), so other replicas resume them at once.
    pub async fn release_leases(&self) -> Result<u64> {
        self.inner
            .store
            .release_job_leases(&self.inner.claim.holder)
            .await
    }

    /// Starts `count` workers. They stop taking jobs when shutdown is
    /// signalled and checkpoint the job in hand after its current stage.
    pub fn spawn_workers(&self, count: usize) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for worker in 0..count {
            let jobs = self.clone();
            set.spawn(async move { jobs.worker_loop(worker).await });
        }
        set
    }

    /// Tells workers that a job was queued and announces it to watchers.
    pub async fn enqueued(&self, job: &JobRecord) {
        self.publish(job);
        self.inner.wake.notify_waiters();
        self.inner.wake.notify_one();
        self.update_queue_gauge().await;
    }

    /// Wakes idle workers, e.g. when the model becomes ready and jobs
    /// waiting for it can go on.
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    /// Queues a new run of a file's whole pipeline, unless one is active.
    pub async fn reprocess(&self, file_id: &str) -> Result<JobRecord> {
        let job = self.inner.store.create_job_for_file(file_id).await?;
        self.enqueued(&job).await;
        Ok(job)
    }

    /// Reprocesses every ready file that has no vectors of `model_id`, so a
    /// library processed without a model (or with another) becomes
    /// searchable. A file that is being processed already (someone asked
    /// for it meanwhile) or was deleted meanwhile is skipped. Returns how
    /// many jobs it queued.
    pub async fn queue_embedding_backfill(&self, model_id: &str) -> Result<usize> {
        let files = self.inner.store.files_without_embeddings(model_id).await?;
        let mut queued = 0;
        for file_id in &files {
            match self.reprocess(file_id).await {
                Ok(_) => queued += 1,
                Err(Error::FailedPrecondition(_) | Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(queued)
    }

    /// Returns a job.
    pub async fn get(&self, id: &str) -> Result<JobRecord> {
        self.inner.store.get_job(id).await
    }

    /// Lists jobs, newest first.
    pub async fn list(&self, query: &JobQuery) -> Result<Page<JobRecord>> {
        self.inner.store.list_jobs(query).await
    }

    /// Streams a job's state: the current one first, then every change,
    /// ending after the terminal event. An unknown job is `NotFound` at once,
    /// not an empty stream.
    pub async fn watch(&self, id: String) -> Result<impl Stream<Item = Result<JobRecord>> + Send + 'static> {
        // Subscribe before reading, so no change between the two is lost.
        let mut events = self.inner.events.subscribe();
        let current = self.inner.store.get_job(&id).await?;
        let jobs = self.clone();
        // Another replica may run the job: its progress reaches this one
        // only through the database. SQLite has no other replica.
        let shared = !self.inner.store.is_sqlite();
        Ok(async_stream::try_stream! {
            let mut shutdown = jobs.inner.shutdown.clone();
            let mut last = current;
            yield last.clone();
            while !last.state.is_terminal() {
                let woke = tokio::select! {
                    event = events.recv() => Some(Some(event)),
                    () = tokio::time::sleep(REMOTE_JOB_POLL), if shared => Some(None),
                    // `None`: shutdown.
                    _ = shutdown.wait_for(|stop| *stop) => None,
                };
                let next = match woke {
                    // An event published before the database read can be
                    // older than what the read returned: never go back.
                    Some(Some(Ok(LibraryEvent::Job(job)))) if job.id == id && job.updated_at >= last.updated_at => job,
                    Some(Some(Ok(_))) => continue,
                    Some(Some(Err(broadcast::error::RecvError::Lagged(_)))) => jobs.inner.store.get_job(&id).await?,
                    Some(Some(Err(broadcast::error::RecvError::Closed))) => break,
                    Some(None) => {
                        let stored = jobs.inner.store.get_job(&id).await?;
                        if stored.updated_at < last.updated_at {
                            continue;
                        }
                        stored
                    }
                    None => {
                        Err(Error::Unavailable("server is shutting down; watch the job again once it is back".into()))?;
                        break;
                    }
                };
                if next != last {
                    last = next;
                    yield last.clone();
                }
            }
        })
    }

    fn publish(&self, job: &JobRecord) {
        self.announce(LibraryEvent::Job(job.clone()));
    }

    /// Tells every library watcher about a change.
    pub(crate) fn announce(&self, event: LibraryEvent) {
        // No receiver is fine: nobody is watching.
        let _ = self.inner.events.send(event);
    }

    /// Every library event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LibraryEvent> {
        self.inner.events.subscribe()
    }

    /// Resolves once shutdown is signalled.
    pub(crate) async fn shutting_down(&self) {
        let mut shutdown = self.inner.shutdown.clone();
        // An error means the sender is gone, which is shutdown too.
        let _ = shutdown.wait_for(|stop| *stop).await;
    }

    async fn update_queue_gauge(&self) {
        if let Ok(depth) = self.inner.store.queued_job_count().await {
            metrics::JOB_QUEUE_DEPTH.set([], depth as f64);
        }
    }
}
