//! CLAP vectors of files: one row per window plus one pooled row per file.

use chrono::Utc;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::Store;
use super::entities::{embedding, file};
use crate::domain::{FileEmbeddings, StoredEmbedding};
use crate::error::{Entity, Error, Result};

impl Store {
    /// Replaces a file's vectors (of any model) with `embeddings`, atomically.
    /// Returns the ids of the rows removed and the rows written, for the
    /// vector index to follow.
    pub async fn replace_embeddings(
        &self,
        file_id: &str,
        embeddings: &FileEmbeddings,
    ) -> Result<(Vec<u64>, Vec<StoredEmbedding>)> {
        let txn = self.db.begin().await?;
        // Writing first takes SQLite's write lock at once; a read first would
        // have to upgrade it later and fail when another writer came between.
        let removed: Vec<i64> = embedding::Entity::delete_many()
            .filter(embedding::Column::FileId.eq(file_id))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        if file::Entity::find_by_id(file_id.to_owned())
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(Error::not_found(Entity::File, file_id));
        }
        let now = Utc::now();
        let rows = std::iter::once((None, embeddings.file_start, embeddings.file_end, &embeddings.file))
            .chain(
                embeddings
                    .windows
                    .iter()
                    .map(|w| (Some(w.index), w.start_seconds, w.end_seconds, &w.vector)),
            );
        let mut written = Vec::with_capacity(embeddings.windows.len() + 1);
        for (window, start, end, vector) in rows {
            let window_index = window
                .map(|w| i32::try_from(w).map_err(|_| Error::Internal(format!("window index {w} overflows"))))
                .transpose()?;
            let row = embedding::ActiveModel {
                id: NotSet,
                file_id: Set(file_id.to_owned()),
                model_id: Set(embeddings.model_id.clone()),
                window_index: Set(window_index),
                start_seconds: Set(start),
                end_seconds: Set(end),
                vector: Set(vector_bytes(vector)),
                created_at: Set(now),
            }
            .insert(&txn)
            .await?;
            written.push(stored(row)?);
        }
        super::feed::record_changes(&txn, &[file_id]).await?;
        txn.commit().await?;
        Ok((removed.into_iter().map(|id| id as u64).collect(), written))
    }

    /// Vectors of `model_id` with ids above `after`, in id order, at most
    /// `limit`: how the vector index is rebuilt from the database in pages.
    pub async fn embeddings_after(
        &self,
        model_id: &str,
        after: u64,
        limit: u64,
    ) -> Result<Vec<StoredEmbedding>> {
        let rows = embedding::Entity::find()
            .filter(embedding::Column::ModelId.eq(model_id))
            .filter(embedding::Column::Id.gt(after as i64))
            .order_by(embedding::Column::Id, Order::Asc)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter().map(stored).collect()
    }

    /// Ready files without vectors of `model_id`: processed while no model
    /// was configured, or by another model.
    pub async fn files_without_embeddings(&self, model_id: &str) -> Result<Vec<String>> {
        use sea_orm::sea_query::{Expr, ExprTrait, Query};
        let embedded = Query::select()
            .column(embedding::Column::FileId)
            .from(embedding::Entity)
            .and_where(Expr::col(embedding::Column::ModelId).eq(model_id))
            .to_owned();
        Ok(file::Entity::find()
            .select_only()
            .column(file::Column::Id)
            .filter(file::Column::State.eq(crate::domain::FileState::Ready.as_str()))
            .filter(Expr::col(file::Column::Id).not_in_subquery(embedded))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Every vector row of `model_id` without the vector itself: what the
    /// index checks a saved copy against.
    pub async fn embedding_owners(&self, model_id: &str) -> Result<Vec<StoredEmbedding>> {
        let rows: Vec<(i64, String, Option<i32>, f64, f64)> = embedding::Entity::find()
            .select_only()
            .column(embedding::Column::Id)
            .column(embedding::Column::FileId)
            .column(embedding::Column::WindowIndex)
            .column(embedding::Column::StartSeconds)
            .column(embedding::Column::EndSeconds)
            .filter(embedding::Column::ModelId.eq(model_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, file_id, window, start_seconds, end_seconds)| StoredEmbedding {
                    id: id as u64,
                    file_id,
                    window: window.and_then(|w| u32::try_from(w).ok()),
                    start_seconds,
                    end_seconds,
                    vector: Vec::new(),
                },
            )
            .collect())
    }

    /// How many vectors of `model_id` are stored.
    pub async fn count_embeddings(&self, model_id: &str) -> Result<u64> {
        Ok(embedding::Entity::find()
            .filter(embedding::Column::ModelId.eq(model_id))
            .count(&self.db)
            .await?)
    }

    /// Vectors by row id (unknown ids are left out).
    pub async fn embeddings_by_ids(&self, ids: &[u64]) -> Result<Vec<StoredEmbedding>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows = embedding::Entity::find()
                .filter(embedding::Column::Id.is_in(chunk.iter().map(|&id| id as i64)))
                .all(&self.db)
                .await?;
            for row in rows {
                out.push(stored(row)?);
            }
        }
        Ok(out)
    }

    /// The vectors of `model_id` of any of `file_ids`.
    pub async fn embeddings_of_files(
        &self,
        file_ids: &[String],
        model_id: &str,
    ) -> Result<Vec<StoredEmbedding>> {
        let mut out = Vec::new();
        for chunk in file_ids.chunks(200) {
            let rows = embedding::Entity::find()
                .filter(embedding::Column::FileId.is_in(chunk.iter().map(String::as_str)))
                .filter(embedding::Column::ModelId.eq(model_id))
                .all(&self.db)
                .await?;
            for row in rows {
                out.push(stored(row)?);
            }
        }
        Ok(out)
    }

    /// A file's vectors of `model_id`, the pooled one first, then windows in order.
    pub async fn file_embeddings(&self, file_id: &str, model_id: &str) -> Result<Vec<StoredEmbedding>> {
        let mut rows: Vec<StoredEmbedding> = embedding::Entity::find()
            .filter(embedding::Column::FileId.eq(file_id))
            .filter(embedding::Column::ModelId.eq(model_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(stored)
            .collect::<Result<_>>()?;
        rows.sort_by_key(|row| row.window.map_or(-1, i64::from));
        Ok(rows)
    }
}

fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A vector as stored: little-endian f32s (the caller checks the length).
pub(super) fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn stored(row: embedding::Model) -> Result<StoredEmbedding> {
    if !row.vector.len().is_multiple_of(4) {
        return Err(Error::Internal(format!(
            "embedding {} has {} bytes, not a whole number of f32s",
            row.id,
            row.vector.len()
        )));
    }
    let vector = vector_from_bytes(&row.vector);
    Ok(StoredEmbedding {
        id: row.id as u64,
        file_id: row.file_id,
        window: row.window_index.and_then(|w| u32::try_from(w).ok()),
        start_seconds: row.start_seconds,
        end_seconds: row.end_seconds,
        vector,
    })
}
