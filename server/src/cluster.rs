//! Work done once for the whole cluster rather than once per replica: the
//! backfills after a start (files without embeddings of the loaded model,
//! zero-shot tags of another model or vocabulary, files without a
//! fingerprint), the expiry of upload sessions, the pruning of usage
//! and audit rows and of the index change feed, and the removal of blobs no
//! file references. The replica that holds the `chores` lease does it; the
//! lease passes to another replica when its holder stops renewing it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::Audit;
use crate::duplicates::Duplicates;
use crate::embed::Embedder;
use crate::ingest::Ingest;
use crate::jobs::Jobs;
use crate::library::Library;
use crate::search::Search;
use crate::store::Store;
use crate::telemetry::metrics;
use crate::zero_shot::ZeroShot;

/// The name of the lease that elects the replica doing the chores.
pub const CHORES_LEASE: &str = "chores";
/// How often the leader expires sessions and prunes old rows.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often the leader lists the blob store for unreferenced blobs (a
/// listing of a large bucket costs a request per thousand objects).
const BLOB_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// How long the index change feed keeps a row: a replica (or a saved
/// index) that was away longer checks its whole index against the
/// database instead of replaying the feed.
const FEED_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Everything the chores touch.
pub struct Chores {
    pub store: Store,
    pub holder: String,
    pub lease: Duration,
    pub jobs: Jobs,
    pub search: Search,
    pub embedder: Embedder,
    pub zero_shot: ZeroShot,
    pub duplicates: Duplicates,
    pub ingest: Ingest,
    pub library: Library,
    pub audit: Audit,
    pub orphan_blob_grace: Duration,
    pub usage_retention: Duration,
    pub audit_retention: Duration,
}

impl Chores {
    /// Competes for the chores lease every third of the lease until
    /// shutdown, then releases it so another replica takes over at once.
    /// Each term as leader starts with the backfills (a new leader cannot
    /// know how far the last one got; they are idempotent) and sweeps every
    /// minute. Every replica sweeps the session files on its own disk.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term: Option<Term> = None;
        // The first sweep comes at start: sessions that expired while the
        // server was down go at once.
        let mut last_sweep: Option<tokio::time::Instant> = None;
        let mut last_blob_sweep: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            let leading = match self
                .store
                .hold_cluster_lease(CHORES_LEASE, &self.holder, self.lease)
                .await
            {
                Ok(leading) => leading,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot renew the chores lease; leaving the chores to another replica");
                    false
                }
            };
            match (leading, term.is_some()) {
                (true, false) => {
                    tracing::info!(replica = %self.holder, "this replica does the cluster's chores");
                    metrics::CHORES_LEADER.set([], 1.0);
                    term = Some(self.begin_term(stop.clone()));
                }
                (false, true) => {
                    tracing::info!(replica = %self.holder, "another replica does the cluster's chores now");
                    metrics::CHORES_LEADER.set([], 0.0);
                    if let Some(term) = term.take() {
                        term.end();
                    }
                }
                _ => {}
            }
            if last_sweep.is_none_or(|last| last.elapsed() >= SWEEP_INTERVAL) {
                last_sweep = Some(tokio::time::Instant::now());
                self.sweep(term.is_some()).await;
            }
            if term.is_some() && last_blob_sweep.is_none_or(|last| last.elapsed() >= BLOB_SWEEP_INTERVAL) {
                last_blob_sweep = Some(tokio::time::Instant::now());
                self.sweep_blobs().await;
            }
        }
        if let Some(term) = term.take() {
            term.end();
            metrics::CHORES_LEADER.set([], 0.0);
            if let Err(err) = self.store.release_cluster_lease(CHORES_LEASE, &self.holder).await {
                tracing::warn!(error = %err, "cannot release the chores lease; another replica takes it when it passes");
            }
        }
    }

    fn begin_term(&self, stop: watch::Receiver<bool>) -> Term {
        let duplicates = self.duplicates.clone();
        let mut fingerprint_stop = stop.clone();
        let fingerprints = tokio::spawn(async move {
            tokio::select! {
                result = duplicates.backfill() => match result {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(files = count, "fingerprinted files analysed before fingerprints existed"),
                    Err(err) => tracing::warn!(error = %err, "cannot fingerprint files analysed before fingerprints existed"),
                },
                _ = fingerprint_stop.wait_for(|stop| *stop) => {}
            }
        });
        let models = tokio::spawn(model_backfills(
            self.embedder.clone(),
            self.search.clone(),
            self.jobs.clone(),
            self.zero_shot.clone(),
            stop,
        ));
        Term {
            tasks: vec![fingerprints, models],
        }
    }

    /// Expires upload sessions and prunes usage and audit rows (the
    /// leader's part, when `cluster`), and removes this replica's session
    /// files whose session is gone.
    async fn sweep(&self, cluster: bool) {
        match self.ingest.clean_up(cluster).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed expired upload sessions"),
            Err(err) => tracing::warn!(error = %err, "upload clean-up failed"),
        }
        if !cluster {
            return;
        }
        let cutoff = chrono::Utc::now().timestamp_millis()
            - i64::try_from(self.usage_retention.as_millis()).unwrap_or(i64::MAX);
        if let Err(err) = self.store.prune_usage(cutoff).await {
            tracing::warn!(error = %err, "usage pruning failed");
        }
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.audit_retention).unwrap_or(chrono::Duration::MAX);
        match self.audit.prune(cutoff).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned audit entries past their retention"),
            Err(err) => tracing::warn!(error = %err, "audit pruning failed"),
        }
        match self.store.prune_feed(chrono::Utc::now() - FEED_RETENTION).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned index changes past the feed's retention"),
            Err(err) => tracing::warn!(error = %err, "index change feed pruning failed"),
        }
    }
}

impl Chores {
    /// Removes blobs no file references once they are older than the grace.
    async fn sweep_blobs(&self) {
        let grace = chrono::Duration::from_std(self.orphan_blob_grace).unwrap_or(chrono::Duration::MAX);
        match self
            .library
            .sweep_orphaned_blobs(chrono::Utc::now() - grace)
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed blobs no file references"),
            Err(err) => tracing::warn!(error = %err, "orphaned blob sweep failed; it runs again in an hour"),
        }
    }
}

/// One stretch of holding the chores lease.
struct Term {
    tasks: Vec<JoinHandle<()>>,
}

impl Term {
    fn end(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Waits for the model and its vector index, then queues the ready files
/// without embeddings of it and recomputes zero-shot tags made with another
/// model or vocabulary.
async fn model_backfills(
    embedder: Embedder,
    search: Search,
    jobs: Jobs,
    zero_shot: ZeroShot,
    mut stop: watch::Receiver<bool>,
) {
    let mut states = embedder.subscribe();
    let engine = loop {
        if let Some(engine) = embedder.engine()
            && search.accepts_vectors()
        {
            break engine;
        }
        // The index loads after the model: poll for it between model changes.
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    };
    match jobs.queue_embedding_backfill(engine.model_id()).await {
        Ok(0) => {}
        Ok(queued) => tracing::info!(
            files = queued,
            "queued ready files without embeddings of this model"
        ),
        Err(err) => tracing::warn!(error = %err, "cannot queue files without embeddings"),
    }
    match zero_shot.refresh_stale(&engine).await {
        Ok(0) => {}
        Ok(updated) => tracing::info!(
            files = updated,
            "recomputed zero-shot tags made with another model or vocabulary"
        ),
        Err(err) => tracing::warn!(error = %err, "cannot recompute zero-shot tags"),
    }
}
