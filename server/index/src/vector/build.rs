//! Building graphs: hora's build and dump, calibration, and the rebuild that
//! folds the fresh segment and tombstones into a new graph while searches and
//! writes go on.

use std::collections::HashSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, TryLockError};

use hora::core::ann_index::{ANNIndex, SerializableIndex};
use hora::core::metrics::Metric;
use hora::index::hnsw_idx::HNSWIndex;
use hora::index::hnsw_params::HNSWParams;

use super::element::{HnswF32, to_elements};
use super::graph::HnswGraph;
use super::persist::{FileEntry, sync_dir, unique_suffix, write_graph_vectors};
use super::segment::Segment;
use super::{HnswParams, Inner, Pending, Result, Route, VectorIndex};
use crate::IndexError;

/// An immutable, built HNSW graph with its own copy of the vectors (hora does
/// not hand vectors back by key, and exact search over candidates needs them).
pub(super) struct Graph {
    pub(super) generation: u64,
    pub(super) hnsw: Option<HnswGraph>,
    /// How searches use `hnsw`, measured when it was built or loaded.
    pub(super) route: Route,
    pub(super) rows: Segment,
    /// Where this graph's files live, once written.
    pub(super) files: Option<GraphFiles>,
}

#[derive(Clone)]
pub(super) struct GraphFiles {
    pub(super) dir: PathBuf,
    pub(super) graph: Option<FileEntry>,
    pub(super) vectors: FileEntry,
}

impl Graph {
    /// A graph over `rows` before hora has built anything: searched exactly,
    /// and not written anywhere yet.
    pub(super) fn unbuilt(generation: u64, rows: Segment) -> Self {
        Graph {
            generation,
            hnsw: None,
            route: Route::Exact { best_recall: 1.0 },
            rows,
            files: None,
        }
    }
}

impl VectorIndex {
    pub(super) fn maybe_rebuild_in_background(&self) {
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
}

/// Snapshot, build off-lock, then swap under a short write lock. Keys touched
/// after the snapshot have a stale copy in the new graph: they become its
/// tombstones, and their current version (if any) stays in the fresh segment.
pub(super) fn rebuild(inner: &Inner, persist_dir: Option<&Path>, wait: bool) -> Result<bool> {
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
    let live = graph.rows.len() - tombstones.len() + fresh.len();
    let mut rows = Segment::with_capacity(dim, live);
    let live_graph_rows = graph.rows.rows().filter(|(k, _)| !tombstones.contains(k));
    for (key, vector) in live_graph_rows.chain(fresh.rows.rows()) {
        rows.upsert(key, vector);
    }
    drop((graph, fresh, tombstones));
    let built = build_graph(&inner.config.hnsw, generation, rows, persist_dir);

    let mut st = inner.state.write().unwrap_or_else(PoisonError::into_inner);
    let pending = st.pending.take();
    let new_graph = built?;
    let touched = pending.map(|p| p.touched).unwrap_or_default();
    let tombstones: HashSet<u64> = touched
        .into_iter()
        .filter(|&k| new_graph.rows.contains(k))
        .collect();
    st.fresh = st.fresh.since(capture_seq);
    st.graph = Arc::new(new_graph);
    st.tombstones = tombstones;
    Ok(true)
}

/// Builds (and, with `persist_dir`, writes) a graph over `rows`.
pub(super) fn build_graph(
    params: &HnswParams,
    generation: u64,
    rows: Segment,
    persist_dir: Option<&Path>,
) -> Result<Graph> {
    let dim = rows.dim();
    let mut graph = Graph::unbuilt(generation, rows);
    if let Some(dir) = persist_dir {
        fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    }
    let stem = format!("graph-{}-{}", graph.generation, unique_suffix());
    let mut graph_entry = None;
    let n = graph.rows.len();
    if n > 0 {
        let hora_params = HNSWParams::<HnswF32>::default()
            .max_item(n)
            .n_neighbor(params.m)
            .n_neighbor0(params.m0)
            .ef_build(params.ef_construction)
            .has_deletion(false);
        let mut hnsw = HNSWIndex::<HnswF32, u64>::new(dim, &hora_params);
        for (k, vector) in graph.rows.rows() {
            hnsw.add(to_elements(vector), k)
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
        let hnsw = HnswGraph::from_hora_dump(&bytes, graph.rows.vectors(), dim)
            .map_err(|e| IndexError::Hnsw(format!("hora's dump {}: {e}", tmp.display())))?;
        graph.route = route_for(&hnsw, graph.rows.vectors(), dim, params);
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
        let vectors = write_graph_vectors(dir, &format!("{stem}.vec"), &graph.rows)?;
        // Also makes the dump's rename above durable.
        sync_dir(dir)?;
        graph.files = Some(GraphFiles {
            dir: dir.to_path_buf(),
            graph: graph_entry,
            vectors,
        });
    }
    Ok(graph)
}

/// Calibrates a graph for top-10 searches (see [`HnswGraph::calibrate`]).
pub(super) fn route_for(hnsw: &HnswGraph, vectors: &[f32], dim: usize, params: &HnswParams) -> Route {
    if params.target_recall <= 0.0 {
        return Route::Unchecked;
    }
    let route = hnsw.calibrate(vectors, dim, 10, params.target_recall, params.ef_search);
    tracing::info!(items = vectors.len() / dim, ?route, "vector graph calibrated");
    route
}
