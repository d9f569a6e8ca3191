//! Search: the vector index over CLAP vectors (per window and per file), the
//! keyword index over filenames and tags, and the queries that combine them
//! with exact metadata filters from the database.
//!
//! Ranking: a file's cosine is the best cosine among its vectors (its pooled
//! vector and its windows), and its segment is the best-matching window.
//! With a keyword weight `w` (0 to 1) and keywords, the final score is
//! `(1 − w) · cosine + w · bm25 / max_bm25`, where `max_bm25` is the best
//! keyword score among the files considered; without, it is the cosine.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::audio::decode::{DecodeOptions, decode_to_vec};
use crate::embed::{Embedder, Engine, normalized};
use crate::error::{Error, Result};
use crate::index::text::{TextIndex, TextRecord};
use crate::index::vector::{VectorIndex, VectorIndexConfig};
use crate::model::{FileRecord, FileState, SearchFilter, StoredEmbedding};
use crate::store::{Store, UsageKind, UsageRow};
use crate::usage::UsageRecorder;

/// Below this many candidate vectors a filtered search scores every one of
/// them exactly instead of over-fetching from the graph.
const EXACT_SEARCH_LIMIT: usize = 20_000;
/// Rows read per page while loading vectors from the database.
const LOAD_PAGE: u64 = 5_000;
/// Keyword matches considered for hybrid ranking.
const KEYWORD_CANDIDATES: usize = 10_000;
/// Longest example clip searched by audio.
pub const MAX_CLIP_DURATION: Duration = Duration::from_secs(10 * 60);
/// How far back past queries count for suggestions.
const SUGGEST_HISTORY: Duration = Duration::from_secs(90 * 24 * 3600);

/// What a vector belongs to.
#[derive(Debug, Clone)]
struct Owner {
    file_id: Arc<str>,
    window: Option<u32>,
    start: f64,
    end: f64,
}

#[derive(Default)]
struct Owners {
    by_id: HashMap<u64, Owner>,
    by_file: HashMap<Arc<str>, Vec<u64>>,
}

impl Owners {
    fn remove(&mut self, id: u64) {
        if let Some(owner) = self.by_id.remove(&id)
            && let Some(ids) = self.by_file.get_mut(&owner.file_id)
        {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_file.remove(&owner.file_id);
            }
        }
    }

    fn add(&mut self, row: &StoredEmbedding) {
        let file_id: Arc<str> = self
            .by_file
            .get_key_value(row.file_id.as_str())
            .map_or_else(|| Arc::from(row.file_id.as_str()), |(key, _)| key.clone());
        self.by_file.entry(file_id.clone()).or_default().push(row.id);
        self.by_id.insert(
            row.id,
            Owner {
                file_id,
                window: row.window,
                start: row.start_seconds,
                end: row.end_seconds,
            },
        );
    }
}

struct Vectors {
    model_id: String,
    index: VectorIndex,
    owners: RwLock<Owners>,
}

/// One ranked file.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub file: FileRecord,
    pub score: f64,
    pub cosine: f64,
    pub segment_start: f64,
    pub segment_end: f64,
}

/// A page of hits.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub next_offset: Option<u64>,
    pub took: Duration,
}

/// Paging and ranking of one search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub filter: SearchFilter,
    pub offset: u64,
    pub limit: u64,
    /// 0 to 1.
    pub keyword_weight: f64,
}

/// A completion for `Suggest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuggestionSource {
    Tag,
    Filename,
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub source: SuggestionSource,
    pub count: u64,
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
    vector_config: VectorIndexConfig,
    text: TextIndex,
    /// Text index key → file id.
    text_keys: RwLock<HashMap<u64, String>>,
    vectors: RwLock<Option<Arc<Vectors>>>,
    /// Vector ids deleted while the index was loading, applied once it is in.
    deleted_while_loading: Mutex<Vec<u64>>,
    ready: watch::Sender<bool>,
}

