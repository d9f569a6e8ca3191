//! The vector index's lifecycle: loaded for the model once it is ready,
//! following the database's change feed, and saved for a fast next start.
//! Every vector is owned by a file; the owners map turns index hits back
//! into files and segments.
//!
//! A save records the feed position it holds everything below, in the
//! manifest and in `owners.bin` beside it. A load whose saved copy has a
//! position the feed still reaches trusts the copy and replays the feed
//! from there; any other load checks the copy against the database (or
//! builds from it) and replays from where the check began.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use traum_index::IndexError;
use traum_index::vector::{VectorIndex, VectorIndexConfig};

use crate::domain::StoredEmbedding;
use crate::embed::Engine;
use crate::error::{Error, Result};
use crate::store::{FeedPosition, Store};

/// Rows read per page while loading vectors from the database.
const LOAD_PAGE: u64 = 5_000;
/// The owners of a saved copy's vectors, beside its manifest.
const OWNERS_FILE: &str = "owners.bin";
const OWNERS_MAGIC: &[u8; 8] = b"TRMOWN01";

/// What a vector belongs to.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub file_id: Arc<str>,
    /// `None` for the pooled whole-file vector.
    pub window: Option<u32>,
    pub start: f64,
    pub end: f64,
}

/// Vector id → owner, and file → its vector ids.
#[derive(Default)]
pub(super) struct Owners {
    pub by_id: HashMap<u64, Owner>,
    pub by_file: HashMap<Arc<str>, Vec<u64>>,
}

impl Owners {
    pub fn add(&mut self, row: &StoredEmbedding) {
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

    pub fn remove(&mut self, id: u64) {
        if let Some(owner) = self.by_id.remove(&id)
            && let Some(ids) = self.by_file.get_mut(&owner.file_id)
        {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_file.remove(&owner.file_id);
            }
        }
    }
}

/// The loaded index of one model with its owners.
pub(super) struct Vectors {
    pub model_id: String,
    pub index: VectorIndex,
    pub owners: RwLock<Owners>,
}

/// The vector index as the service holds it: absent until the model is
/// loaded, then following the database.
pub(super) struct VectorSet {
    config: VectorIndexConfig,
    loaded: RwLock<Option<Arc<Vectors>>>,
}

/// How the vector index stands, for `GetStats`.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndexState {
    pub entries: u64,
    /// Bytes of the copy last saved to (or loaded from) disk.
    pub saved_bytes: u64,
    pub ready: bool,
    /// How searches use the graph, e.g. "exact scan" or "graph walk".
    pub search_mode: String,
}

impl VectorSet {
    pub fn new(config: VectorIndexConfig) -> Self {
        Self {
            config,
            loaded: RwLock::new(None),
        }
    }

    /// The loaded index, if any.
    pub fn current(&self) -> Option<Arc<Vectors>> {
        self.loaded.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Loads the index of `engine`'s model. Vectors of other models are
    /// never loaded. Returns the feed position the loaded index holds
    /// everything below, when the saved copy says so and the feed still
    /// reaches back there (`floor`); `None` when the index was checked
    /// against (or built from) the database, so the caller replays the feed
    /// from where the load began.
    pub async fn load(
        &self,
        store: &Store,
        engine: &Engine,
        floor: FeedPosition,
    ) -> Result<Option<FeedPosition>> {
        let started = Instant::now();
        let model_id = engine.model_id().to_owned();
        let dim = engine.dim();
        let saved = match self.config.persist_dir.clone() {
            Some(dir) => {
                let (config, id) = (self.config.clone(), model_id.clone());
                tokio::task::spawn_blocking(move || {
                    VectorIndex::load(&dir, &id, dim, config).map(|(index, manifest)| {
                        let owners = (manifest.high_water_mark > 0 && manifest.high_water_mark >= floor)
                            .then(|| read_owners(&dir, manifest.high_water_mark, &index))
                            .flatten();
                        (index, manifest, owners)
                    })
                })
                .await?
            }
            None => Err(IndexError::Missing(std::path::PathBuf::new())),
        };
        let (index, owners, mut source, resume) = match saved {
            Ok((index, manifest, Some(owners))) => {
                let position = manifest.high_water_mark;
                let source = format!("saved copy at feed position {position}");
                (index, owners, source, Some(position))
            }
            // Checked against the database once it is in place (below).
            Ok((index, _manifest, None)) => (index, Owners::default(), String::new(), None),
            Err(err) => {
                if !matches!(err, IndexError::Missing(_)) {
                    tracing::warn!(error = %err, "saved vector index unusable; rebuilding from the database");
                }
                // One pass over the rows gives both the vectors and their owners.
                let mut owners = Owners::default();
                let mut rows = Vec::new();
                let mut after = 0;
                loop {
                    let page = store.embeddings_after(&model_id, after, LOAD_PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after = last.id;
                    for row in page {
                        owners.add(&row);
                        rows.push((row.id, row.vector));
                    }
                }
                let (config, id) = (self.config.clone(), model_id.clone());
                let index =
                    tokio::task::spawn_blocking(move || VectorIndex::build(id, dim, config, rows)).await??;
                (index, owners, "built from the database".to_owned(), None)
            }
        };
        let unchecked = source.is_empty();
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Vectors {
            model_id: model_id.clone(),
            index,
            owners: RwLock::new(owners),
        }));
        if unchecked {
            let (removed, added) = self.recheck(store).await?;
            source = format!("saved copy checked against the database, {removed} removed and {added} added");
        }
        let count = self.state().entries;
        tracing::info!(
            vectors = count,
            model_id,
            took_ms = started.elapsed().as_millis() as u64,
            "vector index loaded ({source})"
        );
        Ok(resume)
    }

