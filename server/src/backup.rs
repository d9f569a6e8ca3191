//! Backups that do not depend on the database engine: `traum-server backup`
//! writes the rows of one database snapshot as JSON lines, copies the blobs
//! they reference and the saved vector index, and seals it all with a
//! manifest of checksums; `restore` loads a backup into an empty database
//! and blob store of either kind (SQLite or PostgreSQL, a directory or S3).
//!
//! A backup directory holds any number of snapshots beside one pool of
//! blobs they share, so a second backup into the same directory copies only
//! the blobs that are new:
//!
//! ```text
//! DIR/blobs/aa/bb/SHA256
//! DIR/snapshots/20261203T142501Z/manifest.json
//! DIR/snapshots/20261203T142501Z/tables/TABLE.jsonl
//! DIR/snapshots/20261203T142501Z/index/vectors/…
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::blob::{BlobStore, hash_file, is_sha256};
use crate::error::{Error, Result};
use crate::store::{BACKUP_TABLES, Store, TableSink, check_row};

/// Names the format, so a restore can refuse what it cannot read.
const FORMAT: &str = "traum-backup";
const VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const SNAPSHOTS: &str = "snapshots";
const BLOBS: &str = "blobs";
/// The saved vector index under the data directory, as the server keeps it.
const INDEX: &str = "index/vectors";
/// Left out of the copied index: the saved owners tie the index to one
/// database's feed positions. Without them the restored server checks the
/// index against the restored rows once (vector ids are kept, so nothing
/// is rebuilt).
const INDEX_LEFT_OUT: &str = "owners.bin";
/// Lines per batch handed to the database on restore.
const RESTORE_BATCH: usize = 500;
const BLOB_PIECE: usize = 1 << 20;
/// Blobs copied at once (object stores answer in parallel).
const BLOBS_IN_FLIGHT: usize = 4;

/// The manifest sealing a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    /// The last schema migration of the server that wrote it.
    pub schema: String,
    pub source: Source,
    pub tables: Vec<TableEntry>,
    pub blobs: BlobTotals,
    pub index: Vec<FileEntry>,
    /// Files in the snapshot that were deleted before their bytes were
    /// copied, and so were left out with everything that refers to them.
    pub left_out_files: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// `sqlite` or `postgres`.
    pub database: String,
    pub blob_store: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub rows: u64,
    #[serde(flatten)]
    pub file: FileEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the snapshot directory.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlobTotals {
    pub count: u64,
    pub bytes: u64,
    /// Copied by this backup; the others were in the pool already.
    pub copied: u64,
    pub copied_bytes: u64,
}

/// What the database layer needs to know to take a backup.
pub struct BackupSource<'a> {
    pub store: &'a Store,
    pub blobs: &'a BlobStore,
    pub data_dir: &'a Path,
}

/// Where a finished backup went and what it holds.
#[derive(Debug)]
pub struct BackupReport {
    pub snapshot: PathBuf,
    pub manifest: Manifest,
}

/// What `verify` found: the snapshot checked and its manifest.
#[derive(Debug)]
pub struct VerifyReport {
    pub snapshot: PathBuf,
    pub manifest: Manifest,
    pub blobs_checked: u64,
}

/// What a restore loaded.
#[derive(Debug)]
pub struct RestoreReport {
    pub snapshot: PathBuf,
    pub manifest: Manifest,
    pub index_installed: bool,
}

