//! The processing pipeline: jobs persisted in the database, executed by a
//! bounded pool of workers whose CPU-heavy stages run on the blocking pool,
//! and progress broadcast to any number of watchers.

mod stages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::Stream;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

use crate::blob::BlobStore;
use crate::embed::{Embedder, ModelStatus};
use crate::error::{Error, Result};
use crate::model::{FileState, JobRecord, JobStage, JobState};
use crate::search::Search;
use crate::store::Store;

/// Capacity of the progress broadcast; slow watchers that fall further
/// behind re-read the job from the database.
const EVENT_CAPACITY: usize = 4096;
/// How often an idle worker looks for jobs queued by another replica.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Least time between two database writes of one job's progress.
const PERSIST_EVERY: Duration = Duration::from_millis(500);

/// What woke a watcher.
enum Wake {
    Event(Result<JobRecord, broadcast::error::RecvError>),
    Shutdown,
}

/// Shared handle to the job system.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blobs: BlobStore,
    events: broadcast::Sender<JobRecord>,
    wake: Notify,
    shutdown: watch::Receiver<bool>,
    max_duration: Duration,
    embedder: Embedder,
    search: Search,
}

impl Jobs {
    /// Creates the job system; workers start with [`Jobs::spawn_workers`].
    pub fn new(
        store: Store,
        blobs: BlobStore,
        shutdown: watch::Receiver<bool>,
        max_duration: Duration,
        embedder: Embedder,
        search: Search,
    ) -> Self {
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
            }),
        }
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

    /// Reprocesses every ready file that has no vectors of `model_id`, so a
    /// library processed without a model (or with another) becomes searchable.
    pub async fn queue_embedding_backfill(&self, model_id: &str) -> Result<usize> {
        let files = self.inner.store.files_without_embeddings(model_id).await?;
        for file_id in &files {
            let job = self.inner.store.create_job_for_file(file_id).await?;
            self.enqueued(&job).await;
        }
        Ok(files.len())
    }

    /// Returns a job.
    pub async fn get(&self, id: &str) -> Result<JobRecord> {
        self.inner.store.get_job(id).await
    }

    /// Streams a job's state: the current one first, then every change,
    /// ending after the terminal event.
    pub fn watch(&self, id: String) -> impl Stream<Item = Result<JobRecord>> + Send + 'static {
        let jobs = self.clone();
        async_stream::try_stream! {
            // Subscribe before reading, so no change between the two is lost.
            let mut events = jobs.inner.events.subscribe();
            let mut shutdown = jobs.inner.shutdown.clone();
            let mut last = jobs.inner.store.get_job(&id).await?;
            yield last.clone();
            while !last.state.is_terminal() {
                let woke = tokio::select! {
                    event = events.recv() => Wake::Event(event),
                    _ = shutdown.wait_for(|stop| *stop) => Wake::Shutdown,
                };
                let next = match woke {
                    // An event published before the database read can be
                    // older than what the read returned: never go back.
                    Wake::Event(Ok(job)) if job.id == id && job.updated_at >= last.updated_at => job,
                    Wake::Event(Ok(_)) => continue,
                    Wake::Event(Err(broadcast::error::RecvError::Lagged(_))) => jobs.inner.store.get_job(&id).await?,
                    Wake::Event(Err(broadcast::error::RecvError::Closed)) => break,
                    Wake::Shutdown => {
                        Err(Error::Unavailable("server is shutting down; watch the job again once it is back".into()))?;
                        break;
                    }
                };
                if next != last {
                    last = next;
                    yield last.clone();
                }
            }
        }
    }

    fn publish(&self, job: &JobRecord) {
        // No receiver is fine: nobody is watching.
        let _ = self.inner.events.send(job.clone());
    }

    async fn update_queue_gauge(&self) {
        if let Ok(depth) = self.inner.store.queued_job_count().await {
            metrics::gauge!("traum_job_queue_depth").set(depth as f64);
        }
    }

    async fn worker_loop(&self, worker: usize) {
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Without a model, jobs parked before their embed stage stay queued.
            let skip = (!self.inner.search.accepts_vectors()).then_some(JobStage::Embed);
            match self.inner.store.claim_next_job(skip).await {
                Ok(Some(job)) => {
                    self.update_queue_gauge().await;
                    tracing::info!(worker, job_id = %job.id, file_id = %job.file_id, stage = %job.stage, "job started");
                    if let Err(err) = self.run(job).await {
                        tracing::error!(worker, error = %err, "job bookkeeping failed");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.inner.wake.notified() => {}
                        _ = tokio::time::sleep(POLL_INTERVAL) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
                Err(err) => {
                    tracing::warn!(worker, error = %err, "cannot claim jobs; retrying");
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
    }

    /// Runs a claimed job from its recorded stage to the end, or until
    /// shutdown, in which case it is re-queued at the next stage.
    async fn run(&self, mut job: JobRecord) -> Result<()> {
        let store = &self.inner.store;
        job.message = format!("running stage {}", job.stage);
        job.error = None;
        job.stage_progress = 0.0;
        job.progress = job.stage.progress_before();
        self.save(&mut job).await?;
        let mut context = stages::RunContext::default();
        let mut stage = Some(job.stage);
        let mut embedded = true;
        while let Some(current) = stage {
            if current == JobStage::Embed && self.inner.embedder.state().status == ModelStatus::NotConfigured
            {
                embedded = false;
                break;
            }
            if *self.inner.shutdown.borrow() {
                job.state = JobState::Queued;
                job.message = format!("interrupted by shutdown; resumes at stage {current}");
                self.save(&mut job).await?;
                tracing::info!(job_id = %job.id, stage = %current, "job checkpointed for shutdown");
                return Ok(());
            }
            if current == JobStage::Embed && !self.inner.search.accepts_vectors() {
                job.stage = current;
                job.state = JobState::Queued;
                job.stage_progress = 0.0;
                job.progress = current.progress_before();
                job.message = if self.inner.embedder.engine().is_none() {
                    format!(
                        "waiting for the embedding model: {}",
                        self.inner.embedder.state().message
                    )
                } else {
                    "waiting for the vector index to load".to_owned()
                };
                self.save(&mut job).await?;
                tracing::info!(job_id = %job.id, "job waits for the embedding model");
                return Ok(());
            }
            job.stage = current;
            job.stage_progress = 0.0;
            job.progress = current.progress_before();
            job.message = format!("running stage {current}");
            self.save(&mut job).await?;
            let started = Instant::now();
            let outcome = self.run_stage(&mut job, current, &mut context).await;
            metrics::histogram!("traum_job_stage_duration_seconds", "stage" => current.as_str())
                .record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(()) => {
                    job.stage_progress = 1.0;
                    job.progress = current.progress_after();
                    stage = current.next();
                    if let Some(next) = stage {
                        // Persisting the next stage is the checkpoint a
                        // restart resumes from.
                        job.stage = next;
                        job.stage_progress = 0.0;
                    }
                    self.save(&mut job).await?;
                }
                Err(err) => {
                    let message = err.to_string();
                    tracing::warn!(job_id = %job.id, stage = %current, error = %message, "job failed");
                    job.state = JobState::Failed;
                    job.error = Some(message.clone());
                    job.message = format!("stage {current} failed");
                    job.finished_at = Some(Utc::now());
                    store
                        .set_file_state(&job.file_id, FileState::Failed, Some(&message))
                        .await?;
                    self.save(&mut job).await?;
                    metrics::counter!("traum_jobs_finished_total", "state" => "failed").increment(1);
                    return Ok(());
                }
            }
        }
        job.state = JobState::Succeeded;
        job.progress = 1.0;
        job.stage_progress = 1.0;
        job.message = if embedded {
            "done".to_owned()
        } else {
            "done; not embedded because no model is configured".to_owned()
        };
        job.finished_at = Some(Utc::now());
        store.set_file_state(&job.file_id, FileState::Ready, None).await?;
        self.save(&mut job).await?;
        metrics::counter!("traum_jobs_finished_total", "state" => "succeeded").increment(1);
        tracing::info!(job_id = %job.id, file_id = %job.file_id, "job succeeded");
        Ok(())
    }

    async fn save(&self, job: &mut JobRecord) -> Result<()> {
        job.updated_at = Utc::now();
        self.inner.store.save_job(job).await?;
        self.publish(job);
        Ok(())
    }

    /// Publishes progress within a stage; persists it at most every
    /// `PERSIST_EVERY` so fast stages do not hammer the database.
    async fn report_progress(
        &self,
        job: &mut JobRecord,
        stage: JobStage,
        fraction: f64,
        last_persist: &mut Instant,
    ) {
        job.stage_progress = fraction.clamp(0.0, 1.0);
        job.progress = stage.progress_at(job.stage_progress);
        job.updated_at = Utc::now();
        self.publish(job);
        if last_persist.elapsed() >= PERSIST_EVERY {
            *last_persist = Instant::now();
            if let Err(err) = self.inner.store.save_job(job).await {
                tracing::warn!(job_id = %job.id, error = %err, "cannot persist progress");
            }
        }
    }
}
