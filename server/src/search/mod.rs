//! Search: the queries (by text, by an example clip, by similarity to a
//! stored file) over the vector index, narrowed by exact filters from the
//! database and the keyword index, and ranked.
//!
//! - `vectors`: the vector index's lifecycle (load, reconcile, follow, save);
//! - `keywords`: the keyword index over filenames and tags;
//! - `ranking`: from nearest vectors to a page of files;
//! - `suggest`: completions.

mod feed;
mod keywords;
mod ranking;
mod suggest;
mod vectors;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use traum_audio::{DecodeOptions, Stage, decode_bytes};
use traum_index::vector::VectorIndexConfig;

use self::keywords::Keywords;
use self::ranking::Ranked;
pub use self::suggest::{Suggestion, SuggestionSource};
pub use self::vectors::VectorIndexState;
use self::vectors::{VectorSet, Vectors};
use crate::domain::{Facet, FileRecord, FileState, SearchFilter};
use crate::duplicates::Duplicates;
use crate::embed::{Embedder, Engine, normalized};
use crate::error::{Error, Result};
use crate::isolation::guarded;
use crate::store::{Store, UsageKind, UsageRow};
use crate::usage::UsageRecorder;
use crate::zero_shot::Vocabularies;

/// Keyword matches considered for hybrid ranking.
const KEYWORD_CANDIDATES: usize = 10_000;
/// Longest example clip searched by audio.
pub const MAX_CLIP_DURATION: Duration = Duration::from_secs(10 * 60);
/// Longest query text or prefix, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;

/// One ranked file.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub file: FileRecord,
    pub score: f64,
    pub cosine: f64,
    pub segment_start: f64,
    pub segment_end: f64,
    /// (start seconds, cosine) of every window of the file, in time order.
    pub windows: Vec<(f64, f32)>,
}

/// A page of hits.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub next_offset: Option<u64>,
    pub took: Duration,
    /// Per vocabulary asked for, the files per suggested label under the filters.
    pub facets: Vec<Facet>,
}

/// Filters, paging and ranking of one search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub filter: SearchFilter,
    pub offset: u64,
    pub limit: u64,
    /// 0 to 1.
    pub keyword_weight: f64,
    pub refine: Refinement,
    /// Vocabularies whose suggested labels are counted over the filtered files.
    pub facets: Vec<String>,
}

/// Relevance feedback: files marked good or bad in earlier results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refinement {
    pub good: Vec<String>,
    pub bad: Vec<String>,
}

/// Most files marked good, and most marked bad, in one request.
pub const MAX_REFINE_FILES: usize = 100;
/// Rocchio's weights of the good and the bad files' mean vectors (the query
/// itself weighs 1); the proto documents the formula.
const REFINE_GOOD_WEIGHT: f32 = 0.75;
const REFINE_BAD_WEIGHT: f32 = 0.25;

impl Refinement {
    /// Checks the counts and that no file is both good and bad.
    pub fn validated(self) -> Result<Self> {
        for (name, ids) in [("good_file_ids", &self.good), ("bad_file_ids", &self.bad)] {
            if ids.len() > MAX_REFINE_FILES {
                return Err(Error::invalid_field(
                    name,
                    format!(
                        "{name} lists {} files; at most {MAX_REFINE_FILES} are allowed",
                        ids.len()
                    ),
                ));
            }
        }
        if let Some(both) = self.good.iter().find(|id| self.bad.contains(id)) {
            return Err(Error::invalid_field(
                "bad_file_ids",
                format!("file {both} is marked both good and bad; mark it one or the other"),
            ));
        }
        Ok(self)
    }

    fn is_empty(&self) -> bool {
        self.good.is_empty() && self.bad.is_empty()
    }
}

impl SearchRequest {
    /// Validates the filter, the keyword weight and the refinement.
    pub fn new(
        filter: SearchFilter,
        offset: u64,
        limit: u64,
        keyword_weight: f64,
        refine: Refinement,
        facets: Vec<String>,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&keyword_weight) {
            return Err(Error::invalid_field(
                "keyword_weight",
                format!("keyword_weight must be between 0 and 1 (got {keyword_weight})"),
            ));
        }
        Ok(Self {
            filter: filter.validated()?,
            offset,
            limit,
            keyword_weight,
            refine: refine.validated()?,
            facets: facets
                .iter()
                .map(|name| name.trim().to_lowercase())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect(),
        })
    }
}

