//! The on-disk form of an index: a manifest naming checksummed files (hora's
//! dump, the graph's keys and vectors, the fresh segment with the
//! tombstones), each written through temp file + fsync + rename, and read
//! back only after its length and checksum match.

use std::collections::HashSet;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};

use super::build::{Graph, GraphFiles, rebuild, route_for};
use super::graph::HnswGraph;
use super::segment::{Fresh, Segment};
use super::{HnswParams, Result, Route, VectorIndex, VectorIndexConfig};
use crate::IndexError;

/// Bumped whenever the on-disk layout changes; older saves are then stale.
pub const FORMAT_VERSION: u32 = 1;

pub(super) const MANIFEST: &str = "manifest.json";
const VECTORS_MAGIC: &[u8; 8] = b"TRMVEC01";
const DELTA_MAGIC: &[u8; 8] = b"TRMDLT01";

/// One file named by the manifest, with what it must look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub len: u64,
    pub crc32: u32,
}

/// `manifest.json`: what a saved index contains and what it was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model_id: String,
    pub dim: usize,
    /// Live items at save time.
    pub item_count: usize,
    pub generation: u64,
    pub hnsw: HnswParams,
    /// hora's dump; `None` when the graph is empty.
    pub graph: Option<FileEntry>,
    /// Keys and vectors of the graph, in graph order.
    pub graph_vectors: FileEntry,
    /// Fresh segment and tombstones.
    pub delta: FileEntry,
    /// The position in the caller's change feed this copy holds everything
    /// below (0: unknown, so the caller checks the copy against its source).
    #[serde(default)]
    pub high_water_mark: u64,
}

impl Manifest {
    /// Bytes of every file the manifest names (the manifest itself aside).
    pub fn bytes(&self) -> u64 {
        self.files().map(|entry| entry.len).sum()
    }

    fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.graph.iter().chain([&self.graph_vectors, &self.delta])
    }
}

impl VectorIndex {
    /// Writes the index to `dir`: hora's dump and the graph's vectors (once
    /// per graph), the fresh segment and tombstones, then `manifest.json`,
    /// each through temp file + fsync + rename so a crash leaves the previous
    /// save intact.
    pub fn save(&self, dir: &Path) -> Result<Manifest> {
        self.save_at(dir, 0)
    }

