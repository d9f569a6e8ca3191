//! Usage recording and reporting. Calls are queued to a background writer
//! that inserts them in batches, so recording never waits on the database;
//! reports are computed from the stored rows only.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
pub use crate::store::MethodUsage;
use crate::store::{Store, UsageAggregates, UsageKind, UsageRow};

/// Events buffered before `record` starts dropping (and counting) them.
const QUEUE_CAPACITY: usize = 65_536;
/// Rows per insert statement.
const BATCH: usize = 512;
/// Most time an event waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Queries listed in a report.
const TOP_QUERIES: usize = 20;
/// Most buckets per report.
pub const MAX_BUCKETS: u64 = 10_000;

enum Command {
    Record(UsageRow),
    Flush(oneshot::Sender<()>),
}

/// Cheap handle that queues usage events.
#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<Command>,
}

impl UsageRecorder {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_loop(store, rx));
        Self { tx }
    }

    /// Queues one event without waiting.
    pub fn record(&self, row: UsageRow) {
        if self.tx.try_send(Command::Record(row)).is_err() {
            metrics::counter!("traum_usage_events_dropped_total").increment(1);
        }
    }

    /// Waits until every event queued so far is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Command>) {
    let mut pending: Vec<UsageRow> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Record(row)) => {
                    pending.push(row);
                    if pending.len() >= BATCH {
                        write_pending(&store, &mut pending).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    write_pending(&store, &mut pending).await;
                    let _ = done.send(());
                }
                None => {
                    write_pending(&store, &mut pending).await;
                    return;
                }
            },
            _ = tick.tick() => write_pending(&store, &mut pending).await,
        }
    }
}

async fn write_pending(store: &Store, pending: &mut Vec<UsageRow>) {
    if pending.is_empty() {
        return;
    }
    let rows = std::mem::take(pending);
    let count = rows.len();
    if let Err(err) = store.insert_usage(rows).await {
        tracing::warn!(error = %err, rows = count, "could not record usage events");
    }
}

/// One time bucket of a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketFigures {
    pub start_ms: i64,
    pub calls: u64,
    pub errors: u64,
    pub uploads: u64,
    pub uploaded_bytes: u64,
}

/// A usage report over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub rpcs: Vec<MethodUsage>,
    pub search_count: u64,
    pub search_p50_ms: f64,
    pub search_p95_ms: f64,
    pub search_p99_ms: f64,
    pub top_queries: Vec<(String, u64)>,
    pub buckets: Vec<BucketFigures>,
    pub uploads: u64,
}

/// Computes a report for `window` ending at `now_ms`, bucketed by `bucket`.
/// The database aggregates; only per-method, per-bucket and top-query rows
/// come back.
pub async fn report(store: &Store, now_ms: i64, window: Duration, bucket: Duration) -> Result<UsageReport> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let bucket_ms = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX);
    if bucket_ms < 1000 {
        return Err(Error::InvalidArgument("bucket must be at least 1s".into()));
    }
    if window_ms < bucket_ms {
        return Err(Error::InvalidArgument(
            "window must be at least one bucket long".into(),
        ));
    }
    if window_ms > 366 * 24 * 3600 * 1000 {
        return Err(Error::InvalidArgument("window must be at most 366 days".into()));
    }
    let bucket_count = (window_ms + bucket_ms - 1) / bucket_ms;
    if bucket_count as u64 > MAX_BUCKETS {
        return Err(Error::InvalidArgument(format!(
            "window/bucket gives {bucket_count} buckets; at most {MAX_BUCKETS} are allowed"
        )));
    }
    let start_ms = now_ms - window_ms;
    let aggregates = store
        .usage_aggregates(start_ms, now_ms, bucket_ms, TOP_QUERIES)
        .await?;
    Ok(shape(aggregates, start_ms, now_ms, bucket_ms, bucket_count))
}

/// Lays the aggregates out as the report: every bucket present (empty ones
/// too), methods busiest first.
fn shape(
    aggregates: UsageAggregates,
    start_ms: i64,
    end_ms: i64,
    bucket_ms: i64,
    bucket_count: i64,
) -> UsageReport {
    let UsageAggregates {
        methods,
        search,
        top_queries,
        buckets: counted,
    } = aggregates;
    let mut buckets: Vec<BucketFigures> = (0..bucket_count)
        .map(|i| BucketFigures {
            start_ms: start_ms + i * bucket_ms,
            ..BucketFigures::default()
        })
        .collect();
    let mut uploads = 0;
    for row in counted {
        // An event at the very end of the window belongs to the last bucket.
        let index = usize::try_from(row.bucket.clamp(0, bucket_count - 1)).unwrap_or(0);
        let bucket = &mut buckets[index];
        match row.kind {
            UsageKind::Rpc => {
                bucket.calls += row.events;
                bucket.errors += row.errors;
            }
            UsageKind::Upload => {
                uploads += row.events;
                bucket.uploads += row.events;
                bucket.uploaded_bytes += row.bytes;
            }
            UsageKind::Search => {}
        }
    }
    let mut rpcs = methods;
    rpcs.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.method.cmp(&b.method)));
    UsageReport {
        window_start_ms: start_ms,
        window_end_ms: end_ms,
        rpcs,
        search_count: search.count,
        search_p50_ms: search.p50_ms,
        search_p95_ms: search.p95_ms,
        search_p99_ms: search.p99_ms,
        top_queries,
        buckets,
        uploads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(at_ms: i64, method: &str, code: i32, latency_ms: f64) -> UsageRow {
        UsageRow {
            at_ms,
            kind: UsageKind::Rpc,
            method: method.into(),
            code,
            latency_ms,
            query: None,
            upload_bytes: None,
        }
    }

    #[tokio::test]
    async fn summarises_calls_errors_and_buckets() {
        let rows = vec![
            rpc(0, "/a", 0, 1.0),
            rpc(500, "/a", 5, 3.0),
            rpc(1500, "/b", 0, 2.0),
            UsageRow {
                kind: UsageKind::Upload,
                upload_bytes: Some(10),
                ..rpc(1600, "upload", 0, 0.0)
            },
            UsageRow {
                kind: UsageKind::Search,
                query: Some("pad".into()),
                ..rpc(1700, "search", 0, 7.0)
            },
            UsageRow {
                kind: UsageKind::Search,
                query: Some("pad".into()),
                ..rpc(1800, "search", 0, 9.0)
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.db").display()
        ))
        .await
        .unwrap();
        store.insert_usage(rows).await.unwrap();
        let report = report(&store, 2000, Duration::from_secs(2), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            report.rpcs[0],
            MethodUsage {
                method: "/a".into(),
                calls: 2,
                errors: 1,
                p50_ms: 1.0,
                p95_ms: 3.0
            }
        );
        assert_eq!(report.buckets[0].calls, 2);
        assert_eq!(report.buckets[0].errors, 1);
        assert_eq!(report.buckets[1].uploads, 1);
        assert_eq!(report.buckets[1].uploaded_bytes, 10);
        assert_eq!(report.top_queries, vec![("pad".to_owned(), 2)]);
        assert_eq!(report.search_p50_ms, 7.0);
        assert_eq!(report.search_p99_ms, 9.0);
    }
}
