//! The usage table: one row per recorded call, the source of `GetUsage`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsageEvents {
    Table,
    Id,
    AtMs,
    Kind,
    Method,
    Code,
    LatencyMs,
    Query,
    UploadBytes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsageEvents::Table)
                    .col(
                        ColumnDef::new(UsageEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(UsageEvents::AtMs).big_integer().not_null())
                    .col(ColumnDef::new(UsageEvents::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(UsageEvents::Method).string().not_null())
                    .col(ColumnDef::new(UsageEvents::Code).integer().not_null())
                    .col(ColumnDef::new(UsageEvents::LatencyMs).double().not_null())
                    .col(ColumnDef::new(UsageEvents::Query).text().null())
                    .col(ColumnDef::new(UsageEvents::UploadBytes).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_events_at_ms")
                    .table(UsageEvents::Table)
                    .col(UsageEvents::AtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageEvents::Table).to_owned())
            .await
    }
}
