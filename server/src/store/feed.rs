//! The index change feed (migration 013): every transaction that changes
//! what an in-memory index holds about a file names the file in
//! `index_changes`, and every replica reads the feed to follow.
//!
//! A reader's position is a number the rows are compared with:
//! - PostgreSQL: a transaction id. Sequence values commit out of order (a
//!   transaction holding seq 7 may commit after one holding seq 8), so
//!   resuming after the last seq read would skip rows. Each read instead
//!   takes one snapshot, returns every visible row whose writer's id is at
//!   or above the position, and the snapshot's xmin as the next position:
//!   every transaction below xmin had ended when the snapshot was taken, so
//!   its rows were visible then and nothing below the new position can
//!   still appear. Rows at or above it are returned again by the next read
//!   (the reader skips those it applied).
//! - SQLite: the next seq. One writer at a time holds the write lock from
//!   its first write to its commit, so seq order is commit order.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IsolationLevel, QueryFilter, Statement,
    TransactionTrait,
};

use super::Store;
use super::entities::{index_change, index_feed_state};
use crate::error::{Error, Result};

/// The PostgreSQL channel writers notify (at commit) and readers listen on.
pub const FEED_CHANNEL: &str = "traum_index_changes";

/// A reader's position in the feed (see the module comment).
pub type FeedPosition = u64;

const FLOOR: &str = "floor";

/// One row of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    pub seq: i64,
    /// What the row is compared with positions by: its writer's transaction
    /// id on PostgreSQL, its seq on SQLite.
    pub position: FeedPosition,
    pub file_id: String,
}

/// What one read returned.
#[derive(Debug, Clone)]
pub struct FeedRead {
    /// Rows at or above the position asked for, in seq order, without those
    /// the reader said it had applied.
    pub changes: Vec<FeedChange>,
    /// Rows at or above this position may still come (or come again).
    pub next: FeedPosition,
    /// Seqs read that are at or above `next`: the reader passes them back
    /// as applied so the next read leaves them out.
    pub pending: HashSet<i64>,
}

/// Names `file_ids` in the feed, in the caller's transaction, so the rows
/// commit (or roll back) with the change they describe. On PostgreSQL the
/// readers are woken when the transaction commits.
pub(super) async fn record_changes<C: ConnectionTrait>(conn: &C, file_ids: &[&str]) -> Result<()> {
    let distinct: BTreeSet<&str> = file_ids.iter().copied().collect();
    if distinct.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    index_change::Entity::insert_many(distinct.iter().map(|file_id| index_change::ActiveModel {
        seq: NotSet,
        // PostgreSQL fills it with the writer's transaction id.
        txid: NotSet,
        file_id: Set((*file_id).to_owned()),
        at: Set(now),
    }))
    .exec_without_returning(conn)
    .await?;
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, '')",
            [FEED_CHANNEL.into()],
        ))
        .await?;
    }
    Ok(())
}

fn position_of(value: i64) -> Result<FeedPosition> {
    u64::try_from(value).map_err(|_| Error::Internal(format!("feed position {value} is negative")))
}

impl Store {
    /// Where a reader that has just read everything stands: rows committed
    /// from now on are at or above it.
    pub async fn feed_head(&self) -> Result<FeedPosition> {
        let sql = match self.db.get_database_backend() {
            DbBackend::Postgres => "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS position",
            _ => "SELECT COALESCE(MAX(seq), 0) + 1 AS position FROM index_changes",
        };
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await?
            .ok_or_else(|| Error::Internal("the feed position query returned no row".into()))?;
        position_of(row.try_get::<i64>("", "position")?)
    }

