//! Collections: named, ordered sets of files. `position` orders a
//! collection's files; a file is in a collection at most once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Collections {
    Table,
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CollectionFiles {
    Table,
    CollectionId,
    FileId,
    Position,
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
                    .table(Collections::Table)
                    .col(
                        ColumnDef::new(Collections::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Collections::Name).string_len(400).not_null())
                    .col(
                        ColumnDef::new(Collections::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Collections::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_collections_name")
                    .table(Collections::Table)
                    .col(Collections::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CollectionFiles::Table)
                    .col(
                        ColumnDef::new(CollectionFiles::CollectionId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(CollectionFiles::FileId).string_len(36).not_null())
                    .col(ColumnDef::new(CollectionFiles::Position).integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(CollectionFiles::CollectionId)
                            .col(CollectionFiles::FileId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CollectionFiles::Table, CollectionFiles::CollectionId)
                            .to(Collections::Table, Collections::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CollectionFiles::Table, CollectionFiles::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_collection_files_file_id")
                    .table(CollectionFiles::Table)
                    .col(CollectionFiles::FileId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CollectionFiles::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Collections::Table).to_owned())
            .await
    }
}
