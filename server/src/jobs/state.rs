//! The job state machine: every change a run makes to a job record, so the
//! worker only decides which transition applies.
//!
//! ```text
//! queued ──claim──► running ──stage done──► running (next stage) ── … ──► succeeded
//!   ▲                 │  │
//!   │                 │  └─stage failed──► failed
//!   └─shutdown / waiting for the model─┘   (resumes at the recorded stage)
//! ```

use chrono::{DateTime, Utc};

use crate::domain::{JobRecord, JobStage, JobState};

impl JobRecord {
    /// A claimed job starts (again) at its recorded stage.
    pub(crate) fn begin_run(&mut self) {
        self.message = format!("running stage {}", self.stage);
        self.error = None;
        self.stage_progress = 0.0;
        self.progress = self.stage.progress_before();
    }

    /// `stage` starts.
    pub(crate) fn begin_stage(&mut self, stage: JobStage) {
        self.stage = stage;
        self.stage_progress = 0.0;
        self.progress = stage.progress_before();
        self.message = format!("running stage {stage}");
    }

    /// Progress within the current stage, `fraction` from 0 to 1.
    pub(crate) fn stage_progressed(&mut self, fraction: f64) {
        self.stage_progress = fraction.clamp(0.0, 1.0);
        self.progress = self.stage.progress_at(self.stage_progress);
    }

    /// The current stage is done. Records the next stage, which is the
    /// checkpoint a restart resumes from, and returns it (`None` after the
    /// last stage).
    pub(crate) fn finish_stage(&mut self) -> Option<JobStage> {
        self.stage_progress = 1.0;
        self.progress = self.stage.progress_after();
        let next = self.stage.next();
        if let Some(next) = next {
            self.stage = next;
            self.stage_progress = 0.0;
        }
        next
    }

    /// The current stage failed: the job ends with `error`.
    pub(crate) fn fail(&mut self, error: String, at: DateTime<Utc>) {
        self.state = JobState::Failed;
        self.error = Some(error);
        self.message = format!("stage {} failed", self.stage);
        self.finished_at = Some(at);
    }

    /// The job goes back to the queue at its current stage, which it
    /// cannot run yet (the model is missing), with `why` for people.
    pub(crate) fn wait(&mut self, why: String) {
        self.state = JobState::Queued;
        self.stage_progress = 0.0;
        self.progress = self.stage.progress_before();
        self.message = why;
    }

    /// Shutdown stops the run between stages; the job resumes there.
    pub(crate) fn checkpoint_for_shutdown(&mut self) {
        self.state = JobState::Queued;
        self.message = format!("interrupted by shutdown; resumes at stage {}", self.stage);
    }

    /// Every stage ran (or every stage but `embed`, without a model).
    pub(crate) fn succeed(&mut self, embedded: bool, at: DateTime<Utc>) {
        self.state = JobState::Succeeded;
        self.progress = 1.0;
        self.stage_progress = 1.0;
        self.message = if embedded {
            "done".to_owned()
        } else {
            "done; not embedded because no model is configured".to_owned()
        };
        self.finished_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> JobRecord {
        let now = Utc::now();
        JobRecord {
            id: "j".into(),
            file_id: "f".into(),
            state: JobState::Running,
            stage: JobStage::Store,
            progress: 0.0,
            stage_progress: 0.0,
            message: "queued".into(),
            error: None,
            attempts: 1,
            warnings: Vec::new(),
            created_at: now,
            updated_at: now,
            started_at: Some(now),
            finished_at: None,
            owner: None,
        }
    }

    #[test]
    fn a_run_walks_every_stage_in_order_and_progress_never_steps_back() {
        let mut job = queued();
        job.begin_run();
        let mut seen = vec![job.stage];
        let mut last = job.progress;
        loop {
            job.begin_stage(job.stage);
            assert!(job.progress >= last, "{job:?}");
            for step in 1..=4 {
                job.stage_progressed(f64::from(step) / 4.0);
                assert!(job.progress >= last && job.progress <= 1.0, "{job:?}");
                last = job.progress;
            }
            match job.finish_stage() {
                Some(next) => {
                    assert_eq!(job.stage, next);
                    assert_eq!(job.stage_progress, 0.0);
                    seen.push(next);
                }
                None => break,
            }
            assert_eq!(
                job.progress,
                job.stage.progress_before(),
                "the checkpoint is exact"
            );
        }
        assert_eq!(seen, JobStage::ALL);
        assert_eq!(job.progress, 1.0);
        job.succeed(true, Utc::now());
        assert_eq!(job.state, JobState::Succeeded);
        assert!(job.state.is_terminal() && job.finished_at.is_some());
        assert_eq!(job.message, "done");
    }

    #[test]
    fn a_failed_stage_ends_the_job_with_its_error() {
        let mut job = queued();
        job.begin_run();
        job.finish_stage();
        job.begin_stage(JobStage::Probe);
        job.fail("the file ends unexpectedly (truncated?)".into(), Utc::now());
        assert_eq!(job.state, JobState::Failed);
        assert!(job.state.is_terminal());
        assert_eq!(job.message, "stage probe failed");
        assert_eq!(
            job.error.as_deref(),
            Some("the file ends unexpectedly (truncated?)")
        );
        // A reprocess starts from a clean error.
        job.begin_run();
        assert_eq!(job.error, None);
    }

    #[test]
    fn waiting_and_shutdown_requeue_at_the_stage_reached() {
        let mut job = queued();
        job.stage = JobStage::Embed;
        job.begin_run();
        job.stage_progressed(0.5);
        job.wait("waiting for the embedding model: offline".into());
        assert_eq!((job.state, job.stage), (JobState::Queued, JobStage::Embed));
        assert_eq!(job.progress, JobStage::Embed.progress_before());
        assert!(!job.state.is_terminal());

        let mut job = queued();
        job.begin_run();
        job.finish_stage();
        job.checkpoint_for_shutdown();
        assert_eq!((job.state, job.stage), (JobState::Queued, JobStage::Probe));
        assert_eq!(job.message, "interrupted by shutdown; resumes at stage probe");
    }

    #[test]
    fn without_a_model_a_job_succeeds_unembedded() {
        let mut job = queued();
        job.succeed(false, Utc::now());
        assert_eq!(job.message, "done; not embedded because no model is configured");
    }
}
