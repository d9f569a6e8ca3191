//! Tables as portable JSON lines for backups: read in one read-only
//! snapshot, written back into an empty database of either backend.
//!
//! Not backed up: upload sessions (their chunks are not content-addressed;
//! clients resume by starting again), the index feed and its readers'
//! positions (a restored database starts a feed of its own), and cluster
//! leases (they name replicas of the source).

use futures::TryStreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{
    AccessMode, ActiveModelTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    IntoActiveModel, IsolationLevel, Iterable, PaginatorTrait, PrimaryKeyToColumn, QueryOrder, Statement,
    TransactionTrait,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::Store;
use super::entities::*;
use crate::domain::JobState;
use crate::error::{Error, Result};

/// Rows go to a writer in chunks of about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Rows per INSERT: the widest table (files, 33 columns) stays far below
/// either backend's limit on bound parameters.
const INSERT_BATCH: usize = 200;

/// Serial columns whose sequence must continue after the restored rows
/// (PostgreSQL only; SQLite continues after the highest rowid by itself).
const SERIAL_COLUMNS: [(&str, &str); 3] = [
    ("embeddings", "id"),
    ("usage_events", "id"),
    ("audit_events", "id"),
];

/// Where one table's JSON lines go: chunks of whole lines.
pub type TableSink = mpsc::Sender<Vec<u8>>;
/// Where one table's JSON lines come from: batches of lines, or the reason
/// reading stopped.
pub type TableSource = mpsc::Receiver<std::result::Result<Vec<String>, String>>;

macro_rules! backed_up_tables {
    ($($module:ident => $name:literal),* $(,)?) => {
        /// Every backed-up table, parents before the tables referring to them.
        pub const BACKUP_TABLES: &[&str] = &[$($name),*];

        async fn dump_named(txn: &DatabaseTransaction, name: &str, sink: &TableSink) -> Result<u64> {
            match name {
                $($name => dump::<$module::Entity>(txn, sink).await,)*
                other => Err(Error::Internal(format!("no table {other} to back up"))),
            }
        }

        async fn load_named(txn: &DatabaseTransaction, name: &str, source: &mut TableSource) -> Result<u64> {
            match name {
                $($name => load::<$module::Entity, _>(txn, name, source, |row| row).await,)*
                other => Err(Error::Internal(format!("no table {other} to restore"))),
            }
        }

        /// Checks that `line` is a row of table `name` as this version
        /// reads it.
        pub fn check_row(name: &str, line: &str) -> std::result::Result<(), String> {
            match name {
                $($name => serde_json::from_str::<$module::Model>(line).map(drop).map_err(|err| err.to_string()),)*
                other => Err(format!("no table {other}")),
            }
        }

        async fn count_named(txn: &DatabaseTransaction, name: &str) -> Result<u64> {
            match name {
                $($name => Ok($module::Entity::find().count(txn).await?),)*
                other => Err(Error::Internal(format!("no table {other}"))),
            }
        }
    };
}

backed_up_tables! {
    blob => "blobs",
    file => "files",
    file_tag => "file_tags",
    job => "jobs",
    embedding => "embeddings",
    waveform => "waveforms",
    collection => "collections",
    collection_file => "collection_files",
    api_key => "api_keys",
    audit_event => "audit_events",
    usage_event => "usage_events",
    file_suggested_tag => "file_suggested_tags",
    file_suggestion_key => "file_suggestion_keys",
    file_fingerprint => "file_fingerprints",
    file_duplicate_link => "file_duplicate_links",
}

impl Store {
    /// Reads every backed-up table in one read-only snapshot (repeatable
    /// read on PostgreSQL; a WAL read transaction on SQLite), so the rows
    /// are consistent with each other while the server keeps writing.
    /// `open` gives the sink of each table in [`BACKUP_TABLES`] order;
    /// returns each table's row count.
    pub async fn dump_tables(&self, mut open: impl FnMut(&'static str) -> TableSink) -> Result<Vec<u64>> {
        let txn = self
            .db
            .begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly))
            .await?;
        let mut counts = Vec::with_capacity(BACKUP_TABLES.len());
        for name in BACKUP_TABLES {
            let sink = open(name);
            counts.push(dump_named(&txn, name, &sink).await?);
        }
        txn.commit().await?;
        Ok(counts)
    }

    /// The first backed-up table that holds rows, if any: a restore goes
    /// only into an empty database.
    pub async fn first_nonempty_table(&self) -> Result<Option<&'static str>> {
        let txn = self.db.begin().await?;
        for name in BACKUP_TABLES {
            if count_named(&txn, name).await? > 0 {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Writes every backed-up table from `open`'s sources in one
    /// transaction: a restore that fails leaves the database empty. Jobs
    /// that were running at the backup are queued again, owned by nobody.
    pub async fn load_tables(&self, mut open: impl FnMut(&'static str) -> TableSource) -> Result<Vec<u64>> {
        let txn = self.db.begin().await?;
        let mut counts = Vec::with_capacity(BACKUP_TABLES.len());
        for name in BACKUP_TABLES {
            let mut source = open(name);
            let count = if *name == "jobs" {
                load::<job::Entity, _>(&txn, name, &mut source, |mut row: job::Model| {
                    if row.state == JobState::Running.as_str() {
                        row.state = JobState::Queued.as_str().to_owned();
                    }
                    row.owner = None;
                    row.lease_expires_at = None;
                    row
                })
                .await?
            } else {
                load_named(&txn, name, &mut source).await?
            };
            counts.push(count);
        }
        if txn.get_database_backend() == DbBackend::Postgres {
            for (table, column) in SERIAL_COLUMNS {
                txn.execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                         COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                    ),
                ))
                .await?;
            }
        }
        txn.commit().await?;
        Ok(counts)
    }

    /// Whether any file references the blob `sha256` now (outside any
    /// snapshot).
    pub async fn blob_referenced(&self, sha256: &str) -> Result<bool> {
        use sea_orm::{ColumnTrait, QueryFilter};
        Ok(file::Entity::find()
            .filter(file::Column::Sha256.eq(sha256))
            .count(&self.db)
            .await?
            > 0)
    }
}

