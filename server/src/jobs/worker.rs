//! The workers: each claims a queued job and runs it stage by stage until it
//! succeeds, fails, waits for the model or is checkpointed for shutdown.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;

use super::Jobs;
use super::stages::RunContext;
use crate::domain::{FileState, JobRecord, JobStage, JobState};
use crate::embed::ModelStatus;
use crate::error::{Error, Result};
use crate::store::Claimed;
use crate::telemetry::metrics;

/// How often an idle worker looks for jobs queued by another replica.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Wait before a stage that could not read the blob store runs again.
const BLOB_STORE_PAUSE: Duration = Duration::from_secs(3);
/// Least time between two database writes of one job's progress.
const PERSIST_EVERY: Duration = Duration::from_millis(500);

impl Jobs {
    pub(super) async fn worker_loop(&self, worker: usize) {
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Without a model, jobs parked before their embed stage stay queued.
            let skip = (!self.inner.search.accepts_vectors()).then_some(JobStage::Embed);
            match self.inner.store.claim_next_job(skip, &self.inner.claim).await {
                Ok(Some(Claimed { job, taken_over_from })) => {
                    if let Some(previous) = taken_over_from {
                        metrics::JOBS_TAKEN_OVER.increment([], 1);
                        tracing::warn!(worker, job_id = %job.id, previous_owner = %previous, stage = %job.stage, "took over a job whose replica's lease passed");
                    }
                    self.update_queue_gauge().await;
                    tracing::info!(worker, job_id = %job.id, file_id = %job.file_id, stage = %job.stage, "job started");
                    let (job_id, file_id) = (job.id.clone(), job.file_id.clone());
                    // The file's own work is guarded where it runs; this
                    // keeps the worker alive through a panic anywhere else
                    // in the job, which then fails on its own.
                    match AssertUnwindSafe(self.run(job)).catch_unwind().await {
                        Ok(Ok(())) => {}
                        Ok(Err(err @ Error::LeaseLost { .. })) => {
                            tracing::warn!(worker, error = %err, "dropped a job another replica took over");
                        }
                        Ok(Err(err)) => tracing::error!(worker, error = %err, "job bookkeeping failed"),
                        Err(panic) => {
                            let cause = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                                .unwrap_or_else(|| "no message".to_owned());
                            self.fail_after_panic(worker, &job_id, &file_id, &cause).await;
                        }
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
        job.begin_run();
        self.save(&mut job).await?;
        let mut context = RunContext::default();
        let mut stage = Some(job.stage);
        let mut embedded = true;
        while let Some(current) = stage {
            if current == JobStage::Embed && self.inner.embedder.state().status == ModelStatus::NotConfigured
            {
                embedded = false;
                break;
            }
            if *self.inner.shutdown.borrow() {
                job.checkpoint_for_shutdown();
                self.save(&mut job).await?;
                tracing::info!(job_id = %job.id, stage = %current, "job checkpointed for shutdown");
                return Ok(());
            }
            if current == JobStage::Embed && !self.inner.search.accepts_vectors() {
                job.wait(if self.inner.embedder.engine().is_none() {
                    format!(
                        "waiting for the embedding model: {}",
                        self.inner.embedder.state().message
                    )
                } else {
                    "waiting for the vector index to load".to_owned()
                });
                self.save(&mut job).await?;
                tracing::info!(job_id = %job.id, "job waits for the embedding model");
                return Ok(());
            }
            job.begin_stage(current);
            self.save(&mut job).await?;
            let started = Instant::now();
            let outcome = self.run_stage(&mut job, current, &mut context).await;
            metrics::JOB_STAGE_DURATION
                .record([current.as_str().to_owned()], started.elapsed().as_secs_f64());
            match outcome {
                Ok(()) => {
                    stage = job.finish_stage();
                    self.save(&mut job).await?;
                }
                Err(Error::BlobStore { message, .. }) => {
                    // The file is fine; its store is not. The job stays
                    // this replica's (the heartbeat keeps its lease) and the
                    // stage runs again after a pause, or is checkpointed
                    // at the loop's top if the server stops meanwhile.
                    tracing::warn!(job_id = %job.id, stage = %current, error = %message, "job waits for the blob store");
                    job.message = format!("waiting for the blob store: {message}");
                    self.save(&mut job).await?;
                    metrics::JOBS_WAITING_FOR_BLOBS.increment([], 1);
                    let mut shutdown = self.inner.shutdown.clone();
                    tokio::select! {
                        () = tokio::time::sleep(BLOB_STORE_PAUSE) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {}
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    tracing::warn!(job_id = %job.id, stage = %current, error = %message, "job failed");
                    job.fail(message.clone(), Utc::now());
                    self.inner
                        .store
                        .set_file_state(&job.file_id, FileState::Failed, Some(&message))
                        .await?;
                    self.save(&mut job).await?;
                    metrics::JOBS_FINISHED.increment([JobState::Failed.as_str().to_owned()], 1);
                    return Ok(());
                }
            }
        }
        job.succeed(embedded, Utc::now());
        self.inner
            .store
            .set_file_state(&job.file_id, FileState::Ready, None)
            .await?;
        self.save(&mut job).await?;
        metrics::JOBS_FINISHED.increment([JobState::Succeeded.as_str().to_owned()], 1);
        tracing::info!(job_id = %job.id, file_id = %job.file_id, "job succeeded");
        Ok(())
    }

    /// Records a job whose run panicked outside the guarded audio work as
    /// failed, so it neither stays running nor is retried for ever.
    async fn fail_after_panic(&self, worker: usize, job_id: &str, file_id: &str, cause: &str) {
        let message = format!("processing crashed on this file: {cause}");
        tracing::error!(worker, job_id, file_id, error = %message, "job panicked; the worker goes on");
        let failed = async {
            let mut job = self.inner.store.get_job(job_id).await?;
            job.fail(message.clone(), Utc::now());
            self.inner
                .store
                .set_file_state(file_id, FileState::Failed, Some(&message))
                .await?;
            self.save(&mut job).await
        };
        if let Err(err) = failed.await {
            tracing::error!(worker, job_id, error = %err, "cannot record the panicked job as failed");
        }
        metrics::JOBS_FINISHED.increment([JobState::Failed.as_str().to_owned()], 1);
    }

    async fn save(&self, job: &mut JobRecord) -> Result<()> {
        job.updated_at = Utc::now();
        self.inner.store.save_job(job, &self.inner.claim.holder).await?;
        self.publish(job);
        Ok(())
    }

    /// Publishes progress within a stage; persists it at most every
    /// `PERSIST_EVERY` so fast stages do not hammer the database.
    pub(super) async fn report_progress(
        &self,
        job: &mut JobRecord,
        fraction: f64,
        last_persist: &mut Instant,
    ) {
        job.stage_progressed(fraction);
        job.updated_at = Utc::now();
        self.publish(job);
        if last_persist.elapsed() >= PERSIST_EVERY {
            *last_persist = Instant::now();
            if let Err(err) = self.inner.store.save_job(job, &self.inner.claim.holder).await {
                tracing::warn!(job_id = %job.id, error = %err, "cannot persist progress");
            }
        }
    }
}
