//! The `jobs` table: the persistent queue, shared by every replica of one
//! database. A claim gives a job to one replica under a lease that its
//! heartbeat renews; a running job whose lease passed is claimable again.
//! `cluster_leases` elects the replica that does the cluster's chores.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::Store;
use super::entities::{cluster_lease, file, job};
use super::rows::{job_from_model, job_to_active, new_job};
use crate::domain::{FileState, JobQuery, JobRecord, JobStage, JobState, Page};
use crate::error::{Entity, Error, Result};

/// Who claims jobs, and for how long a claim holds without a heartbeat.
#[derive(Debug, Clone)]
pub struct JobClaim {
    pub holder: String,
    pub lease: Duration,
}

/// Queued, or running under a lease that has passed (or that a server from
/// before leases left unset).
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(job::Column::State.eq(JobState::Queued.as_str()))
        .add(
            Condition::all()
                .add(job::Column::State.eq(JobState::Running.as_str()))
                .add(
                    Condition::any()
                        .add(job::Column::LeaseExpiresAt.is_null())
                        .add(job::Column::LeaseExpiresAt.lt(now)),
                ),
        )
}

/// Leases are validated to be short; the cap only keeps date arithmetic
/// from overflowing.
fn lease_delta(lease: Duration) -> chrono::Duration {
    chrono::Duration::from_std(lease.min(Duration::from_secs(86_400))).unwrap_or(chrono::Duration::zero())
}

/// A job claimed by this replica.
#[derive(Debug)]
pub struct Claimed {
    pub job: JobRecord,
    /// The replica whose lease had passed, when the claim took the job over.
    pub taken_over_from: Option<String>,
}

enum ClaimAttempt {
    Claimed(Box<Claimed>),
    NoneClaimable,
    /// Another claimer took the candidate first; look again.
    Raced,
}

