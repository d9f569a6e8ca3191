//! Searching the HNSW graph that hora builds.
//!
//! hora 0.1.1 builds a sound graph, but its query path loses most of the
//! speed the graph offers:
//! - `search_knn`'s greedy descent compares the *current* node's distance with
//!   itself (`get_distance_from_vec(self.get_data(cur_id), ..)` where the
//!   neighbour was meant), so it never moves: every query starts its layer-0
//!   beam search at the root, wherever the query lies;
//! - each vector sits behind two pointers (`Box<Node>` holding a `Vec`), and
//!   every result clones its vector.
//!
//! hora exposes no accessor for its neighbour lists, only `dump`, a bincode
//! serialisation of the index whose layout is fixed by the pinned version
//! (`=0.1.1`). So hora builds and dumps the graph; this module reads the
//! neighbour lists from the dump, checks them, and runs the standard HNSW
//! search (Malkov & Yashunin 2018, algorithms 2 and 5).
//!
//! The search is bound by memory latency, not arithmetic: every neighbour's
//! vector is a cache miss. So the graph walks a bf16 copy of the vectors
//! (half the bytes per visit; SimSIMD's bf16 dot accumulates in f32, so a
//! distance is off by ~1e-4, far below the gaps the beam search decides on)
//! and scores the final candidate list again with the f32 vectors, so the
//! cosines and their order are exact.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use serde::Deserialize;
use simsimd::{SpatialSimilarity, bf16};

/// The leading fields of `hora::index::hnsw_idx::HNSWIndex` as its `dump`
/// writes them (serde order, `#[serde(skip)]` fields absent, `usize` as u64,
/// enums as a u32 variant index). The fields after the neighbour lists (the
/// vectors) are not read: the index keeps its own copy.
#[derive(Deserialize)]
struct HoraDumpHead {
    dimension: u64,
    n_items: u64,
    n_constructed_items: u64,
    _max_item: u64,
    _n_neighbor: u64,
    _n_neighbor0: u64,
    _max_level: u64,
    cur_level: u64,
    root_id: u64,
    id2level: Vec<u64>,
    _has_removed: bool,
    _ef_build: u64,
    _ef_search: u64,
    _metric: u32,
    /// Per node, its lists on layers 1..=level.
    id2neighbor: Vec<Vec<Vec<u64>>>,
    id2neighbor0: Vec<Vec<u64>>,
}

/// Neighbour lists of every layer, by node position (hora's insertion order,
/// which is the index's key order).
pub(super) struct HnswGraph {
    root: u32,
    top_level: usize,
    /// Layer 0 in CSR form: node `i`'s neighbours are
    /// `layer0[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    layer0: Vec<u32>,
    /// Per node, its lists on layers 1..=level (empty for most nodes).
    upper: Vec<Vec<Vec<u32>>>,
    /// The vectors in bf16, `dim` values each, in graph order.
    compact: Vec<bf16>,
}

/// Items whose neighbours [`HnswGraph::calibrate`] checks: recall measured
/// over 100 × k neighbours has a standard error under 0.01 near 0.95.
const CALIBRATION_SAMPLES: usize = 100;

/// What scoring one vector during a graph walk costs relative to scoring one
/// in the exact scan (random access and heap upkeep against a sequential
/// f32 stream that is itself bound by memory bandwidth). Measured with
/// `traum-bench ann` on 100k clustered 512-d vectors, 2-core machine: 152 ns
/// per visited vector in the walk, 88–161 ns per vector in the scan.
const GRAPH_VISIT_COST: f64 = 1.5;

/// How queries run on a built graph, decided by [`HnswGraph::calibrate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Route {
    /// Walk the graph with a candidate list of at least `min_ef`, which
    /// reached `recall` on the calibration sample scoring
    /// `scored_per_query` vectors per query.
    Graph {
        min_ef: usize,
        recall: f64,
        scored_per_query: f64,
    },
    /// Score every vector: no candidate list size reached the target recall
    /// for less work than that (`best_recall` is the best the graph did).
    Exact { best_recall: f64 },
    /// Calibration is off: walk the graph with the candidate list asked for.
    Unchecked,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Graph {
                min_ef,
                recall,
                scored_per_query,
            } => write!(
                f,
                "HNSW graph, ef >= {min_ef} (calibrated recall@10 {recall:.3}, {scored_per_query:.0} vectors scored per query)"
            ),
            Route::Exact { best_recall } => write!(
                f,
                "exact scan (the graph reached recall@10 {best_recall:.3} before costing more than a scan)"
            ),
            Route::Unchecked => f.write_str("HNSW graph, uncalibrated"),
        }
    }
}

