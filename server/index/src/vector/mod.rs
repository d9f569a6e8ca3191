//! Vector index over L2-normalised f32 vectors: an HNSW graph (built by hora)
//! plus an exact "fresh" segment, with tombstones and background rebuilds.
//!
//! hora 0.1.1 shapes this design:
//! - only `Metric::Euclidean` builds a correct graph (cosine panics, dot/angular
//!   rank the least similar first, upstream issue #40); on unit vectors the
//!   squared Euclidean distance orders like cosine and `cos = 1 - d²/2`;
//! - it has no delete and never sees items added after `build()`, so deletions
//!   are tombstones filtered at query time, new vectors live in a small
//!   brute-force segment, and a rebuild folds both into a new graph that is
//!   swapped in under a short write lock;
//! - its own query path skips the upper layers (see [`graph`]), so queries run
//!   over the neighbour lists read from hora's dump, with a per-query `ef`;
//! - its distance kernels do not vectorise on stable Rust, so the graph is
//!   built over [`element::HnswF32`];
//! - it panics (rather than erring) on NaN input and on I/O errors, so inputs
//!   are validated, dumps are checksummed, and `catch_unwind` is the last line
//!   of defence.
//!
//! Exact scoring (graph search, fresh segment, ground truth, filtered candidate
//! sets) goes through SimSIMD, a dependency with runtime CPU dispatch, so it is
//! fast even in debug builds of this crate.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use self::build::{Graph, build_graph, rebuild};
pub use self::graph::Route;
pub use self::persist::{FORMAT_VERSION, FileEntry, Manifest};
use self::segment::{Fresh, Segment, dot};
use super::IndexError;

mod build;
mod element;
mod graph;
mod persist;
mod segment;

type Result<T, E = IndexError> = std::result::Result<T, E>;

/// Unit vectors from the encoder drift by float rounding only; anything further
/// off would make `1 - d²/2` a wrong cosine.
const NORM_TOLERANCE: f32 = 1e-3;

/// HNSW graph parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours per node on the upper layers (hora's `n_neighbor`, "M").
    pub m: usize,
    /// Neighbours per node on layer 0 (hora's `n_neighbor0`, usually 2·M).
    pub m0: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
    /// Default candidate list size while searching (hora's own default, 16, is
    /// far too low for useful recall).
    pub ef_search: usize,
    /// Recall@10 every built graph is calibrated to (see
    /// [`HnswGraph::calibrate`](graph::HnswGraph::calibrate)); 0 skips
    /// calibration.
    #[serde(default = "default_target_recall")]
    pub target_recall: f64,
}

fn default_target_recall() -> f64 {
    0.95
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            m0: 32,
            ef_construction: 100,
            ef_search: 128,
            target_recall: default_target_recall(),
        }
    }
}

/// How the index behaves around its HNSW graph.
#[derive(Debug, Clone)]
pub struct VectorIndexConfig {
    pub hnsw: HnswParams,
    /// Rebuild once the brute-force segment holds this many vectors.
    pub fresh_limit: usize,
    /// Rebuild once this fraction of the graph's items are tombstones.
    pub max_tombstone_ratio: f64,
    /// Run rebuilds on a background thread as soon as a threshold is crossed.
    /// Off, the caller decides when to call [`VectorIndex::rebuild`].
    pub background_rebuild: bool,
    /// Where each newly built graph is written. hora can only serialise a
    /// graph it holds exclusively (`dump(&mut self)`), which is true only
    /// while it is being built; a graph built without this directory is
    /// rebuilt once by the first [`VectorIndex::save`].
    pub persist_dir: Option<PathBuf>,
}

impl Default for VectorIndexConfig {
    fn default() -> Self {
        VectorIndexConfig {
            hnsw: HnswParams::default(),
            fresh_limit: 8192,
            max_tombstone_ratio: 0.1,
            background_rebuild: true,
            persist_dir: None,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    pub id: u64,
    /// Cosine similarity with the query, in [-1, 1].
    pub cosine: f32,
}

/// Counters for health checks and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorIndexStats {
    /// Live items (what a search can return).
    pub items: usize,
    /// Items in the HNSW graph, tombstoned ones included.
    pub graph_items: usize,
    pub fresh_items: usize,
    pub tombstones: usize,
    /// Bumped by every rebuild.
    pub generation: u64,
    pub rebuilding: bool,
    /// How searches use the current graph.
    pub route: Route,
}

/// Keys touched while a rebuild runs: their copy in the new graph is stale.
struct Pending {
    touched: HashSet<u64>,
}

struct State {
    graph: Arc<Graph>,
    /// Graph keys whose graph copy is dead (deleted or superseded by fresh).
    tombstones: HashSet<u64>,
    fresh: Fresh,
    next_seq: u64,
    pending: Option<Pending>,
}

impl State {
    fn live_len(&self) -> usize {
        self.graph.rows.len() - self.tombstones.len() + self.fresh.len()
    }