async fn try_claim(
    conn: &impl ConnectionTrait,
    skip_stage: Option<JobStage>,
    claim: &JobClaim,
    skip_locked: bool,
) -> Result<ClaimAttempt> {
    let now = Utc::now();
    let mut candidates = job::Entity::find().filter(claimable(now));
    if let Some(stage) = skip_stage {
        candidates = candidates.filter(job::Column::Stage.ne(stage.as_str()));
    }
    candidates = candidates
        .order_by(job::Column::CreatedAt, Order::Asc)
        .order_by(job::Column::Id, Order::Asc);
    if skip_locked {
        candidates = candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let Some(candidate) = candidates.one(conn).await? else {
        return Ok(ClaimAttempt::NoneClaimable);
    };
    let taken_over_from = candidate
        .owner
        .clone()
        .filter(|owner| candidate.state == JobState::Running.as_str() && *owner != claim.holder);
    let message = match &taken_over_from {
        Some(owner) => format!(
            "taken over from replica {owner}, whose lease expired; resuming at stage {}",
            candidate.stage
        ),
        None => candidate.message.clone(),
    };
    let claimed = job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value(JobState::Running.as_str()))
        .col_expr(job::Column::Attempts, Expr::col(job::Column::Attempts).add(1))
        .col_expr(
            job::Column::StartedAt,
            Expr::value(candidate.started_at.unwrap_or(now)),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .col_expr(job::Column::Owner, Expr::value(claim.holder.as_str()))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(now + lease_delta(claim.lease)),
        )
        .col_expr(job::Column::Message, Expr::value(message))
        .filter(job::Column::Id.eq(&candidate.id))
        .filter(claimable(now))
        .exec(conn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(ClaimAttempt::Raced);
    }
    let model = job::Entity::find_by_id(candidate.id.clone())
        .one(conn)
        .await?
        .ok_or_else(|| Error::not_found(Entity::Job, &candidate.id))?;
    Ok(ClaimAttempt::Claimed(Box::new(Claimed {
        job: job_from_model(model)?,
        taken_over_from,
    })))
}

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

    /// Claims the oldest job that is queued, or running under a lease that
    /// has passed (its replica died), for `claim.holder` until
    /// `claim.lease` from now; `None` when there is none. Jobs at
    /// `skip_stage` are left alone. On PostgreSQL the candidate row is
    /// locked with `FOR UPDATE SKIP LOCKED`, so replicas claiming at once
    /// each get a different job without waiting on one another; on SQLite
    /// (one replica) the update is a compare-and-set on the claimable state.
    pub async fn claim_next_job(
        &self,
        skip_stage: Option<JobStage>,
        claim: &JobClaim,
    ) -> Result<Option<Claimed>> {
        loop {
            let attempt = if self.db.get_database_backend() == DbBackend::Postgres {
                let txn = self.db.begin().await?;
                let attempt = try_claim(&txn, skip_stage, claim, true).await?;
                txn.commit().await?;
                attempt
            } else {
                // No transaction: on SQLite one that reads and then writes
                // fails outright when another write commits in between.
                try_claim(&self.db, skip_stage, claim, false).await?
            };
            match attempt {
                ClaimAttempt::Claimed(claimed) => return Ok(Some(*claimed)),
                ClaimAttempt::NoneClaimable => return Ok(None),
                ClaimAttempt::Raced => {}
            }
        }
    }

    /// Persists a job's progress and state, as long as `holder` still holds
    /// it: a replica whose lease passed and whose job another took over gets
    /// `LeaseLost` instead of overwriting the new owner's work. A job that
    /// leaves `running` gives its lease up.
    pub async fn save_job(&self, job: &JobRecord, holder: &str) -> Result<()> {
        let mut active = job_to_active(job);
        if job.state != JobState::Running {
            active.lease_expires_at = Set(None);
        }
        // Ownership itself is the claim's business, never a save's.
        active.owner = NotSet;
        let mut update = job::Entity::update_many()
            .set(active)
            .filter(job::Column::Id.eq(&job.id));
        update = update.filter(job::Column::Owner.eq(holder));
        let saved = update.exec(&self.db).await?;
        if saved.rows_affected == 0 {
            return match job::Entity::find_by_id(job.id.clone()).one(&self.db).await? {
                None => Err(Error::not_found(Entity::Job, &job.id)),
                Some(now) => Err(Error::LeaseLost {
                    job_id: job.id.clone(),
                    owner: now.owner.unwrap_or_default(),
                }),
            };
        }
        Ok(())
    }

    /// Extends the lease of every job `claim.holder` is running; the
    /// heartbeat. Returns how many it renewed.
    pub async fn renew_job_leases(&self, claim: &JobClaim) -> Result<u64> {
        let expires = Utc::now() + lease_delta(claim.lease);
        let renewed = job::Entity::update_many()
            .col_expr(job::Column::LeaseExpiresAt, Expr::value(expires))
            .filter(job::Column::Owner.eq(claim.holder.as_str()))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(renewed.rows_affected)
    }

    /// Puts the jobs `holder` still runs back in the queue at their stage,
    /// for any replica to claim at once: what a shutdown does with the jobs
    /// its grace period did not let finish. Returns how many.
    pub async fn release_job_leases(&self, holder: &str) -> Result<u64> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
            .col_expr(
                job::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                job::Column::Message,
                Expr::value(format!(
                    "released by replica {holder} at shutdown; resumes at its stage"
                )),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job::Column::Owner.eq(holder))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Puts every job left `running` back in the queue; they resume from
    /// the stage they were in. Only for a database that one server uses
    /// alone (SQLite), where any running job at start is a crash's leftover:
    /// with several replicas, a running job may be a live one's, and dead
    /// ones' jobs are taken over when their lease passes. Returns how many.
    pub async fn requeue_running_jobs(&self) -> Result<u64> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(JobState::Queued.as_str()))
            .col_expr(
                job::Column::LeaseExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(job::Column::Message, Expr::value("resuming after restart"))
            .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(job::Column::State.eq(JobState::Running.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Takes or renews the named cluster-wide lease for `holder` until
    /// `ttl` from now. True when `holder` holds it afterwards: it was free,
    /// expired, or already `holder`'s. One statement, so two replicas never
    /// both win.
    pub async fn hold_cluster_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = Utc::now();
        let expires = now + lease_delta(ttl);
        let taken = cluster_lease::Entity::update_many()
            .col_expr(cluster_lease::Column::Holder, Expr::value(holder))
            .col_expr(cluster_lease::Column::ExpiresAt, Expr::value(expires))
            .filter(cluster_lease::Column::Name.eq(name))
            .filter(
                Condition::any()
                    .add(cluster_lease::Column::Holder.eq(holder))
                    .add(cluster_lease::Column::ExpiresAt.lt(now)),
            )
            .exec(&self.db)
            .await?;
        if taken.rows_affected == 1 {
            return Ok(true);
        }
        let fresh = cluster_lease::ActiveModel {
            name: Set(name.to_owned()),
            holder: Set(holder.to_owned()),
            expires_at: Set(expires),
        };
        let inserted = cluster_lease::Entity::insert(fresh)
            .on_conflict(
                OnConflict::column(cluster_lease::Column::Name)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted == 1)
    }

    /// Gives the named lease up if `holder` has it, so another replica
    /// takes it at once rather than after it expires.
    pub async fn release_cluster_lease(&self, name: &str, holder: &str) -> Result<()> {
        cluster_lease::Entity::delete_many()
            .filter(cluster_lease::Column::Name.eq(name))
            .filter(cluster_lease::Column::Holder.eq(holder))
            .exec(&self.db)
            .await?;
        Ok(())
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

    fn claim(holder: &str) -> JobClaim {
        JobClaim {
            holder: holder.to_owned(),
            lease: Duration::from_secs(30),
        }
    }

    /// Puts a queued job at `stage`, as a run that stopped there leaves it.
    async fn force_stage(store: &Store, id: &str, stage: JobStage) {
        job::Entity::update_many()
            .col_expr(job::Column::Stage, Expr::value(stage.as_str()))
            .filter(job::Column::Id.eq(id))
            .exec(&store.db)
            .await
            .unwrap();
    }

    /// Moves a job's lease `by` into the past, as if its holder stopped
    /// renewing that long ago.
    async fn age_lease(store: &Store, id: &str, by: Duration) {
        job::Entity::update_many()
            .col_expr(
                job::Column::LeaseExpiresAt,
                Expr::value(Utc::now() - lease_delta(by)),
            )
            .filter(job::Column::Id.eq(id))
            .exec(&store.db)
            .await
            .unwrap();
    }

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
                    while let Some(job) = store
                        .claim_next_job(None, &claim("a"))
                        .await
                        .unwrap()
                        .map(|c| c.job)
                    {
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
        let waiting = queued_job(&store, 1).await;
        let oldest_other = queued_job(&store, 2).await;
        let newest = queued_job(&store, 3).await;
        force_stage(&store, &waiting.id, JobStage::Embed).await;
        let first = store
            .claim_next_job(Some(JobStage::Embed), &claim("a"))
            .await
            .unwrap()
            .map(|c| c.job)
            .unwrap();
        assert_eq!(first.id, oldest_other.id);
        let second = store
            .claim_next_job(Some(JobStage::Embed), &claim("a"))
            .await
            .unwrap()
            .map(|c| c.job)
            .unwrap();
        assert_eq!(second.id, newest.id);
        assert!(
            store
                .claim_next_job(Some(JobStage::Embed), &claim("a"))
                .await
                .unwrap()
                .is_none()
        );
        let last = store
            .claim_next_job(None, &claim("a"))
            .await
            .unwrap()
            .map(|c| c.job)
            .unwrap();
        assert_eq!((last.id, last.stage), (waiting.id, JobStage::Embed));
    }

    #[tokio::test]
    async fn a_live_lease_keeps_its_job_and_a_passed_one_is_taken_over_at_its_stage() {
        let (_dir, store) = store().await;
        let queued = queued_job(&store, 1).await;
        let mut mine = store.claim_next_job(None, &claim("a")).await.unwrap().unwrap();
        assert_eq!(mine.taken_over_from, None);
        assert_eq!(mine.job.owner.as_deref(), Some("a"));
        mine.job.stage = JobStage::Analyse;
        store.save_job(&mine.job, "a").await.unwrap();

        assert!(
            store.claim_next_job(None, &claim("b")).await.unwrap().is_none(),
            "a running job under a live lease is nobody else's"
        );
        // The heartbeat keeps a lease alive past its first term.
        age_lease(&store, &queued.id, Duration::from_secs(1)).await;
        assert_eq!(store.renew_job_leases(&claim("a")).await.unwrap(), 1);
        assert_eq!(store.renew_job_leases(&claim("b")).await.unwrap(), 0);
        assert!(store.claim_next_job(None, &claim("b")).await.unwrap().is_none());

        age_lease(&store, &queued.id, Duration::from_secs(1)).await;
        let taken = store.claim_next_job(None, &claim("b")).await.unwrap().unwrap();
        assert_eq!(taken.taken_over_from.as_deref(), Some("a"));
        assert_eq!(
            (taken.job.id.as_str(), taken.job.stage, taken.job.attempts),
            (queued.id.as_str(), JobStage::Analyse, 2)
        );
        assert_eq!(taken.job.owner.as_deref(), Some("b"));
        assert_eq!(
            taken.job.message,
            "taken over from replica a, whose lease expired; resuming at stage analyse"
        );

        // The replica that lost it cannot overwrite the new owner's work.
        mine.job.progress = 0.9;
        match store.save_job(&mine.job, "a").await {
            Err(Error::LeaseLost { job_id, owner }) => {
                assert_eq!((job_id, owner.as_str()), (queued.id.clone(), "b"))
            }
            other => panic!("expected LeaseLost, got {other:?}"),
        }
        let stored = store.get_job(&queued.id).await.unwrap();
        assert_eq!(
            (stored.progress, stored.owner.as_deref()),
            (taken.job.progress, Some("b"))
        );
    }

    #[tokio::test]
    async fn a_release_requeues_only_the_releasing_replicas_running_jobs() {
        let (_dir, store) = store().await;
        queued_job(&store, 1).await;
        queued_job(&store, 2).await;
        let a = store
            .claim_next_job(None, &claim("a"))
            .await
            .unwrap()
            .unwrap()
            .job;
        let b = store
            .claim_next_job(None, &claim("b"))
            .await
            .unwrap()
            .unwrap()
            .job;
        assert_eq!(store.release_job_leases("a").await.unwrap(), 1);
        let released = store.get_job(&a.id).await.unwrap();
        assert_eq!(released.state, JobState::Queued);
        assert_eq!(
            released.message,
            "released by replica a at shutdown; resumes at its stage"
        );
        assert_eq!(store.get_job(&b.id).await.unwrap().state, JobState::Running);
        let again = store.claim_next_job(None, &claim("c")).await.unwrap().unwrap();
        assert_eq!((again.job.id, again.taken_over_from), (a.id, None));
    }

    #[tokio::test]
    async fn one_holder_at_a_time_has_a_cluster_lease_until_it_passes_or_is_released() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_secs(30);
        assert!(store.hold_cluster_lease("chores", "a", ttl).await.unwrap());
        assert!(!store.hold_cluster_lease("chores", "b", ttl).await.unwrap());
        assert!(
            store.hold_cluster_lease("chores", "a", ttl).await.unwrap(),
            "renewal"
        );
        assert!(
            store.hold_cluster_lease("other", "b", ttl).await.unwrap(),
            "leases are by name"
        );
        cluster_lease::Entity::update_many()
            .col_expr(
                cluster_lease::Column::ExpiresAt,
                Expr::value(Utc::now() - chrono::Duration::seconds(1)),
            )
            .filter(cluster_lease::Column::Name.eq("chores"))
            .exec(&store.db)
            .await
            .unwrap();
        assert!(
            store.hold_cluster_lease("chores", "b", ttl).await.unwrap(),
            "a passed lease is free"
        );
        assert!(!store.hold_cluster_lease("chores", "a", ttl).await.unwrap());
        store.release_cluster_lease("chores", "a").await.unwrap();
        assert!(
            !store.hold_cluster_lease("chores", "a", ttl).await.unwrap(),
            "only the holder releases"
        );
        store.release_cluster_lease("chores", "b").await.unwrap();
        assert!(store.hold_cluster_lease("chores", "a", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn running_jobs_are_requeued_at_their_stage_after_a_restart() {
        let (_dir, store) = store().await;
        queued_job(&store, 1).await;
        let mut claimed = store
            .claim_next_job(None, &claim("a"))
            .await
            .unwrap()
            .map(|c| c.job)
            .unwrap();
        claimed.stage = JobStage::Decode;
        store.save_job(&claimed, "a").await.unwrap();
        assert_eq!(store.requeue_running_jobs().await.unwrap(), 1);
        let again = store
            .claim_next_job(None, &claim("a"))
            .await
            .unwrap()
            .map(|c| c.job)
            .unwrap();
        assert_eq!(
            (again.id, again.stage, again.attempts),
            (claimed.id, JobStage::Decode, 2)
        );
    }
}