/// `normalise(query + 0.75 · mean(good) − 0.25 · mean(bad))`, every input
/// vector L2-normalised first; a mean over no vector is zero.
pub fn rocchio(query: &[f32], good: &[Vec<f32>], bad: &[Vec<f32>]) -> Vec<f32> {
    let mut out = normalized(query.to_vec());
    for (vectors, weight) in [(good, REFINE_GOOD_WEIGHT), (bad, -REFINE_BAD_WEIGHT)] {
        if vectors.is_empty() {
            continue;
        }
        let share = weight / vectors.len() as f32;
        for vector in vectors {
            let unit = normalized(vector.clone());
            out.iter_mut().zip(&unit).for_each(|(o, v)| *o += share * v);
        }
    }
    normalized(out)
}

/// Both indexes, for `GetStats`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexStates {
    pub vectors: VectorIndexState,
    /// Files in the keyword index (it lives in memory).
    pub keyword_entries: u64,
}

/// The search side of the server; cheap to clone.
#[derive(Clone)]
pub struct Search {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    embedder: Embedder,
    usage: UsageRecorder,
    keywords: Keywords,
    vectors: Arc<VectorSet>,
    duplicates: Duplicates,
    follower: feed::Follower,
    /// Largest example clip, in bytes (the upload limit).
    max_clip_bytes: u64,
    /// Zero-shot vocabularies, for filters and facets.
    vocabularies: Vocabularies,
}

