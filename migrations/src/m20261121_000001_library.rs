//! Blobs, files, tags, jobs and resumable upload sessions.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Blobs {
    Table,
    Sha256,
    SizeBytes,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
    Filename,
    Sha256,
    Format,
    SizeBytes,
    State,
    LatestJobId,
    Error,
    DurationSeconds,
    SampleRateHz,
    Channels,
    BitsPerSample,
    Codec,
    BitrateBps,
    Frames,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FileTags {
    Table,
    FileId,
    Tag,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    FileId,
    State,
    Stage,
    Progress,
    StageProgress,
    Message,
    Error,
    Attempts,
    Warnings,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Uploads {
    Table,
    Id,
    Filename,
    Tags,
    DeclaredSize,
    DeclaredSha256,
    ReceivedBytes,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Blobs::Table)
                    .col(
                        ColumnDef::new(Blobs::Sha256)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Blobs::SizeBytes).big_integer().not_null())
                    .col(
                        ColumnDef::new(Blobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .col(ColumnDef::new(Files::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Files::Filename).string().not_null())
                    .col(ColumnDef::new(Files::Sha256).string_len(64).not_null())
                    .col(ColumnDef::new(Files::Format).string().not_null())
                    .col(ColumnDef::new(Files::SizeBytes).big_integer().not_null())
                    .col(ColumnDef::new(Files::State).string().not_null())
                    .col(ColumnDef::new(Files::LatestJobId).string_len(36).null())
                    .col(ColumnDef::new(Files::Error).text().null())
                    .col(ColumnDef::new(Files::DurationSeconds).double().null())
                    .col(ColumnDef::new(Files::SampleRateHz).integer().null())
                    .col(ColumnDef::new(Files::Channels).integer().null())
                    .col(ColumnDef::new(Files::BitsPerSample).integer().null())
                    .col(ColumnDef::new(Files::Codec).string().null())
                    .col(ColumnDef::new(Files::BitrateBps).big_integer().null())
                    .col(ColumnDef::new(Files::Frames).big_integer().null())
                    .col(
                        ColumnDef::new(Files::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Files::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Files::Table, Files::Sha256)
                            .to(Blobs::Table, Blobs::Sha256)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_files_sha256", Files::Sha256),
            ("idx_files_created_at", Files::CreatedAt),
            ("idx_files_state", Files::State),
        ] {
            manager
                .create_index(Index::create().name(name).table(Files::Table).col(col).to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(FileTags::Table)
                    .col(ColumnDef::new(FileTags::FileId).string_len(36).not_null())
                    .col(ColumnDef::new(FileTags::Tag).string_len(64).not_null())
                    .primary_key(Index::create().col(FileTags::FileId).col(FileTags::Tag))
                    .foreign_key(
                        ForeignKey::create()
                            .from(FileTags::Table, FileTags::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_file_tags_tag")
                    .table(FileTags::Table)
                    .col(FileTags::Tag)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Jobs::FileId).string_len(36).not_null())
                    .col(ColumnDef::new(Jobs::State).string().not_null())
                    .col(ColumnDef::new(Jobs::Stage).string().not_null())
                    .col(ColumnDef::new(Jobs::Progress).double().not_null())
                    .col(ColumnDef::new(Jobs::StageProgress).double().not_null())
                    .col(ColumnDef::new(Jobs::Message).text().not_null())
                    .col(ColumnDef::new(Jobs::Error).text().null())
                    .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::Warnings).text().not_null())
                    .col(
                        ColumnDef::new(Jobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Jobs::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Jobs::StartedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Jobs::FinishedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Jobs::Table, Jobs::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_jobs_state", Jobs::State),
            ("idx_jobs_file_id", Jobs::FileId),
        ] {
            manager
                .create_index(Index::create().name(name).table(Jobs::Table).col(col).to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Uploads::Table)
                    .col(
                        ColumnDef::new(Uploads::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Uploads::Filename).string().not_null())
                    .col(ColumnDef::new(Uploads::Tags).text().not_null())
                    .col(ColumnDef::new(Uploads::DeclaredSize).big_integer().null())
                    .col(ColumnDef::new(Uploads::DeclaredSha256).string_len(64).null())
                    .col(ColumnDef::new(Uploads::ReceivedBytes).big_integer().not_null())
                    .col(
                        ColumnDef::new(Uploads::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Uploads::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Uploads::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(FileTags::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Files::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Blobs::Table).to_owned())
            .await?;
        Ok(())
    }
}
