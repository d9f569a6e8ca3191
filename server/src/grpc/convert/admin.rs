//! AdminService messages to and from the domain's keys and roles.

use traum_proto::v1 as pb;

use super::timestamp;
use crate::auth::{ApiKeyRecord, Role};
use crate::error::{Error, Result};

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
