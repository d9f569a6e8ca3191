//! Near-duplicates: files that are the same recording across formats,
//! bitrates, sample rates, trims and gain changes, found by acoustic
//! fingerprint (`traum_audio::fingerprint`, Chromaprint items).
//!
//! The analyse stage fingerprints each file and looks it up in an in-memory
//! index of every stored fingerprint; the links it finds are stored with the
//! fingerprint, so grouping never compares all files with each other again
//! (that takes minutes of CPU at 100 000 files). Groups are the connected
//! components of the links, each listed from its lowest file id (ids are
//! UUIDv7, so the earliest upload).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;
use traum_audio::fingerprint::{Fingerprint, FingerprintIndex, Match, group_links};
use traum_audio::{DecodeOptions, OUTPUT_SAMPLE_RATE, Stage, decode_to_vec};

use crate::blob::BlobStore;
use crate::domain::{DuplicateGroup, DuplicateLink, DuplicateMember, FileRecord, Page};
use crate::error::Result;
use crate::isolation::guarded;
use crate::store::Store;

/// Fingerprints read per database round trip while loading the index, and
/// files per round trip of the backfill.
const LOAD_BATCH: u64 = 512;

/// A group is followed through at most this many files: more copies of
/// one recording than any library holds, and a bound on one request's work.
const MAX_GROUP_FILES: usize = 1000;

/// Cheap handle to the near-duplicate service.
#[derive(Clone)]
pub struct Duplicates {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blobs: BlobStore,
    max_duration: Duration,
    catalogue: Arc<RwLock<Catalogue>>,
}

/// The fingerprint index with the file ids behind its integer keys.
#[derive(Default)]
struct Catalogue {
    index: FingerprintIndex,
    keys: HashMap<String, i64>,
    files: HashMap<i64, String>,
    next_key: i64,
}

impl Catalogue {
    fn insert(&mut self, file_id: &str, fingerprint: &Fingerprint) {
        self.remove(file_id);
        let key = self.next_key;
        self.next_key += 1;
        self.keys.insert(file_id.to_owned(), key);
        self.files.insert(key, file_id.to_owned());
        self.index.insert(key, fingerprint);
    }

    fn remove(&mut self, file_id: &str) {
        if let Some(key) = self.keys.remove(file_id) {
            self.files.remove(&key);
            self.index.remove(key);
        }
    }

    fn fingerprint(&self, file_id: &str) -> Option<&Fingerprint> {
        self.index.get(*self.keys.get(file_id)?)
    }

    /// Links from every other stored file that is the same recording as
    /// `fingerprint` to `file_id`.
    fn links_to(&self, file_id: &str, fingerprint: &Fingerprint) -> Vec<DuplicateLink> {
        self.index
            .matches(fingerprint)
            .into_iter()
            .filter_map(|(key, found)| {
                let stored = self.files.get(&key)?;
                (stored != file_id).then(|| DuplicateLink {
                    file_id: stored.clone(),
                    other_id: file_id.to_owned(),
                    score: found.score,
                    offset_seconds: found.offset_seconds,
                })
            })
            .collect()
    }
}

/// A group before its files are read: (file id, score, offset) with the
/// first member first.
type IdGroup = Vec<(String, f64, f64)>;

/// How far back a writer reads the fingerprints other replicas stored: far
/// beyond the feed's delay (milliseconds; a poll each second at worst) and
/// any clock skew between replicas.
const RECENT_WRITES: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

