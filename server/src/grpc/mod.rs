//! gRPC adapters: one thin service per proto service (extract, validate,
//! call one domain service, convert), the conversions and the error mapping.

mod admin;
mod analytics;
mod audio;
mod auth;
mod convert;
mod idle;
mod search;
mod status;

pub use self::admin::AdminApi;
pub use self::analytics::AnalyticsApi;
pub use self::audio::AudioApi;
pub use self::auth::{AuthLayer, client_of};
pub use self::idle::UploadIdleLayer;
pub use self::search::SearchApi;
pub use self::status::REQUEST_ID_HEADER;

/// The audit slot of this call (a detached one for calls that are not
/// audited), for the handler to name the call's target.
fn audit_slot<T>(request: &tonic::Request<T>) -> crate::audit::AuditSlot {
    request
        .extensions()
        .get::<crate::audit::AuditSlot>()
        .cloned()
        .unwrap_or_default()
}
