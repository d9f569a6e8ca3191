//! The domain services every gRPC adapter reaches, built once by `run`.

use crate::analytics::Analytics;
use crate::audit::Audit;
use crate::auth::Auth;
use crate::ingest::Ingest;
use crate::jobs::Jobs;
use crate::library::Library;
use crate::search::Search;

/// What the adapters call.
pub struct App {
    pub ingest: Ingest,
    pub jobs: Jobs,
    pub library: Library,
    pub search: Search,
    pub analytics: Analytics,
    pub auth: Auth,
    pub audit: Audit,
}
