//! The usage table: recorded calls, uploads and searches.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryResult, Statement, Value};

use super::entities::usage_event;
use super::{Store, corrupt};
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
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Rpc => "rpc",
            UsageKind::Upload => "upload",
            UsageKind::Search => "search",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
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

/// Calls, errors and latency percentiles of one RPC method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodUsage {
    pub method: String,
    pub calls: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// How many searches ran and how long they took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Events of one kind in one time bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketAggregate {
    /// `(at_ms - from_ms) / bucket_ms`.
    pub bucket: i64,
    pub kind: UsageKind,
    pub events: u64,
    /// Events with a non-zero status code.
    pub errors: u64,
    /// Uploaded bytes (upload events).
    pub bytes: u64,
}

/// What [`Store::usage_aggregates`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageAggregates {
    pub methods: Vec<MethodUsage>,
    pub search: SearchLatency,
    pub top_queries: Vec<(String, u64)>,
    pub buckets: Vec<BucketAggregate>,
}

/// The nearest-rank percentile's rank among `n` sorted values,
/// `ceil(q · n / 100)`, as an SQL expression over the column `n`.
fn nearest_rank(q: i64) -> String {
    format!("({q} * n + 99) / 100")
}

/// [`nearest_rank`] computed here.
fn rank_of(q: i64, n: i64) -> i64 {
    (q * n + 99) / 100
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
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

    /// Aggregates the events in `[from_ms, to_ms]` inside the database:
    /// per-method calls, errors and latency percentiles, search latency
    /// percentiles, the most frequent queries and per-bucket counts. Only
    /// aggregated rows leave the database, whatever the window holds.
    pub async fn usage_aggregates(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        top_queries: usize,
    ) -> Result<UsageAggregates> {
        let range = [Value::from(from_ms), Value::from(to_ms)];
        let mut methods: Vec<MethodUsage> = Vec::new();
        for row in self
            .query(
                &format!(
                    "SELECT method, n, errors, rn, latency_ms FROM ( \
                       SELECT method, latency_ms, \
                         ROW_NUMBER() OVER (PARTITION BY method ORDER BY latency_ms) AS rn, \
                         COUNT(*) OVER (PARTITION BY method) AS n, \
                         SUM(CASE WHEN code NOT IN (0, 1) THEN 1 ELSE 0 END) OVER (PARTITION BY method) AS errors \
                       FROM usage_events WHERE kind = 'rpc' AND at_ms >= $1 AND at_ms <= $2 \
                     ) ranked WHERE rn = {} OR rn = {}",
                    nearest_rank(50),
                    nearest_rank(95)
                ),
                range.clone(),
            )
            .await?
        {
            let method: String = row.try_get("", "method")?;
            let (n, errors, rank): (i64, i64, i64) = (
                row.try_get("", "n")?,
                row.try_get("", "errors")?,
                row.try_get("", "rn")?,
            );
            let latency: f64 = row.try_get("", "latency_ms")?;
            let entry = match methods.iter_mut().position(|m| m.method == method) {
                Some(i) => &mut methods[i],
                None => {
                    methods.push(MethodUsage {
                        method,
                        calls: to_u64(n),
                        errors: to_u64(errors),
                        p50_ms: 0.0,
                        p95_ms: 0.0,
                    });
                    let last = methods.len() - 1;
                    &mut methods[last]
                }
            };
            if rank == rank_of(50, n) {
                entry.p50_ms = latency;
            }
            if rank == rank_of(95, n) {
                entry.p95_ms = latency;
            }
        }
        let mut search = SearchLatency::default();
        for row in self
            .query(
                &format!(
                    "SELECT n, rn, latency_ms FROM ( \
                       SELECT latency_ms, \
                         ROW_NUMBER() OVER (ORDER BY latency_ms) AS rn, \
                         COUNT(*) OVER () AS n \
                       FROM usage_events WHERE kind = 'search' AND at_ms >= $1 AND at_ms <= $2 \
                     ) ranked WHERE rn = {} OR rn = {} OR rn = {}",
                    nearest_rank(50),
                    nearest_rank(95),
                    nearest_rank(99)
                ),
                range.clone(),
            )
            .await?
        {
            let (n, rank): (i64, i64) = (row.try_get("", "n")?, row.try_get("", "rn")?);
            let latency: f64 = row.try_get("", "latency_ms")?;
            search.count = to_u64(n);
            for (q, slot) in [
                (50, &mut search.p50_ms),
                (95, &mut search.p95_ms),
                (99, &mut search.p99_ms),
            ] {
                if rank == rank_of(q, n) {
                    *slot = latency;
                }
            }
        }
        let mut top = Vec::new();
        for row in self
            .query(
                "SELECT query, COUNT(*) AS uses FROM usage_events \
                 WHERE kind = 'search' AND query IS NOT NULL AND at_ms >= $1 AND at_ms <= $2 \
                 GROUP BY query ORDER BY uses DESC, query ASC LIMIT $3",
                vec![
                    Value::from(from_ms),
                    Value::from(to_ms),
                    Value::from(i64::try_from(top_queries).unwrap_or(i64::MAX)),
                ],
            )
            .await?
        {
            let (query, uses): (String, i64) = (row.try_get("", "query")?, row.try_get("", "uses")?);
            top.push((query, to_u64(uses)));
        }
        let mut buckets = Vec::new();
        for row in self
            .query(
                "SELECT (at_ms - $1) / $2 AS bucket, kind, COUNT(*) AS events, \
                   SUM(CASE WHEN code NOT IN (0, 1) THEN 1 ELSE 0 END) AS errors, \
                   CAST(COALESCE(SUM(upload_bytes), 0) AS BIGINT) AS bytes \
                 FROM usage_events WHERE kind IN ('rpc', 'upload') AND at_ms >= $3 AND at_ms <= $4 \
                 GROUP BY bucket, kind",
                vec![
                    Value::from(from_ms),
                    Value::from(bucket_ms),
                    Value::from(from_ms),
                    Value::from(to_ms),
                ],
            )
            .await?
        {
            let kind: String = row.try_get("", "kind")?;
            let (events, errors, bytes): (i64, i64, i64) = (
                row.try_get("", "events")?,
                row.try_get("", "errors")?,
                row.try_get("", "bytes")?,
            );
            buckets.push(BucketAggregate {
                bucket: row.try_get("", "bucket")?,
                kind: UsageKind::parse(&kind).ok_or_else(|| corrupt("usage kind", &kind))?,
                events: to_u64(events),
                errors: to_u64(errors),
                bytes: to_u64(bytes),
            });
        }
        Ok(UsageAggregates {
            methods,
            search,
            top_queries: top,
            buckets,
        })
    }

    async fn query(&self, sql: &str, values: impl IntoIterator<Item = Value>) -> Result<Vec<QueryResult>> {
        let statement = Statement::from_sql_and_values(self.db.get_database_backend(), sql, values);
        Ok(self.db.query_all_raw(statement).await?)
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