    /// The vector a live item has: its fresh copy, else its graph copy unless
    /// that is tombstoned.
    fn live_vector(&self, id: u64) -> Option<&[f32]> {
        self.fresh
            .rows
            .get(id)
            .or_else(|| self.graph.rows.get(id).filter(|_| !self.tombstones.contains(&id)))
    }
}

struct Inner {
    model_id: String,
    dim: usize,
    config: VectorIndexConfig,
    state: RwLock<State>,
    /// One rebuild at a time; `try_lock` lets extra triggers return at once.
    rebuild_lock: Mutex<()>,
    rebuild_thread: AtomicBool,
    save_lock: Mutex<()>,
    /// Bytes of the copy last saved or loaded.
    saved_bytes: AtomicU64,
}

/// The vector index. Cheap to clone (shared state); all methods take `&self`
/// and may be called from many threads.
#[derive(Clone)]
pub struct VectorIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("model_id", &self.inner.model_id)
            .field("dim", &self.inner.dim)
            .field("stats", &self.stats())
            .finish()
    }
}

impl VectorIndex {
    /// An empty index for vectors of `dim` dimensions produced by `model_id`.
    pub fn new(model_id: impl Into<String>, dim: usize, config: VectorIndexConfig) -> Result<Self> {
        Self::validate_config(dim, &config)?;
        Ok(Self::from_state(
            model_id.into(),
            dim,
            config,
            Graph::unbuilt(0, Segment::new(dim)),
            HashSet::new(),
            Fresh::new(dim),
        ))
    }

    /// Builds the graph from all `items` at once (start-up rebuild from the
    /// DB). CPU-heavy and blocking: hora builds on the rayon pool.
    pub fn build(
        model_id: impl Into<String>,
        dim: usize,
        config: VectorIndexConfig,
        items: impl IntoIterator<Item = (u64, Vec<f32>)>,
    ) -> Result<Self> {
        Self::validate_config(dim, &config)?;
        let mut rows = Segment::new(dim);
        for (key, vector) in items {
            check_vector(dim, &vector)?;
            // Later duplicates win, like repeated inserts would.
            rows.upsert(key, &vector);
        }
        let graph = build_graph(&config.hnsw, 1, rows, config.persist_dir.as_deref())?;
        let index = Self::from_state(
            model_id.into(),
            dim,
            config,
            graph,
            HashSet::new(),
            Fresh::new(dim),
        );
        index.save_to_persist_dir();
        Ok(index)
    }

    fn validate_config(dim: usize, config: &VectorIndexConfig) -> Result<()> {
        let h = &config.hnsw;
        if dim == 0
            || h.m < 2
            || h.m0 < h.m
            || h.ef_construction == 0
            || h.ef_search == 0
            || !(0.0..=1.0).contains(&h.target_recall)
        {
            return Err(IndexError::BadVector(format!(
                "invalid vector index settings: dim {dim}, M {}, M0 {} (must be ≥ M), ef_construction {}, \
                 ef_search {}, target recall {} (0 to 1)",
                h.m, h.m0, h.ef_construction, h.ef_search, h.target_recall
            )));
        }
        Ok(())
    }

    fn from_state(
        model_id: String,
        dim: usize,
        config: VectorIndexConfig,
        graph: Graph,
        tombstones: HashSet<u64>,
        fresh: Fresh,
    ) -> Self {
        let next_seq = fresh.next_seq();
        VectorIndex {
            inner: Arc::new(Inner {
                model_id,
                dim,
                config,
                state: RwLock::new(State {
                    graph: Arc::new(graph),
                    tombstones,
                    fresh,
                    next_seq,
                    pending: None,
                }),
                rebuild_lock: Mutex::new(()),
                rebuild_thread: AtomicBool::new(false),
                save_lock: Mutex::new(()),
                saved_bytes: AtomicU64::new(0),
            }),
        }
    }

