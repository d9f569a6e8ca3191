//! The `file_fingerprints` and `file_duplicate_links` tables: each file's
//! acoustic fingerprint and the near-duplicate links found when it was
//! fingerprinted.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::Store;
use super::entities::{file, file_duplicate_link, file_fingerprint};
use crate::domain::{AudioFormat, DuplicateLink, FileState};
use crate::error::Result;

/// What fingerprinting a stored file again needs.
#[derive(Debug, Clone)]
pub struct UnprintedFile {
    pub id: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub format: AudioFormat,
}

impl Store {
    /// Stores (or replaces) a file's fingerprint and replaces its links with
    /// `links` (each between `file_id` and another file, either way round).
    /// Links to files deleted meanwhile are dropped. Returns false, storing nothing, when `file_id`
    /// itself was deleted meanwhile.
    pub async fn put_fingerprint(
        &self,
        file_id: &str,
        fingerprint: Vec<u8>,
        links: &[DuplicateLink],
    ) -> Result<bool> {
        let txn = self.db.begin().await?;
        // A write first takes SQLite's write lock at once (see `update_file`).
        file_duplicate_link::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(file_duplicate_link::Column::FileId.eq(file_id))
                    .add(file_duplicate_link::Column::OtherId.eq(file_id)),
            )
            .exec(&txn)
            .await?;
        let other = |link: &DuplicateLink| {
            if link.file_id == file_id {
                link.other_id.clone()
            } else {
                link.file_id.clone()
            }
        };
        let mut wanted: Vec<String> = links.iter().map(other).collect();
        wanted.push(file_id.to_owned());
        let mut existing: HashSet<String> = HashSet::new();
        for chunk in wanted.chunks(500) {
            let ids: Vec<String> = file::Entity::find()
                .select_only()
                .column(file::Column::Id)
                .filter(file::Column::Id.is_in(chunk.iter().map(String::as_str)))
                .into_tuple()
                .all(&txn)
                .await?;
            existing.extend(ids);
        }
        if !existing.contains(file_id) {
            return Ok(false);
        }
        file_fingerprint::Entity::insert(file_fingerprint::ActiveModel {
            file_id: Set(file_id.to_owned()),
            fingerprint: Set(fingerprint),
            created_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(file_fingerprint::Column::FileId)
                .update_columns([
                    file_fingerprint::Column::Fingerprint,
                    file_fingerprint::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        let rows: Vec<file_duplicate_link::ActiveModel> = links
            .iter()
            .filter(|link| {
                let other = other(link);
                other != file_id
                    && existing.contains(&other)
                    && (link.file_id == file_id || link.other_id == file_id)
            })
            .map(|link| {
                let link = link.normalised();
                file_duplicate_link::ActiveModel {
                    file_id: Set(link.file_id),
                    other_id: Set(link.other_id),
                    score: Set(link.score),
                    offset_seconds: Set(link.offset_seconds),
                }
            })
            .collect();
        for chunk in rows.chunks(200) {
            file_duplicate_link::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        file_duplicate_link::Column::FileId,
                        file_duplicate_link::Column::OtherId,
                    ])
                    .update_columns([
                        file_duplicate_link::Column::Score,
                        file_duplicate_link::Column::OffsetSeconds,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        super::feed::record_changes(&txn, &[file_id]).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Up to `limit` stored fingerprints of files after `after` (by id), as
    /// (file id, stored bytes).
    pub async fn fingerprints_after(&self, after: &str, limit: u64) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(file_fingerprint::Entity::find()
            .select_only()
            .column(file_fingerprint::Column::FileId)
            .column(file_fingerprint::Column::Fingerprint)
            .filter(file_fingerprint::Column::FileId.gt(after))
            .order_by(file_fingerprint::Column::FileId, Order::Asc)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Fingerprints stored at or after `since` (by any replica).
    pub async fn fingerprints_since(&self, since: chrono::DateTime<Utc>) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(file_fingerprint::Entity::find()
            .select_only()
            .column(file_fingerprint::Column::FileId)
            .column(file_fingerprint::Column::Fingerprint)
            .filter(file_fingerprint::Column::CreatedAt.gte(since))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// (file id, stored bytes) of those of `file_ids` with a fingerprint.
    pub async fn fingerprints_of(&self, file_ids: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for chunk in file_ids.chunks(500) {
            let rows: Vec<(String, Vec<u8>)> = file_fingerprint::Entity::find()
                .select_only()
                .column(file_fingerprint::Column::FileId)
                .column(file_fingerprint::Column::Fingerprint)
                .filter(file_fingerprint::Column::FileId.is_in(chunk.iter().map(String::as_str)))
                .into_tuple()
                .all(&self.db)
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Up to `limit` ready files after `after` (by id) without a
    /// fingerprint: files analysed before fingerprints existed.
    pub async fn files_without_fingerprint(&self, after: &str, limit: u64) -> Result<Vec<UnprintedFile>> {
        let printed = Query::select()
            .column(file_fingerprint::Column::FileId)
            .from(file_fingerprint::Entity)
            .to_owned();
        let models = file::Entity::find()
            .filter(file::Column::State.eq(FileState::Ready.as_str()))
            .filter(file::Column::Id.gt(after))
            .filter(Expr::col(file::Column::Id).not_in_subquery(printed))
            .order_by(file::Column::Id, Order::Asc)
            .limit(limit)
            .all(&self.db)
            .await?;
        models
            .into_iter()
            .map(|model| {
                Ok(UnprintedFile {
                    format: AudioFormat::parse(&model.format)
                        .ok_or_else(|| super::corrupt("file format", &model.format))?,
                    id: model.id,
                    sha256: model.sha256,
                    size_bytes: u64::try_from(model.size_bytes)
                        .map_err(|_| super::corrupt("file size", &model.size_bytes.to_string()))?,
                })
            })
            .collect()
    }

    /// Every link touching one of `file_ids`.
    pub async fn duplicate_links_of(&self, file_ids: &[String]) -> Result<Vec<DuplicateLink>> {
        let mut links = Vec::new();
        for chunk in file_ids.chunks(250) {
            let rows = file_duplicate_link::Entity::find()
                .filter(
                    Condition::any()
                        .add(file_duplicate_link::Column::FileId.is_in(chunk.iter().map(String::as_str)))
                        .add(file_duplicate_link::Column::OtherId.is_in(chunk.iter().map(String::as_str))),
                )
                .all(&self.db)
                .await?;
            links.extend(rows.into_iter().map(link_from_model));
        }
        links.sort_by(|a, b| (&a.file_id, &a.other_id).cmp(&(&b.file_id, &b.other_id)));
        links.dedup_by(|a, b| a.file_id == b.file_id && a.other_id == b.other_id);
        Ok(links)
    }

    /// Every near-duplicate link in the library.
    pub async fn all_duplicate_links(&self) -> Result<Vec<DuplicateLink>> {
        Ok(file_duplicate_link::Entity::find()
            .order_by(file_duplicate_link::Column::FileId, Order::Asc)
            .order_by(file_duplicate_link::Column::OtherId, Order::Asc)
            .all(&self.db)
            .await?
            .into_iter()
            .map(link_from_model)
            .collect())
    }
}

fn link_from_model(model: file_duplicate_link::Model) -> DuplicateLink {
    DuplicateLink {
        file_id: model.file_id,
        other_id: model.other_id,
        score: model.score,
        offset_seconds: model.offset_seconds,
    }
}