/// Takes a snapshot of the library into `to` while servers keep serving.
pub async fn backup(source: BackupSource<'_>, to: &Path) -> Result<BackupReport> {
    let created_at = Utc::now();
    let name = created_at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let snapshots = to.join(SNAPSHOTS);
    let partial = snapshots.join(format!(".partial-{name}"));
    let pool = to.join(BLOBS);
    {
        let (partial, pool) = (partial.clone(), pool.clone());
        blocking(move || {
            fs::create_dir_all(partial.join("tables"))?;
            fs::create_dir_all(pool.join(".tmp"))
        })
        .await?;
    }
    let written = dump(source.store, &partial).await?;
    let blob_rows = read_blob_rows(&partial.join(table_path("blobs"))).await?;
    let (totals, missing) = copy_blobs(source.blobs, &blob_rows, &pool).await?;
    let mut tables = written;
    let mut left_out_files = Vec::new();
    if !missing.is_empty() {
        for sha256 in &missing {
            if source.store.blob_referenced(sha256).await? {
                return Err(Error::Internal(format!(
                    "blob {sha256} is referenced by a file but missing from the blob store {}; \
                     the backup was not finished",
                    source.blobs.describe()
                )));
            }
        }
        // Deleted after the snapshot was read and before their bytes were
        // copied: the backup holds the library as it was a moment later for
        // those files.
        let dir = partial.clone();
        let gone = missing.clone();
        (tables, left_out_files) = blocking(move || leave_out(&dir, &gone)).await?;
    }
    let index = copy_index(source.data_dir, &partial).await?;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        created_at,
        schema: schema_name(),
        source: Source {
            database: if source.store.is_sqlite() {
                "sqlite"
            } else {
                "postgres"
            }
            .to_owned(),
            blob_store: source.blobs.describe(),
        },
        tables,
        blobs: BlobTotals {
            count: totals.count - missing.len() as u64,
            ..totals
        },
        index,
        left_out_files,
    };
    let snapshot = snapshots.join(&name);
    {
        let (manifest, partial, snapshot) = (manifest.clone(), partial.clone(), snapshot.clone());
        blocking(move || {
            write_synced(
                &partial.join(MANIFEST),
                &serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?,
            )?;
            // Only a sealed snapshot carries its final name.
            fs::rename(&partial, &snapshot)
        })
        .await?;
    }
    Ok(BackupReport { snapshot, manifest })
}

/// Checks a snapshot without restoring it: the manifest, every table's
/// checksum, row count and row format, every referenced blob's presence,
/// size and SHA-256, the index files' checksums, and that every file's blob
/// is in the snapshot.
pub async fn verify(from: &Path) -> Result<VerifyReport> {
    let from = from.to_owned();
    tokio::task::spawn_blocking(move || verify_blocking(&from))
        .await?
        .map_err(Error::FailedPrecondition)
}

/// Loads a snapshot into an empty database and blob store, after verifying
/// it; then checks that the database holds the manifest's row counts.
pub async fn restore(target: BackupSource<'_>, from: &Path) -> Result<RestoreReport> {
    let verified = verify(from).await?;
    let (snapshot, manifest) = (verified.snapshot, verified.manifest);
    if let Some(table) = target.store.first_nonempty_table().await? {
        return Err(Error::FailedPrecondition(format!(
            "the database is not empty (table {table} has rows); restore only into a new database"
        )));
    }
    let pool = pool_of(&snapshot);
    let blob_rows = read_blob_rows(&snapshot.join(table_path("blobs"))).await?;
    let blobs = target.blobs;
    futures::stream::iter(blob_rows.iter().map(|(sha256, size)| {
        let pool = pool.clone();
        async move {
            if blobs.stored_size(sha256).await? == Some(*size) {
                return Ok(());
            }
            let (source, temp) = (pool_path(&pool, sha256), blobs.temp_path());
            let (copy_to, expected) = (temp.clone(), sha256.clone());
            blocking(move || -> io::Result<()> {
                fs::copy(&source, &copy_to)?;
                let (actual, _) = hash_file(&copy_to, |_| {})?;
                if actual != expected {
                    let _ = fs::remove_file(&copy_to);
                    return Err(io::Error::other(format!(
                        "{} changed after it was verified",
                        source.display()
                    )));
                }
                Ok(())
            })
            .await?;
            blobs.commit(&temp, sha256, *size).await
        }
    }))
    .buffer_unordered(BLOBS_IN_FLIGHT)
    .try_collect::<Vec<()>>()
    .await?;
    let mut readers = Vec::new();
    let counts = target
        .store
        .load_tables(|name| {
            let (sender, receiver) = mpsc::channel(2);
            let path = snapshot.join(table_path(name));
            readers.push(tokio::task::spawn_blocking(move || read_lines(&path, &sender)));
            receiver
        })
        .await?;
    for reader in readers {
        reader.await?;
    }
    for (table, count) in manifest.tables.iter().zip(&counts) {
        if table.rows != *count {
            return Err(Error::Internal(format!(
                "restored {count} rows of {} where the backup holds {}",
                table.name, table.rows
            )));
        }
    }
    let index_installed = install_index(&snapshot, &manifest, target.data_dir).await?;
    Ok(RestoreReport {
        snapshot,
        manifest,
        index_installed,
    })
}