/// A query text or prefix, trimmed; empty and overlong ones are refused.
fn checked_text<'a>(name: &str, text: &'a str) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid_field(name, format!("{name} must not be empty")));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid_field(
            name,
            format!("{name} is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(text)
}

impl Search {
    pub fn new(
        store: Store,
        embedder: Embedder,
        usage: UsageRecorder,
        vector_config: VectorIndexConfig,
        max_clip_bytes: u64,
        vocabularies: Vocabularies,
        duplicates: Duplicates,
    ) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                embedder,
                usage,
                keywords: Keywords::new()?,
                vectors: Arc::new(VectorSet::new(vector_config)),
                duplicates,
                follower: feed::Follower::new(),
                max_clip_bytes,
                vocabularies,
            }),
        })
    }

    /// Whether new vectors can be written: the model is loaded and the
    /// vector index follows the database.
    pub fn accepts_vectors(&self) -> bool {
        self.inner.vectors.current().is_some()
    }

    /// Fills the keyword index from the database and starts following the
    /// change feed from before the load.
    pub async fn load_keywords(&self) -> Result<()> {
        let head = self.inner.store.feed_head().await?;
        self.inner.follower.start_at(head).await;
        self.inner.keywords.load(&self.inner.store).await
    }

    /// Loads the vector index of the loaded model (see [`VectorSet::load`])
    /// and catches up with the feed from the position the loaded index
    /// holds: after this, search may serve.
    pub async fn load_vectors(&self, engine: &Engine) -> Result<()> {
        let store = &self.inner.store;
        let before = store.feed_head().await?;
        let floor = store.feed_floor().await?;
        let resume = self.inner.vectors.load(store, engine, floor).await?;
        self.inner.follower.rewind(resume.unwrap_or(before)).await;
        let replayed = self.catch_up().await?;
        tracing::info!(files = replayed, "indexes caught up with the change feed");
        // A saved copy trusted at its feed position should now hold what the
        // database holds; a count that differs means rows changed outside
        // the feed, and the copy is checked in full.
        if resume.is_some() {
            let stored = store.count_embeddings(engine.model_id()).await?;
            let held = self.inner.vectors.state().entries;
            if stored != held {
                tracing::warn!(
                    stored,
                    held,
                    "the saved vector index disagrees with the database; checking it in full"
                );
                let (removed, added) = self.inner.vectors.recheck(store).await?;
                tracing::info!(removed, added, "vector index checked against the database");
            }
        }
        self.inner.follower.mark_caught_up();
        Ok(())
    }

    /// Whether the vector index is loaded and has caught up with the feed.
    pub fn is_caught_up(&self) -> bool {
        self.inner.follower.is_caught_up()
    }

    /// Saves the vector index for a fast next start, at the feed position
    /// it holds.
    pub async fn save_vectors(&self) -> Result<()> {
        let vectors = self.inner.vectors.clone();
        self.inner
            .follower
            .at_rest(|position| async move { vectors.save(position.unwrap_or(0)).await })
            .await
    }

    /// Applies the feed's changes since the last read to every index.
    /// Returns the files applied.
    pub async fn catch_up(&self) -> Result<usize> {
        let indexes = feed::Indexes {
            store: &self.inner.store,
            keywords: &self.inner.keywords,
            vectors: &self.inner.vectors,
            duplicates: &self.inner.duplicates,
        };
        self.inner.follower.catch_up(&indexes).await
    }

    /// Makes a write this replica just committed visible to its searches
    /// before the call that made it returns. The write stands whatever
    /// happens here; a failure is logged and the next read of the feed
    /// applies it.
    pub async fn follow_own_write(&self) {
        if let Err(err) = self.catch_up().await {
            tracing::warn!(error = %err, "cannot read the change feed; the indexes follow at its next read");
        }
    }

    /// Follows the feed in the background (woken by PostgreSQL's
    /// notifications, and every second regardless) until `stop`.
    pub fn follow(&self, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let search = self.clone();
        let wake = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(feed::listen(self.inner.store.clone(), wake.clone(), stop.clone()));
        let mut stop = stop;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(feed::POLL) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
                if let Err(err) = search.catch_up().await {
                    tracing::warn!(error = %err, "cannot read the change feed; trying again");
                }
            }
        })
    }

    /// How both indexes stand, for `GetStats`.
    pub fn index_states(&self) -> IndexStates {
        IndexStates {
            vectors: self.inner.vectors.state(),
            keyword_entries: self.inner.keywords.len(),
        }
    }

    fn ready_parts(&self) -> Result<(Arc<Engine>, Arc<Vectors>)> {
        let engine = self.inner.embedder.engine().ok_or_else(|| {
            Error::Unavailable(format!(
                "search is not ready: {}",
                self.inner.embedder.state().message
            ))
        })?;
        let vectors = self
            .inner
            .vectors
            .current()
            .filter(|v| v.model_id == engine.model_id())
            .ok_or_else(|| {
                Error::Unavailable("search is not ready: the vector index is still loading".into())
            })?;
        Ok((engine, vectors))
    }

    /// Files that match a text description.
    pub async fn by_text(&self, text: &str, request: &SearchRequest) -> Result<SearchPage> {
        let text = checked_text("query", text)?;
        let started = Instant::now();
        let (engine, vectors) = self.ready_parts()?;
        let query = engine.embed_text(text).await?;
        let keywords = request.filter.keywords.clone().unwrap_or_else(|| text.to_owned());
        let page = self
            .ranked(&vectors, &query, request, Some(&keywords), None, started)
            .await?;
        self.record("/traum.v1.SearchService/SearchByText", Some(text), started);
        Ok(page)
    }

    /// Files that sound like an example clip sent in pieces; a clip is
    /// refused as soon as it passes the upload limit.
    pub async fn by_audio_stream<S>(&self, mut chunks: S, request: &SearchRequest) -> Result<SearchPage>
    where
        S: Stream<Item = Result<Bytes>> + Unpin,
    {
        let limit = self.inner.max_clip_bytes;
        let mut clip = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if clip.len() as u64 + chunk.len() as u64 > limit {
                return Err(Error::TooLarge(format!(
                    "the example clip is larger than the upload limit of {limit} bytes"
                )));
            }
            clip.extend_from_slice(&chunk);
        }
        self.by_audio(clip, request).await
    }

    /// Files that sound like an example clip (any supported format).
    pub async fn by_audio(&self, clip: Vec<u8>, request: &SearchRequest) -> Result<SearchPage> {
        let started = Instant::now();
        let (engine, vectors) = self.ready_parts()?;
        if clip.is_empty() {
            return Err(Error::InvalidArgument("the example clip is empty".into()));
        }
        let samples = tokio::task::spawn_blocking(move || decode_clip(clip)).await??;
        let embedded = engine.embed_audio(Arc::new(samples), |_| {}).await?;
        let page = self
            .ranked(
                &vectors,
                &embedded.file,
                request,
                request.filter.keywords.as_deref(),
                None,
                started,
            )
            .await?;
        self.record("/traum.v1.SearchService/SearchByAudio", None, started);
        Ok(page)
    }

    /// Files similar to a stored one, or to a time range of it (the mean of
    /// the windows overlapping the range). The file itself is left out.
    pub async fn similar(
        &self,
        file_id: &str,
        range: Option<(f64, f64)>,
        request: &SearchRequest,
    ) -> Result<SearchPage> {
        if let Some((start, end)) = range
            && !(start >= 0.0 && end > start)
        {
            return Err(Error::InvalidArgument(format!(
                "the range must satisfy 0 ≤ start_seconds < end_seconds (got {start}–{end})"
            )));
        }
        let started = Instant::now();
        let (_, vectors) = self.ready_parts()?;
        let file = self.inner.store.get_file(file_id).await?;
        let rows = self
            .inner
            .store
            .file_embeddings(&file.id, &vectors.model_id)
            .await?;
        let Some(pooled) = rows.first() else {
            return Err(Error::FailedPrecondition(format!(
                "file {file_id} has no embeddings yet (state {}); wait for its job to finish",
                file.state
            )));
        };
        let query = match range {
            None => pooled.vector.clone(),
            Some((start, end)) => {
                let mut sum = vec![0f32; pooled.vector.len()];
                let mut count = 0;
                for row in rows.iter().filter(|r| r.window.is_some()) {
                    if row.start_seconds < end && row.end_seconds > start {
                        sum.iter_mut().zip(&row.vector).for_each(|(s, v)| *s += v);
                        count += 1;
                    }
                }
                if count == 0 {
                    return Err(Error::InvalidArgument(format!(
                        "the range {start:.2}–{end:.2} s lies outside the file (0–{:.2} s)",
                        pooled.end_seconds
                    )));
                }
                normalized(sum)
            }
        };
        let page = self
            .ranked(
                &vectors,
                &query,
                request,
                request.filter.keywords.as_deref(),
                Some(&file.id),
                started,
            )
            .await?;
        self.record("/traum.v1.SearchService/SearchSimilar", None, started);
        Ok(page)
    }

    /// The query moved by the request's relevance feedback (see [`rocchio`]).
    async fn refined(&self, vectors: &Vectors, query: &[f32], refine: &Refinement) -> Result<Vec<f32>> {
        if refine.is_empty() {
            return Ok(query.to_vec());
        }
        let mut marked = [Vec::new(), Vec::new()];
        for (ids, out) in [&refine.good, &refine.bad].into_iter().zip(marked.iter_mut()) {
            for id in ids {
                let rows = self.inner.store.file_embeddings(id, &vectors.model_id).await?;
                match rows.into_iter().find(|row| row.window.is_none()) {
                    Some(pooled) => out.push(pooled.vector),
                    None => {
                        let file = self.inner.store.get_file(id).await?;
                        return Err(Error::FailedPrecondition(format!(
                            "file {id} ({}) has no embeddings of the current model yet (state {}), so it cannot refine a search",
                            file.filename, file.state
                        )));
                    }
                }
            }
        }
        let [good, bad] = marked;
        Ok(rocchio(query, &good, &bad))
    }

    fn record(&self, method: &str, query: Option<&str>, started: Instant) {
        self.inner.usage.record(UsageRow {
            at_ms: chrono::Utc::now().timestamp_millis(),
            kind: UsageKind::Search,
            method: method.to_owned(),
            code: 0,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            query: query.map(str::to_owned),
            upload_bytes: None,
        });
    }

    /// The ranked page for a query vector: the filters' exact file set, the
    /// nearest vectors per file, hybrid scores, then the page's records.
    async fn ranked(
        &self,
        vectors: &Arc<Vectors>,
        query: &[f32],
        request: &SearchRequest,
        keywords: Option<&str>,
        exclude: Option<&str>,
        started: Instant,
    ) -> Result<SearchPage> {
        let filter = &request.filter;
        self.check_vocabularies(request)?;
        let query = self.refined(vectors, query, &request.refine).await?;
        let mut excluded: HashSet<String> = request.refine.bad.iter().cloned().collect();
        excluded.extend(exclude.map(str::to_owned));
        let mut allowed: Option<HashSet<String>> = if filter.has_metadata_conditions() {
            Some(
                self.inner
                    .store
                    .filtered_file_ids(filter)
                    .await?
                    .into_iter()
                    .collect(),
            )
        } else {
            None
        };
        if let Some(words) = filter.keywords.as_deref() {
            let matching = self.inner.keywords.matching_files(words).await?;
            allowed = Some(match allowed {
                Some(set) => set.into_iter().filter(|id| matching.contains(id)).collect(),
                None => matching,
            });
        }
        let keyword_scores = match keywords {
            Some(words) if request.keyword_weight > 0.0 => {
                self.inner.keywords.scores(words, KEYWORD_CANDIDATES).await?
            }
            _ => HashMap::new(),
        };
        let need = usize::try_from(request.offset + request.limit + 1).unwrap_or(usize::MAX);
        let vectors = vectors.clone();
        let suggestion_rows = self.inner.store.suggestion_rows(filter, &request.facets).await?;
        let facet_order = self.facet_order(&request.facets);
        // Graph and exact scoring, and counting facets, are CPU work: keep them off the runtime.
        let (mut files, vectors, query, facets) = tokio::task::spawn_blocking(move || {
            let facets = count_facets(&facet_order, suggestion_rows, allowed.as_ref());
            ranking::best_per_file(&vectors, &query, allowed.as_ref(), &excluded, need)
                .map(|files| (files, vectors, query, facets))
        })
        .await??;
        ranking::score(&mut files, &keyword_scores, request.keyword_weight);
        let (page, more) = ranking::page(files, filter.min_score, request.offset, request.limit);
        let page_ids: Vec<Arc<str>> = page.iter().map(|f| f.file_id.clone()).collect();
        let mut windows =
            tokio::task::spawn_blocking(move || ranking::window_scores(&vectors, &query, &page_ids))
                .await??;
        let ids: Vec<String> = page.iter().map(|f| f.file_id.to_string()).collect();
        let mut records = self.inner.store.files_by_ids(&ids).await?;
        let hits = page
            .into_iter()
            .filter_map(|ranked: Ranked| {
                let file = records.remove(ranked.file_id.as_ref())?;
                let windows = windows.remove(ranked.file_id.as_ref()).unwrap_or_default();
                (file.state == FileState::Ready).then_some(SearchHit {
                    file,
                    score: ranked.score,
                    cosine: ranked.cosine,
                    segment_start: ranked.segment.0,
                    segment_end: ranked.segment.1,
                    windows,
                })
            })
            .collect();
        Ok(SearchPage {
            hits,
            next_offset: more.then_some(request.offset + request.limit),
            took: started.elapsed(),
            facets,
        })
    }

    /// Refuses filters and facets on vocabularies this server does not have.
    fn check_vocabularies(&self, request: &SearchRequest) -> Result<()> {
        let vocabularies = &self.inner.vocabularies;
        for (index, condition) in request.filter.suggested.iter().enumerate() {
            vocabularies.check_known(
                &format!("filters.suggested.{index}.vocabulary"),
                &condition.vocabulary,
            )?;
        }
        for name in &request.facets {
            vocabularies.check_known("options.facet_vocabularies", name)?;
        }
        Ok(())
    }

    /// The facets asked for, in the server's vocabulary order.
    fn facet_order(&self, facets: &[String]) -> Vec<String> {
        self.inner
            .vocabularies
            .iter()
            .filter(|v| facets.contains(&v.name))
            .map(|v| v.name.clone())
            .collect()
    }
}

