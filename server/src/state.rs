//! Shared server state handed to every gRPC adapter.

use std::time::Instant;

use crate::blob::BlobStore;
use crate::config::Config;
use crate::embed::Embedder;
use crate::ingest::Ingest;
use crate::jobs::Jobs;
use crate::search::Search;
use crate::store::Store;
use crate::usage::UsageRecorder;

/// Everything the adapters need, built once by `run`.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub blobs: BlobStore,
    pub ingest: Ingest,
    pub jobs: Jobs,
    pub usage: UsageRecorder,
    pub embedder: Embedder,
    pub search: Search,
    pub started_at: Instant,
}
