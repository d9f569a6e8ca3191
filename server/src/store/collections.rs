//! The `collections` and `collection_files` tables. A collection's files are
//! rewritten as a whole on every change: positions stay dense and the order
//! is exactly the one the client asked for.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::Store;
use super::entities::{collection, collection_file, file};
use crate::domain::{CollectionRecord, CollectionUpdate};
use crate::error::{Entity, Error, Result};
use crate::validate::MAX_COLLECTION_FILES;

/// Rows per INSERT, well inside every backend's parameter limit.
const INSERT_CHUNK: usize = 1000;

impl Store {
    /// Creates a collection holding `file_ids` in order.
    pub async fn create_collection(
        &self,
        id: &str,
        name: &str,
        file_ids: &[String],
    ) -> Result<CollectionRecord> {
        let files = CollectionUpdate {
            replace: Some(file_ids.to_vec()),
            ..Default::default()
        }
        .apply(&[]);
        let now = Utc::now();
        let txn = self.db.begin().await?;
        // The insert comes first, so SQLite takes its write lock at once.
        let inserted = collection::Entity::insert(collection::ActiveModel {
            id: Set(id.to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await;
        if let Err(err) = inserted {
            drop(txn);
            if self.collection_named(name).await?.is_some() {
                return Err(taken(name));
            }
            return Err(err.into());
        }
        write_files(&txn, id, &files).await?;
        txn.commit().await?;
        Ok(CollectionRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            file_count: files.len() as u64,
            file_ids: files,
            created_at: now,
            updated_at: now,
        })
    }

    /// Every collection by name (or those holding `file_id`), with counts.
    pub async fn list_collections(&self, file_id: Option<&str>) -> Result<Vec<CollectionRecord>> {
        let mut query = collection::Entity::find().order_by(collection::Column::Name, Order::Asc);
        if let Some(file_id) = file_id {
            let holding: Vec<String> = collection_file::Entity::find()
                .select_only()
                .column(collection_file::Column::CollectionId)
                .filter(collection_file::Column::FileId.eq(file_id))
                .into_tuple()
                .all(&self.db)
                .await?;
            query = query.filter(collection::Column::Id.is_in(holding));
        }
        // One grouped count for every collection, not one query each.
        let counts: HashMap<String, i64> = collection_file::Entity::find()
            .select_only()
            .column(collection_file::Column::CollectionId)
            .column_as(collection_file::Column::FileId.count(), "files")
            .group_by(collection_file::Column::CollectionId)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(query
            .all(&self.db)
            .await?
            .into_iter()
            .map(|model| {
                let count = counts
                    .get(&model.id)
                    .map_or(0, |n| u64::try_from(*n).unwrap_or(0));
                record(model, Vec::new(), count)
            })
            .collect())
    }

    /// One collection with its files in order.
    pub async fn get_collection(&self, id: &str) -> Result<CollectionRecord> {
        get_in(&self.db, id).await
    }

    /// Renames and changes the files of a collection atomically.
    pub async fn update_collection(&self, id: &str, update: &CollectionUpdate) -> Result<CollectionRecord> {
        let txn = self.db.begin().await?;
        let mut touch = collection::Entity::update_many()
            .col_expr(collection::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(collection::Column::Id.eq(id));
        if let Some(name) = &update.name {
            touch = touch.col_expr(collection::Column::Name, Expr::value(name.clone()));
        }
        match touch.exec(&txn).await {
            Ok(result) if result.rows_affected == 0 => return Err(Error::not_found(Entity::Collection, id)),
            Ok(_) => {}
            Err(err) => {
                drop(txn);
                if let Some(name) = &update.name
                    && self
                        .collection_named(name)
                        .await?
                        .is_some_and(|other| other != id)
                {
                    return Err(taken(name));
                }
                return Err(err.into());
            }
        }
        let current = get_in(&txn, id).await?;
        let files = update.apply(&current.file_ids);
        if files != current.file_ids {
            collection_file::Entity::delete_many()
                .filter(collection_file::Column::CollectionId.eq(id))
                .exec(&txn)
                .await?;
            write_files(&txn, id, &files).await?;
        }
        let updated = get_in(&txn, id).await?;
        txn.commit().await?;
        Ok(updated)
    }

    /// Deletes a collection (its files stay).
    pub async fn delete_collection(&self, id: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        collection_file::Entity::delete_many()
            .filter(collection_file::Column::CollectionId.eq(id))
            .exec(&txn)
            .await?;
        let deleted = collection::Entity::delete_by_id(id.to_owned()).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(Error::not_found(Entity::Collection, id));
        }
        txn.commit().await?;
        Ok(())
    }

    async fn collection_named(&self, name: &str) -> Result<Option<String>> {
        Ok(collection::Entity::find()
            .filter(collection::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(|model| model.id))
    }
}

fn taken(name: &str) -> Error {
    Error::AlreadyExists(format!(
        "a collection named `{name}` exists already; choose another name"
    ))
}

fn record(model: collection::Model, file_ids: Vec<String>, count: u64) -> CollectionRecord {
    CollectionRecord {
        id: model.id,
        name: model.name,
        file_ids,
        file_count: count,
        created_at: model.created_at,
        updated_at: model.updated_at,
    }
}

async fn get_in(db: &impl ConnectionTrait, id: &str) -> Result<CollectionRecord> {
    let model = collection::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found(Entity::Collection, id))?;
    let file_ids: Vec<String> = collection_file::Entity::find()
        .select_only()
        .column(collection_file::Column::FileId)
        .filter(collection_file::Column::CollectionId.eq(id))
        .order_by(collection_file::Column::Position, Order::Asc)
        .into_tuple()
        .all(db)
        .await?;
    let count = file_ids.len() as u64;
    Ok(record(model, file_ids, count))
}

/// Writes `files` as the collection's files, positions 0, 1, …; every file
/// must exist.
async fn write_files(txn: &DatabaseTransaction, id: &str, files: &[String]) -> Result<()> {
    if files.len() > MAX_COLLECTION_FILES {
        return Err(Error::InvalidArgument(format!(
            "a collection holds at most {MAX_COLLECTION_FILES} files ({} asked)",
            files.len()
        )));
    }
    let mut found = HashSet::with_capacity(files.len());
    for chunk in files.chunks(INSERT_CHUNK) {
        let ids: Vec<String> = file::Entity::find()
            .select_only()
            .column(file::Column::Id)
            .filter(file::Column::Id.is_in(chunk.iter().map(String::as_str)))
            .into_tuple()
            .all(txn)
            .await?;
        found.extend(ids);
    }
    if let Some(missing) = files.iter().find(|id| !found.contains(*id)) {
        return Err(Error::not_found(Entity::File, missing));
    }
    for (chunk_index, chunk) in files.chunks(INSERT_CHUNK).enumerate() {
        let rows = chunk
            .iter()
            .enumerate()
            .map(|(i, file_id)| collection_file::ActiveModel {
                collection_id: Set(id.to_owned()),
                file_id: Set(file_id.clone()),
                position: Set(i32::try_from(chunk_index * INSERT_CHUNK + i).unwrap_or(i32::MAX)),
            });
        collection_file::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