/// Files per (vocabulary, label) among `rows` (file id, vocabulary, label),
/// counting only files in `allowed` when given; labels with files only,
/// most files first.
fn count_facets(
    vocabularies: &[String],
    rows: Vec<(String, String, String)>,
    allowed: Option<&HashSet<String>>,
) -> Vec<Facet> {
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    for (file_id, vocabulary, label) in rows {
        if allowed.is_none_or(|set| set.contains(&file_id)) {
            *counts.entry((vocabulary, label)).or_default() += 1;
        }
    }
    vocabularies
        .iter()
        .map(|vocabulary| {
            let mut labels: Vec<(String, u64)> = counts
                .iter()
                .filter(|((v, _), _)| v == vocabulary)
                .map(|((_, label), &count)| (label.clone(), count))
                .collect();
            labels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Facet {
                vocabulary: vocabulary.clone(),
                counts: labels,
            }
        })
        .collect()
}

/// Decodes an example clip given as bytes, through a temp file.
/// Decodes an example clip, sniffed like an upload (only the formats an
/// upload may have reach a decoder), with a crash failing the clip alone.
fn decode_clip(clip: Vec<u8>) -> Result<Vec<f32>> {
    let options = DecodeOptions {
        max_duration: MAX_CLIP_DURATION,
        format_hint: None,
    };
    guarded(Stage::Decode, "example clip", || {
        let mut samples = Vec::new();
        decode_bytes(clip, &options, |_| {}, |block| samples.extend_from_slice(block))?;
        Ok(samples)
    })
}

