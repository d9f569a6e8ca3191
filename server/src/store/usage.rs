//! The usage table: recorded calls, uploads and searches.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::Store;
use super::entities::usage_event;
use crate::error::Result;

/// What a usage row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKind {
    /// One gRPC call, with its final status code and latency.
    Rpc,
    /// One completed upload, with its size.
    Upload,
    /// One executed search, with its latency and (for text) its query.
    Search,
}

impl UsageKind {
    fn as_str(self) -> &'static str {
        match self {
            UsageKind::Rpc => "rpc",
            UsageKind::Upload => "upload",
            UsageKind::Search => "search",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "rpc" => Some(UsageKind::Rpc),
            "upload" => Some(UsageKind::Upload),
            "search" => Some(UsageKind::Search),
            _ => None,
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub at_ms: i64,
    pub kind: UsageKind,
    pub method: String,
    pub code: i32,
    pub latency_ms: f64,
    pub query: Option<String>,
    pub upload_bytes: Option<i64>,
}

impl Store {
    /// Appends events in one statement.
    pub async fn insert_usage(&self, rows: Vec<UsageRow>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let models = rows.into_iter().map(|row| usage_event::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            at_ms: sea_orm::ActiveValue::Set(row.at_ms),
            kind: sea_orm::ActiveValue::Set(row.kind.as_str().to_owned()),
            method: sea_orm::ActiveValue::Set(row.method),
            code: sea_orm::ActiveValue::Set(row.code),
            latency_ms: sea_orm::ActiveValue::Set(row.latency_ms),
            query: sea_orm::ActiveValue::Set(row.query),
            upload_bytes: sea_orm::ActiveValue::Set(row.upload_bytes),
        });
        usage_event::Entity::insert_many(models)
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Returns the events recorded in `[from_ms, to_ms]`, oldest first.
    pub async fn usage_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<UsageRow>> {
        let models = usage_event::Entity::find()
            .filter(usage_event::Column::AtMs.gte(from_ms))
            .filter(usage_event::Column::AtMs.lte(to_ms))
            .order_by_asc(usage_event::Column::AtMs)
            .all(&self.db)
            .await?;
        Ok(models
            .into_iter()
            .filter_map(|m| {
                Some(UsageRow {
                    kind: UsageKind::parse(&m.kind)?,
                    at_ms: m.at_ms,
                    method: m.method,
                    code: m.code,
                    latency_ms: m.latency_ms,
                    query: m.query,
                    upload_bytes: m.upload_bytes,
                })
            })
            .collect())
    }

    /// Deletes events older than `before_ms`.
    pub async fn prune_usage(&self, before_ms: i64) -> Result<u64> {
        let result = usage_event::Entity::delete_many()
            .filter(usage_event::Column::AtMs.lt(before_ms))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }
}