    /// The feed from `from` on, leaving out `applied` (seqs the reader got
    /// as `pending` before and has applied).
    pub async fn read_feed(&self, from: FeedPosition, applied: &HashSet<i64>) -> Result<FeedRead> {
        let from =
            i64::try_from(from).map_err(|_| Error::Internal(format!("feed position {from} overflows")))?;
        let backend = self.db.get_database_backend();
        let (rows, next) = if backend == DbBackend::Postgres {
            // One snapshot for the xmin and the rows: what is below the xmin
            // has ended, so it is visible in this very snapshot.
            let txn = self
                .db
                .begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly))
                .await?;
            let xmin = txn
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS position",
                ))
                .await?
                .ok_or_else(|| Error::Internal("the snapshot query returned no row".into()))?
                .try_get::<i64>("", "position")?;
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT seq, txid AS position, file_id FROM index_changes WHERE txid >= $1 ORDER BY seq",
                    [from.into()],
                ))
                .await?;
            txn.commit().await?;
            (rows, position_of(xmin)?)
        } else {
            let rows = self
                .db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT seq, seq AS position, file_id FROM index_changes WHERE seq >= ? ORDER BY seq",
                    [from.into()],
                ))
                .await?;
            (rows, 0)
        };
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            changes.push(FeedChange {
                seq: row.try_get("", "seq")?,
                position: position_of(row.try_get::<i64>("", "position")?)?,
                file_id: row.try_get("", "file_id")?,
            });
        }
        let next = if backend == DbBackend::Postgres {
            next
        } else {
            changes.last().map_or(from as u64, |change| change.position + 1)
        };
        let pending = changes
            .iter()
            .filter(|change| change.position >= next)
            .map(|change| change.seq)
            .collect();
        changes.retain(|change| !applied.contains(&change.seq));
        Ok(FeedRead {
            changes,
            next,
            pending,
        })
    }

    /// Rows below this position may have been pruned: an index saved at an
    /// older position cannot catch up from the feed.
    pub async fn feed_floor(&self) -> Result<FeedPosition> {
        let row = index_feed_state::Entity::find_by_id(FLOOR.to_owned())
            .one(&self.db)
            .await?;
        row.map_or(Ok(0), |row| position_of(row.position))
    }

    /// Deletes rows written before `before` and raises the floor above
    /// them. Returns the rows deleted.
    pub async fn prune_feed(&self, before: DateTime<Utc>) -> Result<u64> {
        let txn = self.db.begin().await?;
        let deleted = index_change::Entity::delete_many()
            .filter(index_change::Column::At.lt(before))
            .exec_with_returning(&txn)
            .await?;
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let highest = deleted
            .iter()
            .map(|row| if postgres { row.txid.unwrap_or(0) } else { row.seq })
            .max();
        if let Some(highest) = highest {
            let old = index_feed_state::Entity::find_by_id(FLOOR.to_owned())
                .one(&txn)
                .await?
                .map_or(0, |row| row.position);
            index_feed_state::Entity::insert(index_feed_state::ActiveModel {
                name: Set(FLOOR.to_owned()),
                position: Set(old.max(highest + 1)),
            })
            .on_conflict(
                OnConflict::column(index_feed_state::Column::Name)
                    .update_column(index_feed_state::Column::Position)
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(deleted.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Database;

    use super::*;

    async fn sqlite() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("feed.db").display());
        (dir, Store::connect(&url).await.unwrap())
    }

    /// A fresh PostgreSQL database (dropped by the returned guard's
    /// `drop_database`), or `None` when `TRAUM_TEST_POSTGRES_URL` is unset.
    async fn postgres() -> Option<(Store, String, String)> {
        let base = std::env::var("TRAUM_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())?;
        let name = format!("traum_feed_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&base).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.ok();
        let (server, _) = base.rsplit_once('/').unwrap();
        let store = Store::connect(&format!("{server}/{name}")).await.unwrap();
        Some((store, base, name))
    }

    async fn drop_database(base: &str, name: &str) {
        let admin = Database::connect(base).await.unwrap();
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .ok();
    }

    async fn record(store: &Store, file_id: &str) {
        let txn = store.db.begin().await.unwrap();
        record_changes(&txn, &[file_id]).await.unwrap();
        txn.commit().await.unwrap();
    }

    fn files(read: &FeedRead) -> Vec<&str> {
        read.changes
            .iter()
            .map(|change| change.file_id.as_str())
            .collect()
    }

    #[tokio::test]
    async fn a_reader_gets_each_committed_change_once_and_none_rolled_back() {
        let (_dir, store) = sqlite().await;
        let start = store.feed_head().await.unwrap();
        record(&store, "a").await;
        let rolled_back = store.db.begin().await.unwrap();
        record_changes(&rolled_back, &["never"]).await.unwrap();
        rolled_back.rollback().await.unwrap();
        record(&store, "b").await;

        let first = store.read_feed(start, &HashSet::new()).await.unwrap();
        assert_eq!(files(&first), ["a", "b"]);
        let second = store.read_feed(first.next, &first.pending).await.unwrap();
        assert!(second.changes.is_empty(), "{:?}", second.changes);
        record(&store, "c").await;
        let third = store.read_feed(second.next, &second.pending).await.unwrap();
        assert_eq!(files(&third), ["c"]);
    }

    #[tokio::test]
    async fn pruning_raises_the_floor_above_every_deleted_row() {
        let (_dir, store) = sqlite().await;
        assert_eq!(store.feed_floor().await.unwrap(), 0);
        record(&store, "old").await;
        let cut = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        record(&store, "new").await;
        assert_eq!(store.prune_feed(cut).await.unwrap(), 1);
        let floor = store.feed_floor().await.unwrap();
        let rest = store.read_feed(0, &HashSet::new()).await.unwrap();
        assert_eq!(files(&rest), ["new"]);
        assert_eq!(
            floor, rest.changes[0].position,
            "the floor is just above the pruned row"
        );
        // Pruning nothing keeps the floor where it was.
        assert_eq!(store.prune_feed(cut).await.unwrap(), 0);
        assert_eq!(store.feed_floor().await.unwrap(), floor);
    }

    /// The pitfall the transaction-id position exists for: a transaction
    /// that took its seq first but commits last must still be read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_change_committed_out_of_seq_order_is_not_skipped() {
        let Some((store, base, name)) = postgres().await else {
            eprintln!("TRAUM_TEST_POSTGRES_URL is not set; PostgreSQL variant not run");
            return;
        };
        let start = store.feed_head().await.unwrap();
        let slow = store.db.begin().await.unwrap();
        record_changes(&slow, &["slow"]).await.unwrap();
        record(&store, "fast").await;

        let first = store.read_feed(start, &HashSet::new()).await.unwrap();
        assert_eq!(files(&first), ["fast"]);
        slow.commit().await.unwrap();
        let second = store.read_feed(first.next, &first.pending).await.unwrap();
        assert_eq!(
            files(&second),
            ["slow"],
            "the late commit is read, and `fast` is not again"
        );
        let all = store.read_feed(start, &HashSet::new()).await.unwrap();
        let seq_of = |file: &str| all.changes.iter().find(|c| c.file_id == file).unwrap().seq;
        assert!(
            seq_of("slow") < seq_of("fast"),
            "resuming after the highest seq read ({}) would have skipped `slow` ({})",
            seq_of("fast"),
            seq_of("slow")
        );
        let third = store.read_feed(second.next, &second.pending).await.unwrap();
        assert!(third.changes.is_empty(), "{:?}", third.changes);
        drop(store);
        drop_database(&base, &name).await;
    }
}
