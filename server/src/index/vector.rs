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

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use hora::core::ann_index::{ANNIndex, SerializableIndex};
use hora::core::metrics::Metric;
use hora::index::hnsw_idx::HNSWIndex;
use hora::index::hnsw_params::HNSWParams;
use serde::{Deserialize, Serialize};
use simsimd::SpatialSimilarity;

use self::element::{HnswF32, to_elements};
use self::graph::HnswGraph;
pub use self::graph::Route;
use super::IndexError;

mod element;
mod graph;

type Result<T, E = IndexError> = std::result::Result<T, E>;

/// Bumped whenever the on-disk layout changes; older saves are then stale.
pub const FORMAT_VERSION: u32 = 1;

const MANIFEST: &str = "manifest.json";
const VECTORS_MAGIC: &[u8; 8] = b"TRMVEC01";
const DELTA_MAGIC: &[u8; 8] = b"TRMDLT01";
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
    /// [`HnswGraph::calibrate`]); 0 skips calibration.
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

/// One file named by the manifest, with what it must look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub len: u64,
    pub crc32: u32,
}

/// `manifest.json`: what a saved index contains and what it was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model_id: String,
    pub dim: usize,
    /// Live items at save time.
    pub item_count: usize,
    /// Opaque to the index: the caller's DB position the save reflects (e.g.
    /// the highest embedding row id), so it can replay what came after.
    pub high_water_mark: u64,
    pub generation: u64,
    pub hnsw: HnswParams,
    /// hora's dump; `None` when the graph is empty.
    pub graph: Option<FileEntry>,
    /// Keys and vectors of the graph, in graph order.
    pub graph_vectors: FileEntry,
    /// Fresh segment and tombstones.
    pub delta: FileEntry,
}

/// An immutable, built HNSW graph with its own copy of the vectors (hora does
/// not hand vectors back by key, and exact search over candidates needs them).
struct Graph {
    generation: u64,
    hnsw: Option<HnswGraph>,
    /// How searches use `hnsw`, measured when it was built or loaded.
    route: Route,
    keys: Vec<u64>,
    vectors: Vec<f32>,
    pos: HashMap<u64, usize>,
    /// Where this graph's files live, once written.
    files: Option<GraphFiles>,
}

#[derive(Clone)]
struct GraphFiles {
    dir: PathBuf,
    graph: Option<FileEntry>,
    vectors: FileEntry,
}

impl Graph {
    fn empty(generation: u64) -> Self {
        Graph {
            generation,
            hnsw: None,
            route: Route::Exact { best_recall: 1.0 },
            keys: Vec::new(),
            vectors: Vec::new(),
            pos: HashMap::new(),
            files: None,
        }
    }

    fn vector(&self, dim: usize, i: usize) -> &[f32] {
        &self.vectors[i * dim..(i + 1) * dim]
    }
}

/// The brute-force segment. `seqs` tell a rebuild which entries arrived after
/// it took its snapshot.
#[derive(Clone, Default)]
struct Fresh {
    keys: Vec<u64>,
    seqs: Vec<u64>,
    vectors: Vec<f32>,
    pos: HashMap<u64, usize>,
}

impl Fresh {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn vector(&self, dim: usize, i: usize) -> &[f32] {
        &self.vectors[i * dim..(i + 1) * dim]
    }

    fn upsert(&mut self, dim: usize, key: u64, seq: u64, vector: &[f32]) {
        if let Some(&i) = self.pos.get(&key) {
            self.seqs[i] = seq;
            self.vectors[i * dim..(i + 1) * dim].copy_from_slice(vector);
        } else {
            self.pos.insert(key, self.keys.len());
            self.keys.push(key);
            self.seqs.push(seq);
            self.vectors.extend_from_slice(vector);
        }
    }

