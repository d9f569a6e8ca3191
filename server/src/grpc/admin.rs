//! `traum.v1.AdminService`: API keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use traum_proto::v1 as pb;

use super::convert::admin as convert_admin;
use crate::state::App;
use crate::validate;

/// The AdminService implementation.
pub struct AdminApi {
    app: Arc<App>,
}

impl AdminApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let audit = super::audit_slot(&request);
        let pb::CreateApiKeyRequest { name, role } = request.into_inner();
        let role = convert_admin::role_from(role)?;
        let (key, secret) = self.app.auth.create_key(&name, role).await?;
        audit.set_target(format!("key {} ({}, {})", key.id, key.name, key.role));
        Ok(Response::new(pb::CreateApiKeyResponse {
            key: Some(convert_admin::api_key(key)),
            secret,
        }))
    }

    async fn list_api_keys(
        &self,
        _request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let keys = self.app.auth.list_keys().await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            keys: keys.into_iter().map(convert_admin::api_key).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let audit = super::audit_slot(&request);
        let key_id = validate::id("key_id", &request.into_inner().key_id)?;
        audit.set_target(format!("key {key_id}"));
        let key = self.app.auth.revoke_key(&key_id).await?;
        Ok(Response::new(convert_admin::api_key(key)))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let query = convert_admin::audit_query(request.into_inner())?;
        let page = self.app.audit.list(&query).await?;
        Ok(Response::new(convert_admin::audit_page(page)))
    }
}
