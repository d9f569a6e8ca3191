//! Waveform peaks written by the analyse stage, one row per file, kept out
//! of `files` so listing files never reads them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Waveforms {
    Table,
    FileId,
    SampleRateHz,
    Frames,
    OverviewSamplesPerPair,
    Overview,
    DetailSamplesPerPair,
    Detail,
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
                    .table(Waveforms::Table)
                    .col(
                        ColumnDef::new(Waveforms::FileId)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Waveforms::SampleRateHz).integer().not_null())
                    .col(ColumnDef::new(Waveforms::Frames).big_integer().not_null())
                    .col(
                        ColumnDef::new(Waveforms::OverviewSamplesPerPair)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Waveforms::Overview).blob().not_null())
                    .col(ColumnDef::new(Waveforms::DetailSamplesPerPair).integer().null())
                    .col(ColumnDef::new(Waveforms::Detail).blob().null())
                    .col(
                        ColumnDef::new(Waveforms::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Waveforms::Table, Waveforms::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Waveforms::Table).to_owned())
            .await
    }
}
