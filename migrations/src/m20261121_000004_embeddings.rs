//! CLAP embeddings written by the embed stage: one row per window of a file
//! plus one pooled row per file. The auto-increment id is the key the
//! vector index stores, and the high-water mark its persisted copy reflects.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Embeddings {
    Table,
    Id,
    FileId,
    ModelId,
    WindowIndex,
    StartSeconds,
    EndSeconds,
    Vector,
    CreatedAt,
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
                    .table(Embeddings::Table)
                    .col(
                        ColumnDef::new(Embeddings::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Embeddings::FileId).string_len(36).not_null())
                    .col(ColumnDef::new(Embeddings::ModelId).string().not_null())
                    // NULL marks the pooled whole-file vector.
                    .col(ColumnDef::new(Embeddings::WindowIndex).integer().null())
                    .col(ColumnDef::new(Embeddings::StartSeconds).double().not_null())
                    .col(ColumnDef::new(Embeddings::EndSeconds).double().not_null())
                    .col(ColumnDef::new(Embeddings::Vector).blob().not_null())
                    .col(
                        ColumnDef::new(Embeddings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Embeddings::Table, Embeddings::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_embeddings_file_id")
                    .table(Embeddings::Table)
                    .col(Embeddings::FileId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Embeddings::Table).to_owned())
            .await
    }
}
