//! Persistent state in SQLite or PostgreSQL through sea-orm. The database is
//! the source of truth for files, tags, jobs, upload sessions and usage.

mod embeddings;
pub mod entities;
mod search;
mod usage;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, OnConflict, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbBackend, EntityTrait, IntoActiveModel, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use traum_migration::{Migrator, MigratorTrait};

use self::entities::{blob, embedding, file, file_tag, job, upload};
pub use self::usage::{UsageKind, UsageRow};
use crate::error::{Error, Result};
use crate::model::{
    AudioDescriptors, AudioFormat, AudioProperties, FileOrder, FileQuery, FileRecord, FileState, FileUpdate,
    JobQuery, JobRecord, JobStage, JobState, KeyMode, MusicalKey, Page, UploadHeader, UploadOutcome,
    UploadSession,
};

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// A blob about to be referenced by a new file.
#[derive(Debug, Clone)]
pub struct NewBlob {
    pub sha256: String,
    pub size_bytes: u64,
    pub format: AudioFormat,
}

/// What deleting a file removed.
#[derive(Debug, Clone)]
pub struct DeletedFile {
    pub sha256: String,
    /// No file references the blob any more: its bytes can go.
    pub blob_orphaned: bool,
    /// Vector rows removed with the file.
    pub embedding_ids: Vec<u64>,
}

/// Library totals for `GetStats`.
#[derive(Debug, Clone, Default)]
pub struct LibraryTotals {
    pub file_count: u64,
    pub total_duration_seconds: f64,
    pub stored_bytes: u64,
    pub blob_count: u64,
    pub files_by_format: Vec<(AudioFormat, u64)>,
    pub jobs_by_state: Vec<(JobState, u64)>,
}

