//! The `audit_events` table.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Store;
use super::entities::audit_event;
use crate::audit::{AuditEntry, AuditQuery};
use crate::auth::Role;
use crate::domain::Page;
use crate::error::Result;

impl Store {
    pub async fn insert_audit(&self, entry: &AuditEntry) -> Result<()> {
        audit_event::Entity::insert(audit_event::ActiveModel {
            id: NotSet,
            at: Set(entry.at),
            principal: Set(entry.principal.clone()),
            role: Set(entry.role.map(|role| role.as_str().to_owned())),
            method: Set(entry.method.clone()),
            target: Set(entry.target.clone()),
            code: Set(entry.code),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Entries matching `query`, newest first.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry>> {
        let mut select = audit_event::Entity::find();
        if let Some(since) = query.since {
            select = select.filter(audit_event::Column::At.gte(since));
        }
        if let Some(principal) = &query.principal {
            select = select.filter(audit_event::Column::Principal.eq(principal.as_str()));
        }
        let total = select.clone().count(&self.db).await?;
        let models = select
            .order_by(audit_event::Column::At, Order::Desc)
            .order_by(audit_event::Column::Id, Order::Desc)
            .offset(query.offset)
            .limit(query.limit)
            .all(&self.db)
            .await?;
        let items: Vec<AuditEntry> = models
            .into_iter()
            .map(|m| AuditEntry {
                at: m.at,
                principal: m.principal,
                role: m.role.as_deref().and_then(Role::parse),
                method: m.method,
                target: m.target,
                code: m.code,
            })
            .collect();
        let next = query.offset + items.len() as u64;
        Ok(Page {
            next_offset: (next < total && !items.is_empty()).then_some(next),
            total,
            items,
        })
    }

    /// Removes entries older than `before`; returns how many.
    pub async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        let result = audit_event::Entity::delete_many()
            .filter(audit_event::Column::At.lt(before))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }
}