#[cfg(test)]
mod facet_tests {
    use super::*;

    #[test]
    fn facets_count_allowed_files_per_label_in_vocabulary_order() {
        let row = |f: &str, v: &str, l: &str| (f.to_owned(), v.to_owned(), l.to_owned());
        let rows = vec![
            row("a", "genre", "techno"),
            row("b", "genre", "techno"),
            row("c", "genre", "house"),
            row("a", "mood", "dark"),
            row("d", "genre", "ambient"),
        ];
        let vocabularies = ["genre".to_owned(), "mood".to_owned()];
        let all = count_facets(&vocabularies, rows.clone(), None);
        assert_eq!(all[0].vocabulary, "genre");
        assert_eq!(
            all[0].counts,
            [("techno".into(), 2), ("ambient".into(), 1), ("house".into(), 1)]
        );
        assert_eq!(all[1].counts, [("dark".into(), 1)]);
        let allowed: HashSet<String> = ["a", "c"].iter().map(|s| s.to_string()).collect();
        let some = count_facets(&vocabularies, rows, Some(&allowed));
        assert_eq!(some[0].counts, [("house".into(), 1), ("techno".into(), 1)]);
    }
}

#[cfg(test)]
mod refine_tests {
    use super::*;

    #[test]
    fn rocchio_moves_towards_good_and_away_from_bad() {
        let query = [2.0, 0.0, 0.0];
        let good = [vec![0.0, 3.0, 0.0], vec![0.0, 0.0, 1.0]];
        let bad = [vec![0.0, -5.0, 0.0]];
        let refined = rocchio(&query, &good, &bad);
        // 1·(1,0,0) + 0.75·((0,1,0)+(0,0,1))/2 − 0.25·(0,−1,0) = (1, 0.625, 0.375)
        let norm = (1.0f32 + 0.625 * 0.625 + 0.375 * 0.375).sqrt();
        for (got, want) in refined.iter().zip([1.0 / norm, 0.625 / norm, 0.375 / norm]) {
            assert!((got - want).abs() < 1e-6, "{refined:?}");
        }
        assert_eq!(rocchio(&query, &[], &[]), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_refinement_is_bounded_and_never_both_good_and_bad() {
        let both = Refinement {
            good: vec!["a".into()],
            bad: vec!["a".into()],
        };
        assert!(
            matches!(both.validated(), Err(Error::InvalidField { field, message }) if field == "bad_file_ids" && message.contains("both good and bad"))
        );
        let many = Refinement {
            good: (0..=MAX_REFINE_FILES).map(|i| i.to_string()).collect(),
            bad: vec![],
        };
        assert!(
            matches!(many.validated(), Err(Error::InvalidField { field, message }) if field == "good_file_ids" && message.contains("at most 100"))
        );
    }
}
