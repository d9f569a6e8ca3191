//! `traum stats` and `traum usage`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{GetStatsRequest, GetUsageRequest, NamedCount};

use super::output::{
    dash_if_empty, hours_minutes_seconds, human_bytes, model_status_name, print_json, print_table, rpc,
    timestamp, timestamp_or_dash,
};
use super::{Globals, Outcome};

#[derive(Serialize)]
struct NamedCountJson {
    name: String,
    count: u64,
}

fn named_counts(counts: &[NamedCount]) -> Vec<NamedCountJson> {
    counts
        .iter()
        .map(|c| NamedCountJson {
            name: c.name.clone(),
            count: c.count,
        })
        .collect()
}

#[derive(Serialize)]
struct IndexJson {
    name: String,
    entries: u64,
    size_bytes: u64,
    ready: bool,
    search_mode: String,
}

#[derive(Serialize)]
struct StatsJson {
    file_count: u64,
    total_duration_seconds: f64,
    stored_bytes: u64,
    blob_count: u64,
    files_by_format: Vec<NamedCountJson>,
    jobs_by_state: Vec<NamedCountJson>,
    indexes: Vec<IndexJson>,
    model_name: String,
    model_status: String,
    model_message: String,
    uptime_seconds: Option<f64>,
    version: String,
}

fn seconds(duration: Option<&prost_types::Duration>) -> Option<f64> {
    duration.map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
}

pub async fn stats(client: &TraumClient, globals: Globals) -> anyhow::Result<Outcome> {
    let stats = rpc(client.analytics().get_stats(GetStatsRequest {}).await)?;
    let uptime = seconds(stats.uptime.as_ref());
    if globals.json {
        print_json(&StatsJson {
            file_count: stats.file_count,
            total_duration_seconds: stats.total_duration_seconds,
            stored_bytes: stats.stored_bytes,
            blob_count: stats.blob_count,
            files_by_format: named_counts(&stats.files_by_format),
            jobs_by_state: named_counts(&stats.jobs_by_state),
            indexes: stats
                .indexes
                .iter()
                .map(|i| IndexJson {
                    name: i.name.clone(),
                    entries: i.entries,
                    size_bytes: i.size_bytes,
                    ready: i.ready,
                    search_mode: i.search_mode.clone(),
                })
                .collect(),
            model_name: stats.model_name,
            model_status: model_status_name(stats.model_status),
            model_message: stats.model_message,
            uptime_seconds: uptime,
            version: stats.version,
        })?;
        return Ok(Outcome::Success);
    }

    println!("files:          {}", stats.file_count);
    println!(
        "total duration: {}",
        hours_minutes_seconds(stats.total_duration_seconds)
    );
    println!(
        "stored:         {} ({} bytes)",
        human_bytes(stats.stored_bytes),
        stats.stored_bytes
    );
    println!("blobs:          {}", stats.blob_count);
    print_counts("files by format", &stats.files_by_format);
    print_counts("jobs by state", &stats.jobs_by_state);
    if stats.indexes.is_empty() {
        println!("indexes:        -");
    } else {
        println!("indexes:");
        for index in &stats.indexes {
            println!(
                "  {}: {} entries, {}, {}",
                index.name,
                index.entries,
                human_bytes(index.size_bytes),
                if index.ready { "ready" } else { "not ready" }
            );
            if !index.search_mode.is_empty() {
                println!("    search: {}", index.search_mode);
            }
        }
    }
    println!("model:          {}", dash_if_empty(&stats.model_name));
    println!("model status:   {}", model_status_name(stats.model_status));
    if !stats.model_message.is_empty() {
        println!("model message:  {}", stats.model_message);
    }
    println!(
        "uptime:         {}",
        uptime.map_or_else(|| "-".to_owned(), hours_minutes_seconds)
    );
    println!("version:        {}", dash_if_empty(&stats.version));
    Ok(Outcome::Success)
}

fn print_counts(title: &str, counts: &[NamedCount]) {
    if counts.is_empty() {
        println!("{:<16}-", format!("{title}:"));
        return;
    }
    println!("{title}:");
    for count in counts {
        println!("  {}: {}", count.name, count.count);
    }
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// How far back to look, e.g. `24h`, `7days`.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    window: Duration,

    /// Width of each time bucket, e.g. `1h`, `15m`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    bucket: Duration,
}

