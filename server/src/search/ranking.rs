//! Ranking: from the vectors nearest to a query to a page of files.
//!
//! A file's cosine is the best cosine among its vectors (its pooled vector
//! and its windows), and its segment is its best-matching window. With a
//! keyword weight `w` (0 to 1) and keyword scores, a file's score is
//! `(1 − w) · cosine + w · bm25 / max_bm25`, where `max_bm25` is the best
//! keyword score among the files considered; without, it is the cosine.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use traum_index::vector::VectorHit;

use super::vectors::{Owners, Vectors};
use crate::error::Result;

/// Below this many candidate vectors a filtered search scores every one of
/// them exactly instead of over-fetching from the graph.
const EXACT_SEARCH_LIMIT: usize = 20_000;

/// A file's best match before its record is read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ranked {
    pub file_id: Arc<str>,
    pub cosine: f64,
    pub score: f64,
    /// Start and end seconds of the best-matching window (the whole file
    /// when it has no window vectors).
    pub segment: (f64, f64),
}

/// The best-matching files (at least `need` of them when that many exist),
/// each with its best cosine and best window. `allowed` (when given) is the
/// exact set of files the filters admit; files in `exclude` are left out.
pub(super) fn best_per_file(
    vectors: &Vectors,
    query: &[f32],
    allowed: Option<&HashSet<String>>,
    exclude: &HashSet<String>,
    need: usize,
) -> Result<Vec<Ranked>> {
    let owners = vectors.owners.read().unwrap_or_else(PoisonError::into_inner);
    let admits =
        |file_id: &str| !exclude.contains(file_id) && allowed.is_none_or(|set| set.contains(file_id));
    let total = vectors.index.len();
    let hits = match allowed {
        // A selective filter: score every vector of the admitted files.
        Some(set)
            if set
                .iter()
                .map(|id| owners.by_file.get(id.as_str()).map_or(0, Vec::len))
                .sum::<usize>()
                <= EXACT_SEARCH_LIMIT =>
        {
            let candidates: Vec<u64> = set
                .iter()
                .filter(|id| !exclude.contains(id.as_str()))
                .filter_map(|id| owners.by_file.get(id.as_str()))
                .flatten()
                .copied()
                .collect();
            let count = candidates.len();
            vectors.index.search_exact_among(query, candidates, count)?
        }
        // Otherwise over-fetch from the graph and widen until enough files
        // pass the filter or every vector has been seen.
        _ => {
            let ef = vectors.index.config().hnsw.ef_search;
            let mut k = need.saturating_mul(8).max(64).min(total);
            loop {
                let hits = vectors.index.search_with_ef(query, k, ef.max(k))?;
                let files: HashSet<&str> = hits
                    .iter()
                    .filter_map(|h| owners.by_id.get(&h.id))
                    .map(|o| o.file_id.as_ref())
                    .filter(|id| admits(id))
                    .collect();
                if files.len() >= need || k >= total {
                    break hits;
                }
                k = k.saturating_mul(4).min(total);
            }
        }
    };
    Ok(per_file(&hits, &owners, admits))
}

/// Start seconds and cosine of each window of a file, in time order.
pub(super) type WindowScores = Vec<(f64, f32)>;

/// The cosine of `query` with every window of each file, in time order:
/// exact, over a page of files.
pub(super) fn window_scores(
    vectors: &Vectors,
    query: &[f32],
    files: &[Arc<str>],
) -> Result<HashMap<Arc<str>, WindowScores>> {
    let owners = vectors.owners.read().unwrap_or_else(PoisonError::into_inner);
    let mut out = HashMap::with_capacity(files.len());
    for file in files {
        let windows: Vec<u64> = owners
            .by_file
            .get(file)
            .into_iter()
            .flatten()
            .copied()
            .filter(|id| owners.by_id.get(id).is_some_and(|o| o.window.is_some()))
            .collect();
        let count = windows.len();
        let mut scored: WindowScores = vectors
            .index
            .search_exact_among(query, windows, count)?
            .into_iter()
            .filter_map(|hit| owners.by_id.get(&hit.id).map(|o| (o.start, hit.cosine)))
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.insert(file.clone(), scored);
    }
    Ok(out)
}

