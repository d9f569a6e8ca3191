//! Descriptor columns filled by the analyse stage.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Files {
    Table,
    PeakDbfs,
    LoudnessLufs,
    RmsDbfs,
    SpectralCentroidHz,
    ZeroCrossingRate,
    SilenceRatio,
    Bpm,
    BpmConfidence,
    KeyPitchClass,
    KeyMode,
    KeyConfidence,
}

const DOUBLES: [Files; 9] = [
    Files::PeakDbfs,
    Files::LoudnessLufs,
    Files::RmsDbfs,
    Files::SpectralCentroidHz,
    Files::ZeroCrossingRate,
    Files::SilenceRatio,
    Files::Bpm,
    Files::BpmConfidence,
    Files::KeyConfidence,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite cannot add several at once.
        for column in DOUBLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(Files::Table)
                        .add_column(ColumnDef::new(column).double().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Files::Table)
                    .add_column(ColumnDef::new(Files::KeyPitchClass).integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Files::Table)
                    .add_column(ColumnDef::new(Files::KeyMode).string_len(8).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_files_bpm")
                    .table(Files::Table)
                    .col(Files::Bpm)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_files_bpm").table(Files::Table).to_owned())
            .await?;
        for column in DOUBLES.into_iter().chain([Files::KeyPitchClass, Files::KeyMode]) {
            manager
                .alter_table(Table::alter().table(Files::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
