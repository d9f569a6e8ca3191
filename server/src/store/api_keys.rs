//! The `api_keys` table. Secrets never reach it: a key is found by the
//! SHA-256 of the secret presented.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder};

use super::Store;
use super::entities::api_key;
use crate::auth::{ApiKeyRecord, Role};
use crate::error::{Entity, Error, Result};

impl Store {
    /// Stores a new key by the hash of its secret.
    pub async fn create_api_key(&self, record: &ApiKeyRecord, secret_sha256: &str) -> Result<()> {
        api_key::Entity::insert(api_key::ActiveModel {
            id: Set(record.id.clone()),
            name: Set(record.name.clone()),
            role: Set(record.role.as_str().to_owned()),
            prefix: Set(record.prefix.clone()),
            secret_sha256: Set(secret_sha256.to_owned()),
            created_at: Set(record.created_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Every key, newest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        api_key::Entity::find()
            .order_by(api_key::Column::CreatedAt, Order::Desc)
            .order_by(api_key::Column::Id, Order::Desc)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|model| record(model).map(|(record, _)| record))
            .collect()
    }

    /// The key whose secret has this hash, with the stored hash for the
    /// constant-time comparison.
    pub async fn api_key_by_secret(&self, secret_sha256: &str) -> Result<Option<(ApiKeyRecord, String)>> {
        api_key::Entity::find()
            .filter(api_key::Column::SecretSha256.eq(secret_sha256))
            .one(&self.db)
            .await?
            .map(record)
            .transpose()
    }

    /// Marks a key revoked (the first revocation's time stays) and returns it.
    pub async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<ApiKeyRecord> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(at))
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        let model = api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::not_found(Entity::ApiKey, id))?;
        record(model).map(|(record, _)| record)
    }

    /// Records a successful use.
    pub async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
            .filter(api_key::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

fn record(model: api_key::Model) -> Result<(ApiKeyRecord, String)> {
    let role = Role::parse(&model.role).ok_or_else(|| {
        Error::Internal(format!(
            "API key {} has the unknown role `{}`",
            model.id, model.role
        ))
    })?;
    Ok((
        ApiKeyRecord {
            id: model.id,
            name: model.name,
            role,
            prefix: model.prefix,
            created_at: model.created_at,
            last_used_at: model.last_used_at,
            revoked_at: model.revoked_at,
        },
        model.secret_sha256,
    ))
}