    /// [`save`](Self::save), recording `high_water_mark` in the manifest:
    /// the caller's feed position, below which every change is in the index.
    pub fn save_at(&self, dir: &Path, high_water_mark: u64) -> Result<Manifest> {
        let _save = self
            .inner
            .save_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let dim = self.inner.dim;
        let (mut graph, mut fresh, mut tombstones, mut item_count) = self.snapshot();
        if graph.files.is_none() {
            // The graph was built without a save directory: rebuild into `dir`.
            rebuild(&self.inner, Some(dir), true)?;
            (graph, fresh, tombstones, item_count) = self.snapshot();
        }
        let files = graph
            .files
            .clone()
            .ok_or_else(|| IndexError::Hnsw("rebuilt graph has no files".into()))?;
        if files.dir != dir {
            for entry in files.graph.iter().chain([&files.vectors]) {
                let (from, to) = (files.dir.join(&entry.name), dir.join(&entry.name));
                fs::copy(&from, &to).map_err(|e| IndexError::io(&from, e))?;
            }
        }
        let mut tombs: Vec<u64> = tombstones.drain().collect();
        tombs.sort_unstable();
        let delta_name = format!("delta-{}-{}.bin", graph.generation, unique_suffix());
        let delta = write_file_atomically(dir, &delta_name, |w| {
            w.write_all(DELTA_MAGIC)?;
            w.write_all(&(dim as u64).to_le_bytes())?;
            write_rows(w, &fresh.rows)?;
            w.write_all(&(tombs.len() as u64).to_le_bytes())?;
            write_u64s(w, &tombs)
        })?;
        drop(fresh);
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            model_id: self.inner.model_id.clone(),
            dim,
            item_count,
            generation: graph.generation,
            hnsw: self.inner.config.hnsw.clone(),
            graph: files.graph.clone(),
            graph_vectors: files.vectors.clone(),
            delta,
            high_water_mark,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| IndexError::Hnsw(format!("could not encode the manifest: {e}")))?;
        write_file_atomically(dir, MANIFEST, |w| w.write_all(&json))?;
        remove_unreferenced(dir, &manifest);
        self.inner.saved_bytes.store(manifest.bytes(), Ordering::Relaxed);
        Ok(manifest)
    }

    /// Saves to the configured directory right after a build, so a crash
    /// before the next clean shutdown costs a reconcile, not another build
    /// (about 45 min for 1M vectors on 2 cores). Failing to save only costs
    /// that speed-up, so it is logged rather than returned.
    pub(super) fn save_to_persist_dir(&self) {
        if let Some(dir) = self.inner.config.persist_dir.clone()
            && let Err(err) = self.save(&dir)
        {
            tracing::warn!(error = %err, dir = %dir.display(), "could not save the vector index");
        }
    }

    fn snapshot(&self) -> (Arc<Graph>, Fresh, HashSet<u64>, usize) {
        let st = self.read();
        (
            st.graph.clone(),
            st.fresh.clone(),
            st.tombstones.clone(),
            st.live_len(),
        )
    }

    /// Loads what [`save`](Self::save) wrote. Fails with
    /// [`IndexError::Missing`], [`IndexError::Stale`] (other model, dimension
    /// or format) or [`IndexError::Corrupt`]; the caller then rebuilds from
    /// the DB. `config.persist_dir` should normally be `dir`.
    pub fn load(
        dir: &Path,
        expected_model_id: &str,
        expected_dim: usize,
        config: VectorIndexConfig,
    ) -> Result<(Self, Manifest)> {
        Self::validate_config(expected_dim, &config)?;
        let corrupt = |reason: String| IndexError::Corrupt {
            path: dir.to_path_buf(),
            reason,
        };
        let manifest_path = dir.join(MANIFEST);
        let bytes = match fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::Missing(dir.to_path_buf()));
            }
            Err(e) => return Err(IndexError::io(manifest_path, e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("unreadable {MANIFEST}: {e}")))?;
        let stale = |reason: String| IndexError::Stale {
            path: dir.to_path_buf(),
            reason,
        };
        if manifest.format_version != FORMAT_VERSION {
            return Err(stale(format!(
                "format {} but this server uses {FORMAT_VERSION}",
                manifest.format_version
            )));
        }
        if manifest.model_id != expected_model_id {
            return Err(stale(format!(
                "built for model {:?}, not {expected_model_id:?}",
                manifest.model_id
            )));
        }
        if manifest.dim != expected_dim {
            return Err(stale(format!("{} dimensions, not {expected_dim}", manifest.dim)));
        }
        let dim = expected_dim;

        let bytes = read_verified(dir, &manifest.graph_vectors)?;
        let mut r = Reader::new(&bytes, dir, &manifest.graph_vectors.name);
        r.magic(VECTORS_MAGIC)?;
        r.expect_dim(dim)?;
        let (keys, vectors) = r.keys_vectors(dim)?;
        r.end()?;
        drop(bytes);

        let hnsw = match &manifest.graph {
            None if keys.is_empty() => None,
            None => return Err(corrupt("graph vectors present but no graph dump".into())),
            Some(entry) => {
                let bytes = read_verified(dir, entry)?;
                let graph = HnswGraph::from_hora_dump(&bytes, &vectors, dim)
                    .map_err(|e| corrupt(format!("{}: {e}", entry.name)))?;
                Some(graph)
            }
        };
        let rows = Segment::from_rows(dim, keys, vectors)
            .ok_or_else(|| corrupt("duplicate keys in the graph".into()))?;

        let bytes = read_verified(dir, &manifest.delta)?;
        let mut r = Reader::new(&bytes, dir, &manifest.delta.name);
        r.magic(DELTA_MAGIC)?;
        r.expect_dim(dim)?;
        let (fresh_keys, fresh_vectors) = r.keys_vectors(dim)?;
        let n_tombs = r.len()?;
        let mut tombstones = HashSet::with_capacity(n_tombs);
        for _ in 0..n_tombs {
            let t = r.u64()?;
            if !rows.contains(t) {
                return Err(corrupt(format!("tombstone {t} names no graph item")));
            }
            tombstones.insert(t);
        }
        r.end()?;
        let mut fresh = Fresh::new(dim);
        for (i, (&k, vector)) in fresh_keys.iter().zip(fresh_vectors.chunks_exact(dim)).enumerate() {
            fresh.upsert(k, i as u64, vector);
        }
        let live = rows.len() - tombstones.len() + fresh.len();
        if fresh.len() != fresh_keys.len() || live != manifest.item_count {
            return Err(corrupt(format!(
                "{live} items where the manifest says {}",
                manifest.item_count
            )));
        }
        let files = GraphFiles {
            dir: dir.to_path_buf(),
            graph: manifest.graph.clone(),
            vectors: manifest.graph_vectors.clone(),
        };
        let route = match &hnsw {
            Some(hnsw) => route_for(hnsw, rows.vectors(), dim, &config.hnsw),
            None => Route::Exact { best_recall: 1.0 },
        };
        let graph = Graph {
            generation: manifest.generation,
            hnsw,
            route,
            rows,
            files: Some(files),
        };
        let index = Self::from_state(manifest.model_id.clone(), dim, config, graph, tombstones, fresh);
        index.inner.saved_bytes.store(manifest.bytes(), Ordering::Relaxed);
        Ok((index, manifest))
    }
}