    fn remove(&mut self, dim: usize, key: u64) -> bool {
        let Some(i) = self.pos.remove(&key) else {
            return false;
        };
        let last = self.keys.len() - 1;
        if i != last {
            let moved = self.keys[last];
            self.keys[i] = moved;
            self.seqs[i] = self.seqs[last];
            self.vectors.copy_within(last * dim..(last + 1) * dim, i * dim);
            self.pos.insert(moved, i);
        }
        self.keys.pop();
        self.seqs.pop();
        self.vectors.truncate(last * dim);
        true
    }
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
        self.graph.keys.len() - self.tombstones.len() + self.fresh.len()
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
            Graph::empty(0),
            HashSet::new(),
            Fresh::default(),
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
        let mut keys = Vec::new();
        let mut vectors = Vec::new();
        let mut seen = HashMap::new();
        for (key, vector) in items {
            check_vector(dim, &vector)?;
            // Later duplicates win, like repeated inserts would.
            if let Some(&i) = seen.get(&key) {
                let start: usize = i * dim;
                vectors[start..start + dim].copy_from_slice(&vector);
            } else {
                seen.insert(key, keys.len());
                keys.push(key);
                vectors.extend_from_slice(&vector);
            }
        }
        let graph = build_graph(dim, &config.hnsw, 1, keys, vectors, config.persist_dir.as_deref())?;
        let index = Self::from_state(
            model_id.into(),
            dim,
            config,
            graph,
            HashSet::new(),
            Fresh::default(),
        );
        index.save_to_persist_dir();
        Ok(index)
    }

    /// Saves to the configured directory right after a build, so a crash
    /// before the next clean shutdown costs a reconcile, not another build
    /// (about 45 min for 1M vectors on 2 cores). Failing to save only costs
    /// that speed-up, so it is logged rather than returned.
    fn save_to_persist_dir(&self) {
        if let Some(dir) = self.inner.config.persist_dir.clone()
            && let Err(err) = self.save(&dir, 0)
        {
            tracing::warn!(error = %err, dir = %dir.display(), "could not save the vector index");
        }
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
        let next_seq = fresh.seqs.iter().max().map_or(0, |s| s + 1);
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
            graph_items: st.graph.keys.len(),
            fresh_items: st.fresh.len(),
            tombstones: st.tombstones.len(),
            generation: st.graph.generation,
            rebuilding: st.pending.is_some(),
            route: st.graph.route,
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        let st = self.read();
        st.fresh.pos.contains_key(&id) || (st.graph.pos.contains_key(&id) && !st.tombstones.contains(&id))
    }

    /// The stored vector of a live item (e.g. for "more like this").
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        let st = self.read();
        let dim = self.inner.dim;
        if let Some(&i) = st.fresh.pos.get(&id) {
            return Some(st.fresh.vector(dim, i).to_vec());
        }
        if st.tombstones.contains(&id) {
            return None;
        }
        st.graph.pos.get(&id).map(|&i| st.graph.vector(dim, i).to_vec())
    }

    /// Ids of every live item, in no particular order.
    pub fn ids(&self) -> Vec<u64> {
        let st = self.read();
        st.graph
            .keys
            .iter()
            .filter(|id| !st.tombstones.contains(id))
            .chain(st.fresh.keys.iter())
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
                if st.graph.pos.contains_key(&id) {
                    st.tombstones.insert(id);
                }
                st.fresh.upsert(self.inner.dim, id, seq, v);
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
            let mut found = st.fresh.remove(self.inner.dim, id);
            if st.graph.pos.contains_key(&id) && st.tombstones.insert(id) {
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
        let dim = self.inner.dim;
        if let Some(hnsw) = &st.graph.hnsw {
            let ef = ef.max(min_ef);
            let total = st.graph.keys.len();
            let live = total - st.tombstones.len();
            // Over-fetch by the tombstone share so k live results usually survive
            // the first pass; double until they do or the graph is exhausted.
            let ratio = total as f64 / live.max(1) as f64;
            let mut want = ((k as f64 * ratio).ceil() as usize + st.tombstones.len().min(8)).min(total);
            loop {
                hits.clear();
                for (position, cosine) in hnsw.search(&st.graph.vectors, dim, query, want.max(ef)) {
                    let id = st.graph.keys[position];
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
        for i in 0..st.fresh.len() {
            hits.push(VectorHit {
                id: st.fresh.keys[i],
                cosine: dot(query, st.fresh.vector(dim, i)),
            });
        }
        drop(st);
        Ok(top_k(hits, k))
    }

    /// Exact top-`k` over every live item (ground truth, and the fallback for
    /// small indexes).
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<VectorHit>> {
        check_query(self.inner.dim, query)?;
        let st = self.read();
        let dim = self.inner.dim;
        let mut hits = Vec::with_capacity(st.live_len());
        for (i, &id) in st.graph.keys.iter().enumerate() {
            if !st.tombstones.contains(&id) {
                hits.push(VectorHit {
                    id,
                    cosine: dot(query, st.graph.vector(dim, i)),
                });
            }
        }
        for i in 0..st.fresh.len() {
            hits.push(VectorHit {
                id: st.fresh.keys[i],
                cosine: dot(query, st.fresh.vector(dim, i)),
            });
        }
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
        let dim = self.inner.dim;
        let mut seen = HashSet::new();
        let mut hits = Vec::new();
        for id in candidates {
            if !seen.insert(id) {
                continue;
            }
            let vector = if let Some(&i) = st.fresh.pos.get(&id) {
                st.fresh.vector(dim, i)
            } else if let Some(&i) = st.graph.pos.get(&id)
                && !st.tombstones.contains(&id)
            {
                st.graph.vector(dim, i)
            } else {
                continue;
            };
            hits.push(VectorHit {
                id,
                cosine: dot(query, vector),
            });
        }
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
                && st.tombstones.len() as f64 > c.max_tombstone_ratio * st.graph.keys.len() as f64)
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

    fn maybe_rebuild_in_background(&self) {
        if !self.inner.config.background_rebuild
            || !self.needs_rebuild()
            || self.inner.rebuild_thread.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let index = self.clone();
        let spawned = std::thread::Builder::new().name("vector-index-rebuild".into()).spawn(move || {
            // Writes keep arriving during a long build; go again while needed.
            loop {
                match index.rebuild() {
                    Ok(true) => index.save_to_persist_dir(),
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "vector index rebuild failed; serving the old graph");
                        break;
                    }
                }
                if !index.needs_rebuild() {
                    break;
                }
            }
            index.inner.rebuild_thread.store(false, Ordering::Release);
        });
        if let Err(err) = spawned {
            self.inner.rebuild_thread.store(false, Ordering::Release);
            tracing::warn!(error = %err, "could not start the vector index rebuild thread");
        }
    }

    /// Writes the index to `dir`: hora's dump and the graph's vectors (once
    /// per graph), the fresh segment and tombstones, then `manifest.json`,
    /// each through temp file + fsync + rename so a crash leaves the previous
    /// save intact. `high_water_mark` is stored for the caller (see
    /// [`Manifest::high_water_mark`]).
    pub fn save(&self, dir: &Path, high_water_mark: u64) -> Result<Manifest> {
        let _save = self
            .inner
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let dim = self.inner.dim;
        let (mut graph, mut fresh, mut tombstones, mut item_count) = self.snapshot();
        if graph.files.is_none() {
            // The graph was built without a save directory: rebuild into `dir`.
            rebuild(&self.inner, Some(dir), true)?;
            (graph, fresh, tombstones, item_count) = self.snapshot();
        }
        let files = graph
            .files
            .clone()
            .ok_or_else(|| IndexError::Hnsw("rebuilt graph has no files".into()))?;
        if files.dir != dir {
            for entry in files.graph.iter().chain([&files.vectors]) {
                let (from, to) = (files.dir.join(&entry.name), dir.join(&entry.name));
                fs::copy(&from, &to).map_err(|e| IndexError::io(&from, e))?;
            }
        }
        let mut tombs: Vec<u64> = tombstones.drain().collect();
        tombs.sort_unstable();
        let delta_name = format!("delta-{}-{}.bin", graph.generation, unique_suffix());
        let delta = write_file_atomically(dir, &delta_name, |w| {
            w.write_all(DELTA_MAGIC)?;
            w.write_all(&(dim as u64).to_le_bytes())?;
            write_keys_vectors(w, &fresh.keys, &fresh.vectors)?;
            w.write_all(&(tombs.len() as u64).to_le_bytes())?;
            write_u64s(w, &tombs)
        })?;
        drop(fresh);
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model_id: self.inner.model_id.clone(),
            dim,
            item_count,
            high_water_mark,
            generation: graph.generation,
            hnsw: self.inner.config.hnsw.clone(),
            graph: files.graph.clone(),
            graph_vectors: files.vectors.clone(),
            delta,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| IndexError::Hnsw(format!("could not encode the manifest: {e}")))?;
        write_file_atomically(dir, MANIFEST, |w| w.write_all(&json))?;
        remove_unreferenced(dir, &manifest);
        Ok(manifest)
    }

    fn snapshot(&self) -> (Arc<Graph>, Fresh, HashSet<u64>, usize) {
        let st = self.read();
        (
            st.graph.clone(),
            st.fresh.clone(),
            st.tombstones.clone(),
            st.live_len(),
        )
    }

    /// Loads what [`save`](Self::save) wrote. Fails with
    /// [`IndexError::Missing`], [`IndexError::Stale`] (other model, dimension
    /// or format) or [`IndexError::Corrupt`]; the caller then rebuilds from
    /// the DB. `config.persist_dir` should normally be `dir`.
    pub fn load(
        dir: &Path,
        expected_model_id: &str,
        expected_dim: usize,
        config: VectorIndexConfig,
    ) -> Result<(Self, Manifest)> {
        Self::validate_config(expected_dim, &config)?;
        let corrupt = |reason: String| IndexError::Corrupt {
            path: dir.to_path_buf(),
            reason,
        };
        let manifest_path = dir.join(MANIFEST);
        let bytes = match fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::Missing(dir.to_path_buf()));
            }
            Err(e) => return Err(IndexError::io(manifest_path, e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("unreadable {MANIFEST}: {e}")))?;
        let stale = |reason: String| IndexError::Stale {
            path: dir.to_path_buf(),
            reason,
        };
        if manifest.format_version != FORMAT_VERSION {
            return Err(stale(format!(
                "format {} but this server uses {FORMAT_VERSION}",
                manifest.format_version
            )));
        }
        if manifest.model_id != expected_model_id {
            return Err(stale(format!(
                "built for model {:?}, not {expected_model_id:?}",
                manifest.model_id
            )));
        }
        if manifest.dim != expected_dim {
            return Err(stale(format!("{} dimensions, not {expected_dim}", manifest.dim)));
        }
        let dim = expected_dim;

        let bytes = read_verified(dir, &manifest.graph_vectors)?;
        let mut r = Reader::new(&bytes, dir, &manifest.graph_vectors.name);
        r.magic(VECTORS_MAGIC)?;
        r.expect_dim(dim)?;
        let (keys, vectors) = r.keys_vectors(dim)?;
        r.end()?;
        drop(bytes);

        let hnsw = match &manifest.graph {
            None if keys.is_empty() => None,
            None => return Err(corrupt("graph vectors present but no graph dump".into())),
            Some(entry) => {
                let bytes = read_verified(dir, entry)?;
                let graph = HnswGraph::from_hora_dump(&bytes, &vectors, dim)
                    .map_err(|e| corrupt(format!("{}: {e}", entry.name)))?;
                Some(graph)
            }
        };
        let pos: HashMap<u64, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
        if pos.len() != keys.len() {
            return Err(corrupt("duplicate keys in the graph".into()));
        }

        let bytes = read_verified(dir, &manifest.delta)?;
        let mut r = Reader::new(&bytes, dir, &manifest.delta.name);
        r.magic(DELTA_MAGIC)?;
        r.expect_dim(dim)?;
        let (fresh_keys, fresh_vectors) = r.keys_vectors(dim)?;
        let n_tombs = r.len()?;
        let mut tombstones = HashSet::with_capacity(n_tombs);
        for _ in 0..n_tombs {
            let t = r.u64()?;
            if !pos.contains_key(&t) {
                return Err(corrupt(format!("tombstone {t} names no graph item")));
            }
            tombstones.insert(t);
        }
        r.end()?;
        let mut fresh = Fresh::default();
        for (i, &k) in fresh_keys.iter().enumerate() {
            fresh.upsert(dim, k, i as u64, &fresh_vectors[i * dim..(i + 1) * dim]);
        }
        let live = keys.len() - tombstones.len() + fresh.len();
        if fresh.len() != fresh_keys.len() || live != manifest.item_count {
            return Err(corrupt(format!(
                "{live} items where the manifest says {}",
                manifest.item_count
            )));
        }
        let files = GraphFiles {
            dir: dir.to_path_buf(),
            graph: manifest.graph.clone(),
            vectors: manifest.graph_vectors.clone(),
        };
        let route = match &hnsw {
            Some(hnsw) => route_for(hnsw, &vectors, dim, &config.hnsw),
            None => Route::Exact { best_recall: 1.0 },
        };
        let graph = Graph {
            generation: manifest.generation,
            hnsw,
            route,
            keys,
            vectors,
            pos,
            files: Some(files),
        };
        let index = Self::from_state(manifest.model_id.clone(), dim, config, graph, tombstones, fresh);
        Ok((index, manifest))
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Snapshot, build off-lock, then swap under a short write lock. Keys touched
/// after the snapshot have a stale copy in the new graph: they become its
/// tombstones, and their current version (if any) stays in the fresh segment.
fn rebuild(inner: &Inner, persist_dir: Option<&Path>, wait: bool) -> Result<bool> {
    let _one = if wait {
        inner.rebuild_lock.lock().unwrap_or_else(PoisonError::into_inner)
    } else {
        match inner.rebuild_lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        }
    };
    let dim = inner.dim;
    let (graph, fresh, tombstones, capture_seq) = {
        let mut st = inner.state.write().unwrap_or_else(PoisonError::into_inner);
        let capture_seq = st.next_seq;
        st.pending = Some(Pending {
            touched: HashSet::new(),
        });
        (
            st.graph.clone(),
            st.fresh.clone(),
            st.tombstones.clone(),
            capture_seq,
        )
    };
    let generation = graph.generation + 1;
    let live = graph.keys.len() - tombstones.len() + fresh.len();
    let mut keys = Vec::with_capacity(live);
    let mut vectors = Vec::with_capacity(live * dim);
    for (i, &k) in graph.keys.iter().enumerate() {
        if !tombstones.contains(&k) {
            keys.push(k);
            vectors.extend_from_slice(graph.vector(dim, i));
        }
    }
    keys.extend_from_slice(&fresh.keys);
    vectors.extend_from_slice(&fresh.vectors);
    drop((graph, fresh, tombstones));
    let built = build_graph(dim, &inner.config.hnsw, generation, keys, vectors, persist_dir);

    let mut st = inner.state.write().unwrap_or_else(PoisonError::into_inner);
    let pending = st.pending.take();
    let new_graph = built?;
    let touched = pending.map(|p| p.touched).unwrap_or_default();
    let tombstones: HashSet<u64> = touched
        .into_iter()
        .filter(|k| new_graph.pos.contains_key(k))
        .collect();
    let mut fresh = Fresh::default();
    for i in 0..st.fresh.len() {
        if st.fresh.seqs[i] >= capture_seq {
            fresh.upsert(dim, st.fresh.keys[i], st.fresh.seqs[i], st.fresh.vector(dim, i));
        }
    }
    st.graph = Arc::new(new_graph);
    st.tombstones = tombstones;
    st.fresh = fresh;
    Ok(true)
}

