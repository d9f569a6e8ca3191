//! Every metric Traum exports, declared once: name, unit, description and
//! label names. Call sites go through these declarations, so a name cannot
//! drift and every series is described in `/metrics`.

use std::marker::PhantomData;

use metrics::{Label, Unit};

/// What every metric declares.
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Marks what a [`Metric`] records.
pub trait MetricKind {
    const KIND: Kind;
}

pub enum CounterKind {}
pub enum GaugeKind {}
pub enum HistogramKind {}

impl MetricKind for CounterKind {
    const KIND: Kind = Kind::Counter;
}
impl MetricKind for GaugeKind {
    const KIND: Kind = Kind::Gauge;
}
impl MetricKind for HistogramKind {
    const KIND: Kind = Kind::Histogram;
}

/// A metric family with `L` labels.
pub struct Metric<K, const L: usize> {
    pub def: Def,
    pub labels: [&'static str; L],
    kind: PhantomData<K>,
}

/// A monotonic counter.
pub type Counter<const L: usize> = Metric<CounterKind, L>;
/// A value that goes up and down.
pub type Gauge<const L: usize> = Metric<GaugeKind, L>;
/// A distribution of observations.
pub type Histogram<const L: usize> = Metric<HistogramKind, L>;

impl<K: MetricKind, const L: usize> Metric<K, L> {
    pub const fn new(
        name: &'static str,
        unit: Option<Unit>,
        help: &'static str,
        labels: [&'static str; L],
    ) -> Self {
        Self {
            def: Def {
                name,
                kind: K::KIND,
                unit,
                help,
            },
            labels,
            kind: PhantomData,
        }
    }

    fn labelled(&self, values: [String; L]) -> Vec<Label> {
        self.labels
            .into_iter()
            .zip(values)
            .map(|(name, value)| Label::new(name, value))
            .collect()
    }
}

impl<const L: usize> Counter<L> {
    pub fn increment(&self, values: [String; L], by: u64) {
        metrics::counter!(self.def.name, self.labelled(values)).increment(by);
    }
}

impl<const L: usize> Gauge<L> {
    pub fn set(&self, values: [String; L], value: f64) {
        metrics::gauge!(self.def.name, self.labelled(values)).set(value);
    }

    pub fn increment(&self, values: [String; L], by: f64) {
        metrics::gauge!(self.def.name, self.labelled(values)).increment(by);
    }