/// Writes the graph's keys and vectors as `name` in `dir`.
pub(super) fn write_graph_vectors(dir: &Path, name: &str, rows: &Segment) -> Result<FileEntry> {
    write_file_atomically(dir, name, |w| {
        w.write_all(VECTORS_MAGIC)?;
        w.write_all(&(rows.dim() as u64).to_le_bytes())?;
        write_rows(w, rows)
    })
}

/// Tells files of one save from those of another written in the same
/// generation.
pub(super) fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

/// Writes through a temp file, fsyncs it and renames it into place; returns
/// the entry (length and CRC-32) the manifest records.
fn write_file_atomically(
    dir: &Path,
    name: &str,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<FileEntry> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut hashing = HashingWriter {
        inner: BufWriter::new(fs::File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?),
        crc: crc32fast::Hasher::new(),
        len: 0,
    };
    body(&mut hashing).map_err(|e| IndexError::io(&tmp, e))?;
    let HashingWriter { inner, crc, len } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| IndexError::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| IndexError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| IndexError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(FileEntry {
        name: name.to_owned(),
        len,
        crc32: crc.finalize(),
    })
}

/// Makes renames into `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IndexError::io(dir, e))
}

/// Deletes files of older saves. Files of a newer graph (a rebuild writing
/// into the same directory right now) are left alone.
fn remove_unreferenced(dir: &Path, manifest: &Manifest) {
    let keep: HashSet<&str> = manifest.files().map(|e| e.name.as_str()).collect();
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let generation = name
            .strip_prefix("graph-")
            .or_else(|| name.strip_prefix("delta-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|g| g.parse::<u64>().ok());
        let Some(generation) = generation else { continue };
        let older = generation < manifest.generation
            || (generation == manifest.generation && name.starts_with("delta-"));
        if older
            && !keep.contains(name)
            && let Err(err) = fs::remove_file(entry.path())
        {
            tracing::warn!(file = %entry.path().display(), error = %err, "could not remove an old index file");
        }
    }
}

/// Counts and checksums what passes through, so the manifest entry needs no
/// second read of the file.
struct HashingWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_u64s(w: &mut dyn Write, values: &[u64]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(values.len() * 8);
    for v in values {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&buf)
}

/// The count, the keys, then the vectors, as [`Reader::keys_vectors`] reads
/// them back.
fn write_rows(w: &mut dyn Write, rows: &Segment) -> std::io::Result<()> {
    w.write_all(&(rows.len() as u64).to_le_bytes())?;
    write_u64s(w, rows.keys())?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in rows.vectors().chunks(16 * 1024) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

fn read_verified(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>> {
    let path = dir.join(&entry.name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::Corrupt {
                path: dir.to_path_buf(),
                reason: format!("{} is missing", entry.name),
            });
        }
        Err(e) => return Err(IndexError::io(path, e)),
    };
    if bytes.len() as u64 != entry.len || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(IndexError::Corrupt {
            path: dir.to_path_buf(),
            reason: format!(
                "{} does not match its length and checksum in the manifest",
                entry.name
            ),
        });
    }
    Ok(bytes)
}

/// Bounds-checked little-endian reader over a verified file.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    dir: &'a Path,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], dir: &'a Path, name: &'a str) -> Self {
        Reader {
            bytes,
            at: 0,
            dir,
            name,
        }
    }

    fn corrupt(&self, what: &str) -> IndexError {
        IndexError::Corrupt {
            path: self.dir.to_path_buf(),
            reason: format!("{}: {what} at byte {}", self.name, self.at),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.corrupt("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn magic(&mut self, magic: &[u8]) -> Result<()> {
        if self.take(magic.len())? != magic {
            return Err(self.corrupt("wrong file type"));
        }
        Ok(())
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| self.corrupt("impossible count"))
    }

    fn expect_dim(&mut self, dim: usize) -> Result<()> {
        if self.u64()? != dim as u64 {
            return Err(self.corrupt("dimension differs from the manifest"));
        }
        Ok(())
    }

    fn keys_vectors(&mut self, dim: usize) -> Result<(Vec<u64>, Vec<f32>)> {
        let n = self.len()?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(self.u64()?);
        }
        let raw = self.take(
            n.checked_mul(dim * 4)
                .ok_or_else(|| self.corrupt("impossible count"))?,
        )?;
        let vectors: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((keys, vectors))
    }

    fn end(&self) -> Result<()> {
        if self.at != self.bytes.len() {
            return Err(self.corrupt("trailing bytes"));
        }
        Ok(())
    }
}
