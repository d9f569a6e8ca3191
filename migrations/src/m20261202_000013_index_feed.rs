//! The change feed every replica's in-memory indexes (keywords, vectors,
//! fingerprints) follow: each transaction that changes what an index holds
//! about a file (its name, tags, vectors, fingerprint, or its existence)
//! adds a row naming the file, in the same transaction. Readers re-read the
//! named files, so a row says only "look again", and reading one twice is
//! harmless.
//!
//! Sequence values commit out of order on PostgreSQL, so a reader cannot
//! trust `seq` alone to resume: each row also records its writer's
//! transaction id (`txid`, from `pg_current_xact_id()`), and a reader
//! resumes at the oldest transaction still running when it last read (the
//! snapshot's xmin). SQLite has one writer at a time, so there `seq` order
//! is commit order and `txid` stays NULL.
//!
//! `index_feed_state` holds the feed's `floor`: rows below it may have been
//! pruned, so an index saved at an older position must be rebuilt.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IndexChanges {
    Table,
    Seq,
    Txid,
    FileId,
    At,
}

#[derive(DeriveIden)]
enum IndexFeedState {
    Table,
    Name,
    Position,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IndexChanges::Table)
                    .col(
                        ColumnDef::new(IndexChanges::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(IndexChanges::Txid).big_integer().null())
                    .col(ColumnDef::new(IndexChanges::FileId).string_len(36).not_null())
                    .col(
                        ColumnDef::new(IndexChanges::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            // The writer's transaction id, filled by the database so no
            // write path can forget it.
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE index_changes ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)",
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_index_changes_txid")
                    .table(IndexChanges::Table)
                    .col(IndexChanges::Txid)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_index_changes_at")
                    .table(IndexChanges::Table)
                    .col(IndexChanges::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IndexFeedState::Table)
                    .col(
                        ColumnDef::new(IndexFeedState::Name)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(IndexFeedState::Position).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IndexFeedState::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(IndexChanges::Table).to_owned())
            .await
    }
}