/// Builds (and, with `persist_dir`, writes) a graph over `keys`/`vectors`.
fn build_graph(
    dim: usize,
    params: &HnswParams,
    generation: u64,
    keys: Vec<u64>,
    vectors: Vec<f32>,
    persist_dir: Option<&Path>,
) -> Result<Graph> {
    let pos: HashMap<u64, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    let mut graph = Graph {
        generation,
        hnsw: None,
        route: Route::Exact { best_recall: 1.0 },
        keys,
        vectors,
        pos,
        files: None,
    };
    if let Some(dir) = persist_dir {
        fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    }
    let stem = format!("graph-{}-{}", graph.generation, unique_suffix());
    let mut graph_entry = None;
    let n = graph.keys.len();
    if n > 0 {
        let hora_params = HNSWParams::<HnswF32>::default()
            .max_item(n)
            .n_neighbor(params.m)
            .n_neighbor0(params.m0)
            .ef_build(params.ef_construction)
            .has_deletion(false);
        let mut hnsw = HNSWIndex::<HnswF32, u64>::new(dim, &hora_params);
        for (i, &k) in graph.keys.iter().enumerate() {
            hnsw.add(to_elements(graph.vector(dim, i)), k)
                .map_err(|e| IndexError::Hnsw(e.to_string()))?;
        }
        catch_unwind(AssertUnwindSafe(|| hnsw.build(Metric::Euclidean)))
            .map_err(|_| IndexError::Hnsw("hora panicked while building the graph".into()))?
            .map_err(|e| IndexError::Hnsw(e.to_string()))?;

        // hora hands its graph over only as a dump file: into the save
        // directory when there is one, else into a scratch directory.
        let scratch;
        let dump_dir = match persist_dir {
            Some(dir) => dir,
            None => {
                scratch = tempfile::tempdir().map_err(|e| IndexError::io(std::env::temp_dir(), e))?;
                scratch.path()
            }
        };
        let name = format!("{stem}.hora");
        let tmp = dump_dir.join(format!(".{name}.tmp"));
        let tmp_str = tmp
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| IndexError::Hnsw(format!("{} is not UTF-8", tmp.display())))?;
        // hora unwraps its own I/O errors.
        catch_unwind(AssertUnwindSafe(|| hnsw.dump(&tmp_str)))
            .map_err(|_| IndexError::Hnsw(format!("hora could not write {}", tmp.display())))?
            .map_err(|e| IndexError::Hnsw(e.to_string()))?;
        drop(hnsw);
        let bytes = fs::read(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
        let hnsw = HnswGraph::from_hora_dump(&bytes, &graph.vectors, dim)
            .map_err(|e| IndexError::Hnsw(format!("hora's dump {}: {e}", tmp.display())))?;
        graph.route = route_for(&hnsw, &graph.vectors, dim, params);
        graph.hnsw = Some(hnsw);
        if persist_dir.is_some() {
            graph_entry = Some(FileEntry {
                name: name.clone(),
                len: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
            });
            drop(bytes);
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| IndexError::io(&tmp, e))?;
            let path = dump_dir.join(&name);
            fs::rename(&tmp, &path).map_err(|e| IndexError::io(&path, e))?;
        }
    }
    if let Some(dir) = persist_dir {
        let vectors = write_file_atomically(dir, &format!("{stem}.vec"), |w| {
            w.write_all(VECTORS_MAGIC)?;
            w.write_all(&(dim as u64).to_le_bytes())?;
            write_keys_vectors(w, &graph.keys, &graph.vectors)
        })?;
        sync_dir(dir)?;
        graph.files = Some(GraphFiles {
            dir: dir.to_path_buf(),
            graph: graph_entry,
            vectors,
        });
    }
    Ok(graph)
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

