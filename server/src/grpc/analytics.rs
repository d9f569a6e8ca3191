//! `traum.v1.AnalyticsService`: library totals and recorded usage.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use traum_proto::v1 as pb;

use super::convert::analytics as convert_analytics;
use crate::state::App;

/// Window and bucket of a `GetUsage` that names none.
const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_BUCKET: Duration = Duration::from_secs(3600);

/// The AnalyticsService implementation.
pub struct AnalyticsApi {
    app: Arc<App>,
}

impl AnalyticsApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::analytics_service_server::AnalyticsService for AnalyticsApi {
    async fn get_stats(&self, _request: Request<pb::GetStatsRequest>) -> Result<Response<pb::Stats>, Status> {
        let stats = self.app.analytics.stats().await?;
        Ok(Response::new(convert_analytics::stats(stats)))
    }

    async fn get_usage(&self, request: Request<pb::GetUsageRequest>) -> Result<Response<pb::Usage>, Status> {
        let pb::GetUsageRequest { window, bucket } = request.into_inner();
        let window = convert_analytics::duration_or(window, DEFAULT_WINDOW)?;
        let bucket = convert_analytics::duration_or(bucket, DEFAULT_BUCKET)?;
        let report = self.app.analytics.usage(window, bucket).await?;
        Ok(Response::new(convert_analytics::usage(report)))
    }
}