/// Folds vector hits into one entry per admitted file: its best cosine and
/// the range of its best window.
pub(super) fn per_file(hits: &[VectorHit], owners: &Owners, admits: impl Fn(&str) -> bool) -> Vec<Ranked> {
    let mut best: HashMap<Arc<str>, Ranked> = HashMap::new();
    let mut best_window: HashMap<Arc<str>, (f32, f64, f64)> = HashMap::new();
    for hit in hits {
        let Some(owner) = owners.by_id.get(&hit.id) else {
            continue;
        };
        if !admits(&owner.file_id) {
            continue;
        }
        let cosine = f64::from(hit.cosine);
        let entry = best.entry(owner.file_id.clone()).or_insert_with(|| Ranked {
            file_id: owner.file_id.clone(),
            cosine: f64::NEG_INFINITY,
            score: 0.0,
            segment: (owner.start, owner.end),
        });
        entry.cosine = entry.cosine.max(cosine);
        if owner.window.is_some() {
            let window = best_window.entry(owner.file_id.clone()).or_insert((
                f32::NEG_INFINITY,
                owner.start,
                owner.end,
            ));
            if hit.cosine > window.0 {
                *window = (hit.cosine, owner.start, owner.end);
            }
        }
    }
    best.into_values()
        .map(|mut ranked| {
            if let Some((_, start, end)) = best_window.get(&ranked.file_id) {
                ranked.segment = (*start, *end);
            }
            ranked
        })
        .collect()
}

/// Sets every file's score: the hybrid of its cosine and its keyword score
/// when `weight` and some keyword score are above zero, else the cosine.
pub(super) fn score(files: &mut [Ranked], keyword_scores: &HashMap<String, f32>, weight: f64) {
    let max_keyword = keyword_scores.values().copied().fold(0f32, f32::max);
    for file in files {
        file.score = if weight > 0.0 && max_keyword > 0.0 {
            let keyword = keyword_scores.get(file.file_id.as_ref()).copied().unwrap_or(0.0);
            (1.0 - weight) * file.cosine + weight * f64::from(keyword / max_keyword)
        } else {
            file.cosine
        };
    }
}