#[derive(Serialize)]
struct RpcUsageJson {
    method: String,
    calls: u64,
    errors: u64,
    p50_ms: f64,
    p95_ms: f64,
}

#[derive(Serialize)]
struct QueryCountJson {
    query: String,
    count: u64,
}

#[derive(Serialize)]
struct BucketJson {
    start: Option<String>,
    calls: u64,
    errors: u64,
    uploads: u64,
    uploaded_bytes: u64,
}

#[derive(Serialize)]
struct UsageJson {
    window_start: Option<String>,
    window_end: Option<String>,
    rpcs: Vec<RpcUsageJson>,
    search_count: u64,
    search_p50_ms: f64,
    search_p95_ms: f64,
    search_p99_ms: f64,
    top_queries: Vec<QueryCountJson>,
    buckets: Vec<BucketJson>,
    uploads: u64,
}

pub async fn usage(client: &TraumClient, globals: Globals, args: UsageArgs) -> anyhow::Result<Outcome> {
    let request = GetUsageRequest {
        window: Some(prost_types::Duration::try_from(args.window).context("--window is too long")?),
        bucket: Some(prost_types::Duration::try_from(args.bucket).context("--bucket is too long")?),
    };
    let usage = rpc(client.analytics().get_usage(request).await)?;
    if globals.json {
        print_json(&UsageJson {
            window_start: timestamp(usage.window_start.as_ref()),
            window_end: timestamp(usage.window_end.as_ref()),
            rpcs: usage
                .rpcs
                .iter()
                .map(|r| RpcUsageJson {
                    method: r.method.clone(),
                    calls: r.calls,
                    errors: r.errors,
                    p50_ms: r.p50_ms,
                    p95_ms: r.p95_ms,
                })
                .collect(),
            search_count: usage.search_count,
            search_p50_ms: usage.search_p50_ms,
            search_p95_ms: usage.search_p95_ms,
            search_p99_ms: usage.search_p99_ms,
            top_queries: usage
                .top_queries
                .iter()
                .map(|q| QueryCountJson {
                    query: q.query.clone(),
                    count: q.count,
                })
                .collect(),
            buckets: usage
                .buckets
                .iter()
                .map(|b| BucketJson {
                    start: timestamp(b.start.as_ref()),
                    calls: b.calls,
                    errors: b.errors,
                    uploads: b.uploads,
                    uploaded_bytes: b.uploaded_bytes,
                })
                .collect(),
            uploads: usage.uploads,
        })?;
        return Ok(Outcome::Success);
    }

    println!(
        "window: {} .. {}",
        timestamp_or_dash(usage.window_start.as_ref()),
        timestamp_or_dash(usage.window_end.as_ref())
    );
    println!("uploads: {}", usage.uploads);
    println!();
    let rows: Vec<Vec<String>> = usage
        .rpcs
        .iter()
        .map(|r| {
            vec![
                r.method.clone(),
                r.calls.to_string(),
                r.errors.to_string(),
                format!("{:.1} ms", r.p50_ms),
                format!("{:.1} ms", r.p95_ms),
            ]
        })
        .collect();
    print_table(&["METHOD", "CALLS", "ERRORS", "P50", "P95"], &rows);
    println!();
    println!(
        "searches: {}  p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms",
        usage.search_count, usage.search_p50_ms, usage.search_p95_ms, usage.search_p99_ms
    );
    if !usage.top_queries.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = usage
            .top_queries
            .iter()
            .map(|q| vec![q.count.to_string(), q.query.clone()])
            .collect();
        print_table(&["COUNT", "QUERY"], &rows);
    }
    let active: Vec<Vec<String>> = usage
        .buckets
        .iter()
        .filter(|b| b.calls > 0 || b.errors > 0 || b.uploads > 0)
        .map(|b| {
            vec![
                timestamp_or_dash(b.start.as_ref()),
                b.calls.to_string(),
                b.errors.to_string(),
                b.uploads.to_string(),
                human_bytes(b.uploaded_bytes),
            ]
        })
        .collect();
    if !active.is_empty() {
        println!();
        print_table(
            &["BUCKET START", "CALLS", "ERRORS", "UPLOADS", "UPLOADED"],
            &active,
        );
    }
    Ok(Outcome::Success)
}
