//! Library totals for `GetStats`.

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{EntityTrait, PaginatorTrait, QuerySelect};

use super::entities::{blob, file, job};
use super::{Store, corrupt};
use crate::domain::{AudioFormat, JobState};
use crate::error::Result;

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
    /// Computes library totals: a few aggregate queries, nothing loaded row by row.
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
        // One grouped query per table instead of one count per value.
        let per_format: Vec<(String, i64)> = file::Entity::find()
            .select_only()
            .column(file::Column::Format)
            .column_as(Expr::from(Func::count(Expr::col(file::Column::Id))), "count")
            .group_by(file::Column::Format)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut files_by_format = Vec::with_capacity(per_format.len());
        for (format, count) in per_format {
            let format = AudioFormat::parse(&format).ok_or_else(|| corrupt("file format", &format))?;
            files_by_format.push((format, u64::try_from(count).unwrap_or(0)));
        }
        files_by_format.sort_by_key(|(format, _)| *format);
        let per_state: Vec<(String, i64)> = job::Entity::find()
            .select_only()
            .column(job::Column::State)
            .column_as(Expr::from(Func::count(Expr::col(job::Column::Id))), "count")
            .group_by(job::Column::State)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut jobs_by_state: Vec<(JobState, u64)> = JobState::ALL.iter().map(|state| (*state, 0)).collect();
        for (state, count) in per_state {
            let state = JobState::parse(&state).ok_or_else(|| corrupt("job state", &state))?;
            if let Some(slot) = jobs_by_state.iter_mut().find(|(known, _)| *known == state) {
                slot.1 = u64::try_from(count).unwrap_or(0);
            }
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
