//! Persistent state in SQLite or PostgreSQL through sea-orm. The database is
//! the source of truth for files, tags, jobs, upload sessions, vectors and
//! usage. One file per table family.

mod api_keys;
mod audit;
mod backup;
mod collections;
mod embeddings;
pub mod entities;
mod feed;
mod files;
mod filters;
mod fingerprints;
mod jobs;
mod rows;
mod suggested_tags;
mod totals;
mod uploads;
mod usage;
mod waveforms;

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait};
use traum_migration::{Migrator, MigratorTrait};

pub use self::backup::{BACKUP_TABLES, TableSink, TableSource, check_row};
pub use self::feed::{FEED_CHANNEL, FeedChange, FeedPosition, FeedRead};
pub use self::fingerprints::UnprintedFile;
pub use self::jobs::{Claimed, JobClaim};
pub use self::totals::LibraryTotals;
pub use self::usage::{BucketAggregate, MethodUsage, SearchLatency, UsageAggregates, UsageKind, UsageRow};
use crate::domain::AudioFormat;
use crate::error::{Error, Result};

/// The PostgreSQL advisory lock key that serialises migrations ("traum" in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x74_72_61_75_6d;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// A blob about to be referenced by a new file.
#[derive(Debug, Clone)]
pub struct NewBlob {
    pub sha256: String,
    pub size_bytes: u64,
    pub format: AudioFormat,
}

/// What deleting a file removed.
#[derive(Debug, Clone)]
pub struct DeletedFile {
    pub sha256: String,
    /// No file references the blob any more: its bytes can go.
    pub blob_orphaned: bool,
}

impl Store {
    /// Connects, enables WAL on SQLite and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(16)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        let db = Database::connect(options).await?;
        if db.get_database_backend() == DbBackend::Sqlite {
            // WAL lets readers proceed during writes; NORMAL sync is durable
            // across application crashes, which is what WAL needs.
            db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
                .await?;
        }
        if db.get_database_backend() == DbBackend::Postgres {
            // Replicas starting together would otherwise all apply the same
            // migration. One transaction holds the lock and every step:
            // the others wait, then find nothing pending, and a failed step
            // leaves the schema as it was.
            let txn = db.begin().await?;
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [MIGRATION_LOCK.into()],
            ))
            .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await?;
        } else {
            Migrator::up(&db, None).await?;
        }
        Ok(Self { db })
    }

    /// The PostgreSQL pool under sea-orm, for what sea-orm cannot do
    /// (LISTEN); `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        (self.db.get_database_backend() == DbBackend::Postgres)
            .then(|| self.db.get_postgres_connection_pool().clone())
    }

    /// True on SQLite, which one server uses alone; PostgreSQL may be
    /// shared by replicas.
    pub fn is_sqlite(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Sqlite
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(Error::from)
    }
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Internal(format!("database holds an unknown {what} `{value}`"))
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Encodes a list of strings as a JSON array.
fn serde_json_array(items: &[String]) -> String {
    // Serialising strings cannot fail; the fallback only satisfies the type.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_json_array(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|err| Error::Internal(format!("database holds a malformed list `{text}`: {err}")))
}

/// Converts a byte count for a BIGINT column; sizes beyond i64 are impossible
/// under the configured limits.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