async fn dump<E>(txn: &DatabaseTransaction, sink: &TableSink) -> Result<u64>
where
    E: EntityTrait,
    E::Model: Serialize + Send + Sync,
{
    let mut query = E::find();
    for key in E::PrimaryKey::iter() {
        query = query.order_by_asc(Expr::col(key.into_column()));
    }
    let mut rows = query.stream(txn).await?;
    let (mut chunk, mut count) = (Vec::with_capacity(CHUNK_BYTES), 0u64);
    while let Some(row) = rows.try_next().await? {
        serde_json::to_writer(&mut chunk, &row).map_err(|err| {
            Error::Internal(format!(
                "cannot encode a row of {}: {err}",
                E::default().table_name()
            ))
        })?;
        chunk.push(b'\n');
        count += 1;
        if chunk.len() >= CHUNK_BYTES {
            send(
                sink,
                std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES)),
            )
            .await?;
        }
    }
    if !chunk.is_empty() {
        send(sink, chunk).await?;
    }
    Ok(count)
}

async fn send(sink: &TableSink, chunk: Vec<u8>) -> Result<()> {
    sink.send(chunk)
        .await
        .map_err(|_| Error::Internal("the backup writer stopped".into()))
}

async fn load<E, F>(txn: &DatabaseTransaction, name: &str, source: &mut TableSource, adjust: F) -> Result<u64>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    F: Fn(E::Model) -> E::Model,
{
    let mut count = 0u64;
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    while let Some(lines) = source.recv().await {
        let lines = lines.map_err(Error::Internal)?;
        for line in lines {
            count += 1;
            let row: E::Model = serde_json::from_str(&line).map_err(|err| {
                Error::InvalidArgument(format!(
                    "row {count} of table {name} in the backup is malformed: {err}"
                ))
            })?;
            batch.push(adjust(row).into_active_model());
            if batch.len() == INSERT_BATCH {
                E::insert_many(std::mem::take(&mut batch))
                    .exec_without_returning(txn)
                    .await?;
            }
        }
    }
    if !batch.is_empty() {
        E::insert_many(batch).exec_without_returning(txn).await?;
    }
    Ok(count)
}