    /// Saves the index for a fast next start (at shutdown), recording that
    /// it holds every change below `position`.
    pub async fn save(&self, position: FeedPosition) -> Result<()> {
        let (Some(vectors), Some(dir)) = (self.current(), self.config.persist_dir.clone()) else {
            return Ok(());
        };
        let started = Instant::now();
        let manifest = tokio::task::spawn_blocking(move || -> Result<_> {
            let manifest = vectors.index.save_at(&dir, position)?;
            let owners = vectors.owners.read().unwrap_or_else(PoisonError::into_inner);
            write_owners(&dir, position, &owners)?;
            Ok(manifest)
        })
        .await??;
        tracing::info!(
            vectors = manifest.item_count,
            position,
            took_ms = started.elapsed().as_millis() as u64,
            "vector index saved"
        );
        Ok(())
    }

    /// Checks the loaded index against the database in place: drops the
    /// vectors the database no longer has, adds those it has that the index
    /// lacks, and takes the database's owners. For a saved copy that caught
    /// up from the feed yet disagrees with the database (rows changed
    /// without the feed, e.g. by hand). Returns (removed, added).
    pub async fn recheck(&self, store: &Store) -> Result<(usize, usize)> {
        let Some(vectors) = self.current() else {
            return Ok((0, 0));
        };
        let in_db = store.embedding_owners(&vectors.model_id).await?;
        let held = vectors.clone();
        let (owners, missing, removed) = tokio::task::spawn_blocking(move || {
            let mut owners = Owners::default();
            for row in &in_db {
                owners.add(row);
            }
            let in_index: HashSet<u64> = held.index.ids().into_iter().collect();
            let missing: Vec<u64> = owners
                .by_id
                .keys()
                .filter(|id| !in_index.contains(id))
                .copied()
                .collect();
            let gone: Vec<u64> = in_index
                .into_iter()
                .filter(|id| !owners.by_id.contains_key(id))
                .collect();
            for id in &gone {
                held.index.delete(*id);
            }
            (owners, missing, gone.len())
        })
        .await?;
        let added = store.embeddings_by_ids(&missing).await?;
        let count = added.len();
        tokio::task::spawn_blocking(move || -> Result<()> {
            vectors
                .index
                .insert_many(added.iter().map(|row| (row.id, row.vector.as_slice())))?;
            *vectors.owners.write().unwrap_or_else(PoisonError::into_inner) = owners;
            Ok(())
        })
        .await??;
        Ok((removed, count))
    }

    /// The model whose vectors the loaded index holds.
    pub fn model_id(&self) -> Option<String> {
        self.current().map(|vectors| vectors.model_id.clone())
    }

