//! The RPC layer: one tower layer observes every gRPC call (method, final
//! status code, latency taken from the trailers, so streams are measured to
//! their end) for the metrics and the usage table.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use tower_layer::Layer;
use tower_service::Service;

use super::metrics;
use crate::audit::{Audit, AuditSlot};
use crate::auth::is_audited;
use crate::store::{UsageKind, UsageRow};
use crate::usage::UsageRecorder;

/// Tower layer that records metrics and usage for every gRPC call, and
/// audit entries for the calls that change something. It sits outside the
/// credential check, so refused calls are recorded too.
#[derive(Clone)]
pub struct RpcTelemetryLayer {
    usage: UsageRecorder,
    audit: Audit,
}

impl RpcTelemetryLayer {
    pub fn new(usage: UsageRecorder, audit: Audit) -> Self {
        Self { usage, audit }
    }
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry {
            inner,
            usage: self.usage.clone(),
            audit: self.audit.clone(),
        }
    }
}

/// The service produced by [`RpcTelemetryLayer`].
#[derive(Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
    usage: UsageRecorder,
    audit: Audit,
}

/// Records one finished call exactly once.
struct CallRecord {
    method: String,
    started: Instant,
    usage: UsageRecorder,
    audit: Option<(Audit, AuditSlot)>,
    done: bool,
}

impl CallRecord {
    fn finish(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.started.elapsed();
        metrics::GRPC_REQUESTS.increment([self.method.clone(), code.to_string()], 1);
        metrics::GRPC_REQUEST_DURATION.record([self.method.clone()], elapsed.as_secs_f64());
        if let Some((audit, slot)) = self.audit.take() {
            audit.record(slot.entry(self.method.clone(), code));
        }
        self.usage.record(UsageRow {
            at_ms: chrono::Utc::now().timestamp_millis(),
            kind: UsageKind::Rpc,
            method: std::mem::take(&mut self.method),
            code,
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            query: None,
            upload_bytes: None,
        });
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // The client went away before the call ended.
        self.finish(1);
    }
}

/// gRPC status code from headers or trailers, if present.
fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Only our own services are recorded: health probes and reflection would
/// drown the figures users care about.
fn is_recorded(path: &str) -> bool {
    path.starts_with("/traum.v1.")
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RpcTelemetry<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Send + 'static,
{
    type Response = Response<TelemetryBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let audit = is_audited(&path).then(|| {
            let slot = AuditSlot::default();
            request.extensions_mut().insert(slot.clone());
            (self.audit.clone(), slot)
        });
        let record = is_recorded(&path).then(|| CallRecord {
            method: path,
            started: Instant::now(),
            usage: self.usage.clone(),
            audit,
            done: false,
        });
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            let mut record = record;
            if let (Some(record), Some(code)) = (record.as_mut(), grpc_status(response.headers())) {
                // Trailers-only response: the call ended with the headers.
                record.finish(code);
            }
            Ok(response.map(|body| TelemetryBody { inner: body, record }))
        })
    }
}

pin_project_lite::pin_project! {
    /// Response body that records the call when its trailers pass by.
    pub struct TelemetryBody<B> {
        #[pin]
        inner: B,
        record: Option<CallRecord>,
    }
}

impl<B: Body> Body for TelemetryBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(record)) = (frame.trailers_ref(), this.record.as_mut()) {
                    record.finish(grpc_status(trailers).unwrap_or(2));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(record) = this.record.as_mut() {
                    record.finish(2);
                }
            }
            Poll::Ready(None) => {
                if let Some(record) = this.record.as_mut() {
                    record.finish(0);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