    pub fn dim(&self) -> usize {
        self.inner.dim
    }

    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    pub fn config(&self) -> &VectorIndexConfig {
        &self.inner.config
    }

    /// Number of live items.
    pub fn len(&self) -> usize {
        self.read().live_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> VectorIndexStats {
        let st = self.read();
        VectorIndexStats {
            items: st.live_len(),
            graph_items: st.graph.rows.len(),
            fresh_items: st.fresh.len(),
            tombstones: st.tombstones.len(),
            generation: st.graph.generation,
            rebuilding: st.pending.is_some(),
            route: st.graph.route,
        }
    }

    /// Bytes of the copy last saved to (or loaded from) disk; 0 before either.
    pub fn saved_bytes(&self) -> u64 {
        self.inner.saved_bytes.load(Ordering::Relaxed)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.read().live_vector(id).is_some()
    }

    /// The stored vector of a live item (e.g. for "more like this").
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        self.read().live_vector(id).map(<[f32]>::to_vec)
    }

    /// Ids of every live item, in no particular order.
    pub fn ids(&self) -> Vec<u64> {
        let st = self.read();
        st.graph
            .rows
            .keys()
            .iter()
            .filter(|id| !st.tombstones.contains(id))
            .chain(st.fresh.rows.keys())
            .copied()
            .collect()
    }

