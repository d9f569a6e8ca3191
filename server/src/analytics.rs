//! Library totals and recorded usage: what `AnalyticsService` reports.

use std::time::{Duration, Instant};

use crate::embed::{Embedder, ModelState};
use crate::error::Result;
use crate::search::{IndexStates, Search};
use crate::store::{LibraryTotals, Store};
use crate::usage::{self, UsageRecorder, UsageReport};

/// Cheap handle to the analytics service.
#[derive(Clone)]
pub struct Analytics {
    store: Store,
    search: Search,
    embedder: Embedder,
    usage: UsageRecorder,
    started_at: Instant,
}

/// Everything `GetStats` shows.
#[derive(Debug, Clone)]
pub struct LibraryStats {
    pub totals: LibraryTotals,
    pub indexes: IndexStates,
    pub model: ModelState,
    pub uptime: Duration,
    pub version: &'static str,
}

impl Analytics {
    pub fn new(store: Store, search: Search, embedder: Embedder, usage: UsageRecorder) -> Self {
        Self {
            store,
            search,
            embedder,
            usage,
            started_at: Instant::now(),
        }
    }

    /// Library totals, indexes, model and uptime.
    pub async fn stats(&self) -> Result<LibraryStats> {
        Ok(LibraryStats {
            totals: self.store.totals().await?,
            indexes: self.search.index_states(),
            model: self.embedder.state(),
            uptime: self.started_at.elapsed(),
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    /// Recorded usage over `window` up to now, in buckets of `bucket`.
    pub async fn usage(&self, window: Duration, bucket: Duration) -> Result<UsageReport> {
        // Calls recorded just before this one must be visible in the report.
        self.usage.flush().await;
        let now_ms = chrono::Utc::now().timestamp_millis();
        usage::report(&self.store, now_ms, window, bucket).await
    }
}