impl Duplicates {
    /// A service whose index is empty until [`Duplicates::start`] loads it.
    pub fn new(store: Store, blobs: BlobStore, max_duration: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                blobs,
                max_duration,
                catalogue: Arc::default(),
            }),
        }
    }

    /// Loads every stored fingerprint into the index. Lookups wait for the
    /// load: the index is locked before this returns, so no file analysed
    /// meanwhile misses a stored copy.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let locked = self.inner.catalogue.clone().try_write_owned();
        let service = self.clone();
        tokio::spawn(async move {
            let Ok(guard) = locked else {
                tracing::error!(
                    "the fingerprint index was in use before it was loaded; near-duplicates stay as stored"
                );
                return;
            };
            match service.load(guard).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(fingerprints = count, "loaded the fingerprint index"),
                Err(err) => {
                    tracing::error!(error = %err, "cannot load the fingerprint index; new files are only compared with each other");
                }
            }
        })
    }

    async fn load(&self, mut guard: tokio::sync::OwnedRwLockWriteGuard<Catalogue>) -> Result<usize> {
        let mut after = String::new();
        let mut count = 0;
        loop {
            let rows = self.inner.store.fingerprints_after(&after, LOAD_BATCH).await?;
            let Some((last, _)) = rows.last() else {
                return Ok(count);
            };
            after = last.clone();
            count += rows.len();
            guard = tokio::task::spawn_blocking(move || {
                for (file_id, bytes) in rows {
                    match Fingerprint::from_bytes(&bytes) {
                        Ok(fingerprint) => guard.insert(&file_id, &fingerprint),
                        Err(err) => {
                            tracing::warn!(file_id = %file_id, error = %err, "skipping an unreadable stored fingerprint");
                        }
                    }
                }
                guard
            })
            .await?;
        }
    }

    /// Fingerprints the ready files that have none (analysed before
    /// fingerprints existed), one at a time; a cluster chore. Returns how
    /// many it fingerprinted.
    pub async fn backfill(&self) -> Result<usize> {
        let mut after = String::new();
        let mut count = 0;
        loop {
            let files = self
                .inner
                .store
                .files_without_fingerprint(&after, LOAD_BATCH)
                .await?;
            let Some(last) = files.last() else {
                return Ok(count);
            };
            after = last.id.clone();
            for file in files {
                let local = match self.inner.blobs.local(&file.sha256, file.size_bytes).await {
                    Ok(local) => local,
                    Err(err) => {
                        tracing::warn!(file_id = %file.id, error = %err, "cannot read a stored file to fingerprint it");
                        continue;
                    }
                };
                let options = DecodeOptions {
                    max_duration: self.inner.max_duration,
                    format_hint: Some(file.format),
                };
                let file_id = file.id.clone();
                let printed = tokio::task::spawn_blocking(move || {
                    guarded(Stage::Analysis, &file_id, || {
                        let (samples, _) = decode_to_vec(local.path(), &options, |_| {})?;
                        Ok(Fingerprint::compute(&samples, OUTPUT_SAMPLE_RATE)?)
                    })
                })
                .await?;
                match printed {
                    Ok(fingerprint) => {
                        self.fingerprinted(&file.id, fingerprint).await?;
                        count += 1;
                    }
                    // A file that decoded once and no longer does is the
                    // reprocess's business, not this pass's.
                    Err(err) => {
                        tracing::warn!(file_id = %file.id, error = %err, "cannot fingerprint a stored file")
                    }
                }
            }
        }
    }

    /// Records a file's fingerprint: finds the stored files that are the
    /// same recording, stores the fingerprint with those links, and adds it
    /// to the index. Returns the links found.
    pub async fn fingerprinted(&self, file_id: &str, fingerprint: Fingerprint) -> Result<Vec<DuplicateLink>> {
        let bytes = fingerprint.to_bytes();
        // One writer at a time in the cluster: two copies analysed at once
        // must see each other. The writers before this one have committed;
        // what they stored may not have reached this replica through the
        // feed yet, so it is read here.
        let _cluster = self.inner.store.lock_fingerprinting().await?;
        let recent = if self.inner.store.is_sqlite() {
            Vec::new()
        } else {
            self.inner
                .store
                .fingerprints_since(chrono::Utc::now() - RECENT_WRITES)
                .await?
        };
        let guard = self.inner.catalogue.clone().write_owned().await;
        let id = file_id.to_owned();
        let (guard, links) = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            for (other, stored) in &recent {
                if *other != id
                    && guard.fingerprint(other).is_none()
                    && let Ok(stored) = Fingerprint::from_bytes(stored)
                {
                    guard.insert(other, &stored);
                }
            }
            let links = guard.links_to(&id, &fingerprint);
            guard.insert(&id, &fingerprint);
            (guard, links)
        })
        .await?;
        drop(guard);
        match self.inner.store.put_fingerprint(file_id, bytes, &links).await {
            Ok(true) => Ok(links),
            Ok(false) => {
                self.forget(file_id).await;
                Ok(Vec::new())
            }
            Err(err) => {
                self.forget(file_id).await;
                Err(err)
            }
        }
    }

    /// Brings the index in line with the database for `file_ids` (changed
    /// through any replica): re-reads their stored fingerprints, adds or
    /// replaces those, and drops the files that have none.
    pub async fn follow(&self, file_ids: &[String]) -> Result<()> {
        let stored = self.inner.store.fingerprints_of(file_ids).await?;
        let guard = self.inner.catalogue.clone().write_owned().await;
        let file_ids = file_ids.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let printed: HashSet<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
            for id in file_ids.iter().filter(|id| !printed.contains(id.as_str())) {
                guard.remove(id);
            }
            for (file_id, bytes) in &stored {
                match Fingerprint::from_bytes(bytes) {
                    Ok(fingerprint) => guard.insert(file_id, &fingerprint),
                    Err(err) => {
                        tracing::warn!(file_id = %file_id, error = %err, "skipping an unreadable stored fingerprint");
                    }
                }
            }
        })
        .await?;
        Ok(())
    }

    /// Drops a file whose fingerprint could not be stored from the index.
    async fn forget(&self, file_id: &str) {
        self.inner.catalogue.write().await.remove(file_id);
    }

    /// The group `file_id` is in, if any.
    pub async fn group_of(&self, file_id: &str) -> Result<Option<DuplicateGroup>> {
        let mut members: BTreeSet<String> = BTreeSet::from([file_id.to_owned()]);
        let mut frontier = vec![file_id.to_owned()];
        let mut links = Vec::new();
        while !frontier.is_empty() && members.len() < MAX_GROUP_FILES {
            let found = self.inner.store.duplicate_links_of(&frontier).await?;
            frontier.clear();
            for link in found {
                for id in [&link.file_id, &link.other_id] {
                    if members.insert(id.clone()) {
                        frontier.push(id.clone());
                    }
                }
                links.push(link);
            }
        }
        if links.is_empty() {
            return Ok(None);
        }
        links.sort_by(|a, b| (&a.file_id, &a.other_id).cmp(&(&b.file_id, &b.other_id)));
        links.dedup_by(|a, b| a.file_id == b.file_id && a.other_id == b.other_id);
        let (_, groups) = self.group(links, true).await?;
        Ok(self.with_files(groups).await?.into_iter().next())
    }

    /// Every group, ordered by first member, one page of them.
    pub async fn list(&self, offset: u64, limit: u64) -> Result<Page<DuplicateGroup>> {
        let links = self.inner.store.all_duplicate_links().await?;
        // Which files form groups costs little; measuring members against
        // their first costs a comparison each, so only this page's are.
        let (links, groups) = self.group(links, false).await?;
        let total = groups.len() as u64;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(groups.len());
        let end = usize::try_from(offset.saturating_add(limit))
            .unwrap_or(usize::MAX)
            .min(groups.len());
        let on_page: HashSet<String> = groups[start..end]
            .iter()
            .flatten()
            .map(|(id, _, _)| id.clone())
            .collect();
        let page_links = links
            .into_iter()
            .filter(|link| on_page.contains(&link.file_id))
            .collect();
        let (_, page) = self.group(page_links, true).await?;
        Ok(Page {
            items: self.with_files(page).await?,
            total,
            next_offset: (end < total as usize).then_some(end as u64),
        })
    }

    /// Connected components of `links` (handed back too), each member with
    /// its score and offset against the first: measured where both
    /// fingerprints are in the index when `measure`, else as linked or
    /// chained.
    async fn group(
        &self,
        links: Vec<DuplicateLink>,
        measure: bool,
    ) -> Result<(Vec<DuplicateLink>, Vec<IdGroup>)> {
        let catalogue = match measure {
            true => Some(self.inner.catalogue.clone().read_owned().await),
            false => None,
        };
        Ok(tokio::task::spawn_blocking(move || {
            let mut ids: Vec<&str> = links
                .iter()
                .flat_map(|link| [link.file_id.as_str(), link.other_id.as_str()])
                .collect();
            ids.sort_unstable();
            ids.dedup();
            // Ranks in id order, so a group's lowest rank is its lowest id.
            let rank = |id: &str| ids.binary_search(&id).map_or(-1, |rank| rank as i64);
            let ranked: Vec<(i64, i64, Match)> = links
                .iter()
                .map(|link| {
                    let found = Match {
                        score: link.score,
                        offset_seconds: link.offset_seconds,
                        overlap_seconds: 0.0,
                    };
                    (rank(&link.file_id), rank(&link.other_id), found)
                })
                .collect();
            let fingerprint = |rank: i64| {
                let id = ids.get(usize::try_from(rank).ok()?)?;
                catalogue.as_ref()?.fingerprint(id)
            };
            let groups = group_links(&ranked, fingerprint)
                .into_iter()
                .map(|group| {
                    group
                        .members
                        .into_iter()
                        .filter_map(|member| {
                            let id = ids.get(usize::try_from(member.id).ok()?)?;
                            Some(((*id).to_owned(), member.score, member.offset_seconds))
                        })
                        .collect()
                })
                .collect::<Vec<IdGroup>>();
            drop(ids);
            (links, groups)
        })
        .await?)
    }

    /// Groups with their files read; a file deleted meanwhile is left out,
    /// and a group left with one file is dropped.
    async fn with_files(&self, groups: Vec<IdGroup>) -> Result<Vec<DuplicateGroup>> {
        let ids: Vec<String> = groups.iter().flatten().map(|(id, _, _)| id.clone()).collect();
        let mut files: HashMap<String, FileRecord> = self.inner.store.files_by_ids(&ids).await?;
        let mut result = Vec::with_capacity(groups.len());
        for group in groups {
            let mut members: Vec<DuplicateMember> = group
                .into_iter()
                .filter_map(|(id, score, offset_seconds)| {
                    Some(DuplicateMember {
                        file: files.remove(&id)?,
                        score,
                        offset_seconds,
                        same_bytes: false,
                    })
                })
                .collect();
            let Some(first) = members.first().map(|member| member.file.sha256.clone()) else {
                continue;
            };
            for member in members.iter_mut().skip(1) {
                member.same_bytes = member.file.sha256 == first;
            }
            if members.len() >= 2 {
                result.push(DuplicateGroup { members });
            }
        }
        Ok(result)
    }
}