    pub fn decrement(&self, values: [String; L], by: f64) {
        metrics::gauge!(self.def.name, self.labelled(values)).decrement(by);
    }
}

impl<const L: usize> Histogram<L> {
    pub fn record(&self, values: [String; L], value: f64) {
        metrics::histogram!(self.def.name, self.labelled(values)).record(value);
    }
}

pub const GRPC_REQUESTS: Counter<2> = Counter::new(
    "traum_grpc_requests_total",
    None,
    "gRPC calls by method and final status code",
    ["method", "code"],
);
pub const GRPC_REQUEST_DURATION: Histogram<1> = Histogram::new(
    "traum_grpc_request_duration_seconds",
    Some(Unit::Seconds),
    "gRPC call latency by method, to the end of the response stream",
    ["method"],
);
pub const UPLOAD_BYTES: Counter<0> = Counter::new(
    "traum_upload_bytes_total",
    Some(Unit::Bytes),
    "bytes received by uploads",
    [],
);
pub const UPLOADS_IN_FLIGHT: Gauge<0> = Gauge::new(
    "traum_uploads_in_flight",
    None,
    "streamed uploads currently receiving",
    [],
);
pub const JOB_QUEUE_DEPTH: Gauge<0> =
    Gauge::new("traum_job_queue_depth", None, "jobs waiting for a worker", []);
pub const JOB_STAGE_DURATION: Histogram<1> = Histogram::new(
    "traum_job_stage_duration_seconds",
    Some(Unit::Seconds),
    "time spent in each pipeline stage",
    ["stage"],
);
pub const FINGERPRINT_DURATION: Histogram<0> = Histogram::new(
    "traum_fingerprint_seconds",
    Some(Unit::Seconds),
    "time to fingerprint one file's decoded audio, part of its analyse stage",
    [],
);
pub const JOBS_FINISHED: Counter<1> = Counter::new(
    "traum_jobs_finished_total",
    None,
    "jobs that reached a terminal state, by state",
    ["state"],
);
pub const EMBEDDED_WINDOWS: Counter<0> = Counter::new(
    "traum_embedded_windows_total",
    None,
    "10 s audio windows run through the CLAP audio encoder",
    [],
);
pub const EMBED_BATCH_DURATION: Histogram<0> = Histogram::new(
    "traum_embed_batch_seconds",
    Some(Unit::Seconds),
    "time of one forward pass of the CLAP audio encoder over a batch of windows",
    [],
);
pub const TEXT_ENCODER_RUNS: Counter<0> = Counter::new(
    "traum_text_encoder_runs_total",
    None,
    "text queries run through the CLAP text encoder (text cache misses)",
    [],
);
pub const TEXT_QUERIES_ABANDONED: Counter<0> = Counter::new(
    "traum_text_queries_abandoned_total",
    None,
    "new text queries not encoded because every caller had given up (cancelled or past its deadline)",
    [],
);
pub const TEXT_ENCODER_PASSES: Counter<0> = Counter::new(
    "traum_text_encoder_passes_total",
    None,
    "forward passes of the CLAP text encoder; runs / passes is the mean batch of queries per pass",
    [],
);
pub const TEXT_CACHE_HITS: Counter<0> = Counter::new(
    "traum_text_cache_hits_total",
    None,
    "text queries answered from the text cache",
    [],
);
pub const USAGE_EVENTS_DROPPED: Counter<0> = Counter::new(
    "traum_usage_events_dropped_total",
    None,
    "usage events dropped because the usage writer fell behind",
    [],
);
pub const AUDIT_EVENTS_DROPPED: Counter<0> = Counter::new(
    "traum_audit_events_dropped_total",
    None,
    "audit entries dropped because the audit writer fell behind",
    [],
);
pub const AUTH_FAILURES: Counter<1> = Counter::new(
    "traum_auth_failures_total",
    None,
    "calls refused for their credential: `unauthenticated` (none, unknown, revoked, expired, forged) or `permission_denied` (a role too small)",
    ["reason"],
);
pub const AUDIO_CRASHES: Counter<1> = Counter::new(
    "traum_audio_crashes_total",
    None,
    "files whose sniffing, probing, decoding or analysis panicked, by stage; each failed alone",
    ["stage"],
);
pub const CHORES_LEADER: Gauge<0> = Gauge::new(
    "traum_chores_leader",
    None,
    "1 while this replica holds the cluster's chores lease (backfills, expiry, pruning), else 0",
    [],
);
pub const JOBS_TAKEN_OVER: Counter<0> = Counter::new(
    "traum_jobs_taken_over_total",
    None,
    "jobs this replica claimed from another whose lease had passed (it died or lost the database)",
    [],
);
pub const INDEX_FEED_FILES: Counter<0> = Counter::new(
    "traum_index_feed_files_total",
    None,
    "files this replica's indexes re-read from the database after the change feed named them",
    [],
);
pub const INDEX_FEED_POSITION: Gauge<0> = Gauge::new(
    "traum_index_feed_position",
    None,
    "the change feed position this replica's indexes have caught up to (a PostgreSQL transaction id, or a SQLite row number)",
    [],
);
pub const BLOBS_LEFT_BEHIND: Counter<0> = Counter::new(
    "traum_blobs_left_behind_total",
    None,
    "unreferenced blobs a delete could not remove because the blob store failed (the bytes stay, no file refers to them)",
    [],
);
pub const BLOBS_SWEPT: Counter<0> = Counter::new(
    "traum_blobs_swept_total",
    None,
    "unreferenced blobs the chores removed from the blob store after the orphan grace",
    [],
);
pub const JOBS_WAITING_FOR_BLOBS: Counter<0> = Counter::new(
    "traum_jobs_waiting_for_blob_store_total",
    None,
    "job stages put back in the queue because the blob store could not be read",
    [],
);

/// Every declared metric.
pub static ALL: &[&Def] = &[
    &GRPC_REQUESTS.def,
    &GRPC_REQUEST_DURATION.def,
    &UPLOAD_BYTES.def,
    &UPLOADS_IN_FLIGHT.def,
    &JOB_QUEUE_DEPTH.def,
    &JOB_STAGE_DURATION.def,
    &FINGERPRINT_DURATION.def,
    &JOBS_FINISHED.def,
    &EMBEDDED_WINDOWS.def,
    &EMBED_BATCH_DURATION.def,
    &TEXT_ENCODER_RUNS.def,
    &TEXT_ENCODER_PASSES.def,
    &TEXT_QUERIES_ABANDONED.def,
    &TEXT_CACHE_HITS.def,
    &USAGE_EVENTS_DROPPED.def,
    &AUDIT_EVENTS_DROPPED.def,
    &AUTH_FAILURES.def,
    &AUDIO_CRASHES.def,
    &CHORES_LEADER.def,
    &JOBS_TAKEN_OVER.def,
    &INDEX_FEED_FILES.def,
    &INDEX_FEED_POSITION.def,
    &BLOBS_LEFT_BEHIND.def,
    &BLOBS_SWEPT.def,
    &JOBS_WAITING_FOR_BLOBS.def,
];

/// Hands every description and unit to the installed recorder.
pub fn describe_all() {
    for def in ALL {
        let (name, help) = (def.name, def.help);
        match (def.kind, def.unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_metric_has_a_unique_prometheus_name_and_a_description() {
        let names: HashSet<&str> = ALL.iter().map(|def| def.name).collect();
        assert_eq!(names.len(), ALL.len(), "a name is declared twice");
        for &&Def {
            name,
            kind,
            unit,
            help,
        } in ALL
        {
            assert!(name.starts_with("traum_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(!help.trim().is_empty(), "{name} has no description");
            assert_eq!(
                kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
            if unit == Some(Unit::Seconds) {
                assert!(name.ends_with("_seconds"), "{name}");
            }
        }
    }
}
