//! `traum.v1.AnalyticsService` messages ↔ library stats and usage reports.

use std::time::Duration;

use traum_proto::v1 as pb;

use super::{audio_format, job_state};
use crate::analytics::LibraryStats;
use crate::embed::ModelStatus;
use crate::error::{Error, Result};
use crate::search::IndexStates;
use crate::store::LibraryTotals;
use crate::usage::{BucketFigures, MethodUsage, UsageReport};

/// Reads an optional duration; absent or zero means `default`.
pub fn duration_or(raw: Option<prost_types::Duration>, default: Duration) -> Result<Duration> {
    match raw {
        None => Ok(default),
        Some(d) if d.seconds == 0 && d.nanos == 0 => Ok(default),
        Some(d) => {
            Duration::try_from(d).map_err(|_| Error::InvalidArgument("durations must be positive".into()))
        }
    }
}

fn ms_timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).map(super::timestamp)
}

pub fn stats(stats: LibraryStats) -> pb::Stats {
    let LibraryStats {
        totals,
        indexes,
        model,
        uptime,
        version,
    } = stats;
    let LibraryTotals {
        file_count,
        total_duration_seconds,
        stored_bytes,
        blob_count,
        files_by_format,
        jobs_by_state,
    } = totals;
    let IndexStates {
        vectors,
        keyword_entries,
    } = indexes;
    pb::Stats {
        file_count,
        total_duration_seconds,
        stored_bytes,
        blob_count,
        files_by_format: files_by_format
            .into_iter()
            .map(|(format, count)| pb::NamedCount {
                name: audio_format(format).as_str_name().to_owned(),
                count,
            })
            .collect(),
        jobs_by_state: jobs_by_state
            .into_iter()
            .map(|(state, count)| pb::NamedCount {
                name: job_state(state).as_str_name().to_owned(),
                count,
            })
            .collect(),
        indexes: vec![
            pb::IndexStats {
                name: "vectors".to_owned(),
                entries: vectors.entries,
                size_bytes: vectors.saved_bytes,
                ready: vectors.ready,
                search_mode: vectors.search_mode,
            },
            pb::IndexStats {
                name: "text".to_owned(),
                entries: keyword_entries,
                size_bytes: 0,
                ready: true,
                search_mode: String::new(),
            },
        ],
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
        version: version.to_owned(),
    }
}

pub fn usage(report: UsageReport) -> pb::Usage {
    let UsageReport {
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
            .map(
                |MethodUsage {
                     method,
                     calls,
                     errors,
                     p50_ms,
                     p95_ms,
                 }| pb::RpcUsage {
                    method,
                    calls,
                    errors,
                    p50_ms,
                    p95_ms,
                },
            )
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
            .map(
                |BucketFigures {
                     start_ms,
                     calls,
                     errors,
                     uploads,
                     uploaded_bytes,
                 }| pb::UsageBucket {
                    start: ms_timestamp(start_ms),
                    calls,
                    errors,
                    uploads,
                    uploaded_bytes,
                },
            )
            .collect(),
        uploads,
    }
}