/// A set of graph positions as a bitmap: one bit per node, so a query's
/// bookkeeping is a few kilobytes and every test is one load.
struct NodeSet(Vec<u64>);

impl NodeSet {
    fn new(nodes: usize) -> Self {
        Self(vec![0; nodes.div_ceil(64)])
    }

    /// Adds `node`; true when it was not in the set yet.
    fn insert(&mut self, node: u32) -> bool {
        let (word, bit) = (node as usize / 64, 1u64 << (node % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }

    fn clear(&mut self) {
        self.0.fill(0);
    }
}

/// bf16 values per 64-byte cache line.
const CACHE_LINE_VALUES: usize = 32;

/// Round to nearest even; unit vectors hold no NaN or infinity.
fn to_bf16(x: f32) -> bf16 {
    let bits = x.to_bits();
    bf16(((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16)
}

/// A node with its distance (`1 - cosine`): smaller is closer.
#[derive(Clone, Copy)]
struct Scored {
    distance: f32,
    node: u32,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

impl HnswGraph {
    /// Reads the neighbour lists from a hora dump of an index over `vectors`
    /// (`dim` values each, in hora's insertion order), rejecting anything
    /// inconsistent (wrong counts, ids out of range) rather than trusting it.
    pub(super) fn from_hora_dump(bytes: &[u8], vectors: &[f32], dim: usize) -> Result<Self, String> {
        let n = vectors.len() / dim.max(1);
        let head: HoraDumpHead =
            bincode::deserialize(bytes).map_err(|e| format!("not a hora HNSW dump: {e}"))?;
        let count = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if count(head.dimension) != dim {
            return Err(format!("{} dimensions, not {dim}", head.dimension));
        }
        if count(head.n_items) != n || count(head.n_constructed_items) != n {
            return Err(format!(
                "{} items ({} constructed), not {n}",
                head.n_items, head.n_constructed_items
            ));
        }
        if head.id2level.len() != n || head.id2neighbor.len() != n || head.id2neighbor0.len() != n {
            return Err("neighbour lists do not cover every item".into());
        }
        let node = |id: u64| -> Result<u32, String> {
            u32::try_from(id)
                .ok()
                .filter(|&i| (i as usize) < n)
                .ok_or_else(|| format!("neighbour id {id} out of range"))
        };
        let root = node(head.root_id)?;
        let top_level = count(head.cur_level);
        let mut offsets = Vec::with_capacity(n + 1);
        let mut layer0 = Vec::with_capacity(head.id2neighbor0.iter().map(Vec::len).sum());
        offsets.push(0u32);
        for list in &head.id2neighbor0 {
            for &id in list {
                layer0.push(node(id)?);
            }
            offsets.push(u32::try_from(layer0.len()).map_err(|_| "too many edges".to_string())?);
        }
        let mut upper = Vec::with_capacity(n);
        for (levels, &level) in head.id2neighbor.iter().zip(&head.id2level) {
            if levels.len() != count(level) {
                return Err("a node's layer count does not match its level".into());
            }
            upper.push(
                levels
                    .iter()
                    .map(|list| list.iter().map(|&id| node(id)).collect::<Result<Vec<_>, _>>())
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        if upper[root as usize].len() < top_level {
            return Err("the root does not reach the top layer".into());
        }
        Ok(Self {
            root,
            top_level,
            offsets,
            layer0,
            upper,
            compact: vectors.iter().map(|&x| to_bf16(x)).collect(),
        })
    }

    /// Approximately the `ef` nearest positions to `query` with their exact
    /// cosines, best first. `vectors` holds the graph's unit vectors
    /// contiguously, `dim` values each, in graph order (the ones it was read
    /// with).
    pub(super) fn search(&self, vectors: &[f32], dim: usize, query: &[f32], ef: usize) -> Vec<(usize, f32)> {
        self.search_counting(vectors, dim, query, ef, None).0
    }

    /// [`Self::search`], also returning how many vectors it scored. A
    /// `held_out` node (never the root) is walked around as though it were
    /// not in the graph: neither scored, returned nor used as a stepping
    /// stone.
    fn search_counting(
        &self,
        vectors: &[f32],
        dim: usize,
        query: &[f32],
        ef: usize,
        held_out: Option<u32>,
    ) -> (Vec<(usize, f32)>, usize) {
        let n = self.upper.len();
        if n == 0 || ef == 0 {
            return (Vec::new(), 0);
        }
        let mut scored = 0usize;
        let compact_query: Vec<bf16> = query.iter().map(|&x| to_bf16(x)).collect();
        let compact = &self.compact;
        let mut distance = |node: u32| {
            scored += 1;
            let start = node as usize * dim;
            let dot = bf16::dot(&compact_query, &compact[start..start + dim]).unwrap_or(f64::NEG_INFINITY);
            1.0 - dot as f32
        };
        let touch = |node: u32| {
            let start = node as usize * dim;
            for line in compact[start..start + dim].iter().step_by(CACHE_LINE_VALUES) {
                std::hint::black_box(*line);
            }
        };
        let mut entry = Scored {
            distance: distance(self.root),
            node: self.root,
        };
        // hora's upper layers are tall (level probability 1/2, ~17 levels at
        // 100k), so this descent scores hundreds of vectors per query. A node
        // scored once need not be again (the entry only gets closer, so it
        // cannot win later), and the misses of the rest overlap as on layer 0.
        // A held-out node is marked seen up front in both phases, so it is
        // never scored nor stepped through.
        let mut seen = NodeSet::new(n);
        seen.insert(self.root);
        if let Some(node) = held_out {
            seen.insert(node);
        }
        let mut unscored = Vec::new();
        for level in (1..=self.top_level).rev() {
            let mut moved = true;
            while moved {
                moved = false;
                let Some(list) = self.upper[entry.node as usize].get(level - 1) else {
                    break;
                };
                unscored.clear();
                unscored.extend(list.iter().copied().filter(|&next| seen.insert(next)));
                for &next in &unscored {
                    touch(next);
                }
                for &next in &unscored {
                    let d = distance(next);
                    if d < entry.distance {
                        entry = Scored {
                            distance: d,
                            node: next,
                        };
                        moved = true;
                    }
                }
            }
        }

        // Layer 0 starts afresh: nodes scored in the descent are candidates
        // here like any other.
        seen.clear();
        seen.insert(entry.node);
        if let Some(node) = held_out {
            seen.insert(node);
        }
        let mut candidates = BinaryHeap::from([Reverse(entry)]);
        let mut best = BinaryHeap::with_capacity(ef + 1);
        best.push(entry);
        let mut unvisited = Vec::new();
        while let Some(Reverse(current)) = candidates.pop() {
            if best
                .peek()
                .is_some_and(|worst: &Scored| current.distance > worst.distance)
            {
                break;
            }
            let i = current.node as usize;
            unvisited.clear();
            unvisited.extend(
                self.layer0[self.offsets[i] as usize..self.offsets[i + 1] as usize]
                    .iter()
                    .copied()
                    .filter(|&next| seen.insert(next)),
            );
            // Each vector is a cache miss away. Touching every cache line of
            // them all first lets the misses overlap (stable Rust has no safe
            // prefetch instruction); the dot products then hit the cache.
            // Touching only each vector's first line left the rest to the
            // hardware prefetcher: 0.63x hnswlib's QPS instead of ~0.9x.
            for &next in &unvisited {
                touch(next);
            }
            for &next in &unvisited {
                let d = distance(next);
                let full = best.len() >= ef;
                if !full || best.peek().is_some_and(|worst| d < worst.distance) {
                    let scored = Scored {
                        distance: d,
                        node: next,
                    };
                    candidates.push(Reverse(scored));
                    best.push(scored);
                    if full {
                        best.pop();
                    }
                }
            }
        }
        let mut hits: Vec<(usize, f32)> = best
            .into_iter()
            .map(|s| {
                let start = s.node as usize * dim;
                (s.node as usize, super::dot(query, &vectors[start..start + dim]))
            })
            .collect();
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (hits, scored)
    }

    /// Decides how queries should run on this graph by measuring it on a
    /// sample of its own items (each one's `k` nearest others, exactly, vs
    /// what the graph finds with that item held out of the walk): the smallest candidate list size from
    /// `start_ef` up (doubling) whose recall@`k` reaches `target`, unless the
    /// graph needs more work for it than scoring every vector does, in which
    /// case exact search is both faster and exact. That is the case on data
    /// without neighbourhood structure (uniform random vectors in 512-d,
    /// where HNSW at M=16 stays below recall 0.9 even at ef 2048).
    pub(super) fn calibrate(
        &self,
        vectors: &[f32],
        dim: usize,
        k: usize,
        target: f64,
        start_ef: usize,
    ) -> Route {
        let n = self.upper.len();
        let others = n.saturating_sub(1).min(k);
        if others == 0 {
            return Route::Exact { best_recall: 1.0 };
        }
        let samples = CALIBRATION_SAMPLES.min(n);
        // The walk descends from the root, so it cannot be held out.
        let sample: Vec<usize> = (0..samples)
            .map(|j| j * n / samples)
            .map(|i| if i == self.root as usize { (i + 1) % n } else { i })
            .collect();
        let item = |i: usize| &vectors[i * dim..(i + 1) * dim];
        let truth: Vec<Vec<usize>> = sample
            .iter()
            .map(|&i| {
                let mut all: Vec<(usize, f32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (j, super::dot(item(i), item(j))))
                    .collect();
                all.select_nth_unstable_by(others - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(others);
                all.into_iter().map(|(j, _)| j).collect()
            })
            .collect();
        let mut best_recall = 0.0f64;
        let mut ef = start_ef.max(others + 1);
        loop {
            let (mut found, mut scored) = (0usize, 0usize);
            for (&i, truth) in sample.iter().zip(&truth) {
                // Searching for an indexed item with the item itself in the
                // graph is easier than a new query: the walk lands on it and
                // its own neighbour list is nearly the answer. Held out, the
                // item is a query like any other (1M clustered 512-d: without
                // this the chosen ef gave recall 0.89 on new queries).
                let (hits, count) = self.search_counting(vectors, dim, item(i), ef, Some(i as u32));
                scored += count;
                found += hits
                    .iter()
                    .take(others)
                    .filter(|(j, _)| truth.contains(j))
                    .count();
            }
            let recall = found as f64 / (samples * others) as f64;
            let scored_per_query = scored as f64 / samples as f64;
            if scored_per_query * GRAPH_VISIT_COST >= n as f64 {
                return Route::Exact { best_recall };
            }
            if recall >= target {
                return Route::Graph {
                    min_ef: ef,
                    recall,
                    scored_per_query,
                };
            }
            best_recall = best_recall.max(recall);
            if ef >= n {
                return Route::Exact { best_recall };
            }
            ef = (ef * 2).min(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use hora::core::ann_index::{ANNIndex, SerializableIndex};
    use hora::core::metrics::Metric;
    use hora::index::hnsw_idx::HNSWIndex;
    use hora::index::hnsw_params::HNSWParams;

    use super::super::element::{HnswF32, to_elements};
    use super::super::tests::Rng;
    use super::*;

    const DIM: usize = 24;

    fn unit_vectors(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        (0..n).flat_map(|_| rng.unit(DIM)).collect()
    }

    fn hora_dump(vectors: &[f32]) -> Vec<u8> {
        let n = vectors.len() / DIM;
        let params = HNSWParams::<HnswF32>::default()
            .max_item(n)
            .n_neighbor(8)
            .n_neighbor0(16)
            .ef_build(64);
        let mut index = HNSWIndex::<HnswF32, u64>::new(DIM, &params);
        for (i, v) in vectors.chunks_exact(DIM).enumerate() {
            index.add(to_elements(v), i as u64).unwrap();
        }
        index.build(Metric::Euclidean).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("graph.hora");
        index.dump(path.to_str().unwrap()).unwrap();
        std::fs::read(path).unwrap()
    }

    fn exact_top(vectors: &[f32], query: &[f32], k: usize) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = vectors
            .chunks_exact(DIM)
            .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().take(k).map(|(i, _)| i).collect()
    }

    #[test]
    fn searches_the_graph_hora_built() {
        let vectors = unit_vectors(3000, 1);
        let graph = HnswGraph::from_hora_dump(&hora_dump(&vectors), &vectors, DIM).unwrap();
        assert!(graph.top_level > 0 && !graph.upper[graph.root as usize].is_empty());
        let queries = unit_vectors(100, 2);
        let mut found = 0;
        for query in queries.chunks_exact(DIM) {
            let hits = graph.search(&vectors, DIM, query, 64);
            assert_eq!(hits.len(), 64);
            assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
            for &(i, cosine) in &hits {
                let direct: f32 = vectors[i * DIM..(i + 1) * DIM]
                    .iter()
                    .zip(query)
                    .map(|(a, b)| a * b)
                    .sum();
                assert!((cosine - direct).abs() < 1e-5);
            }
            let truth = exact_top(&vectors, query, 10);
            found += hits[..10].iter().filter(|(i, _)| truth.contains(i)).count();
        }
        let recall = found as f64 / 1000.0;
        assert!(recall >= 0.95, "recall@10 {recall}");
        // Every item finds itself: the graph reaches all of it.
        let misses = (0..3000)
            .filter(|&i| graph.search(&vectors, DIM, &vectors[i * DIM..(i + 1) * DIM], 16)[0].0 != i)
            .count();
        // hora's neighbour pruning can leave a rare node without incoming
        // layer-0 edges; anything beyond that would be a traversal bug.
        assert!(misses <= 30, "{misses} items do not find themselves");
    }

    #[test]
    fn a_held_out_item_is_walked_around() {
        let vectors = unit_vectors(3000, 7);
        let graph = HnswGraph::from_hora_dump(&hora_dump(&vectors), &vectors, DIM).unwrap();
        let mut found = 0;
        let held_out: Vec<usize> = (0..3000)
            .step_by(31)
            .filter(|&i| i != graph.root as usize)
            .collect();
        for &i in &held_out {
            let item = &vectors[i * DIM..(i + 1) * DIM];
            let (hits, _) = graph.search_counting(&vectors, DIM, item, 64, Some(i as u32));
            assert_eq!(hits.len(), 64);
            assert!(hits.iter().all(|&(j, _)| j != i), "item {i} came back");
            // Its nearest others are still found: only the item is gone.
            let truth: Vec<usize> = exact_top(&vectors, item, 11)
                .into_iter()
                .filter(|&j| j != i)
                .collect();
            found += hits[..10].iter().filter(|(j, _)| truth.contains(j)).count();
        }
        let recall = found as f64 / (10 * held_out.len()) as f64;
        assert!(recall >= 0.95, "recall@10 around held-out items {recall}");
    }

    #[test]
    fn rejects_dumps_that_do_not_fit() {
        let vectors = unit_vectors(200, 3);
        let dump = hora_dump(&vectors);
        assert!(HnswGraph::from_hora_dump(&dump, &vectors, DIM).is_ok());
        let more = unit_vectors(201, 3);
        let wrong_count = HnswGraph::from_hora_dump(&dump, &more, DIM).err().unwrap();
        assert!(wrong_count.contains("200 items"), "{wrong_count}");
        let wide = vec![0.2; 200 * (DIM + 1)];
        let wrong_dim = HnswGraph::from_hora_dump(&dump, &wide, DIM + 1).err().unwrap();
        assert!(wrong_dim.contains("dimensions"), "{wrong_dim}");
        assert!(HnswGraph::from_hora_dump(&dump[..dump.len() / 3], &vectors, DIM).is_err());
        assert!(HnswGraph::from_hora_dump(b"not a dump", &vectors, DIM).is_err());
    }

    #[test]
    fn an_empty_search_is_empty() {
        let vectors = unit_vectors(50, 4);
        let graph = HnswGraph::from_hora_dump(&hora_dump(&vectors), &vectors, DIM).unwrap();
        assert!(graph.search(&vectors, DIM, &vectors[..DIM], 0).is_empty());
        let all = graph.search(&vectors, DIM, &vectors[..DIM], 500);
        let distinct: std::collections::HashSet<usize> = all.iter().map(|&(i, _)| i).collect();
        assert!(all.len() <= 50 && distinct.len() == all.len());
        assert_eq!(all[0].0, 0, "the query vector itself comes first");
    }
}
