//! The audit log: one row per write call (who, when, what, on what, how it
//! ended). Read newest first, pruned by age.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Principal,
    Role,
    Method,
    Target,
    Code,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::Principal).string_len(400).not_null())
                    .col(ColumnDef::new(AuditEvents::Role).string_len(16).null())
                    .col(ColumnDef::new(AuditEvents::Method).string_len(200).not_null())
                    .col(ColumnDef::new(AuditEvents::Target).string_len(600).null())
                    .col(ColumnDef::new(AuditEvents::Code).integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