impl Store {
    /// Connects, enables WAL on SQLite and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(16)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        let db = Database::connect(options).await?;
        if db.get_database_backend() == DbBackend::Sqlite {
            // WAL lets readers proceed during writes; NORMAL sync is durable
            // across application crashes, which is what WAL needs.
            db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
                .await?;
        }
        Migrator::up(&db, None).await?;
        Ok(Self { db })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(Error::from)
    }

    /// Records a file for a stored blob and queues its job, or finds the file
    /// that already holds identical bytes.
    pub async fn create_file(
        &self,
        blob: &NewBlob,
        header: &UploadHeader,
    ) -> Result<(UploadOutcome, Option<JobRecord>)> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        // Inserting the blob first takes SQLite's write lock before any read,
        // so two concurrent uploads of the same bytes serialise here.
        let inserted = blob::Entity::insert(blob::ActiveModel {
            sha256: Set(blob.sha256.clone()),
            size_bytes: Set(to_i64(blob.size_bytes)),
            created_at: Set(now),
        })
        .on_conflict(OnConflict::column(blob::Column::Sha256).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
        let duplicate = inserted == 0;
        if duplicate && !header.always_create_file {
            let existing = file::Entity::find()
                .filter(file::Column::Sha256.eq(&blob.sha256))
                .order_by(file::Column::CreatedAt, Order::Asc)
                .one(&txn)
                .await?;
            if let Some(existing) = existing {
                txn.commit().await?;
                let outcome = UploadOutcome {
                    file_id: existing.id,
                    job_id: existing.latest_job_id.unwrap_or_default(),
                    duplicate: true,
                    size_bytes: blob.size_bytes,
                    sha256: blob.sha256.clone(),
                    format: blob.format,
                };
                return Ok((outcome, None));
            }
        }
        let file_id = uuid::Uuid::now_v7().to_string();
        let job_id = uuid::Uuid::now_v7().to_string();
        file::ActiveModel {
            id: Set(file_id.clone()),
            filename: Set(header.filename.clone()),
            sha256: Set(blob.sha256.clone()),
            format: Set(blob.format.as_str().to_owned()),
            size_bytes: Set(to_i64(blob.size_bytes)),
            state: Set(FileState::Processing.as_str().to_owned()),
            latest_job_id: Set(Some(job_id.clone())),
            error: Set(None),
            duration_seconds: Set(None),
            sample_rate_hz: Set(None),
            channels: Set(None),
            bits_per_sample: Set(None),
            codec: Set(None),
            bitrate_bps: Set(None),
            frames: Set(None),
            peak_dbfs: Set(None),
            loudness_lufs: Set(None),
            rms_dbfs: Set(None),
            spectral_centroid_hz: Set(None),
            zero_crossing_rate: Set(None),
            silence_ratio: Set(None),
            bpm: Set(None),
            bpm_confidence: Set(None),
            key_pitch_class: Set(None),
            key_mode: Set(None),
            key_confidence: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        insert_tags(&txn, &file_id, &header.tags).await?;
        let job = new_job(&job_id, &file_id, now);
        job_to_active(&job).insert(&txn).await?;
        txn.commit().await?;
        let outcome = UploadOutcome {
            file_id,
            job_id,
            duplicate,
            size_bytes: blob.size_bytes,
            sha256: blob.sha256.clone(),
            format: blob.format,
        };
        Ok((outcome, Some(job)))
    }

    /// Returns one file with its tags.
    pub async fn get_file(&self, id: &str) -> Result<FileRecord> {
        let model = file::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::not_found("file", id))?;
        let tags = self.tags_of(id).await?;
        file_from_model(model, tags)
    }

    async fn tags_of(&self, file_id: &str) -> Result<Vec<String>> {
        let rows = file_tag::Entity::find()
            .filter(file_tag::Column::FileId.eq(file_id))
            .order_by(file_tag::Column::Tag, Order::Asc)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|row| row.tag).collect())
    }

    /// Lists files matching `query`, with the total count over all pages.
    pub async fn list_files(&self, query: &FileQuery) -> Result<Page<FileRecord>> {
        let mut select = file::Entity::find();
        for tag in &query.tags_all {
            select = select.filter(
                Expr::col(file::Column::Id).in_subquery(
                    Query::select()
                        .column(file_tag::Column::FileId)
                        .from(file_tag::Entity)
                        .and_where(Expr::col(file_tag::Column::Tag).eq(Expr::val(tag.as_str())))
                        .to_owned(),
                ),
            );
        }
        if let Some(state) = query.state {
            select = select.filter(file::Column::State.eq(state.as_str()));
        }
        if !query.formats.is_empty() {
            select = select.filter(file::Column::Format.is_in(query.formats.iter().map(|f| f.as_str())));
        }
        if let Some(needle) = &query.filename_contains {
            let pattern = format!("%{}%", escape_like(&needle.to_lowercase()));
            select = select.filter(
                Expr::expr(Func::lower(Expr::col(file::Column::Filename)))
                    .like(LikeExpr::new(pattern).escape('\\')),
            );
        }
        let total = select.clone().count(&self.db).await?;
        let order = if query.ascending { Order::Asc } else { Order::Desc };
        let key: SimpleExpr = match query.order {
            FileOrder::CreatedAt => Expr::col(file::Column::CreatedAt),
            FileOrder::Filename => Expr::col(file::Column::Filename),
            FileOrder::Size => Expr::col(file::Column::SizeBytes),
            FileOrder::Duration => {
                Func::coalesce([Expr::col(file::Column::DurationSeconds), Expr::val(0.0)]).into()
            }
        };
        let models = select
            .order_by(key, order.clone())
            .order_by(file::Column::Id, order)
            .offset(query.offset)
            .limit(query.limit)
            .all(&self.db)
            .await?;
        let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
        let tag_rows = file_tag::Entity::find()
            .filter(file_tag::Column::FileId.is_in(ids))
            .order_by(file_tag::Column::Tag, Order::Asc)
            .all(&self.db)
            .await?;
        let mut items = Vec::with_capacity(models.len());
        for model in models {
            let tags = tag_rows
                .iter()
                .filter(|t| t.file_id == model.id)
                .map(|t| t.tag.clone())
                .collect();
            items.push(file_from_model(model, tags)?);
        }
        let next = query.offset + items.len() as u64;
        Ok(Page {
            next_offset: (next < total && !items.is_empty()).then_some(next),
            items,
            total,
        })
    }

    /// Renames a file and changes its tags atomically.
    pub async fn update_file(&self, id: &str, update: &FileUpdate) -> Result<FileRecord> {
        let txn = self.db.begin().await?;
        let model = file::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("file", id))?;
        if let Some(tags) = &update.replace_tags {
            file_tag::Entity::delete_many()
                .filter(file_tag::Column::FileId.eq(id))
                .exec(&txn)
                .await?;
            insert_tags(&txn, id, tags).await?;
        }
        insert_tags(&txn, id, &update.add_tags).await?;
        if !update.remove_tags.is_empty() {
            file_tag::Entity::delete_many()
                .filter(file_tag::Column::FileId.eq(id))
                .filter(file_tag::Column::Tag.is_in(update.remove_tags.clone()))
                .exec(&txn)
                .await?;
        }
        let tag_count = file_tag::Entity::find()
            .filter(file_tag::Column::FileId.eq(id))
            .count(&txn)
            .await?;
        if tag_count > crate::validate::MAX_TAGS as u64 {
            // Dropping the transaction rolls every change back.
            return Err(Error::InvalidArgument(format!(
                "the update would leave {tag_count} tags; a file may carry at most {}",
                crate::validate::MAX_TAGS
            )));
        }
        let mut active = model.into_active_model();
        if let Some(filename) = &update.filename {
            active.filename = Set(filename.clone());
        }
        active.updated_at = Set(Utc::now());
        active.update(&txn).await?;
        txn.commit().await?;
        self.get_file(id).await
    }

    /// Deletes a file with its tags, jobs and vectors. The blob's row goes
    /// too once no file references it, and the caller removes the bytes.
    pub async fn delete_file(&self, id: &str) -> Result<DeletedFile> {
        let txn = self.db.begin().await?;
        // A write first takes SQLite's write lock at once (see
        // `replace_embeddings`); without the file, the rollback undoes it.
        file_tag::Entity::delete_many()
            .filter(file_tag::Column::FileId.eq(id))
            .exec(&txn)
            .await?;
        let model = file::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("file", id))?;
        job::Entity::delete_many()
            .filter(job::Column::FileId.eq(id))
            .exec(&txn)
            .await?;
        let embedding_ids: Vec<i64> = embedding::Entity::find()
            .select_only()
            .column(embedding::Column::Id)
            .filter(embedding::Column::FileId.eq(id))
            .into_tuple()
            .all(&txn)
            .await?;
        embedding::Entity::delete_many()
            .filter(embedding::Column::FileId.eq(id))
            .exec(&txn)
            .await?;
        file::Entity::delete_by_id(id.to_owned()).exec(&txn).await?;
        let remaining = file::Entity::find()
            .filter(file::Column::Sha256.eq(&model.sha256))
            .count(&txn)
            .await?;
        let orphaned = remaining == 0;
        if orphaned {
            blob::Entity::delete_by_id(model.sha256.clone())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(DeletedFile {
            sha256: model.sha256,
            blob_orphaned: orphaned,
            embedding_ids: embedding_ids.into_iter().map(|id| id as u64).collect(),
        })
    }

    /// Stores probe results.
    pub async fn set_file_properties(&self, id: &str, props: &AudioProperties) -> Result<()> {
        file::Entity::update_many()
            .col_expr(file::Column::DurationSeconds, Expr::value(props.duration_seconds))
            .col_expr(
                file::Column::SampleRateHz,
                Expr::value(to_i32(props.sample_rate_hz)),
            )
            .col_expr(file::Column::Channels, Expr::value(to_i32(props.channels)))
            .col_expr(
                file::Column::BitsPerSample,
                Expr::value(to_i32(props.bits_per_sample)),
            )
            .col_expr(file::Column::Codec, Expr::value(props.codec.clone()))
            .col_expr(file::Column::BitrateBps, Expr::value(to_i64(props.bitrate_bps)))
            .col_expr(file::Column::Frames, Expr::value(to_i64(props.frames)))
            .col_expr(file::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(file::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Stores analysis results.
    pub async fn set_file_descriptors(&self, id: &str, d: &AudioDescriptors) -> Result<()> {
        file::Entity::update_many()
            .col_expr(file::Column::PeakDbfs, Expr::value(d.peak_dbfs))
            .col_expr(file::Column::LoudnessLufs, Expr::value(d.loudness_lufs))
            .col_expr(file::Column::RmsDbfs, Expr::value(d.rms_dbfs))
            .col_expr(
                file::Column::SpectralCentroidHz,
                Expr::value(d.spectral_centroid_hz),
            )
            .col_expr(
                file::Column::ZeroCrossingRate,
                Expr::value(d.zero_crossing_rate_hz),
            )
            .col_expr(file::Column::SilenceRatio, Expr::value(d.silence_ratio))
            .col_expr(file::Column::Bpm, Expr::value(d.bpm))
            .col_expr(file::Column::BpmConfidence, Expr::value(d.bpm_confidence))
            .col_expr(
                file::Column::KeyPitchClass,
                Expr::value(d.key.map(|k| i32::from(k.pitch_class))),
            )
            .col_expr(
                file::Column::KeyMode,
                Expr::value(d.key.map(|k| k.mode.as_str().to_owned())),
            )
            .col_expr(file::Column::KeyConfidence, Expr::value(d.key_confidence))
            .col_expr(file::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(file::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Sets a file's processing state (and error) to follow its job.
    pub async fn set_file_state(&self, id: &str, state: FileState, error: Option<&str>) -> Result<()> {
        file::Entity::update_many()
            .col_expr(file::Column::State, Expr::value(state.as_str()))
            .col_expr(file::Column::Error, Expr::value(error.map(str::to_owned)))
            .col_expr(file::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(file::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Returns one job.
    pub async fn get_job(&self, id: &str) -> Result<JobRecord> {
        let model = job::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::not_found("job", id))?;
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
        let model = file::Entity::find_by_id(file_id.to_owned())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("file", file_id))?;
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
        let now = Utc::now();
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

    /// Opens a resumable upload session.
    pub async fn create_upload(
        &self,
        header: &UploadHeader,
        expires_at: DateTime<Utc>,
    ) -> Result<UploadSession> {
        let session = UploadSession {
            id: uuid::Uuid::new_v4().to_string(),
            filename: header.filename.clone(),
            tags: header.tags.clone(),
            declared_size: header.declared_size,
            declared_sha256: header.declared_sha256.clone(),
            received_bytes: 0,
            expires_at,
        };
        upload::ActiveModel {
            id: Set(session.id.clone()),
            filename: Set(session.filename.clone()),
            tags: Set(serde_json_array(&session.tags)),
            declared_size: Set(session.declared_size.map(to_i64)),
            declared_sha256: Set(session.declared_sha256.clone()),
            received_bytes: Set(0),
            created_at: Set(Utc::now()),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        Ok(session)
    }

    /// Returns a live upload session.
    pub async fn get_upload(&self, id: &str) -> Result<UploadSession> {
        let model = upload::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::not_found("upload session", id))?;
        upload_from_model(model)
    }

    /// Moves a session's offset from `from` to `to`; fails if another request
    /// moved it first.
    pub async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let result = upload::Entity::update_many()
            .col_expr(upload::Column::ReceivedBytes, Expr::value(to_i64(to)))
            .col_expr(upload::Column::ExpiresAt, Expr::value(expires_at))
            .filter(upload::Column::Id.eq(id))
            .filter(upload::Column::ReceivedBytes.eq(to_i64(from)))
            .exec(&self.db)
            .await?;
        if result.rows_affected != 1 {
            return Err(Error::FailedPrecondition(format!(
                "upload {id} moved on concurrently; call GetUpload for the current offset"
            )));
        }
        Ok(())
    }

    /// Removes a session row.
    pub async fn delete_upload(&self, id: &str) -> Result<()> {
        upload::Entity::delete_by_id(id.to_owned()).exec(&self.db).await?;
        Ok(())
    }

    /// Returns sessions that expired before `now`.
    pub async fn expired_uploads(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = upload::Entity::find()
            .filter(upload::Column::ExpiresAt.lt(now))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }

    /// Ids of every session, for matching against temp files on disk.
    pub async fn upload_ids(&self) -> Result<Vec<String>> {
        let rows = upload::Entity::find().all(&self.db).await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }

    /// Computes library totals.
    pub async fn totals(&self) -> Result<LibraryTotals> {
        let file_count = file::Entity::find().count(&self.db).await?;
        let blob_count = blob::Entity::find().count(&self.db).await?;
        let (duration, stored): (Option<f64>, Option<i64>) = (
            file::Entity::find()
                .select_only()
                .column_as(
                    Expr::from(Func::sum(Expr::col(file::Column::DurationSeconds))),
                    "total",
                )
                .into_tuple::<Option<f64>>()
                .one(&self.db)
                .await?
                .flatten(),
            blob::Entity::find()
                .select_only()
                .column_as(
                    Expr::cust("CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)"),
                    "total",
                )
                .into_tuple::<i64>()
                .one(&self.db)
                .await?,
        );
        let mut files_by_format = Vec::new();
        for format in AudioFormat::ALL {
            let count = file::Entity::find()
                .filter(file::Column::Format.eq(format.as_str()))
                .count(&self.db)
                .await?;
            if count > 0 {
                files_by_format.push((*format, count));
            }
        }
        let mut jobs_by_state = Vec::new();
        for state in JobState::ALL {
            let count = job::Entity::find()
                .filter(job::Column::State.eq(state.as_str()))
                .count(&self.db)
                .await?;
            jobs_by_state.push((*state, count));
        }
        Ok(LibraryTotals {
            file_count,
            total_duration_seconds: duration.unwrap_or(0.0),
            stored_bytes: u64::try_from(stored.unwrap_or(0)).unwrap_or(0),
            blob_count,
            files_by_format,
            jobs_by_state,
        })
    }
}

async fn insert_tags(txn: &impl ConnectionTrait, file_id: &str, tags: &[String]) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let rows = tags.iter().map(|tag| file_tag::ActiveModel {
        file_id: Set(file_id.to_owned()),
        tag: Set(tag.clone()),
    });
    file_tag::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([file_tag::Column::FileId, file_tag::Column::Tag])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

fn new_job(id: &str, file_id: &str, now: DateTime<Utc>) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        file_id: file_id.to_owned(),
        state: JobState::Queued,
        stage: JobStage::Store,
        progress: 0.0,
        stage_progress: 0.0,
        message: "queued".to_owned(),
        error: None,
        attempts: 0,
        warnings: Vec::new(),
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    }
}

fn job_to_active(job: &JobRecord) -> job::ActiveModel {
    job::ActiveModel {
        id: Set(job.id.clone()),
        file_id: Set(job.file_id.clone()),
        state: Set(job.state.as_str().to_owned()),
        stage: Set(job.stage.as_str().to_owned()),
        progress: Set(job.progress),
        stage_progress: Set(job.stage_progress),
        message: Set(job.message.clone()),
        error: Set(job.error.clone()),
        attempts: Set(i32::try_from(job.attempts).unwrap_or(i32::MAX)),
        warnings: Set(serde_json_array(&job.warnings)),
        created_at: Set(job.created_at),
        updated_at: Set(job.updated_at),
        started_at: Set(job.started_at),
        finished_at: Set(job.finished_at),
    }
}

fn job_from_model(model: job::Model) -> Result<JobRecord> {
    Ok(JobRecord {
        state: JobState::parse(&model.state).ok_or_else(|| corrupt("job state", &model.state))?,
        stage: JobStage::parse(&model.stage).ok_or_else(|| corrupt("job stage", &model.stage))?,
        warnings: parse_json_array(&model.warnings)?,
        attempts: u32::try_from(model.attempts).unwrap_or(0),
        id: model.id,
        file_id: model.file_id,
        progress: model.progress,
        stage_progress: model.stage_progress,
        message: model.message,
        error: model.error,
        created_at: model.created_at,
        updated_at: model.updated_at,
        started_at: model.started_at,
        finished_at: model.finished_at,
    })
}

fn file_from_model(model: file::Model, tags: Vec<String>) -> Result<FileRecord> {
    let properties = match (model.duration_seconds, model.sample_rate_hz, model.channels) {
        (Some(duration_seconds), Some(rate), Some(channels)) => Some(AudioProperties {
            duration_seconds,
            sample_rate_hz: u32::try_from(rate).unwrap_or(0),
            channels: u32::try_from(channels).unwrap_or(0),
            bits_per_sample: model
                .bits_per_sample
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or(0),
            codec: model.codec.clone().unwrap_or_default(),
            bitrate_bps: model.bitrate_bps.and_then(|b| u64::try_from(b).ok()).unwrap_or(0),
            frames: model.frames.and_then(|f| u64::try_from(f).ok()).unwrap_or(0),
        }),
        _ => None,
    };
    // The silence ratio is always written by the analyse stage, so it marks
    // an analysed file.
    let descriptors = match model.silence_ratio {
        Some(silence_ratio) => Some(AudioDescriptors {
            peak_dbfs: model.peak_dbfs,
            loudness_lufs: model.loudness_lufs,
            rms_dbfs: model.rms_dbfs,
            spectral_centroid_hz: model.spectral_centroid_hz,
            zero_crossing_rate_hz: model.zero_crossing_rate.unwrap_or(0.0),
            silence_ratio,
            bpm: model.bpm,
            bpm_confidence: model.bpm_confidence.unwrap_or(0.0),
            key: match (
                model.key_pitch_class,
                model.key_mode.as_deref().and_then(KeyMode::parse),
            ) {
                (Some(pitch), Some(mode)) => Some(MusicalKey {
                    pitch_class: u8::try_from(pitch.rem_euclid(12)).unwrap_or(0),
                    mode,
                }),
                _ => None,
            },
            key_confidence: model.key_confidence.unwrap_or(0.0),
        }),
        _ => None,
    };
    Ok(FileRecord {
        descriptors,
        format: AudioFormat::parse(&model.format).ok_or_else(|| corrupt("file format", &model.format))?,
        state: FileState::parse(&model.state).ok_or_else(|| corrupt("file state", &model.state))?,
        size_bytes: u64::try_from(model.size_bytes).unwrap_or(0),
        id: model.id,
        filename: model.filename,
        tags,
        sha256: model.sha256,
        latest_job_id: model.latest_job_id,
        error: model.error,
        properties,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

fn upload_from_model(model: upload::Model) -> Result<UploadSession> {
    Ok(UploadSession {
        tags: parse_json_array(&model.tags)?,
        declared_size: model.declared_size.and_then(|s| u64::try_from(s).ok()),
        received_bytes: u64::try_from(model.received_bytes).unwrap_or(0),
        id: model.id,
        filename: model.filename,
        declared_sha256: model.declared_sha256,
        expires_at: model.expires_at,
    })
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Internal(format!("database holds an unknown {what} `{value}`"))
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Encodes a list of strings as a JSON array.
fn serde_json_array(items: &[String]) -> String {
    // Serialising strings cannot fail; the fallback only satisfies the type.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_json_array(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|err| Error::Internal(format!("database holds a malformed list `{text}`: {err}")))
}

/// Converts a byte count for a BIGINT column; sizes beyond i64 are impossible
/// under the configured limits.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
