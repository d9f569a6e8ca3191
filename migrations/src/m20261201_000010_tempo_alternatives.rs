//! The half- and double-time readings of a file's tempo, with how strongly
//! the onset envelope supports each (filled by the analyse stage).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Files {
    Table,
    BpmHalfTime,
    BpmHalfTimeScore,
    BpmDoubleTime,
    BpmDoubleTimeScore,
}

const DOUBLES: [Files; 4] = [
    Files::BpmHalfTime,
    Files::BpmHalfTimeScore,
    Files::BpmDoubleTime,
    Files::BpmDoubleTimeScore,
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in DOUBLES {
            manager
                .alter_table(Table::alter().table(Files::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