/// Runs file-system work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await?.map_err(Error::Io)
}

fn table_path(name: &str) -> String {
    format!("tables/{name}.jsonl")
}

fn schema_name() -> String {
    use traum_migration::MigratorTrait;
    traum_migration::Migrator::migrations()
        .last()
        .map(|migration| migration.name().to_owned())
        .unwrap_or_default()
}

/// Writes every table of one snapshot into `dir/tables`, each file hashed
/// as it is written.
async fn dump(store: &Store, dir: &Path) -> Result<Vec<TableEntry>> {
    let mut writers = Vec::new();
    let counts = store
        .dump_tables(|name| {
            let (sender, receiver): (TableSink, _) = mpsc::channel(4);
            let relative = table_path(name);
            let path = dir.join(&relative);
            writers.push(tokio::task::spawn_blocking(move || {
                write_table(&path, relative, receiver)
            }));
            sender
        })
        .await;
    // The senders are gone once the dump returns, so every writer finishes.
    let mut files = Vec::new();
    for writer in writers {
        files.push(writer.await??);
    }
    let counts = counts?;
    Ok(BACKUP_TABLES
        .iter()
        .zip(counts)
        .zip(files)
        .map(|((name, rows), file)| TableEntry {
            name: (*name).to_owned(),
            rows,
            file,
        })
        .collect())
}

