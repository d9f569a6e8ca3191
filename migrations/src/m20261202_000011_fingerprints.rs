//! Acoustic fingerprints of files (computed by the analyse stage) and the
//! near-duplicate links found between them: two files are linked when their
//! fingerprints say they are the same recording (across formats, bitrates,
//! sample rates, trims and gain changes).
//!
//! A link is stored once, with `file_id` the lower of the two ids, and
//! `offset_seconds` where `other_id`'s audio starts on `file_id`'s timeline.
//! Both rows go with either file (cascading deletes).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FileFingerprints {
    Table,
    FileId,
    Fingerprint,
    CreatedAt,
}

#[derive(DeriveIden)]
enum FileDuplicateLinks {
    Table,
    FileId,
    OtherId,
    Score,
    OffsetSeconds,
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FileFingerprints::Table)
                    .col(
                        ColumnDef::new(FileFingerprints::FileId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(FileFingerprints::Fingerprint).blob().not_null())
                    .col(
                        ColumnDef::new(FileFingerprints::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FileFingerprints::Table, FileFingerprints::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FileDuplicateLinks::Table)
                    .col(
                        ColumnDef::new(FileDuplicateLinks::FileId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FileDuplicateLinks::OtherId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(FileDuplicateLinks::Score).double().not_null())
                    .col(
                        ColumnDef::new(FileDuplicateLinks::OffsetSeconds)
                            .double()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(FileDuplicateLinks::FileId)
                            .col(FileDuplicateLinks::OtherId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FileDuplicateLinks::Table, FileDuplicateLinks::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FileDuplicateLinks::Table, FileDuplicateLinks::OtherId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A file's links are looked up from either end.
        manager
            .create_index(
                Index::create()
                    .name("idx_file_duplicate_links_other")
                    .table(FileDuplicateLinks::Table)
                    .col(FileDuplicateLinks::OtherId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FileDuplicateLinks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(FileFingerprints::Table).to_owned())
            .await
    }
}
