//! Content-addressed blob store: `ab/cd/<sha256>` under the blob directory
//! (`blobs` in the data dir unless `--blob-store` names another, which
//! several replicas may share). Bytes land in a temp file, are fsynced, then
//! renamed into place, so a blob path either holds complete content or does
//! not exist.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Files read per hashing step; also the unit of progress reports.
const READ_BUFFER: usize = 1024 * 1024;

/// Layout of the data directory's byte stores; cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    uploads: PathBuf,
    /// Serialises blob placement against blob removal, so a delete never
    /// removes bytes that a concurrent upload just started referencing.
    placement: Arc<tokio::sync::Mutex<()>>,
}

/// Result of streaming bytes into a temp file.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

impl BlobStore {
    /// Creates the blob directory, its session directory and the temp
    /// directory under `data_dir` if needed. Resumable sessions live beside
    /// the blobs (`BLOB_DIR/.uploads`), so replicas sharing the blob
    /// directory share them too, and a finished session's bytes are renamed
    /// into place on the same file system. Session files an older server
    /// kept in `DATA_DIR/uploads` are moved there.
    pub fn open(data_dir: &Path, blob_dir: &Path) -> io::Result<Self> {
        let store = Self {
            blobs: blob_dir.to_owned(),
            tmp: data_dir.join("tmp"),
            uploads: blob_dir.join(".uploads"),
            placement: Arc::default(),
        };
        for dir in [&store.blobs, &store.tmp, &store.uploads] {
            fs::create_dir_all(dir)?;
        }
        let old = data_dir.join("uploads");
        if old.is_dir() {
            for entry in fs::read_dir(&old)? {
                let path = entry?.path();
                if let Some(name) = path.file_name() {
                    let target = store.uploads.join(name);
                    if fs::rename(&path, &target).is_err() {
                        // Another file system: copy, then drop the original.
                        fs::copy(&path, &target)?;
                        fs::remove_file(&path)?;
                    }
                }
            }
            fs::remove_dir(&old)?;
        }
        Ok(store)
    }

    /// Holds off every other placement and removal while the guard lives:
    /// take it around "put the bytes in place + reference them in the
    /// database" and around "unreference + remove".
    pub async fn placement(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.placement.lock().await
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        let (a, b) = (sha256.get(..2).unwrap_or("xx"), sha256.get(2..4).unwrap_or("xx"));
        self.blobs.join(a).join(b).join(sha256)
    }

    /// A fresh temp file path for an in-flight streamed upload.
    pub fn temp_path(&self) -> PathBuf {
        self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()))
    }

    /// The partial-content file of a resumable upload session.
    pub fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.uploads.join(format!("{upload_id}.part"))
    }

    /// Removes every stray temp file (left by a crash mid-upload).
    pub fn clear_temp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            fs::remove_file(entry?.path())?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Session files on disk, by upload id.
    pub fn upload_files(&self) -> io::Result<Vec<(String, PathBuf)>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.uploads)? {
            let path = entry?.path();
            if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".part"))
            {
                files.push((id.to_owned(), path.clone()));
            }
        }
        Ok(files)
    }

    /// Moves a complete, fsynced temp file into place as the blob `sha256`.
    /// If the blob already exists the temp file is discarded: equal digests
    /// mean equal content.
    pub fn commit(&self, temp: &Path, sha256: &str) -> io::Result<PathBuf> {
        let target = self.blob_path(sha256);
        if target.exists() {
            fs::remove_file(temp)?;
            return Ok(target);
        }
        let parent = target.parent().unwrap_or(&self.blobs);
        fs::create_dir_all(parent)?;
        match fs::rename(temp, &target) {
            Err(err) if err.kind() == io::ErrorKind::CrossesDevices => {
                // A shared blob directory on another file system: copy next
                // to the target first, so the final rename stays atomic.
                let incoming = self.blobs.join(".incoming");
                fs::create_dir_all(&incoming)?;
                let staged = incoming.join(format!("{}.part", uuid::Uuid::new_v4()));
                fs::copy(temp, &staged)?;
                File::open(&staged)?.sync_all()?;
                fs::rename(&staged, &target)?;
                fs::remove_file(temp)?;
            }
            other => other?,
        }
        // Persist the rename itself, not just the file's bytes.
        File::open(parent)?.sync_all()?;
        Ok(target)
    }

    /// Deletes a blob's bytes; a missing blob is not an error.
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        match fs::remove_file(self.blob_path(sha256)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Writes `data` at `offset` of a session file, dropping anything after the
/// offset first (a chunk half-written before a crash), then fsyncs.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)?;
    file.sync_data()
}

/// Computes the SHA-256 and length of a file, reporting bytes read.
pub fn hash_file(path: &Path, mut progress: impl FnMut(u64)) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
        progress(total);
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Reads up to `len` leading bytes of a file.
pub fn read_head(path: &Path, len: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut head = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Incremental writer for streamed uploads: hashes while writing so the
/// content is read once.
pub struct StreamingWriter {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl StreamingWriter {
    /// Creates the temp file.
    pub fn create(path: PathBuf) -> io::Result<Self> {
        let file = OpenOptions::new().create_new(true).write(true).open(&path)?;
        Ok(Self {
            file,
            path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Flushes to disk and returns the digest.
    pub fn finish(self) -> io::Result<Written> {
        self.file.sync_all()?;
        Ok(Written {
            path: self.path,
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
        })
    }

    /// The temp file's path (for cleanup on failure).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_is_idempotent_and_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), &dir.path().join("blobs")).unwrap();
        let mut writer = StreamingWriter::create(store.temp_path()).unwrap();
        writer.write(b"hello ").unwrap();
        writer.write(b"world").unwrap();
        let written = writer.finish().unwrap();
        assert_eq!(
            written.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let path = store.commit(&written.path, &written.sha256).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        let again = store.temp_path();
        fs::write(&again, b"hello world").unwrap();
        store.commit(&again, &written.sha256).unwrap();
        assert!(!again.exists());
        assert_eq!(hash_file(&path, |_| {}).unwrap(), (written.sha256.clone(), 11));
        store.remove(&written.sha256).unwrap();
        store.remove(&written.sha256).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn write_at_replaces_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.part");
        write_at(&path, 0, b"abcdef").unwrap();
        write_at(&path, 3, b"XY").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abcXY");
    }
}