/// Drops files under `min_score`, orders the rest (score, then cosine,
/// then id, so the order is total) and cuts the page. Also says whether
/// more files follow the page.
pub(super) fn page(
    mut files: Vec<Ranked>,
    min_score: Option<f64>,
    offset: u64,
    limit: u64,
) -> (Vec<Ranked>, bool) {
    if let Some(min) = min_score {
        files.retain(|f| f.score >= min);
    }
    files.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.cosine.total_cmp(&a.cosine))
            .then_with(|| a.file_id.cmp(&b.file_id))
    });
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = files.len() > offset.saturating_add(limit);
    (files.into_iter().skip(offset).take(limit).collect(), more)
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use traum_index::vector::{VectorIndex, VectorIndexConfig};

    use super::*;
    use crate::domain::StoredEmbedding;

    fn row(id: u64, file: &str, window: Option<u32>, start: f64, end: f64) -> StoredEmbedding {
        StoredEmbedding {
            id,
            file_id: file.into(),
            window,
            start_seconds: start,
            end_seconds: end,
            vector: Vec::new(),
        }
    }

    /// File "a": pooled vector 1, windows 2 (0–10 s) and 3 (10–20 s);
    /// file "b": pooled vector 4 only; file "c": window 5.
    fn owners() -> Owners {
        let mut owners = Owners::default();
        for row in [
            row(1, "a", None, 0.0, 20.0),
            row(2, "a", Some(0), 0.0, 10.0),
            row(3, "a", Some(1), 10.0, 20.0),
            row(4, "b", None, 0.0, 3.0),
            row(5, "c", Some(0), 0.0, 10.0),
        ] {
            owners.add(&row);
        }
        owners
    }

    fn hit(id: u64, cosine: f32) -> VectorHit {
        VectorHit { id, cosine }
    }

    fn ranked(file_id: &str, cosine: f64, score: f64) -> Ranked {
        Ranked {
            file_id: file_id.into(),
            cosine,
            score,
            segment: (0.0, 0.0),
        }
    }

    fn by_file(files: Vec<Ranked>) -> HashMap<String, Ranked> {
        files.into_iter().map(|r| (r.file_id.to_string(), r)).collect()
    }

    #[test]
    fn a_file_scores_its_best_vector_and_shows_its_best_window() {
        let hits = [hit(1, 0.9), hit(2, 0.2), hit(3, 0.5), hit(4, 0.4), hit(99, 1.0)];
        let files = by_file(per_file(&hits, &owners(), |_| true));
        assert_eq!(files.len(), 2, "unknown ids are skipped");
        // The pooled vector is the best match, but the segment is the best
        // window, so a long file shows where it matches.
        assert_eq!(files["a"].cosine, f64::from(0.9f32));
        assert_eq!(files["a"].segment, (10.0, 20.0));
        // Without windows the segment is the pooled vector's range.
        assert_eq!(files["b"].segment, (0.0, 3.0));
        let only_c = per_file(&[hit(5, 0.1), hit(2, 0.3)], &owners(), |id| id == "c");
        assert_eq!(only_c.len(), 1);
        assert_eq!(only_c[0].file_id.as_ref(), "c");
    }

    #[test]
    fn hybrid_scores_mix_cosine_and_normalised_bm25() {
        let mut files = vec![
            ranked("a", 0.2, 0.0),
            ranked("b", 0.6, 0.0),
            ranked("c", 0.4, 0.0),
        ];
        let keywords: HashMap<String, f32> = [("a".to_owned(), 8.0), ("c".to_owned(), 2.0)].into();
        score(&mut files, &keywords, 0.0);
        assert!(files.iter().all(|f| f.score == f.cosine), "weight 0: the cosine");
        score(&mut files, &keywords, 0.9);
        let scores: Vec<f64> = files.iter().map(|f| f.score).collect();
        let expected = [0.1 * 0.2 + 0.9, 0.1 * 0.6, 0.1 * 0.4 + 0.9 * 0.25];
        for (got, want) in scores.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{scores:?}");
        }
        score(&mut files, &HashMap::new(), 0.9);
        assert!(
            files.iter().all(|f| f.score == f.cosine),
            "no keyword matches: the cosine"
        );
    }

    #[test]
    fn pages_follow_score_then_cosine_then_id() {
        let files = vec![
            ranked("d", 0.5, 0.5),
            ranked("b", 0.9, 0.7),
            ranked("a", 0.8, 0.7),
            ranked("c", 0.8, 0.7),
            ranked("e", 0.1, 0.1),
        ];
        let ids = |page: &[Ranked]| page.iter().map(|r| r.file_id.to_string()).collect::<Vec<_>>();
        let (first, more) = page(files.clone(), None, 0, 2);
        assert_eq!((ids(&first), more), (vec!["b".to_owned(), "a".to_owned()], true));
        let (second, more) = page(files.clone(), None, 2, 2);
        assert_eq!((ids(&second), more), (vec!["c".to_owned(), "d".to_owned()], true));
        let (last, more) = page(files.clone(), None, 4, 2);
        assert_eq!((ids(&last), more), (vec!["e".to_owned()], false));
        let (kept, more) = page(files, Some(0.5), 0, 10);
        assert_eq!(ids(&kept), ["b", "a", "c", "d"]);
        assert!(!more);
    }

    fn unit(dim: usize, hot: usize, other: usize, mix: f32) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[hot] = 1.0;
        v[other] += mix;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn filters_and_exclusions_are_exact_on_both_search_paths() {
        let dim = 8;
        let mut owners = Owners::default();
        let mut items = Vec::new();
        // 40 files of 3 vectors each, file i leaning towards axis i % 8.
        for file in 0..40u64 {
            for window in 0..3u64 {
                let id = file * 3 + window;
                owners.add(&row(
                    id,
                    &format!("f{file}"),
                    Some(window as u32),
                    10.0 * window as f64,
                    10.0,
                ));
                items.push((
                    id,
                    unit(dim, (file % 8) as usize, ((file + window + 1) % 8) as usize, 0.3),
                ));
            }
        }
        let config = VectorIndexConfig {
            background_rebuild: false,
            ..VectorIndexConfig::default()
        };
        let vectors = Vectors {
            model_id: "m".into(),
            index: VectorIndex::build("m", dim, config, items).unwrap(),
            owners: RwLock::new(owners),
        };
        let query = unit(dim, 3, 4, 0.0);
        // No filter: the graph (here an exact scan, the index is tiny) over
        // all files, widened until `need` files are found.
        let all = best_per_file(&vectors, &query, None, &HashSet::from(["f3".to_owned()]), 10).unwrap();
        assert!(all.len() >= 10);
        assert!(
            all.iter().all(|r| r.file_id.as_ref() != "f3"),
            "the excluded file is left out"
        );
        let best = all.iter().map(|r| r.cosine).fold(f64::MIN, f64::max);
        assert!(
            all.iter()
                .any(|r| r.file_id.as_ref() == "f11" && r.cosine == best)
        );
        // A filter: exactly the admitted files, every one of them.
        let allowed: HashSet<String> = ["f0", "f1", "f3", "f39"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let filtered = best_per_file(
            &vectors,
            &query,
            Some(&allowed),
            &HashSet::from(["f3".to_owned()]),
            10,
        )
        .unwrap();
        let ids: HashSet<String> = filtered.iter().map(|r| r.file_id.to_string()).collect();
        assert_eq!(ids, ["f0", "f1", "f39"].iter().map(|s| (*s).to_owned()).collect());
    }
}
