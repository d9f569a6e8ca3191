//! The keyword index over every file's name and tags (tantivy, in memory,
//! filled from the database at start) and the map from its keys back to
//! file ids.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest, Sha256};
use traum_index::text::{Suggestion, TextIndex, TextRecord};

use crate::error::Result;
use crate::store::Store;

/// Cheap handle to the keyword index.
#[derive(Clone)]
pub(super) struct Keywords {
    inner: Arc<Inner>,
}

struct Inner {
    text: TextIndex,
    /// Text index key → file id.
    files: RwLock<HashMap<u64, String>>,
}

/// The text index key of a file id.
fn key_of(file_id: &str) -> u64 {
    let digest = Sha256::digest(file_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

impl Keywords {
    pub fn new() -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                text: TextIndex::in_ram()?,
                files: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// Fills the index from the database.
    pub async fn load(&self, store: &Store) -> Result<()> {
        let records = store.text_records().await?;
        let keywords = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut files = HashMap::with_capacity(records.len());
            let docs: Vec<TextRecord> = records
                .into_iter()
                .map(|(id, filename, tags)| {
                    let key = key_of(&id);
                    files.insert(key, id);
                    TextRecord {
                        file_id: key,
                        filename,
                        tags,
                    }
                })
                .collect();
            keywords.inner.text.rebuild(docs)?;
            *keywords.files_mut() = files;
            Ok(())
        })
        .await?
    }

    /// Brings the index in line with the database for `file_ids`, whose
    /// stored (id, filename, tags) are `stored`: indexes those and forgets
    /// the files that are gone.
    pub async fn follow(
        &self,
        file_ids: &[String],
        stored: Vec<(String, String, Vec<String>)>,
    ) -> Result<()> {
        let present: HashSet<&str> = stored.iter().map(|(id, _, _)| id.as_str()).collect();
        let gone: Vec<u64> = file_ids
            .iter()
            .filter(|id| !present.contains(id.as_str()))
            .map(|id| key_of(id))
            .collect();
        let records: Vec<TextRecord> = stored
            .into_iter()
            .map(|(id, filename, tags)| {
                let key = key_of(&id);
                self.files_mut().insert(key, id);
                TextRecord {
                    file_id: key,
                    filename,
                    tags,
                }
            })
            .collect();
        {
            let mut files = self.files_mut();
            for key in &gone {
                files.remove(key);
            }
        }
        let keywords = self.clone();
        tokio::task::spawn_blocking(move || {
            for key in gone {
                keywords.inner.text.delete(key);
            }
            for record in &records {
                keywords.inner.text.upsert(record)?;
            }
            keywords.inner.text.commit()
        })
        .await??;
        Ok(())
    }

    /// Files matching every word of `words`.
    pub async fn matching_files(&self, words: &str) -> Result<HashSet<String>> {
        let keywords = self.clone();
        let words = words.to_owned();
        tokio::task::spawn_blocking(move || {
            let keys = keywords.inner.text.matching_ids(&words)?;
            let files = keywords.files();
            Ok(keys
                .into_iter()
                .filter_map(|key| files.get(&key).cloned())
                .collect())
        })
        .await?
    }

    /// BM25 scores of the best `limit` files for `words`.
    pub async fn scores(&self, words: &str, limit: usize) -> Result<HashMap<String, f32>> {
        let keywords = self.clone();
        let words = words.to_owned();
        tokio::task::spawn_blocking(move || {
            let scored = keywords.inner.text.search(&words, limit)?;
            let files = keywords.files();
            Ok(scored
                .into_iter()
                .filter_map(|(key, score)| files.get(&key).map(|id| (id.clone(), score)))
                .collect())
        })
        .await?
    }

    /// Indexed terms (filename words and tags) starting with `prefix`.
    pub async fn terms(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let keywords = self.clone();
        let prefix = prefix.to_owned();
        Ok(tokio::task::spawn_blocking(move || keywords.inner.text.suggest(&prefix, limit)).await??)
    }

    /// Files in the index.
    pub fn len(&self) -> u64 {
        self.inner.text.num_docs()
    }

    fn files(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, String>> {
        self.inner.files.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn files_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, String>> {
        self.inner.files.write().unwrap_or_else(PoisonError::into_inner)
    }
}