fn write_table(path: &Path, relative: String, mut chunks: mpsc::Receiver<Vec<u8>>) -> io::Result<FileEntry> {
    let file = fs::File::create(path)?;
    let mut out = BufWriter::new(file);
    let (mut hasher, mut bytes) = (Sha256::new(), 0u64);
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        out.write_all(&chunk)?;
    }
    let file = out.into_inner().map_err(|err| err.into_error())?;
    file.sync_all()?;
    Ok(FileEntry {
        path: relative,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Feeds a table file to the restore in batches of lines; a read error is
/// passed on as the batch's error.
fn read_lines(path: &Path, sender: &mpsc::Sender<std::result::Result<Vec<String>, String>>) {
    let reader = match fs::File::open(path) {
        Ok(file) => BufReader::new(file),
        Err(err) => {
            let _ = sender.blocking_send(Err(format!("cannot read {}: {err}", path.display())));
            return;
        }
    };
    let mut batch = Vec::with_capacity(RESTORE_BATCH);
    for line in reader.lines() {
        match line {
            Ok(line) if line.is_empty() => {}
            Ok(line) => {
                batch.push(line);
                if batch.len() == RESTORE_BATCH
                    && sender.blocking_send(Ok(std::mem::take(&mut batch))).is_err()
                {
                    return;
                }
            }
            Err(err) => {
                let _ = sender.blocking_send(Err(format!("cannot read {}: {err}", path.display())));
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(Ok(batch));
    }
}

#[derive(Deserialize)]
struct BlobRow {
    sha256: String,
    size_bytes: u64,
}

async fn read_blob_rows(path: &Path) -> Result<Vec<(String, u64)>> {
    let path = path.to_owned();
    blocking(move || -> io::Result<Vec<(String, u64)>> {
        let mut rows = Vec::new();
        for line in BufReader::new(fs::File::open(&path)?).lines() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            let row: BlobRow = serde_json::from_str(&line).map_err(io::Error::other)?;
            if !is_sha256(&row.sha256) {
                return Err(io::Error::other(format!(
                    "{} names a blob `{}`",
                    path.display(),
                    row.sha256
                )));
            }
            rows.push((row.sha256, row.size_bytes));
        }
        Ok(rows)
    })
    .await
}

fn pool_path(pool: &Path, sha256: &str) -> PathBuf {
    pool.join(&sha256[..2]).join(&sha256[2..4]).join(sha256)
}

/// The blob pool beside a snapshot's `snapshots/` directory.
fn pool_of(snapshot: &Path) -> PathBuf {
    snapshot
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from(BLOBS), |root| root.join(BLOBS))
}

/// Copies the blobs the pool lacks. Returns the totals and the blobs the
/// store no longer holds.
async fn copy_blobs(
    blobs: &BlobStore,
    rows: &[(String, u64)],
    pool: &Path,
) -> Result<(BlobTotals, Vec<String>)> {
    let outcomes: Vec<(u64, Option<u64>)> = futures::stream::iter(rows.iter().map(|(sha256, size)| {
        let target = pool_path(pool, sha256);
        async move {
            let present = tokio::fs::metadata(&target).await.map(|meta| meta.len()).ok();
            if present == Some(*size) {
                return Ok((*size, Some(0)));
            }
            if blobs.stored_size(sha256).await?.is_none() {
                return Ok((*size, None));
            }
            copy_blob(blobs, sha256, *size, pool, &target).await?;
            Ok::<_, Error>((*size, Some(*size)))
        }
    }))
    .buffer_unordered(BLOBS_IN_FLIGHT)
    .try_collect()
    .await?;
    let mut totals = BlobTotals::default();
    for (size, copied) in &outcomes {
        totals.count += 1;
        if let Some(copied) = copied {
            totals.bytes += size;
            if *copied > 0 {
                totals.copied += 1;
                totals.copied_bytes += copied;
            }
        }
    }
    let missing = rows
        .iter()
        .zip(&outcomes)
        .filter(|(_, (_, copied))| copied.is_none())
        .map(|((sha256, _), _)| sha256.clone())
        .collect();
    Ok((totals, missing))
}

/// Streams one blob into the pool through a temp file, checks its digest,
/// then moves it into place.
async fn copy_blob(blobs: &BlobStore, sha256: &str, size: u64, pool: &Path, target: &Path) -> Result<()> {
    let temp = pool.join(".tmp").join(format!("{}.part", uuid::Uuid::new_v4()));
    let mut file = tokio::fs::File::create(&temp).await?;
    let mut pieces = blobs.read(sha256, 0..size, BLOB_PIECE).await?;
    while let Some(piece) = pieces.try_next().await? {
        file.write_all(&piece).await?;
    }
    file.sync_all().await?;
    drop(file);
    let (temp, target, expected) = (temp.clone(), target.to_owned(), sha256.to_owned());
    blocking(move || -> io::Result<()> {
        let (actual, length) = hash_file(&temp, |_| {})?;
        if actual != expected || length != size {
            let _ = fs::remove_file(&temp);
            return Err(io::Error::other(format!(
                "blob {expected} read back as {length} bytes with SHA-256 {actual}"
            )));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&temp, &target)
    })
    .await
}

/// Rewrites the table files without the rows of the files whose blobs are
/// `gone`; returns the new table entries and the files left out.
fn leave_out(dir: &Path, gone: &[String]) -> io::Result<(Vec<TableEntry>, Vec<String>)> {
    let gone: HashSet<&str> = gone.iter().map(String::as_str).collect();
    let mut files = HashSet::new();
    for line in BufReader::new(fs::File::open(dir.join(table_path("files")))?).lines() {
        let row: serde_json::Value = serde_json::from_str(&line?).map_err(io::Error::other)?;
        if row["sha256"].as_str().is_some_and(|sha| gone.contains(sha))
            && let Some(id) = row["id"].as_str()
        {
            files.insert(id.to_owned());
        }
    }
    let mut tables = Vec::new();
    for name in BACKUP_TABLES {
        let relative = table_path(name);
        let path = dir.join(&relative);
        let kept = dir.join(format!("{relative}.kept"));
        let mut out = BufWriter::new(fs::File::create(&kept)?);
        let (mut hasher, mut bytes, mut rows) = (Sha256::new(), 0u64, 0u64);
        for line in BufReader::new(fs::File::open(&path)?).lines() {
            let line = line?;
            let row: serde_json::Value = serde_json::from_str(&line).map_err(io::Error::other)?;
            let names_file = |field: &str| row[field].as_str().is_some_and(|id| files.contains(id));
            let drop_row = match *name {
                "blobs" => row["sha256"].as_str().is_some_and(|sha| gone.contains(sha)),
                "files" => names_file("id"),
                _ => names_file("file_id") || names_file("other_id"),
            };
            if drop_row {
                continue;
            }
            let line = format!("{line}\n");
            hasher.update(line.as_bytes());
            bytes += line.len() as u64;
            rows += 1;
            out.write_all(line.as_bytes())?;
        }
        let file = out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        fs::rename(&kept, &path)?;
        tables.push(TableEntry {
            name: (*name).to_owned(),
            rows,
            file: FileEntry {
                path: relative,
                bytes,
                sha256: hex::encode(hasher.finalize()),
            },
        });
    }
    let mut files: Vec<String> = files.into_iter().collect();
    files.sort();
    Ok((tables, files))
}

/// Copies the saved vector index of `data_dir`, if there is one.
async fn copy_index(data_dir: &Path, snapshot: &Path) -> Result<Vec<FileEntry>> {
    let (source, target) = (data_dir.join(INDEX), snapshot.join(INDEX));
    blocking(move || -> io::Result<Vec<FileEntry>> {
        let mut entries = Vec::new();
        if !source.is_dir() {
            return Ok(entries);
        }
        for entry in walkdir::WalkDir::new(&source).sort_by_file_name() {
            let entry = entry.map_err(io::Error::other)?;
            if !entry.file_type().is_file() || entry.file_name() == INDEX_LEFT_OUT {
                continue;
            }
            let inner = entry.path().strip_prefix(&source).map_err(io::Error::other)?;
            let copy = target.join(inner);
            if let Some(parent) = copy.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(entry.path(), &copy)?;
            let (sha256, bytes) = hash_file(&copy, |_| {})?;
            entries.push(FileEntry {
                path: format!("{INDEX}/{}", inner.to_string_lossy()),
                bytes,
                sha256,
            });
        }
        Ok(entries)
    })
    .await
}

/// Puts the snapshot's index where the server loads it, unless the data
/// directory has an index already.
async fn install_index(snapshot: &Path, manifest: &Manifest, data_dir: &Path) -> Result<bool> {
    if manifest.index.is_empty() {
        return Ok(false);
    }
    let (snapshot, target, entries) = (snapshot.to_owned(), data_dir.join(INDEX), manifest.index.clone());
    blocking(move || -> io::Result<bool> {
        if target.is_dir() && fs::read_dir(&target)?.next().is_some() {
            return Ok(false);
        }
        for entry in &entries {
            let inner = entry
                .path
                .strip_prefix(&format!("{INDEX}/"))
                .unwrap_or(&entry.path);
            let copy = target.join(inner);
            if let Some(parent) = copy.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(snapshot.join(&entry.path), &copy)?;
        }
        Ok(true)
    })
    .await
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The snapshot `from` names: a snapshot directory itself, or the latest
/// sealed snapshot of a backup directory.
fn find_snapshot(from: &Path) -> std::result::Result<PathBuf, String> {
    if from.join(MANIFEST).is_file() {
        return Ok(from.to_owned());
    }
    let snapshots = from.join(SNAPSHOTS);
    let listing = fs::read_dir(&snapshots).map_err(|err| {
        format!(
            "{} is not a backup: it has no {MANIFEST} and no readable {SNAPSHOTS}/ ({err})",
            from.display()
        )
    })?;
    let mut sealed: Vec<PathBuf> = listing
        .filter_map(std::result::Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(MANIFEST).is_file())
        .collect();
    sealed.sort();
    sealed
        .pop()
        .ok_or_else(|| format!("{} holds no finished snapshot", snapshots.display()))
}

fn check_file(snapshot: &Path, entry: &FileEntry) -> std::result::Result<(), String> {
    if entry.path.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(format!(
            "the manifest names a path outside the snapshot: {}",
            entry.path
        ));
    }
    let path = snapshot.join(&entry.path);
    let (sha256, bytes) =
        hash_file(&path, |_| {}).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if bytes != entry.bytes || sha256 != entry.sha256 {
        return Err(format!(
            "{} is damaged: {bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
            path.display(),
            entry.bytes,
            entry.sha256
        ));
    }
    Ok(())
}

fn verify_blocking(from: &Path) -> std::result::Result<VerifyReport, String> {
    let snapshot = find_snapshot(from)?;
    let manifest_path = snapshot.join(MANIFEST);
    let text =
        fs::read(&manifest_path).map_err(|err| format!("cannot read {}: {err}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|err| format!("{} is not a backup manifest: {err}", manifest_path.display()))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(format!(
            "{} is format {} version {}; this server reads {FORMAT} version {VERSION}",
            manifest_path.display(),
            manifest.format,
            manifest.version
        ));
    }
    let schema = schema_name();
    if manifest.schema != schema {
        return Err(format!(
            "the backup's schema is {}, this server's is {schema}: restore it with the traum-server \
             version that made it, then upgrade",
            manifest.schema
        ));
    }
    let names: Vec<&str> = manifest.tables.iter().map(|table| table.name.as_str()).collect();
    if names != BACKUP_TABLES {
        return Err(format!(
            "the manifest lists tables {names:?}, expected {BACKUP_TABLES:?}"
        ));
    }
    let mut blob_rows = Vec::new();
    let mut referenced = HashSet::new();
    for table in &manifest.tables {
        check_file(&snapshot, &table.file)?;
        let path = snapshot.join(&table.file.path);
        let file = fs::File::open(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let mut rows = 0u64;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            rows += 1;
            check_row(&table.name, &line).map_err(|err| {
                format!(
                    "row {rows} of {} is not a {} row: {err}",
                    path.display(),
                    table.name
                )
            })?;
            if table.name == "blobs" {
                blob_rows.push(serde_json::from_str::<BlobRow>(&line).map_err(|err| err.to_string())?);
            } else if table.name == "files" {
                let row: serde_json::Value = serde_json::from_str(&line).map_err(|err| err.to_string())?;
                referenced.insert(row["sha256"].as_str().unwrap_or_default().to_owned());
            }
        }
        if rows != table.rows {
            return Err(format!(
                "{} holds {rows} rows, the manifest says {}",
                path.display(),
                table.rows
            ));
        }
    }
    let blob_shas: HashSet<String> = blob_rows.iter().map(|row| row.sha256.clone()).collect();
    if let Some(sha) = referenced.difference(&blob_shas).next() {
        return Err(format!(
            "a file refers to blob {sha}, which the backup's blobs table lacks"
        ));
    }
    let pool = pool_of(&snapshot);
    let mut blobs_checked = 0;
    for row in blob_rows {
        if !is_sha256(&row.sha256) {
            return Err(format!("the blobs table names a blob `{}`", row.sha256));
        }
        check_file(
            &pool,
            &FileEntry {
                path: format!("{}/{}/{}", &row.sha256[..2], &row.sha256[2..4], row.sha256),
                bytes: row.size_bytes,
                sha256: row.sha256.clone(),
            },
        )?;
        blobs_checked += 1;
    }
    for entry in &manifest.index {
        check_file(&snapshot, entry)?;
    }
    Ok(VerifyReport {
        snapshot,
        manifest,
        blobs_checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GONE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEPT: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn write_tables(dir: &Path, rows: &[(&str, Vec<String>)]) {
        fs::create_dir_all(dir.join("tables")).unwrap();
        for name in BACKUP_TABLES {
            let lines = rows
                .iter()
                .find(|(table, _)| table == name)
                .map(|(_, lines)| lines.iter().map(|line| format!("{line}\n")).collect::<String>())
                .unwrap_or_default();
            fs::write(dir.join(table_path(name)), lines).unwrap();
        }
    }

    #[test]
    fn files_deleted_mid_backup_leave_with_every_row_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(
            dir.path(),
            &[
                (
                    "blobs",
                    vec![
                        format!(r#"{{"sha256":"{GONE}"}}"#),
                        format!(r#"{{"sha256":"{KEPT}"}}"#),
                    ],
                ),
                (
                    "files",
                    vec![
                        format!(r#"{{"id":"f-gone","sha256":"{GONE}"}}"#),
                        format!(r#"{{"id":"f-kept","sha256":"{KEPT}"}}"#),
                    ],
                ),
                (
                    "file_tags",
                    vec![
                        r#"{"file_id":"f-gone","tag":"x"}"#.into(),
                        r#"{"file_id":"f-kept","tag":"y"}"#.into(),
                    ],
                ),
                (
                    "file_duplicate_links",
                    vec![
                        r#"{"file_id":"f-kept","other_id":"f-gone","score":0.9,"offset_seconds":0.0}"#.into(),
                    ],
                ),
                // A job id that happens to equal a deleted file's id stays.
                ("jobs", vec![r#"{"id":"f-gone","file_id":"f-kept"}"#.into()]),
            ],
        );
        let (tables, left_out) = leave_out(dir.path(), &[GONE.to_owned()]).unwrap();
        assert_eq!(left_out, vec!["f-gone".to_owned()]);
        let rows = |name: &str| tables.iter().find(|table| table.name == name).unwrap().rows;
        assert_eq!(
            (
                rows("blobs"),
                rows("files"),
                rows("file_tags"),
                rows("file_duplicate_links"),
                rows("jobs")
            ),
            (1, 1, 1, 0, 1)
        );
        for table in &tables {
            let (sha256, bytes) = hash_file(&dir.path().join(&table.file.path), |_| {}).unwrap();
            assert_eq!((sha256, bytes), (table.file.sha256.clone(), table.file.bytes));
        }
        let files = fs::read_to_string(dir.path().join(table_path("files"))).unwrap();
        assert!(files.contains("f-kept") && !files.contains("f-gone"));
    }

    #[test]
    fn a_snapshot_is_found_in_its_backup_directory_and_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join(SNAPSHOTS);
        for name in [
            "20261201T000000.000Z",
            "20261202T000000.000Z",
            ".partial-20261203T000000.000Z",
        ] {
            fs::create_dir_all(snapshots.join(name)).unwrap();
        }
        for name in ["20261201T000000.000Z", "20261202T000000.000Z"] {
            fs::write(snapshots.join(name).join(MANIFEST), "{}").unwrap();
        }
        // The unsealed one is newer but never chosen.
        assert_eq!(
            find_snapshot(dir.path()).unwrap(),
            snapshots.join("20261202T000000.000Z")
        );
        let first = snapshots.join("20261201T000000.000Z");
        assert_eq!(find_snapshot(&first).unwrap(), first);
        assert_eq!(pool_of(&first), dir.path().join(BLOBS));
        let empty = tempfile::tempdir().unwrap();
        assert!(
            find_snapshot(empty.path())
                .unwrap_err()
                .contains("is not a backup")
        );
    }
}