    /// Adds or replaces `id`. Searchable as soon as this returns.
    pub fn insert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.insert_many([(id, vector)])
    }

    /// Adds or replaces several items under one lock.
    pub fn insert_many<'a>(&self, items: impl IntoIterator<Item = (u64, &'a [f32])>) -> Result<()> {
        let items: Vec<(u64, &[f32])> = items.into_iter().collect();
        for (_, v) in &items {
            check_vector(self.inner.dim, v)?;
        }
        {
            let mut st = self.write();
            let st = &mut *st;
            for (id, v) in items {
                let seq = st.next_seq;
                st.next_seq += 1;
                if st.graph.rows.contains(id) {
                    st.tombstones.insert(id);
                }
                st.fresh.upsert(id, seq, v);
                if let Some(p) = &mut st.pending {
                    p.touched.insert(id);
                }
            }
        }
        self.maybe_rebuild_in_background();
        Ok(())
    }

    /// Removes `id`; returns whether it was live. Never returned by a search
    /// started after this returns.
    pub fn delete(&self, id: u64) -> bool {
        let found = {
            let mut st = self.write();
            let st = &mut *st;
            let mut found = st.fresh.remove(id);
            if st.graph.rows.contains(id) && st.tombstones.insert(id) {
                found = true;
            }
            if found && let Some(p) = &mut st.pending {
                p.touched.insert(id);
            }
            found
        };
        if found {
            self.maybe_rebuild_in_background();
        }
        found
    }

    /// Approximate top-`k` by cosine, with the configured `ef_search`.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<VectorHit>> {
        self.search_with_ef(query, k, self.inner.config.hnsw.ef_search)
    }

    /// Approximate top-`k` with an explicit candidate list size (recall/speed
    /// trade-off per query; values below `k`, or below what calibration found
    /// the graph needs, are raised). Exact when calibration routed the graph
    /// to exact search.
    pub fn search_with_ef(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<VectorHit>> {
        check_query(self.inner.dim, query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let st = self.read();
        let min_ef = match st.graph.route {
            Route::Graph { min_ef, .. } => min_ef,
            Route::Unchecked => 0,
            Route::Exact { .. } => {
                drop(st);
                return self.search_exact(query, k);
            }
        };
        let mut hits = Vec::with_capacity(2 * k);
        let (graph, dim) = (&st.graph, self.inner.dim);
        if let Some(hnsw) = &graph.hnsw {
            let ef = ef.max(min_ef);
            let total = graph.rows.len();
            let live = total - st.tombstones.len();
            // Over-fetch by the tombstone share so k live results usually survive
            // the first pass; double until they do or the graph is exhausted.
            let ratio = total as f64 / live.max(1) as f64;
            let mut want = ((k as f64 * ratio).ceil() as usize + st.tombstones.len().min(8)).min(total);
            loop {
                hits.clear();
                for (position, cosine) in hnsw.search(graph.rows.vectors(), dim, query, want.max(ef)) {
                    let id = graph.rows.keys()[position];
                    if !st.tombstones.contains(&id) {
                        hits.push(VectorHit { id, cosine });
                    }
                }
                if hits.len() >= k.min(live) || want >= total {
                    break;
                }
                want = (want * 2).min(total);
            }
        }
        hits.extend(st.fresh.rows.scan(query, None));
        drop(st);
        Ok(top_k(hits, k))
    }

    /// Exact top-`k` over every live item (ground truth, and the fallback for
    /// small indexes).
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<VectorHit>> {
        check_query(self.inner.dim, query)?;
        let st = self.read();
        let mut hits = Vec::with_capacity(st.live_len());
        hits.extend(st.graph.rows.scan(query, Some(&st.tombstones)));
        hits.extend(st.fresh.rows.scan(query, None));
        drop(st);
        Ok(top_k(hits, k))
    }

    /// Exact top-`k` among `candidates` only, for filters so selective that an
    /// over-fetching approximate search would starve. Unknown, deleted and
    /// repeated ids are skipped.
    pub fn search_exact_among(
        &self,
        query: &[f32],
        candidates: impl IntoIterator<Item = u64>,
        k: usize,
    ) -> Result<Vec<VectorHit>> {
        check_query(self.inner.dim, query)?;
        let st = self.read();
        let mut seen = HashSet::new();
        let hits = candidates
            .into_iter()
            .filter(|&id| seen.insert(id))
            .filter_map(|id| {
                st.live_vector(id).map(|vector| VectorHit {
                    id,
                    cosine: dot(query, vector),
                })
            })
            .collect();
        drop(st);
        Ok(top_k(hits, k))
    }

    /// Whether a threshold for folding the fresh segment and tombstones into a
    /// new graph is crossed.
    pub fn needs_rebuild(&self) -> bool {
        let st = self.read();
        let c = &self.inner.config;
        st.fresh.len() >= c.fresh_limit
            || (!st.tombstones.is_empty()
                && st.tombstones.len() as f64 > c.max_tombstone_ratio * st.graph.rows.len() as f64)
    }

    /// True while a rebuild (background or not) is running.
    pub fn is_rebuilding(&self) -> bool {
        self.read().pending.is_some()
    }

    /// Folds the fresh segment into a new graph without tombstoned items and
    /// swaps it in, on the calling thread. Searches and writes continue
    /// meanwhile. Returns `false` when another rebuild was already running.
    pub fn rebuild(&self) -> Result<bool> {
        let persist_dir = self.inner.config.persist_dir.clone();
        rebuild(&self.inner, persist_dir.as_deref(), false)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn check_vector(dim: usize, v: &[f32]) -> Result<()> {
    check_query(dim, v)?;
    let norm = dot(v, v).sqrt();
    if (norm - 1.0).abs() > NORM_TOLERANCE {
        return Err(IndexError::BadVector(format!(
            "vector norm is {norm}, not 1: L2-normalise vectors before indexing them"
        )));
    }
    Ok(())
}

fn check_query(dim: usize, v: &[f32]) -> Result<()> {
    if v.len() != dim {
        return Err(IndexError::Dimension {
            expected: dim,
            got: v.len(),
        });
    }
    if !v.iter().all(|x| x.is_finite()) {
        return Err(IndexError::BadVector("vector contains NaN or infinity".into()));
    }
    Ok(())
}

/// Best `k` by cosine, ties broken by id so results are deterministic. Ids
/// can appear twice only if a caller races a rebuild swap; keep the best.
fn top_k(mut hits: Vec<VectorHit>, k: usize) -> Vec<VectorHit> {
    let order = |a: &VectorHit, b: &VectorHit| b.cosine.total_cmp(&a.cosine).then(a.id.cmp(&b.id));
    if hits.len() > k * 2 + 16 {
        hits.select_nth_unstable_by(k * 2 + 16, order);
        hits.truncate(k * 2 + 16);
    }
    hits.sort_unstable_by(order);
    let mut seen = HashSet::with_capacity(hits.len());
    hits.retain(|h| seen.insert(h.id));
    hits.truncate(k);
    hits
}

#[cfg(test)]
mod tests;
