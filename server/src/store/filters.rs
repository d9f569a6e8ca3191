//! Queries behind search: the exact set of files a filter admits, the
//! keyword index's records, tags and past queries.

use std::collections::HashMap;

use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, LikeExpr, Query, SimpleExpr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use super::entities::{file, file_tag, usage_event};
use super::suggested_tags::suggested_file_ids;
use super::{Store, escape_like};
use crate::domain::{FileState, SearchFilter};
use crate::error::Result;

impl Store {
    /// Ids of the ready files meeting `filter`'s metadata conditions
    /// (keywords and score are checked elsewhere).
    pub async fn filtered_file_ids(&self, filter: &SearchFilter) -> Result<Vec<String>> {
        Ok(filtered_select(filter).into_tuple().all(&self.db).await?)
    }

    /// Id, filename and tags of every file: what the text index holds.
    pub async fn text_records(&self) -> Result<Vec<(String, String, Vec<String>)>> {
        let files: Vec<(String, String)> = file::Entity::find()
            .select_only()
            .column(file::Column::Id)
            .column(file::Column::Filename)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut tags: HashMap<String, Vec<String>> = HashMap::new();
        for row in file_tag::Entity::find().all(&self.db).await? {
            tags.entry(row.file_id).or_default().push(row.tag);
        }
        Ok(files
            .into_iter()
            .map(|(id, filename)| {
                let file_tags = tags.remove(&id).unwrap_or_default();
                (id, filename, file_tags)
            })
            .collect())
    }

    /// (id, filename, tags) of those of `file_ids` that exist.
    pub async fn text_records_of(&self, file_ids: &[String]) -> Result<Vec<(String, String, Vec<String>)>> {
        let mut out = Vec::with_capacity(file_ids.len());
        for chunk in file_ids.chunks(500) {
            let files: Vec<(String, String)> = file::Entity::find()
                .select_only()
                .column(file::Column::Id)
                .column(file::Column::Filename)
                .filter(file::Column::Id.is_in(chunk.iter().map(String::as_str)))
                .into_tuple()
                .all(&self.db)
                .await?;
            let mut tags: HashMap<String, Vec<String>> = HashMap::new();
            for row in file_tag::Entity::find()
                .filter(file_tag::Column::FileId.is_in(chunk.iter().map(String::as_str)))
                .all(&self.db)
                .await?
            {
                tags.entry(row.file_id).or_default().push(row.tag);
            }
            out.extend(files.into_iter().map(|(id, filename)| {
                let file_tags = tags.remove(&id).unwrap_or_default();
                (id, filename, file_tags)
            }));
        }
        Ok(out)
    }

    /// Every distinct tag in use.
    pub async fn all_tags(&self) -> Result<Vec<String>> {
        Ok(file_tag::Entity::find()
            .select_only()
            .column(file_tag::Column::Tag)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Past search queries starting with `prefix` (case-insensitive) since
    /// `since_ms`, most frequent first.
    pub async fn past_queries(
        &self,
        prefix: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let pattern = format!("{}%", escape_like(&prefix.to_lowercase()));
        let rows: Vec<(String, i64)> = usage_event::Entity::find()
            .select_only()
            .column(usage_event::Column::Query)
            .column_as(
                Expr::from(Func::count(Expr::col(usage_event::Column::Id))),
                "uses",
            )
            .filter(usage_event::Column::Kind.eq("search"))
            .filter(usage_event::Column::AtMs.gte(since_ms))
            .filter(usage_event::Column::Query.is_not_null())
            .filter(
                Expr::expr(Func::lower(Expr::col(usage_event::Column::Query)))
                    .like(LikeExpr::new(pattern).escape('\\')),
            )
            .group_by(usage_event::Column::Query)
            .order_by_desc(Expr::expr(Func::count(Expr::col(usage_event::Column::Id))))
            .order_by_asc(usage_event::Column::Query)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(query, count)| (query, u64::try_from(count).unwrap_or(0)))
            .collect())
    }
}

/// The ids of the ready files meeting `filter`'s metadata conditions, as a
/// query that can also serve as a subquery.
pub(super) fn filtered_select(filter: &SearchFilter) -> Select<file::Entity> {
    let mut select = file::Entity::find()
        .select_only()
        .column(file::Column::Id)
        .filter(file::Column::State.eq(FileState::Ready.as_str()));
    if let Some(min) = filter.min_duration_seconds {
        select = select.filter(file::Column::DurationSeconds.gte(min));
    }
    if let Some(max) = filter.max_duration_seconds {
        select = select.filter(file::Column::DurationSeconds.lte(max));
    }
    if filter.min_bpm.is_some() || filter.max_bpm.is_some() {
        let in_range = |reading: SimpleExpr| {
            let mut condition = Condition::all().add(Expr::col(file::Column::Bpm).is_not_null());
            if let Some(min) = filter.min_bpm {
                condition = condition.add(reading.clone().gte(min));
            }
            if let Some(max) = filter.max_bpm {
                condition = condition.add(reading.lte(max));
            }
            condition
        };
        let bpm = || SimpleExpr::from(Expr::col(file::Column::Bpm));
        let mut readings = Condition::any().add(in_range(bpm()));
        if filter.bpm_half_or_double {
            // From the stored tempo itself, so files analysed before
            // alternatives were stored match too.
            readings = readings
                .add(in_range(bpm().div(2.0)))
                .add(in_range(bpm().mul(2.0)));
        }
        select = select.filter(readings);
    }
    if !filter.keys.is_empty() {
        let mut any_key = Condition::any();
        for key in &filter.keys {
            any_key = any_key.add(
                Condition::all()
                    .add(file::Column::KeyPitchClass.eq(i32::from(key.pitch_class)))
                    .add(file::Column::KeyMode.eq(key.mode.as_str())),
            );
        }
        select = select.filter(any_key);
    }
    if !filter.formats.is_empty() {
        select = select.filter(file::Column::Format.is_in(filter.formats.iter().map(|f| f.as_str())));
    }
    let tagged = |tags: &[String]| {
        Query::select()
            .column(file_tag::Column::FileId)
            .from(file_tag::Entity)
            .and_where(Expr::col(file_tag::Column::Tag).is_in(tags.iter().map(String::as_str)))
            .to_owned()
    };
    for tag in &filter.tags_all {
        select = select.filter(Expr::col(file::Column::Id).in_subquery(tagged(std::slice::from_ref(tag))));
    }
    if !filter.tags_any.is_empty() {
        select = select.filter(Expr::col(file::Column::Id).in_subquery(tagged(&filter.tags_any)));
    }
    if !filter.tags_none.is_empty() {
        select = select.filter(Expr::col(file::Column::Id).not_in_subquery(tagged(&filter.tags_none)));
    }
    for condition in &filter.suggested {
        select = select.filter(Expr::col(file::Column::Id).in_subquery(suggested_file_ids(condition)));
    }
    select
}
