//! The vector index's lifecycle: loaded for the model once it is ready (the
//! saved copy reconciled with the database, or a build from it), followed
//! as files are embedded and deleted, and saved for a fast next start.
//! Every vector is owned by a file; the owners map turns index hits back
//! into files and segments.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use traum_index::IndexError;
use traum_index::vector::{VectorIndex, VectorIndexConfig};

use crate::domain::StoredEmbedding;
use crate::embed::Engine;
use crate::error::Result;
use crate::store::Store;

/// Rows read per page while loading vectors from the database.
const LOAD_PAGE: u64 = 5_000;

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
    /// Vector ids deleted while the index was loading, applied once it is in.
    deleted_while_loading: Mutex<Vec<u64>>,
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
            deleted_while_loading: Mutex::new(Vec::new()),
        }
    }

    /// The loaded index, if any.
    pub fn current(&self) -> Option<Arc<Vectors>> {
        self.loaded.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Loads the index of `engine`'s model: the saved copy when there is a
    /// usable one, checked against the database (rows deleted since the save
    /// are dropped, rows added are inserted), or else a fresh build from the
    /// database. Vectors of other models are never loaded.
    pub async fn load(&self, store: &Store, engine: &Engine) -> Result<()> {
        let started = Instant::now();
        let model_id = engine.model_id().to_owned();
        let dim = engine.dim();
        let saved = match self.config.persist_dir.clone() {
            Some(dir) => {
                let (config, id) = (self.config.clone(), model_id.clone());
                tokio::task::spawn_blocking(move || VectorIndex::load(&dir, &id, dim, config)).await?
            }
            None => Err(IndexError::Missing(std::path::PathBuf::new())),
        };
        let (index, owners, source) = match saved {
            Ok((index, _manifest)) => {
                let in_db = store.embedding_owners(&model_id).await?;
                // Comparing up to millions of ids is CPU work: off the runtime.
                let (index, owners, missing, removed) = tokio::task::spawn_blocking(move || {
                    let mut owners = Owners::default();
                    for row in &in_db {
                        owners.add(row);
                    }
                    let in_index: HashSet<u64> = index.ids().into_iter().collect();
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
                        index.delete(*id);
                    }
                    (index, owners, missing, gone.len())
                })
                .await?;
                let added = store.embeddings_by_ids(&missing).await?;
                let count = added.len();
                let index = tokio::task::spawn_blocking(move || {
                    index
                        .insert_many(added.iter().map(|row| (row.id, row.vector.as_slice())))
                        .map(|()| index)
                })
                .await??;
                let source = format!("saved copy, {removed} removed and {count} added since");
                (index, owners, source)
            }
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
                (index, owners, "built from the database".to_owned())
            }
        };
        let count = index.len();
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Vectors {
            model_id: model_id.clone(),
            index,
            owners: RwLock::new(owners),
        }));
        let deleted = std::mem::take(
            &mut *self
                .deleted_while_loading
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.remove(&deleted);
        tracing::info!(
            vectors = count,
            model_id,
            took_ms = started.elapsed().as_millis() as u64,
            "vector index loaded ({source})"
        );
        Ok(())
    }

    /// Saves the index for a fast next start (at shutdown). Anything written
    /// after the save is reconciled from the database on load.
    pub async fn save(&self) -> Result<()> {
        let (Some(vectors), Some(dir)) = (self.current(), self.config.persist_dir.clone()) else {
            return Ok(());
        };
        let started = Instant::now();
        let manifest = tokio::task::spawn_blocking(move || vectors.index.save(&dir)).await??;
        tracing::info!(
            vectors = manifest.item_count,
            took_ms = started.elapsed().as_millis() as u64,
            "vector index saved"
        );
        Ok(())
    }

    /// Follows a file's new vectors (after its embed stage).
    pub fn replaced(&self, removed: &[u64], written: &[StoredEmbedding]) {
        let Some(vectors) = self.current() else { return };
        self.remove(removed);
        let mut owners = vectors.owners.write().unwrap_or_else(PoisonError::into_inner);
        let items = written.iter().map(|row| (row.id, row.vector.as_slice()));
        if let Err(err) = vectors.index.insert_many(items) {
            tracing::error!(error = %err, "cannot index new vectors; they are found after the next restart");
            return;
        }
        for row in written {
            owners.add(row);
        }
    }

    /// Forgets vectors (of a deleted or re-embedded file).
    pub fn remove(&self, ids: &[u64]) {
        let Some(vectors) = self.current() else {
            self.deleted_while_loading
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
