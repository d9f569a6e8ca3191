//! Jobs shared by several replicas of one database: a claimed job records
//! the replica running it (`owner`) and until when its claim holds
//! (`lease_expires_at`), renewed by that replica's heartbeat. A running job
//! whose lease has passed belongs to a replica that died and may be taken
//! over by another.
//!
//! `cluster_leases` holds named leases for work that must run on one
//! replica at a time (the cluster's chores: backfills, expiry, pruning).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Owner,
    LeaseExpiresAt,
    State,
}

#[derive(DeriveIden)]
enum ClusterLeases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite cannot add several at once.
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(ColumnDef::new(Jobs::Owner).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(
                        ColumnDef::new(Jobs::LeaseExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Heartbeats renew by owner; claims look for expired running jobs.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_owner_state")
                    .table(Jobs::Table)
                    .col(Jobs::Owner)
                    .col(Jobs::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClusterLeases::Table)
                    .col(
                        ColumnDef::new(ClusterLeases::Name)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ClusterLeases::Holder).string_len(64).not_null())
                    .col(
                        ColumnDef::new(ClusterLeases::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClusterLeases::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_jobs_owner_state")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Jobs::LeaseExpiresAt, Jobs::Owner] {
            manager
                .alter_table(Table::alter().table(Jobs::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
