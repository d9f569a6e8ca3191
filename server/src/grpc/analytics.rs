//! `traum.v1.AnalyticsService`: library totals and recorded usage.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use traum_proto::v1 as pb;

use super::convert;
use crate::embed::ModelStatus;
use crate::state::App;
use crate::usage;

/// The AnalyticsService implementation.
pub struct AnalyticsApi {
    app: Arc<App>,
}

impl AnalyticsApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::analytics_service_server::AnalyticsService for AnalyticsApi {
    async fn get_stats(&self, _request: Request<pb::GetStatsRequest>) -> Result<Response<pb::Stats>, Status> {
        let totals = self.app.store.totals().await?;
        let uptime = self.app.started_at.elapsed();
        let model = self.app.embedder.state();
        Ok(Response::new(pb::Stats {
            file_count: totals.file_count,
            total_duration_seconds: totals.total_duration_seconds,
            stored_bytes: totals.stored_bytes,
            blob_count: totals.blob_count,
            files_by_format: totals
                .files_by_format
                .into_iter()
                .map(|(format, count)| pb::NamedCount {
                    name: convert::audio_format(format).as_str_name().to_owned(),
                    count,
                })
                .collect(),
            jobs_by_state: totals
                .jobs_by_state
                .into_iter()
                .map(|(state, count)| pb::NamedCount {
                    name: convert::job_state(state).as_str_name().to_owned(),
                    count,
                })
                .collect(),
            indexes: self
                .app
                .search
                .index_stats()
                .into_iter()
                .map(|(name, entries, size_bytes, ready, search_mode)| pb::IndexStats {
                    name: name.to_owned(),
                    entries,
                    size_bytes,
                    ready,
                    search_mode,
                })
                .collect(),
            model_name: model.name,
            model_status: match model.status {
                ModelStatus::NotConfigured => pb::ModelStatus::NotConfigured,
                ModelStatus::Loading => pb::ModelStatus::Loading,
                ModelStatus::Ready => pb::ModelStatus::Ready,
                ModelStatus::Unavailable => pb::ModelStatus::Unavailable,
            }
            .into(),
            model_message: model.message,
            uptime: Some(prost_types::Duration {
                seconds: i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(uptime.subsec_nanos()).unwrap_or(0),
            }),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn get_usage(&self, request: Request<pb::GetUsageRequest>) -> Result<Response<pb::Usage>, Status> {
        let pb::GetUsageRequest { window, bucket } = request.into_inner();
        let window = convert::std_duration(window, Duration::from_secs(24 * 3600))?;
        let bucket = convert::std_duration(bucket, Duration::from_secs(3600))?;
        // Calls recorded just before this one must be visible in the report.
        self.app.usage.flush().await;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let report = usage::report(&self.app.store, now_ms, window, bucket).await?;
        Ok(Response::new(usage_message(report)))
    }
}

fn ms_timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).map(convert::timestamp)
}

fn usage_message(report: usage::UsageReport) -> pb::Usage {
    let usage::UsageReport {
        window_start_ms,
        window_end_ms,
        rpcs,
        search_count,
        search_p50_ms,
        search_p95_ms,
        search_p99_ms,
        top_queries,
        buckets,
        uploads,
    } = report;
    pb::Usage {
        window_start: ms_timestamp(window_start_ms),
        window_end: ms_timestamp(window_end_ms),
        rpcs: rpcs
            .into_iter()
            .map(|r| pb::RpcUsage {
                method: r.method,
                calls: r.calls,
                errors: r.errors,
                p50_ms: r.p50_ms,
                p95_ms: r.p95_ms,
            })
            .collect(),
        search_count,
        search_p50_ms,
        search_p95_ms,
        search_p99_ms,
        top_queries: top_queries
            .into_iter()
            .map(|(query, count)| pb::QueryCount { query, count })
            .collect(),
        buckets: buckets
            .into_iter()
            .map(|b| pb::UsageBucket {
                start: ms_timestamp(b.start_ms),
                calls: b.calls,
                errors: b.errors,
                uploads: b.uploads,
                uploaded_bytes: b.uploaded_bytes,
            })
            .collect(),
        uploads,
    }
}
