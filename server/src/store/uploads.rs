//! The `uploads` table: resumable upload sessions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    Statement, TransactionTrait,
};

use super::entities::upload;
use super::rows::upload_from_model;
use super::{Store, serde_json_array, to_i64};
use crate::domain::{UploadHeader, UploadSession};
use crate::error::{Entity, Error, Result};

impl Store {
    /// Opens a resumable upload session.
    pub async fn create_upload(
        &self,
        header: &UploadHeader,
        expires_at: DateTime<Utc>,
    ) -> Result<UploadSession> {
        let session = UploadSession {
            id: uuid::Uuid::new_v4().to_string(),
            filename: header.filename.clone(),
            tags: header.tags.clone(),
            declared_size: header.declared_size,
            declared_sha256: header.declared_sha256.clone(),
            received_bytes: 0,
            expires_at,
        };
        upload::ActiveModel {
            id: Set(session.id.clone()),
            filename: Set(session.filename.clone()),
            tags: Set(serde_json_array(&session.tags)),
            declared_size: Set(session.declared_size.map(to_i64)),
            declared_sha256: Set(session.declared_sha256.clone()),
            received_bytes: Set(0),
            created_at: Set(Utc::now()),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        Ok(session)
    }

    /// Returns a live upload session.
    pub async fn get_upload(&self, id: &str) -> Result<UploadSession> {
        let model = upload::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::not_found(Entity::UploadSession, id))?;
        upload_from_model(model)
    }

    /// Moves a session's offset from `from` to `to`; fails if another request
    /// moved it first.
    pub async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let result = upload::Entity::update_many()
            .col_expr(upload::Column::ReceivedBytes, Expr::value(to_i64(to)))
            .col_expr(upload::Column::ExpiresAt, Expr::value(expires_at))
            .filter(upload::Column::Id.eq(id))
            .filter(upload::Column::ReceivedBytes.eq(to_i64(from)))
            .exec(&self.db)
            .await?;
        if result.rows_affected != 1 {
            return Err(Error::FailedPrecondition(format!(
                "upload {id} moved on concurrently; call GetUpload for the current offset"
            )));
        }
        Ok(())
    }

    /// Holds a session against every other replica until dropped (replicas
    /// share the session's bytes).
    pub async fn lock_upload(&self, id: &str) -> Result<AdvisoryLock> {
        self.advisory_lock(format!("traum upload {id}")).await
    }

    /// Holds a blob against every other replica until dropped: taken around
    /// "put the bytes in place + reference them" and "unreference + remove
    /// the bytes", so a delete on one replica never removes bytes that an
    /// upload of the same content on another has just found in place.
    pub async fn lock_blob(&self, sha256: &str) -> Result<AdvisoryLock> {
        self.advisory_lock(format!("traum blob {sha256}")).await
    }

    /// Holds the cluster's fingerprint writes until dropped: one file at a
    /// time is looked up among the stored fingerprints and stored with its
    /// links, so two copies analysed at once on two replicas see each other.
    pub async fn lock_fingerprinting(&self) -> Result<AdvisoryLock> {
        self.advisory_lock("traum fingerprints".to_owned()).await
    }

    /// On PostgreSQL a transaction-scoped advisory lock on `key`; nothing on
    /// SQLite (one server, whose own locks suffice).
    async fn advisory_lock(&self, key: String) -> Result<AdvisoryLock> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(AdvisoryLock { _txn: None });
        }
        let txn = self.db.begin().await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [key.into()],
        ))
        .await?;
        Ok(AdvisoryLock { _txn: Some(txn) })
    }

    /// Removes a session row.
    pub async fn delete_upload(&self, id: &str) -> Result<()> {
        upload::Entity::delete_by_id(id.to_owned()).exec(&self.db).await?;
        Ok(())
    }

    /// Returns sessions that expired before `now`.
    pub async fn expired_uploads(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = upload::Entity::find()
            .filter(upload::Column::ExpiresAt.lt(now))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }

    /// Ids of every session, for matching against temp files on disk.
    pub async fn upload_ids(&self) -> Result<Vec<String>> {
        let rows = upload::Entity::find().all(&self.db).await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }
}

/// A lock held by [`Store::lock_upload`] or [`Store::lock_blob`]; dropping
/// it ends the holding transaction, which releases the lock.
pub struct AdvisoryLock {
    _txn: Option<sea_orm::DatabaseTransaction>,
}