/// The text index key of a file id.
fn text_key(file_id: &str) -> u64 {
    let digest = Sha256::digest(file_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

impl Search {
    pub fn new(
        store: Store,
        embedder: Embedder,
        usage: UsageRecorder,
        vector_config: VectorIndexConfig,
    ) -> Result<Self> {
        let (ready, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                embedder,
                usage,
                vector_config,
                text: TextIndex::in_ram()?,
                text_keys: RwLock::new(HashMap::new()),
                vectors: RwLock::new(None),
                deleted_while_loading: Mutex::new(Vec::new()),
                ready,
            }),
        })
    }

    /// Follows readiness: true once the model and both indexes are loaded.
    pub fn subscribe_ready(&self) -> watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }

    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Whether new vectors can be written: the model is loaded and the
    /// vector index follows the database.
    pub fn accepts_vectors(&self) -> bool {
        self.vectors().is_some()
    }

    fn vectors(&self) -> Option<Arc<Vectors>> {
        self.inner
            .vectors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fills the keyword index from the database.
    pub async fn load_text(&self) -> Result<()> {
        let records = self.inner.store.text_records().await?;
        let search = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut keys = HashMap::with_capacity(records.len());
            let docs: Vec<TextRecord> = records
                .into_iter()
                .map(|(id, filename, tags)| {
                    let key = text_key(&id);
                    keys.insert(key, id);
                    TextRecord {
                        file_id: key,
                        filename,
                        tags,
                        text: String::new(),
                    }
                })
                .collect();
            search.inner.text.rebuild(docs, 0)?;
            *search
                .inner
                .text_keys
                .write()
                .unwrap_or_else(PoisonError::into_inner) = keys;
            Ok::<_, Error>(())
        })
        .await?
    }

    /// Loads the vector index of the loaded model, then marks search ready:
    /// the saved copy when there is a usable one, checked against the
    /// database (rows deleted since the save are dropped, rows added are
    /// inserted), or else a fresh build from the database. Vectors of other
    /// models are never loaded.
    pub async fn load_vectors(&self, engine: &Engine) -> Result<()> {
        let started = Instant::now();
        let model_id = engine.model_id().to_owned();
        let dim = engine.dim();
        let saved = match self.inner.vector_config.persist_dir.clone() {
            Some(dir) => {
                let (config, id) = (self.inner.vector_config.clone(), model_id.clone());
                tokio::task::spawn_blocking(move || VectorIndex::load(&dir, &id, dim, config)).await?
            }
            None => Err(crate::index::IndexError::Missing(std::path::PathBuf::new())),
        };
        let mut owners = Owners::default();
        let (index, source) = match saved {
            Ok((index, _manifest)) => {
                let owners_in_db = self.inner.store.embedding_owners(&model_id).await?;
                for row in &owners_in_db {
                    owners.add(row);
                }
                let in_db: HashSet<u64> = owners_in_db.iter().map(|row| row.id).collect();
                let in_index: HashSet<u64> = index.ids().into_iter().collect();
                let gone: Vec<u64> = in_index.difference(&in_db).copied().collect();
                let missing: Vec<u64> = in_db.difference(&in_index).copied().collect();
                for id in &gone {
                    index.delete(*id);
                }
                let added = self.inner.store.embeddings_by_ids(&missing).await?;
                index.insert_many(added.iter().map(|row| (row.id, row.vector.as_slice())))?;
                let source = format!(
                    "saved copy, {} removed and {} added since",
                    gone.len(),
                    added.len()
                );
                (index, source)
            }
            Err(err) => {
                if !matches!(err, crate::index::IndexError::Missing(_)) {
                    tracing::warn!(error = %err, "saved vector index unusable; rebuilding from the database");
                }
                // One pass over the rows gives both the vectors and their owners.
                let mut rows = Vec::new();
                let mut after = 0;
                loop {
                    let page = self
                        .inner
                        .store
                        .embeddings_after(&model_id, after, LOAD_PAGE)
                        .await?;
                    let Some(last) = page.last() else { break };
                    after = last.id;
                    for row in page {
                        owners.add(&row);
                        rows.push((row.id, row.vector));
                    }
                }
                let (config, id) = (self.inner.vector_config.clone(), model_id.clone());
                let index =
                    tokio::task::spawn_blocking(move || VectorIndex::build(id, dim, config, rows)).await??;
                (index, "built from the database".to_owned())
            }
        };
        let count = index.len();
        let vectors = Vectors {
            model_id: model_id.clone(),
            index,
            owners: RwLock::new(owners),
        };
        *self.inner.vectors.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(vectors));
        let deleted: Vec<u64> = std::mem::take(
            &mut *self
                .inner
                .deleted_while_loading
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.remove_vectors(&deleted);
        tracing::info!(
            vectors = count,
            model_id,
            took_ms = started.elapsed().as_millis() as u64,
            "vector index loaded ({source})"
        );
        self.inner.ready.send_replace(true);
        Ok(())
    }

    /// Saves the vector index for a fast next start (at shutdown). Anything
    /// written after the save is reconciled from the database on load.
    pub async fn save_vectors(&self) -> Result<()> {
        let (Some(vectors), Some(dir)) = (self.vectors(), self.inner.vector_config.persist_dir.clone())
        else {
            return Ok(());
        };
        let started = Instant::now();
        let manifest = tokio::task::spawn_blocking(move || vectors.index.save(&dir, 0)).await??;
        tracing::info!(
            vectors = manifest.item_count,
            took_ms = started.elapsed().as_millis() as u64,
            "vector index saved"
        );
        Ok(())
    }

    /// Follows a file's new vectors (after its embed stage).
    pub fn vectors_replaced(&self, removed: &[u64], written: &[StoredEmbedding]) {
        let Some(vectors) = self.vectors() else { return };
        self.remove_vectors(removed);
        let mut owners = vectors.owners.write().unwrap_or_else(PoisonError::into_inner);
        let items: Vec<(u64, &[f32])> = written
            .iter()
            .map(|row| (row.id, row.vector.as_slice()))
            .collect();
        if let Err(err) = vectors.index.insert_many(items) {
            tracing::error!(error = %err, "cannot index new vectors; they are found after the next restart");
            return;
        }
        for row in written {
            owners.add(row);
        }
    }

    fn remove_vectors(&self, ids: &[u64]) {
        let Some(vectors) = self.vectors() else {
            self.inner
                .deleted_while_loading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(ids);
            return;
        };
        let mut owners = vectors.owners.write().unwrap_or_else(PoisonError::into_inner);
        for &id in ids {
            vectors.index.delete(id);
            owners.remove(id);
        }
    }

    /// Follows a new or renamed/retagged file in the keyword index.
    pub async fn file_changed(&self, file: &FileRecord) -> Result<()> {
        let key = text_key(&file.id);
        let record = TextRecord {
            file_id: key,
            filename: file.filename.clone(),
            tags: file.tags.clone(),
            text: String::new(),
        };
        self.inner
            .text_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, file.id.clone());
        let search = self.clone();
        tokio::task::spawn_blocking(move || {
            search.inner.text.upsert(&record)?;
            search.inner.text.commit()
        })
        .await??;
        Ok(())
    }

    /// Forgets a deleted file everywhere.
    pub async fn file_deleted(&self, file_id: &str, embedding_ids: &[u64]) -> Result<()> {
        self.remove_vectors(embedding_ids);
        let key = text_key(file_id);
        self.inner
            .text_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        let search = self.clone();
        tokio::task::spawn_blocking(move || {
            search.inner.text.delete(key);
            search.inner.text.commit()
        })
        .await??;
        Ok(())
    }

    /// Name, entries, bytes on disk, readiness and search mode of both
    /// indexes, for `GetStats`. The keyword index lives in memory (rebuilt at
    /// start).
    pub fn index_stats(&self) -> Vec<(&'static str, u64, u64, bool, String)> {
        let vectors = self.vectors();
        let saved_bytes = self
            .inner
            .vector_config
            .persist_dir
            .as_deref()
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .map_or(0, |entries| {
                entries
                    .filter_map(|entry| entry.ok()?.metadata().ok())
                    .filter(std::fs::Metadata::is_file)
                    .map(|meta| meta.len())
                    .sum()
            });
        vec![
            (
                "vectors",
                vectors.as_ref().map_or(0, |v| v.index.len() as u64),
                saved_bytes,
                vectors.is_some(),
                vectors
                    .as_ref()
                    .map_or_else(String::new, |v| v.index.stats().route.to_string()),
            ),
            ("text", self.inner.text.num_docs(), 0, true, String::new()),
        ]
    }

    fn ready_parts(&self) -> Result<(Arc<Engine>, Arc<Vectors>)> {
        let engine = self.inner.embedder.engine().ok_or_else(|| {
            Error::Unavailable(format!(
                "search is not ready: {}",
                self.inner.embedder.state().message
            ))
        })?;
        let vectors = self
            .vectors()
            .filter(|v| v.model_id == engine.model_id())
            .ok_or_else(|| {
                Error::Unavailable("search is not ready: the vector index is still loading".into())
            })?;
        Ok((engine, vectors))
    }

    /// Files that match a text description.
    pub async fn by_text(&self, text: &str, request: &SearchRequest) -> Result<SearchPage> {
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

    /// Files that sound like an example clip (any supported format).
    pub async fn by_audio(&self, clip: Vec<u8>, request: &SearchRequest) -> Result<SearchPage> {
        let started = Instant::now();
        let (engine, vectors) = self.ready_parts()?;
        if clip.is_empty() {
            return Err(Error::InvalidArgument("the example clip is empty".into()));
        }
        let samples = tokio::task::spawn_blocking(move || decode_clip(&clip)).await??;
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
        let started = Instant::now();
        let (_, vectors) = self.ready_parts()?;
        let file = self.inner.store.get_file(file_id).await?;
        let rows = self
            .inner
            .store
            .file_embeddings(&file.id, &vectors.model_id)
            .await?;
        if rows.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "file {file_id} has no embeddings yet (state {}); wait for its job to finish",
                file.state
            )));
        }
        let query = match range {
            None => rows[0].vector.clone(),
            Some((start, end)) => {
                let mut sum = vec![0f32; rows[0].vector.len()];
                let mut count = 0;
                for row in rows.iter().filter(|r| r.window.is_some()) {
                    if row.start_seconds < end && row.end_seconds > start {
                        sum.iter_mut().zip(&row.vector).for_each(|(s, v)| *s += v);
                        count += 1;
                    }
                }
                if count == 0 {
                    let duration = rows[0].end_seconds;
                    return Err(Error::InvalidArgument(format!(
                        "the range {start:.2}–{end:.2} s lies outside the file (0–{duration:.2} s)"
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

    /// Completions of a prefix: tags, filename words and past queries.
    pub async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        // Queries recorded moments ago are still in the usage batch.
        self.inner.usage.flush().await;
        let since = chrono::Utc::now().timestamp_millis() - SUGGEST_HISTORY.as_millis() as i64;
        let past = self.inner.store.past_queries(prefix, since, limit).await?;
        let search = self.clone();
        let owned_prefix = prefix.to_owned();
        let terms =
            tokio::task::spawn_blocking(move || search.inner.text.suggest(&owned_prefix, limit)).await??;
        let tags: HashSet<String> = self.inner.store.all_tags().await?.into_iter().collect();
        let mut suggestions: Vec<Suggestion> = terms
            .into_iter()
            .map(|s| Suggestion {
                source: if tags.contains(&s.term) {
                    SuggestionSource::Tag
                } else {
                    SuggestionSource::Filename
                },
                text: s.term,
                count: s.doc_count,
            })
            .chain(past.into_iter().map(|(text, count)| Suggestion {
                text,
                source: SuggestionSource::Query,
                count,
            }))
            .collect();
        suggestions.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
        suggestions.dedup_by(|a, b| a.text == b.text);
        suggestions.truncate(limit);
        Ok(suggestions)
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

    /// The ranked page for a query vector.
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
            let matching = self.keyword_files(words).await?;
            allowed = Some(match allowed {
                Some(set) => set.into_iter().filter(|id| matching.contains(id)).collect(),
                None => matching,
            });
        }
        let keyword_scores = match keywords {
            Some(words) if request.keyword_weight > 0.0 => self.keyword_scores(words).await?,
            _ => HashMap::new(),
        };
        let need = usize::try_from(request.offset + request.limit + 1).unwrap_or(usize::MAX);
        let vectors_for_search = vectors.clone();
        let query = query.to_vec();
        let exclude_owned = exclude.map(str::to_owned);
        // Graph and exact scoring are CPU work: keep them off the runtime.
        let mut files = tokio::task::spawn_blocking(move || {
            best_per_file(
                &vectors_for_search,
                &query,
                allowed.as_ref(),
                exclude_owned.as_deref(),
                need,
            )
        })
        .await??;
        let max_keyword = keyword_scores.values().copied().fold(0f32, f32::max);
        let weight = request.keyword_weight;
        for file in &mut files {
            file.score = if weight > 0.0 && max_keyword > 0.0 {
                let keyword = keyword_scores.get(file.file_id.as_ref()).copied().unwrap_or(0.0);
                (1.0 - weight) * file.cosine + weight * f64::from(keyword / max_keyword)
            } else {
                file.cosine
            };
        }
        if let Some(min) = filter.min_score {
            files.retain(|f| f.score >= min);
        }
        files.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| b.cosine.total_cmp(&a.cosine))
                .then_with(|| a.file_id.cmp(&b.file_id))
        });
        let offset = usize::try_from(request.offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let more = files.len() > offset.saturating_add(limit);
        let page: Vec<Ranked> = files.into_iter().skip(offset).take(limit).collect();
        let ids: Vec<String> = page.iter().map(|f| f.file_id.to_string()).collect();
        let mut records = self.inner.store.files_by_ids(&ids).await?;
        let hits = page
            .into_iter()
            .filter_map(|ranked| {
                let file = records.remove(ranked.file_id.as_ref())?;
                (file.state == FileState::Ready).then_some(SearchHit {
                    file,
                    score: ranked.score,
                    cosine: ranked.cosine,
                    segment_start: ranked.segment.0,
                    segment_end: ranked.segment.1,
                })
            })
            .collect();
        Ok(SearchPage {
            hits,
            next_offset: more.then_some(request.offset + request.limit),
            took: started.elapsed(),
        })
    }

    async fn keyword_files(&self, words: &str) -> Result<HashSet<String>> {
        let search = self.clone();
        let words = words.to_owned();
        tokio::task::spawn_blocking(move || {
            let keys = search.inner.text.matching_ids(&words)?;
            let map = search
                .inner
                .text_keys
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            Ok(keys
                .into_iter()
                .filter_map(|key| map.get(&key).cloned())
                .collect())
        })
        .await?
    }

    async fn keyword_scores(&self, words: &str) -> Result<HashMap<String, f32>> {
        let search = self.clone();
        let words = words.to_owned();
        tokio::task::spawn_blocking(move || {
            let scored = search.inner.text.search(&words, KEYWORD_CANDIDATES)?;
            let map = search
                .inner
                .text_keys
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            Ok(scored
                .into_iter()
                .filter_map(|(key, score)| map.get(&key).map(|id| (id.clone(), score)))
                .collect())
        })
        .await?
    }
}

/// A file's best match before its record is read.
struct Ranked {
    file_id: Arc<str>,
    cosine: f64,
    score: f64,
    segment: (f64, f64),
}

/// The best-matching files (at least `need` of them when that many exist),
/// each with its best cosine and best window.
fn best_per_file(
    vectors: &Vectors,
    query: &[f32],
    allowed: Option<&HashSet<String>>,
    exclude: Option<&str>,
    need: usize,
) -> Result<Vec<Ranked>> {
    let owners = vectors.owners.read().unwrap_or_else(PoisonError::into_inner);
    let admits = |file_id: &str| exclude != Some(file_id) && allowed.is_none_or(|set| set.contains(file_id));
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
                .filter(|id| exclude != Some(id.as_str()))
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
        if cosine > entry.cosine {
            entry.cosine = cosine;
        }
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
    Ok(best
        .into_values()
        .map(|mut ranked| {
            if let Some((_, start, end)) = best_window.get(&ranked.file_id) {
                ranked.segment = (*start, *end);
            }
            ranked
        })
        .collect())
}

/// Decodes an example clip given as bytes, through a temp file.
fn decode_clip(clip: &[u8]) -> Result<Vec<f32>> {
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, clip)?;
    let options = DecodeOptions {
        max_duration: MAX_CLIP_DURATION,
        format_hint: None,
    };
    let (samples, _) = decode_to_vec(file.path(), &options, |_| {})?;
    Ok(samples)
}
