//! The `jobs` table: the persistent queue, claimed with a compare-and-set.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::Store;
use super::entities::{file, job};
use super::rows::{job_from_model, job_to_active, new_job};
use crate::domain::{FileState, JobQuery, JobRecord, JobStage, JobState, Page};
use crate::error::{Entity, Error, Result};

impl Store {
    /// Returns one job.
    pub async fn get_job(&self, id: &str) -> Result<JobRecord> {
        let model = job::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Job, id))?;
        job_from_model(model)
    }

    /// Lists jobs, newest first.
    pub async fn list_jobs(&self, query: &JobQuery) -> Result<Page<JobRecord>> {
        let mut select = job::Entity::find();
        if let Some(state) = query.state {
            select = select.filter(job::Column::State.eq(state.as_str()));
        }
        if let Some(file_id) = &query.file_id {
            select = select.filter(job::Column::FileId.eq(file_id.as_str()));
        }
        let total = select.clone().count(&self.db).await?;
        let models = select
            .order_by(job::Column::CreatedAt, Order::Desc)
            .order_by(job::Column::Id, Order::Desc)
            .offset(query.offset)
            .limit(query.limit)
            .all(&self.db)
            .await?;
        let items = models
            .into_iter()
            .map(job_from_model)
            .collect::<Result<Vec<_>>>()?;
        let next = query.offset + items.len() as u64;
        Ok(Page {
            next_offset: (next < total && !items.is_empty()).then_some(next),
            items,
            total,
        })
    }

    /// Queues a new job for an existing file, unless one is already active.
    pub async fn create_job_for_file(&self, file_id: &str) -> Result<JobRecord> {
        let txn = self.db.begin().await?;
        // Write first: on SQLite a deferred transaction that reads and then
        // writes fails with "database is locked" (SQLITE_BUSY_SNAPSHOT) when
        // another write commits in between, and the busy timeout cannot
        // help; taking the write lock up front makes it wait instead. On
        // PostgreSQL the row lock serialises two reprocess calls of one
        // file, so the second sees the first's job and is refused.
        let now = Utc::now();
        let touched = file::Entity::update_many()
            .col_expr(file::Column::UpdatedAt, Expr::value(now))
            .filter(file::Column::Id.eq(file_id))
            .exec(&txn)
            .await?;
        if touched.rows_affected == 0 {
            return Err(Error::not_found(Entity::File, file_id));
        }
        let model = file::Entity::find_by_id(file_id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found(Entity::File, file_id))?;
        let active = job::Entity::find()
            .filter(job::Column::FileId.eq(file_id))
            .filter(job::Column::State.is_in([JobState::Queued.as_str(), JobState::Running.as_str()]))
            .one(&txn)
            .await?;
        if let Some(active) = active {
            return Err(Error::FailedPrecondition(format!(
                "file {file_id} is already being processed by job {} ({}); wait for it to finish",
                active.id, active.state
            )));
        }
        let job = new_job(&uuid::Uuid::now_v7().to_string(), file_id, now);
        job_to_active(&job).insert(&txn).await?;
        let mut active_file = model.into_active_model();
        active_file.latest_job_id = Set(Some(job.id.clone()));
        active_file.state = Set(FileState::Processing.as_str().to_owned());
        active_file.error = Set(None);
        active_file.updated_at = Set(now);
        active_file.update(&txn).await?;
        txn.commit().await?;
        Ok(job)
    }

    /// Claims the oldest queued job for this process, or returns `None`.
    /// The compare-and-set on `state` makes a claim exclusive even when
    /// several servers share a PostgreSQL database.
    /// Jobs queued at `skip_stage` are left alone.
    pub async fn claim_next_job(&self, skip_stage: Option<JobStage>) -> Result<Option<JobRecord>> {
        loop {
            let mut queued = job::Entity::find().filter(job::Column::State.eq(JobState::Queued.as_str()));
            if let Some(stage) = skip_stage {
                queued = queued.filter(job::Column::Stage.ne(stage.as_str()));
            }
            let Some(candidate) = queued
                .order_by(job::Column::CreatedAt, Order::Asc)
                .order_by(job::Column::Id, Order::Asc)
                .one(&self.db)
                .await?
            else {
                return Ok(None);
            };
            let now = Utc::now();
            let claimed = job::Entity::update_many()
                .col_expr(job::Column::State, Expr::value(JobState::Running.as_str()))
                .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).add(1))
                .col_expr(
                    job::Column::StartedAt,
                    Expr::value(candidate.started_at.unwrap_or(now)),
                )
                .col_expr(job::Column::UpdatedAt, Expr::value(now))
                .filter(job::Column::Id.eq(&candidate.id))
                .filter(job::Column::State.eq(JobState::Queued.as_str()))
                .exec(&self.db)
                .await?;
            if claimed.rows_affected == 1 {
                return self.get_job(&candidate.id).await.map(Some);
            }
        }
    }

    /// Persists a job's progress and state.
    pub async fn save_job(&self, job: &JobRecord) -> Result<()> {
        job_to_active(job).update(&self.db).await?;
        Ok(())
    }

    /// Puts jobs left `running` by a crash or a shutdown back in the queue;
    /// they resume from the stage they were in. Returns how many.
    pub async fn requeue_running_jobs(&self) -> Result<u64> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
            .col_expr(job::Column::Message, Expr::value("resuming after restart"))
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Number of queued jobs.
    pub async fn queued_job_count(&self) -> Result<u64> {
        Ok(job::Entity::find()
            .filter(job::Column::State.eq(JobState::Queued.as_str()))
            .count(&self.db)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::domain::{AudioFormat, UploadHeader};
    use crate::store::NewBlob;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
        let store = Store::connect(&url).await.unwrap();
        (dir, store)
    }

    /// A new file with its queued job; `n` makes its bytes distinct.
    async fn queued_job(store: &Store, n: u8) -> JobRecord {
        let blob = NewBlob {
            sha256: format!("{n:064x}"),
            size_bytes: 10,
            format: AudioFormat::Wav,
        };
        let header = UploadHeader {
            filename: format!("{n}.wav"),
            tags: Vec::new(),
            declared_size: None,
            declared_sha256: None,
            always_create_file: false,
        };
        let (_, job) = store.create_file(&blob, &header).await.unwrap();
        job.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_take_each_job_exactly_once() {
        let (_dir, store) = store().await;
        let mut queued = HashSet::new();
        for n in 0..5 {
            queued.insert(queued_job(&store, n).await.id);
        }
        let claimers: Vec<_> = (0..12)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Some(job) = store.claim_next_job(None).await.unwrap() {
                        mine.push(job);
                    }
                    mine
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for claimer in claimers {
            claimed.extend(claimer.await.unwrap());
        }
        let ids: HashSet<String> = claimed.iter().map(|job| job.id.clone()).collect();
        assert_eq!(claimed.len(), 5, "no job is claimed twice");
        assert_eq!(ids, queued);
        for job in &claimed {
            assert_eq!(job.state, JobState::Running);
            assert_eq!(job.attempts, 1);
            assert!(job.started_at.is_some());
        }
        assert_eq!(store.queued_job_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_claim_skips_the_stage_it_is_told_to_and_takes_the_oldest_first() {
        let (_dir, store) = store().await;
        let mut waiting = queued_job(&store, 1).await;
        let oldest_other = queued_job(&store, 2).await;
        let newest = queued_job(&store, 3).await;
        waiting.stage = JobStage::Embed;
        store.save_job(&waiting).await.unwrap();
        let first = store
            .claim_next_job(Some(JobStage::Embed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.id, oldest_other.id);
        let second = store
            .claim_next_job(Some(JobStage::Embed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.id, newest.id);
        assert!(
            store
                .claim_next_job(Some(JobStage::Embed))
                .await
                .unwrap()
                .is_none()
        );
        let last = store.claim_next_job(None).await.unwrap().unwrap();
        assert_eq!((last.id, last.stage), (waiting.id, JobStage::Embed));
    }

    #[tokio::test]
    async fn running_jobs_are_requeued_at_their_stage_after_a_restart() {
        let (_dir, store) = store().await;
        queued_job(&store, 1).await;
        let mut claimed = store.claim_next_job(None).await.unwrap().unwrap();
        claimed.stage = JobStage::Decode;
        store.save_job(&claimed).await.unwrap();
        assert_eq!(store.requeue_running_jobs().await.unwrap(), 1);
        let again = store.claim_next_job(None).await.unwrap().unwrap();
        assert_eq!(
            (again.id, again.stage, again.attempts),
            (claimed.id, JobStage::Decode, 2)
        );
    }
}
