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
//! search (Malkov & Yashunin 2018, algorithms 2 and 5) over the index's own
//! contiguous vectors with SimSIMD's runtime-dispatched dot product.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use serde::Deserialize;

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
    /// Reads the neighbour lists from a hora dump of an index over `n` vectors
    /// of `dim` dimensions, rejecting anything inconsistent (wrong counts, ids
    /// out of range) rather than trusting it.
    pub(super) fn from_hora_dump(bytes: &[u8], n: usize, dim: usize) -> Result<Self, String> {
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
        })
    }

    /// Approximately the `ef` nearest positions to `query` with their
    /// cosines, best first. `vectors` holds the graph's unit vectors
    /// contiguously, `dim` values each, in graph order.
    pub(super) fn search(&self, vectors: &[f32], dim: usize, query: &[f32], ef: usize) -> Vec<(usize, f32)> {
        let n = self.upper.len();
        if n == 0 || ef == 0 {
            return Vec::new();
        }
        let distance = |node: u32| {
            let start = node as usize * dim;
            1.0 - super::dot(query, &vectors[start..start + dim])
        };
        let mut entry = Scored {
            distance: distance(self.root),
            node: self.root,
        };
        for level in (1..=self.top_level).rev() {
            let mut moved = true;
            while moved {
                moved = false;
                let Some(list) = self.upper[entry.node as usize].get(level - 1) else {
                    break;
                };
                for &next in list {
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

        let mut visited = vec![0u64; n.div_ceil(64)];
        let mut visit = |node: u32| {
            let (word, bit) = (node as usize / 64, 1u64 << (node % 64));
            let fresh = visited[word] & bit == 0;
            visited[word] |= bit;
            fresh
        };
        visit(entry.node);
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
                    .filter(|&next| visit(next)),
            );
            // Each vector is a cache miss away. Touching them all first lets
            // the misses overlap (stable Rust has no safe prefetch
            // instruction); the dot products then mostly hit the cache.
            for &next in &unvisited {
                std::hint::black_box(vectors[next as usize * dim]);
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
        best.into_sorted_vec()
            .into_iter()
            .map(|s| (s.node as usize, 1.0 - s.distance))
            .collect()
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
            index.add(&to_elements(v), i as u64).unwrap();
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
        let graph = HnswGraph::from_hora_dump(&hora_dump(&vectors), 3000, DIM).unwrap();
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
    fn rejects_dumps_that_do_not_fit() {
        let vectors = unit_vectors(200, 3);
        let dump = hora_dump(&vectors);
        assert!(HnswGraph::from_hora_dump(&dump, 200, DIM).is_ok());
        let wrong_count = HnswGraph::from_hora_dump(&dump, 201, DIM).err().unwrap();
        assert!(wrong_count.contains("200 items"), "{wrong_count}");
        let wrong_dim = HnswGraph::from_hora_dump(&dump, 200, DIM + 1).err().unwrap();
        assert!(wrong_dim.contains("dimensions"), "{wrong_dim}");
        assert!(HnswGraph::from_hora_dump(&dump[..dump.len() / 3], 200, DIM).is_err());
        assert!(HnswGraph::from_hora_dump(b"not a dump", 200, DIM).is_err());
    }

    #[test]
    fn an_empty_search_is_empty() {
        let vectors = unit_vectors(50, 4);
        let graph = HnswGraph::from_hora_dump(&hora_dump(&vectors), 50, DIM).unwrap();
        assert!(graph.search(&vectors, DIM, &vectors[..DIM], 0).is_empty());
        let all = graph.search(&vectors, DIM, &vectors[..DIM], 500);
        let distinct: std::collections::HashSet<usize> = all.iter().map(|&(i, _)| i).collect();
        assert!(all.len() <= 50 && distinct.len() == all.len());
        assert_eq!(all[0].0, 0, "the query vector itself comes first");
    }
}
