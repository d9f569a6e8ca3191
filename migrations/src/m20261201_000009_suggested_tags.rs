//! Labels the CLAP model suggests for a file (zero-shot tags), kept apart
//! from the user's own tags, and for each file the vocabulary and model the
//! suggestions were computed with, so a change of either is recomputed.
//!
//! `review` is empty for a pending suggestion, `accepted` once the user made
//! it an ordinary tag, `rejected` once the user refused it; reviewed rows
//! survive recomputation so a refused label is never suggested again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FileSuggestedTags {
    Table,
    FileId,
    Vocabulary,
    Label,
    Probability,
    ModelId,
    Review,
}

#[derive(DeriveIden)]
enum FileSuggestionKeys {
    Table,
    FileId,
    SuggestionsKey,
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
                    .table(FileSuggestedTags::Table)
                    .col(
                        ColumnDef::new(FileSuggestedTags::FileId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FileSuggestedTags::Vocabulary)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FileSuggestedTags::Label)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(FileSuggestedTags::Probability).double().not_null())
                    .col(
                        ColumnDef::new(FileSuggestedTags::ModelId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FileSuggestedTags::Review)
                            .string_len(16)
                            .not_null()
                            .default(""),
                    )
                    .primary_key(
                        Index::create()
                            .col(FileSuggestedTags::FileId)
                            .col(FileSuggestedTags::Vocabulary)
                            .col(FileSuggestedTags::Label),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FileSuggestedTags::Table, FileSuggestedTags::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Filters and facets look rows up by label, not by file.
        manager
            .create_index(
                Index::create()
                    .name("idx_file_suggested_tags_label")
                    .table(FileSuggestedTags::Table)
                    .col(FileSuggestedTags::Vocabulary)
                    .col(FileSuggestedTags::Label)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FileSuggestionKeys::Table)
                    .col(
                        ColumnDef::new(FileSuggestionKeys::FileId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(FileSuggestionKeys::SuggestionsKey)
                            .string_len(64)
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FileSuggestionKeys::Table, FileSuggestionKeys::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FileSuggestionKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(FileSuggestedTags::Table).to_owned())
            .await
    }
}