    /// Brings the index in line with the database for `file_ids`, whose
    /// stored vectors of the loaded model are `rows`: drops the vectors the
    /// database no longer has and adds those it has that the index lacks.
    /// Applying the same rows again changes nothing. CPU work: call it off
    /// the runtime.
    pub fn follow(&self, file_ids: &[String], rows: Vec<StoredEmbedding>) -> Result<()> {
        let Some(vectors) = self.current() else {
            return Ok(());
        };
        let mut stored: HashMap<&str, HashSet<u64>> = HashMap::new();
        for row in &rows {
            stored.entry(row.file_id.as_str()).or_default().insert(row.id);
        }
        let mut owners = vectors.owners.write().unwrap_or_else(PoisonError::into_inner);
        for file_id in file_ids {
            let wanted = stored.get(file_id.as_str());
            let held = owners.by_file.get(file_id.as_str()).cloned().unwrap_or_default();
            for id in held {
                if !wanted.is_some_and(|ids| ids.contains(&id)) {
                    vectors.index.delete(id);
                    owners.remove(id);
                }
            }
        }
        let new: Vec<&StoredEmbedding> = rows
            .iter()
            .filter(|row| !owners.by_id.contains_key(&row.id))
            .collect();
        vectors
            .index
            .insert_many(new.iter().map(|row| (row.id, row.vector.as_slice())))?;
        for row in new {
            owners.add(row);
        }
        Ok(())
    }

    pub fn state(&self) -> VectorIndexState {
        let vectors = self.current();
        VectorIndexState {
            entries: vectors.as_ref().map_or(0, |v| v.index.len() as u64),
            saved_bytes: vectors.as_ref().map_or(0, |v| v.index.saved_bytes()),
            ready: vectors.is_some(),
            search_mode: vectors
                .as_ref()
                .map_or_else(String::new, |v| v.index.stats().route.to_string()),
        }
    }
}

/// Writes the owners of a saved copy's vectors (temp file, fsync, rename):
/// the magic, the feed position, the count, then per vector its id,
/// window (-1 for the pooled vector), start, end and file id, and a CRC32
/// of all that.
fn write_owners(dir: &Path, position: FeedPosition, owners: &Owners) -> Result<()> {
    let mut bytes = Vec::with_capacity(64 + owners.by_id.len() * 72);
    bytes.extend_from_slice(OWNERS_MAGIC);
    bytes.extend_from_slice(&position.to_le_bytes());
    bytes.extend_from_slice(&(owners.by_id.len() as u64).to_le_bytes());
    for (id, owner) in &owners.by_id {
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&owner.window.map_or(-1, i64::from).to_le_bytes());
        bytes.extend_from_slice(&owner.start.to_le_bytes());
        bytes.extend_from_slice(&owner.end.to_le_bytes());
        let file_id = owner.file_id.as_bytes();
        bytes.extend_from_slice(&(file_id.len() as u32).to_le_bytes());
        bytes.extend_from_slice(file_id);
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let io = |err: std::io::Error| {
        Error::Internal(format!("cannot write {}: {err}", dir.join(OWNERS_FILE).display()))
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(dir.join(OWNERS_FILE)).map_err(|err| io(err.error))?;
    Ok(())
}

/// The owners saved with a copy at `position`, if they are intact, were
/// saved at that position, and name exactly the copy's vectors; `None`
/// sends the load to the database instead.
fn read_owners(dir: &Path, position: FeedPosition, index: &VectorIndex) -> Option<Owners> {
    let path = dir.join(OWNERS_FILE);
    let bytes = std::fs::read(&path).ok()?;
    let owners = parse_owners(&bytes, position);
    if owners.is_none() {
        tracing::info!(path = %path.display(), "saved vector owners are stale or unreadable; checking the index against the database");
    }
    let owners = owners?;
    let ids = index.ids();
    (ids.len() == owners.by_id.len() && ids.iter().all(|id| owners.by_id.contains_key(id))).then_some(owners)
}

fn parse_owners(bytes: &[u8], position: FeedPosition) -> Option<Owners> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let slice = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(slice)
    };
    if take(8)? != OWNERS_MAGIC {
        return None;
    }
    let u64_of = |b: &[u8]| b.try_into().ok().map(u64::from_le_bytes);
    if u64_of(take(8)?)? != position {
        return None;
    }
    let count = u64_of(take(8)?)?;
    let mut owners = Owners::default();
    for _ in 0..count {
        let id = u64_of(take(8)?)?;
        let window = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let start = f64::from_le_bytes(take(8)?.try_into().ok()?);
        let end = f64::from_le_bytes(take(8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let file_id = std::str::from_utf8(take(len)?).ok()?;
        owners.add(&StoredEmbedding {
            id,
            file_id: file_id.to_owned(),
            window: u32::try_from(window).ok(),
            start_seconds: start,
            end_seconds: end,
            vector: Vec::new(),
        });
    }
    (at == body.len()).then_some(owners)
}
