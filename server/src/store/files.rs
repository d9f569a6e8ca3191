//! The `files`, `file_tags` and `blobs` tables: the library itself.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, OnConflict, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::entities::{
    blob, collection, collection_file, embedding, file, file_suggested_tag, file_suggestion_key, file_tag,
    job, waveform,
};
use super::rows::{file_from_model, job_to_active, new_job};
use super::suggested_tags::suggested_file_ids;
use super::{DeletedFile, NewBlob, Store, escape_like, to_i32, to_i64};
use crate::domain::{
    AudioProperties, Descriptors, FileOrder, FileQuery, FileRecord, FileState, FileUpdate, JobRecord, Page,
    UploadHeader, UploadOutcome,
};
use crate::error::{Entity, Error, Result};
use crate::validate::MAX_TAGS;

impl Store {
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
            bpm_half_time: Set(None),
            bpm_half_time_score: Set(None),
            bpm_double_time: Set(None),
            bpm_double_time_score: Set(None),
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
        super::feed::record_changes(&txn, &[&file_id]).await?;
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
            .ok_or_else(|| Error::not_found(Entity::File, id))?;
        let tags = self.tags_of(id).await?;
        let mut file = file_from_model(model, tags)?;
        file.suggested_tags = self
            .pending_suggestions(std::slice::from_ref(&file.id))
            .await?
            .remove(&file.id)
            .unwrap_or_default();
        Ok(file)
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
        for condition in &query.suggested {
            select = select.filter(Expr::col(file::Column::Id).in_subquery(suggested_file_ids(condition)));
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
        if let Some(collection_id) = &query.collection_id {
            // Checked first so that an unknown collection is NOT_FOUND rather
            // than an empty page that looks like an empty collection.
            if collection::Entity::find_by_id(collection_id.as_str())
                .one(&self.db)
                .await?
                .is_none()
            {
                return Err(Error::not_found(Entity::Collection, collection_id));
            }
            select = select.filter(
                Expr::col(file::Column::Id).in_subquery(
                    Query::select()
                        .column(collection_file::Column::FileId)
                        .from(collection_file::Entity)
                        .and_where(
                            Expr::col(collection_file::Column::CollectionId)
                                .eq(Expr::val(collection_id.as_str())),
                        )
                        .to_owned(),
                ),
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
        let mut suggested = self.pending_suggestions(&ids).await?;
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
            let mut file = file_from_model(model, tags)?;
            file.suggested_tags = suggested.remove(&file.id).unwrap_or_default();
            items.push(file);
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
        // A write first, so SQLite takes its write lock at once: a
        // transaction that reads first and writes later fails at once (no
        // busy wait) when a job wrote in between.
        let mut touch = file::Entity::update_many()
            .col_expr(file::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(file::Column::Id.eq(id));
        if let Some(filename) = &update.filename {
            touch = touch.col_expr(file::Column::Filename, Expr::value(filename.clone()));
        }
        if touch.exec(&txn).await?.rows_affected == 0 {
            return Err(Error::not_found(Entity::File, id));
        }
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
        if tag_count > MAX_TAGS as u64 {
            // Dropping the transaction rolls every change back.
            return Err(Error::InvalidArgument(format!(
                "the update would leave {tag_count} tags; a file may carry at most {}",
                MAX_TAGS
            )));
        }
        super::feed::record_changes(&txn, &[id]).await?;
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
            .ok_or_else(|| Error::not_found(Entity::File, id))?;
        job::Entity::delete_many()
            .filter(job::Column::FileId.eq(id))
            .exec(&txn)
            .await?;
        embedding::Entity::delete_many()
            .filter(embedding::Column::FileId.eq(id))
            .exec(&txn)
            .await?;
        waveform::Entity::delete_by_id(id.to_owned()).exec(&txn).await?;
        file_suggested_tag::Entity::delete_many()
            .filter(file_suggested_tag::Column::FileId.eq(id))
            .exec(&txn)
            .await?;
        file_suggestion_key::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        collection_file::Entity::delete_many()
            .filter(collection_file::Column::FileId.eq(id))
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
        super::feed::record_changes(&txn, &[id]).await?;
        txn.commit().await?;
        Ok(DeletedFile {
            sha256: model.sha256,
            blob_orphaned: orphaned,
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
    pub async fn set_file_descriptors(&self, id: &str, d: &Descriptors) -> Result<()> {
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
            .col_expr(file::Column::Bpm, Expr::value(d.tempo.map(|t| t.bpm)))
            .col_expr(
                file::Column::BpmConfidence,
                Expr::value(d.tempo.map_or(0.0, |t| t.confidence)),
            )
            .col_expr(
                file::Column::BpmHalfTime,
                Expr::value(d.tempo.and_then(|t| t.half_time()).map(|a| a.bpm)),
            )
            .col_expr(
                file::Column::BpmHalfTimeScore,
                Expr::value(d.tempo.and_then(|t| t.half_time()).map(|a| a.score)),
            )
            .col_expr(
                file::Column::BpmDoubleTime,
                Expr::value(d.tempo.and_then(|t| t.double_time()).map(|a| a.bpm)),
            )
            .col_expr(
                file::Column::BpmDoubleTimeScore,
                Expr::value(d.tempo.and_then(|t| t.double_time()).map(|a| a.score)),
            )
            .col_expr(
                file::Column::KeyPitchClass,
                Expr::value(d.key.map(|k| i32::from(k.key.pitch_class))),
            )
            .col_expr(
                file::Column::KeyMode,
                Expr::value(d.key.map(|k| k.key.mode.as_str().to_owned())),
            )
            .col_expr(
                file::Column::KeyConfidence,
                Expr::value(d.key.map_or(0.0, |k| k.confidence)),
            )
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

    /// Files by id with their tags; unknown ids are left out.
    pub async fn files_by_ids(&self, ids: &[String]) -> Result<HashMap<String, FileRecord>> {
        let mut files = HashMap::with_capacity(ids.len());
        // Bounded IN lists keep every backend's parameter limit out of reach.
        for chunk in ids.chunks(500) {
            let models = file::Entity::find()
                .filter(file::Column::Id.is_in(chunk.iter().map(String::as_str)))
                .all(&self.db)
                .await?;
            let tag_rows = file_tag::Entity::find()
                .filter(file_tag::Column::FileId.is_in(chunk.iter().map(String::as_str)))
                .order_by(file_tag::Column::Tag, Order::Asc)
                .all(&self.db)
                .await?;
            let mut tags: HashMap<String, Vec<String>> = HashMap::new();
            for row in tag_rows {
                tags.entry(row.file_id).or_default().push(row.tag);
            }
            let mut suggested = self.pending_suggestions(chunk).await?;
            for model in models {
                let file_tags = tags.remove(&model.id).unwrap_or_default();
                let mut file = file_from_model(model, file_tags)?;
                file.suggested_tags = suggested.remove(&file.id).unwrap_or_default();
                files.insert(file.id.clone(), file);
            }
        }
        Ok(files)
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

impl Store {
    /// The blobs among `sha256s` that the database has a row for (every
    /// referenced blob has one).
    pub async fn known_blobs(&self, sha256s: &[String]) -> Result<std::collections::HashSet<String>> {
        use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
        let rows: Vec<String> = blob::Entity::find()
            .select_only()
            .column(blob::Column::Sha256)
            .filter(blob::Column::Sha256.is_in(sha256s.iter().cloned()))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().collect())
    }
}
