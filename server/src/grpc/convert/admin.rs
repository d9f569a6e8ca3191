//! AdminService messages to and from the domain's keys and roles.

use traum_proto::v1 as pb;

use super::{page_offset, page_size, page_token, timestamp};
use crate::audit::{AuditEntry, AuditQuery};
use crate::auth::{ApiKeyRecord, Role};
use crate::domain::Page;
use crate::error::{Error, Result};

const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1000;

pub fn role_from(raw: i32) -> Result<Role> {
    match pb::Role::try_from(raw) {
        Ok(pb::Role::Read) => Ok(Role::Read),
        Ok(pb::Role::Write) => Ok(Role::Write),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Unspecified) => Err(Error::InvalidArgument(
            "role is required: ROLE_READ, ROLE_WRITE or ROLE_ADMIN".into(),
        )),
        Err(_) => Err(Error::InvalidArgument(format!("role {raw} is not a valid Role"))),
    }
}

pub fn role(role: Role) -> pb::Role {
    match role {
        Role::Read => pb::Role::Read,
        Role::Write => pb::Role::Write,
        Role::Admin => pb::Role::Admin,
    }
}

pub fn api_key(record: ApiKeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        key_id: record.id,
        name: record.name,
        role: role(record.role) as i32,
        prefix: record.prefix,
        created_at: Some(timestamp(record.created_at)),
        last_used_at: record.last_used_at.map(timestamp),
        revoked_at: record.revoked_at.map(timestamp),
    }
}

pub fn audit_query(request: pb::ListAuditEventsRequest) -> Result<AuditQuery> {
    let pb::ListAuditEventsRequest {
        page_size: size,
        page_token: token,
        since,
        principal,
    } = request;
    let since = since
        .map(|ts| {
            chrono::DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
                .ok_or_else(|| Error::InvalidArgument(format!("since {}s is not a valid time", ts.seconds)))
        })
        .transpose()?;
    Ok(AuditQuery {
        since,
        principal: Some(principal.trim().to_owned()).filter(|p| !p.is_empty()),
        offset: page_offset(&token)?,
        limit: page_size("page_size", size, DEFAULT_PAGE, MAX_PAGE)?,
    })
}

pub fn audit_page(page: Page<AuditEntry>) -> pb::ListAuditEventsResponse {
    pb::ListAuditEventsResponse {
        events: page
            .items
            .into_iter()
            .map(|entry| pb::AuditEvent {
                at: Some(timestamp(entry.at)),
                principal: entry.principal,
                role: entry.role.map_or(pb::Role::Unspecified, role) as i32,
                method: entry.method,
                target: entry.target.unwrap_or_default(),
                code: entry.code,
            })
            .collect(),
        next_page_token: page_token(page.next_offset),
        total_count: page.total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_both_ways_and_unspecified_is_refused() {
        for domain in Role::ALL {
            assert_eq!(role_from(role(domain) as i32).unwrap(), domain);
        }
        assert!(matches!(role_from(0), Err(Error::InvalidArgument(_))));
        assert!(matches!(role_from(42), Err(Error::InvalidArgument(_))));
    }
}
