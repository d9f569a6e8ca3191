//! Vectors stored by key: what the graph's copy of its vectors and the fresh
//! segment are both made of, with the one exact scan over them.

use std::collections::{HashMap, HashSet};

use simsimd::SpatialSimilarity;

use super::VectorHit;

/// Keys with their vectors (`dim` values each, in key order) and the position
/// of each key. The vectors share one allocation so that an exact scan reads
/// them as one sequential stream, and so that the graph can hand them to its
/// walk as they are.
#[derive(Clone)]
pub(super) struct Segment {
    dim: usize,
    keys: Vec<u64>,
    vectors: Vec<f32>,
    pos: HashMap<u64, usize>,
}

impl Segment {
    /// An empty segment for vectors of `dim` (at least 1) dimensions.
    pub(super) fn new(dim: usize) -> Self {
        Self::with_capacity(dim, 0)
    }

    /// An empty segment with room for `rows` vectors.
    pub(super) fn with_capacity(dim: usize, rows: usize) -> Self {
        debug_assert!(dim > 0, "vectors have at least one dimension");
        Segment {
            dim,
            keys: Vec::with_capacity(rows),
            vectors: Vec::with_capacity(rows * dim),
            pos: HashMap::with_capacity(rows),
        }
    }

    /// Takes keys and vectors as a file stores them, in order; `None` when a
    /// key repeats, since each key must own exactly one position.
    pub(super) fn from_rows(dim: usize, keys: Vec<u64>, vectors: Vec<f32>) -> Option<Self> {
        debug_assert_eq!(keys.len() * dim, vectors.len());
        let pos: HashMap<u64, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
        (pos.len() == keys.len()).then_some(Segment {
            dim,
            keys,
            vectors,
            pos,
        })
    }

    pub(super) fn dim(&self) -> usize {
        self.dim
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// All vectors, contiguously, in key order.
    pub(super) fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    pub(super) fn contains(&self, key: u64) -> bool {
        self.pos.contains_key(&key)
    }

    /// The vector stored under `key`.
    pub(super) fn get(&self, key: u64) -> Option<&[f32]> {
        self.pos.get(&key).map(|&i| self.row(i))
    }

    /// Every key with its vector, in position order.
    pub(super) fn rows(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.keys.iter().copied().zip(self.vectors.chunks_exact(self.dim))
    }

    /// Scores every row whose key is not in `skip` against `query`.
    pub(super) fn scan<'a>(
        &'a self,
        query: &'a [f32],
        skip: Option<&'a HashSet<u64>>,
    ) -> impl Iterator<Item = VectorHit> + 'a {
        self.rows()
            .filter(move |(id, _)| skip.is_none_or(|skip| !skip.contains(id)))
            .map(move |(id, vector)| VectorHit {
                id,
                cosine: dot(query, vector),
            })
    }

    /// Stores `vector` under `key`, in place of any vector it had; returns
    /// the key's position.
    pub(super) fn upsert(&mut self, key: u64, vector: &[f32]) -> usize {
        let next = self.keys.len();
        let i = *self.pos.entry(key).or_insert(next);
        if i == next {
            self.keys.push(key);
            self.vectors.extend_from_slice(vector);
        } else {
            self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(vector);
        }
        i
    }

    /// Removes `key` and moves the last row into its place, as
    /// [`Vec::swap_remove`] does, so that callers can keep data of their own
    /// per position in step; returns the position the key had.
    pub(super) fn swap_remove(&mut self, key: u64) -> Option<usize> {
        let i = self.pos.remove(&key)?;
        let last = self.keys.len() - 1;
        self.keys.swap_remove(i);
        if i != last {
            self.vectors.copy_within(last * self.dim.., i * self.dim);
            self.pos.insert(self.keys[i], i);
        }
        self.vectors.truncate(last * self.dim);
        Some(i)
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// The brute-force segment: what was written since the graph was built.
/// `seqs` (one per row) tell a rebuild which rows arrived after it took its
/// snapshot.
#[derive(Clone)]
pub(super) struct Fresh {
    pub(super) rows: Segment,
    seqs: Vec<u64>,
}

impl Fresh {
    pub(super) fn new(dim: usize) -> Self {
        Fresh {
            rows: Segment::new(dim),
            seqs: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The sequence number after the newest row's, where numbering resumes.
    pub(super) fn next_seq(&self) -> u64 {
        self.seqs.iter().max().map_or(0, |s| s + 1)
    }

    pub(super) fn upsert(&mut self, key: u64, seq: u64, vector: &[f32]) {
        let i = self.rows.upsert(key, vector);
        if i == self.seqs.len() {
            self.seqs.push(seq);
        } else {
            self.seqs[i] = seq;
        }
    }

    /// Removes `key`; returns whether it was here.
    pub(super) fn remove(&mut self, key: u64) -> bool {
        let Some(i) = self.rows.swap_remove(key) else {
            return false;
        };
        self.seqs.swap_remove(i);
        true
    }

    /// The rows written at or after `seq`, as a segment of their own.
    pub(super) fn since(&self, seq: u64) -> Fresh {
        let mut fresh = Fresh::new(self.rows.dim());
        for ((key, vector), &s) in self.rows.rows().zip(&self.seqs) {
            if s >= seq {
                fresh.upsert(key, s, vector);
            }
        }
        fresh
    }
}

/// Dot product of equal-length slices (lengths are checked by callers).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    <f32 as SpatialSimilarity>::dot(a, b).map_or(f32::NEG_INFINITY, |d| d as f32)
}
