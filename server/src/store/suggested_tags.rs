//! The `file_suggested_tags` and `file_suggestion_keys` tables: zero-shot
//! suggestions, the user's verdicts on them, and what they were computed
//! with.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, TransactionTrait,
};

use super::Store;
use super::embeddings::vector_from_bytes;
use super::entities::{embedding, file, file_suggested_tag, file_suggestion_key, file_tag};
use super::filters::filtered_select;
use crate::domain::{SearchFilter, SuggestedTag, SuggestedTagFilter, TagVerdict};
use crate::error::{Entity, Error, Result};
use crate::validate::MAX_TAGS;

/// The `review` value of a suggestion nobody has decided on.
const PENDING: &str = "";

impl Store {
    /// Replaces a file's pending suggestions with `suggested` and records
    /// `key` as what they were computed with. Reviewed rows stay (a rejected
    /// label is never suggested again); their probability is refreshed from
    /// `all`, every label's probability. A file deleted meanwhile is left alone.
    pub async fn put_suggested_tags(
        &self,
        file_id: &str,
        key: &str,
        suggested: &[SuggestedTag],
        all: &[SuggestedTag],
    ) -> Result<()> {
        let txn = self.db.begin().await?;
        // Writers of one file's suggestions take turns (the pipeline's and
        // the background recomputation may meet): on PostgreSQL by locking
        // the file's row, where two transactions would otherwise both find
        // no pending row and insert the same labels; on SQLite the first
        // write takes the database's write lock at once (see `update_file`).
        if txn.get_database_backend() == DbBackend::Postgres
            && file::Entity::find_by_id(file_id.to_owned())
                .lock_exclusive()
                .one(&txn)
                .await?
                .is_none()
        {
            return Ok(());
        }
        file_suggested_tag::Entity::delete_many()
            .filter(file_suggested_tag::Column::FileId.eq(file_id))
            .filter(file_suggested_tag::Column::Review.eq(PENDING))
            .exec(&txn)
            .await?;
        if file::Entity::find_by_id(file_id.to_owned())
            .one(&txn)
            .await?
            .is_none()
        {
            return Ok(());
        }
        let reviewed: Vec<file_suggested_tag::Model> = file_suggested_tag::Entity::find()
            .filter(file_suggested_tag::Column::FileId.eq(file_id))
            .all(&txn)
            .await?;
        for row in &reviewed {
            let Some(fresh) = all
                .iter()
                .find(|s| s.vocabulary == row.vocabulary && s.label == row.label)
            else {
                continue;
            };
            file_suggested_tag::Entity::update_many()
                .col_expr(
                    file_suggested_tag::Column::Probability,
                    Expr::value(fresh.probability),
                )
                .col_expr(
                    file_suggested_tag::Column::ModelId,
                    Expr::value(fresh.model_id.clone()),
                )
                .filter(file_suggested_tag::Column::FileId.eq(file_id))
                .filter(file_suggested_tag::Column::Vocabulary.eq(row.vocabulary.as_str()))
                .filter(file_suggested_tag::Column::Label.eq(row.label.as_str()))
                .exec(&txn)
                .await?;
        }
        let new_rows: Vec<file_suggested_tag::ActiveModel> = suggested
            .iter()
            .filter(|s| {
                !reviewed
                    .iter()
                    .any(|row| row.vocabulary == s.vocabulary && row.label == s.label)
            })
            .map(|s| file_suggested_tag::ActiveModel {
                file_id: Set(file_id.to_owned()),
                vocabulary: Set(s.vocabulary.clone()),
                label: Set(s.label.clone()),
                probability: Set(s.probability),
                model_id: Set(s.model_id.clone()),
                review: Set(PENDING.to_owned()),
            })
            .collect();
        if !new_rows.is_empty() {
            file_suggested_tag::Entity::insert_many(new_rows)
                .exec_without_returning(&txn)
                .await?;
        }
        file_suggestion_key::Entity::insert(file_suggestion_key::ActiveModel {
            file_id: Set(file_id.to_owned()),
            suggestions_key: Set(key.to_owned()),
        })
        .on_conflict(
            OnConflict::column(file_suggestion_key::Column::FileId)
                .update_column(file_suggestion_key::Column::SuggestionsKey)
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// (vocabulary, label) of every suggestion of a file the user accepted or rejected.
    pub async fn reviewed_suggestions(&self, file_id: &str) -> Result<Vec<(String, String)>> {
        Ok(file_suggested_tag::Entity::find()
            .select_only()
            .column(file_suggested_tag::Column::Vocabulary)
            .column(file_suggested_tag::Column::Label)
            .filter(file_suggested_tag::Column::FileId.eq(file_id))
            .filter(file_suggested_tag::Column::Review.ne(PENDING))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Pending suggestions of each of `file_ids`, by vocabulary, best first.
    pub async fn pending_suggestions(
        &self,
        file_ids: &[String],
    ) -> Result<HashMap<String, Vec<SuggestedTag>>> {
        let mut out: HashMap<String, Vec<SuggestedTag>> = HashMap::new();
        for chunk in file_ids.chunks(500) {
            let rows = file_suggested_tag::Entity::find()
                .filter(file_suggested_tag::Column::FileId.is_in(chunk.iter().map(String::as_str)))
                .filter(file_suggested_tag::Column::Review.eq(PENDING))
                .order_by(file_suggested_tag::Column::Vocabulary, Order::Asc)
                .order_by(file_suggested_tag::Column::Probability, Order::Desc)
                .order_by(file_suggested_tag::Column::Label, Order::Asc)
                .all(&self.db)
                .await?;
            for row in rows {
                out.entry(row.file_id).or_default().push(SuggestedTag {
                    vocabulary: row.vocabulary,
                    label: row.label,
                    probability: row.probability,
                    model_id: row.model_id,
                });
            }
        }
        Ok(out)
    }

    /// Records a user's verdict on a suggestion: accepting makes the label an
    /// ordinary tag of the file, rejecting keeps it from being suggested
    /// again. Deciding again is allowed and the last verdict holds (an
    /// accepted tag stays a tag until the user removes it).
    pub async fn review_suggested_tag(
        &self,
        file_id: &str,
        vocabulary: &str,
        label: &str,
        verdict: TagVerdict,
    ) -> Result<()> {
        let txn = self.db.begin().await?;
        let touched = file::Entity::update_many()
            .col_expr(file::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(file::Column::Id.eq(file_id))
            .exec(&txn)
            .await?;
        if touched.rows_affected == 0 {
            return Err(Error::not_found(Entity::File, file_id));
        }
        let reviewed = file_suggested_tag::Entity::update_many()
            .col_expr(file_suggested_tag::Column::Review, Expr::value(verdict.as_str()))
            .filter(file_suggested_tag::Column::FileId.eq(file_id))
            .filter(file_suggested_tag::Column::Vocabulary.eq(vocabulary))
            .filter(file_suggested_tag::Column::Label.eq(label))
            .exec(&txn)
            .await?;
        if reviewed.rows_affected == 0 {
            return Err(Error::not_found(
                Entity::SuggestedTag,
                format!("{vocabulary}/{label} of file {file_id}"),
            ));
        }
        if verdict == TagVerdict::Accept {
            file_tag::Entity::insert(file_tag::ActiveModel {
                file_id: Set(file_id.to_owned()),
                tag: Set(label.to_owned()),
            })
            .on_conflict(
                OnConflict::columns([file_tag::Column::FileId, file_tag::Column::Tag])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
            let tag_count = file_tag::Entity::find()
                .filter(file_tag::Column::FileId.eq(file_id))
                .count(&txn)
                .await?;
            if tag_count > MAX_TAGS as u64 {
                return Err(Error::FailedPrecondition(format!(
                    "file {file_id} already carries {MAX_TAGS} tags, the most a file may carry; remove one before accepting `{label}`"
                )));
            }
            super::feed::record_changes(&txn, &[file_id]).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Up to `limit` files after `after` (by id) whose pooled vector of
    /// `model_id` exists and whose suggestions were not computed with `key`,
    /// each with that vector.
    pub async fn files_with_stale_suggestions(
        &self,
        model_id: &str,
        key: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<(String, Vec<f32>)>> {
        let current = Query::select()
            .column(file_suggestion_key::Column::FileId)
            .from(file_suggestion_key::Entity)
            .and_where(Expr::col(file_suggestion_key::Column::SuggestionsKey).eq(key))
            .to_owned();
        let rows: Vec<(String, Vec<u8>)> = embedding::Entity::find()
            .select_only()
            .column(embedding::Column::FileId)
            .column(embedding::Column::Vector)
            .filter(embedding::Column::ModelId.eq(model_id))
            .filter(embedding::Column::WindowIndex.is_null())
            .filter(embedding::Column::FileId.gt(after))
            .filter(Expr::col(embedding::Column::FileId).not_in_subquery(current))
            .order_by(embedding::Column::FileId, Order::Asc)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(file_id, bytes)| (file_id, vector_from_bytes(&bytes)))
            .collect())
    }

    /// (file id, vocabulary, label) of every pending or accepted suggestion
    /// in `vocabularies` of the ready files meeting `filter`'s metadata
    /// conditions: what facets count.
    pub async fn suggestion_rows(
        &self,
        filter: &SearchFilter,
        vocabularies: &[String],
    ) -> Result<Vec<(String, String, String)>> {
        if vocabularies.is_empty() {
            return Ok(Vec::new());
        }
        let files = filtered_select(filter).into_query();
        Ok(file_suggested_tag::Entity::find()
            .select_only()
            .column(file_suggested_tag::Column::FileId)
            .column(file_suggested_tag::Column::Vocabulary)
            .column(file_suggested_tag::Column::Label)
            .filter(file_suggested_tag::Column::Vocabulary.is_in(vocabularies.iter().map(String::as_str)))
            .filter(file_suggested_tag::Column::Review.ne(TagVerdict::Reject.as_str()))
            .filter(Expr::col(file_suggested_tag::Column::FileId).in_subquery(files))
            .into_tuple()
            .all(&self.db)
            .await?)
    }
}

/// Ids of the files with a pending or accepted suggestion in `condition`'s
/// vocabulary among its labels.
pub(super) fn suggested_file_ids(condition: &SuggestedTagFilter) -> SelectStatement {
    Query::select()
        .column(file_suggested_tag::Column::FileId)
        .from(file_suggested_tag::Entity)
        .cond_where(
            Condition::all()
                .add(Expr::col(file_suggested_tag::Column::Vocabulary).eq(condition.vocabulary.as_str()))
                .add(
                    Expr::col(file_suggested_tag::Column::Label)
                        .is_in(condition.labels.iter().map(String::as_str)),
                )
                .add(Expr::col(file_suggested_tag::Column::Review).ne(TagVerdict::Reject.as_str())),
        )
        .to_owned()
}