/// Calibrates a graph for top-10 searches (see [`HnswGraph::calibrate`]).
fn route_for(hnsw: &HnswGraph, vectors: &[f32], dim: usize, params: &HnswParams) -> Route {
    if params.target_recall <= 0.0 {
        return Route::Unchecked;
    }
    let route = hnsw.calibrate(vectors, dim, 10, params.target_recall, params.ef_search);
    tracing::info!(items = vectors.len() / dim, ?route, "vector graph calibrated");
    route
}

/// Dot product of equal-length slices (lengths are checked by callers).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    <f32 as SpatialSimilarity>::dot(a, b).map_or(f32::NEG_INFINITY, |d| d as f32)
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

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

/// Writes through a temp file, fsyncs it and renames it into place; returns
/// the entry (length and CRC-32) the manifest records.
fn write_file_atomically(
    dir: &Path,
    name: &str,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<FileEntry> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut hashing = HashingWriter {
        inner: BufWriter::new(fs::File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?),
        crc: crc32fast::Hasher::new(),
        len: 0,
    };
    body(&mut hashing).map_err(|e| IndexError::io(&tmp, e))?;
    let HashingWriter { inner, crc, len } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| IndexError::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| IndexError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| IndexError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(FileEntry {
        name: name.to_owned(),
        len,
        crc32: crc.finalize(),
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IndexError::io(dir, e))
}

/// Deletes files of older saves. Files of a newer graph (a rebuild writing
/// into the same directory right now) are left alone.
fn remove_unreferenced(dir: &Path, manifest: &Manifest) {
    let keep: HashSet<&str> = manifest
        .graph
        .iter()
        .chain([&manifest.graph_vectors, &manifest.delta])
        .map(|e| e.name.as_str())
        .collect();
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let generation = name
            .strip_prefix("graph-")
            .or_else(|| name.strip_prefix("delta-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|g| g.parse::<u64>().ok());
        let Some(generation) = generation else { continue };
        let older = generation < manifest.generation
            || (generation == manifest.generation && name.starts_with("delta-"));
        if older
            && !keep.contains(name)
            && let Err(err) = fs::remove_file(entry.path())
        {
            tracing::warn!(file = %entry.path().display(), error = %err, "could not remove an old index file");
        }
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_u64s(w: &mut dyn Write, values: &[u64]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(values.len() * 8);
    for v in values {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&buf)
}

fn write_keys_vectors(w: &mut dyn Write, keys: &[u64], vectors: &[f32]) -> std::io::Result<()> {
    w.write_all(&(keys.len() as u64).to_le_bytes())?;
    write_u64s(w, keys)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in vectors.chunks(16 * 1024) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

fn read_verified(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>> {
    let path = dir.join(&entry.name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::Corrupt {
                path: dir.to_path_buf(),
                reason: format!("{} is missing", entry.name),
            });
        }
        Err(e) => return Err(IndexError::io(path, e)),
    };
    if bytes.len() as u64 != entry.len || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(IndexError::Corrupt {
            path: dir.to_path_buf(),
            reason: format!(
                "{} does not match its length and checksum in the manifest",
                entry.name
            ),
        });
    }
    Ok(bytes)
}

/// Bounds-checked little-endian reader over a verified file.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    dir: &'a Path,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], dir: &'a Path, name: &'a str) -> Self {
        Reader {
            bytes,
            at: 0,
            dir,
            name,
        }
    }

    fn corrupt(&self, what: &str) -> IndexError {
        IndexError::Corrupt {
            path: self.dir.to_path_buf(),
            reason: format!("{}: {what} at byte {}", self.name, self.at),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.corrupt("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn magic(&mut self, magic: &[u8]) -> Result<()> {
        if self.take(magic.len())? != magic {
            return Err(self.corrupt("wrong file type"));
        }
        Ok(())
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| self.corrupt("impossible count"))
    }

    fn expect_dim(&mut self, dim: usize) -> Result<()> {
        if self.u64()? != dim as u64 {
            return Err(self.corrupt("dimension differs from the manifest"));
        }
        Ok(())
    }

    fn keys_vectors(&mut self, dim: usize) -> Result<(Vec<u64>, Vec<f32>)> {
        let n = self.len()?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(self.u64()?);
        }
        let raw = self.take(
            n.checked_mul(dim * 4)
                .ok_or_else(|| self.corrupt("impossible count"))?,
        )?;
        let vectors: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((keys, vectors))
    }

    fn end(&self) -> Result<()> {
        if self.at != self.bytes.len() {
            return Err(self.corrupt("trailing bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
