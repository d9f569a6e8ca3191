//! Logs, Prometheus metrics and per-call usage recording. One tower layer
//! observes every gRPC call: method, final status code and latency, taken
//! from the trailers for streams, so streaming calls are measured to their end.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::LogFormat;
use crate::store::{UsageKind, UsageRow};
use crate::usage::UsageRecorder;

/// Installs the global tracing subscriber; later calls (tests running many
/// servers in one process) keep the first.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Returns the process-wide Prometheus recorder, installing it on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then
            // go there and this handle renders nothing, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            describe_metrics();
            handle
        })
        .clone()
}

fn describe_metrics() {
    metrics::describe_counter!(
        "traum_grpc_requests_total",
        "gRPC calls by method and final status code"
    );
    metrics::describe_histogram!(
        "traum_grpc_request_duration_seconds",
        metrics::Unit::Seconds,
        "gRPC call latency by method, to the end of the response stream"
    );
    metrics::describe_counter!(
        "traum_upload_bytes_total",
        metrics::Unit::Bytes,
        "bytes received by uploads"
    );
    metrics::describe_gauge!("traum_uploads_in_flight", "streamed uploads currently receiving");
    metrics::describe_gauge!("traum_job_queue_depth", "jobs waiting for a worker");
    metrics::describe_histogram!(
        "traum_job_stage_duration_seconds",
        metrics::Unit::Seconds,
        "time spent in each pipeline stage"
    );
    metrics::describe_counter!("traum_jobs_finished_total", "jobs that reached a terminal state");
}

/// Serves `GET /metrics` in the Prometheus text format until shutdown.
/// A minimal HTTP/1.1 responder: Prometheus needs nothing more.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok((mut socket, _)) = accepted else { continue };
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let read = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.read(&mut request),
            )
            .await
            {
                Ok(Ok(read)) => read,
                _ => return,
            };
            let line = String::from_utf8_lossy(&request[..read]);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) =
                if line.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
                    ("200 OK", handle.render())
                } else {
                    ("404 Not Found", "not found; metrics are at /metrics\n".to_owned())
                };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// Tower layer that records metrics and usage for every gRPC call.
#[derive(Clone)]
pub struct RpcTelemetryLayer {
    usage: UsageRecorder,
}

impl RpcTelemetryLayer {
    pub fn new(usage: UsageRecorder) -> Self {
        Self { usage }
    }
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry {
            inner,
            usage: self.usage.clone(),
        }
    }
}

/// The service produced by [`RpcTelemetryLayer`].
#[derive(Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
    usage: UsageRecorder,
}

/// Records one finished call exactly once.
struct CallRecord {
    method: String,
    started: Instant,
    usage: UsageRecorder,
    done: bool,
}

impl CallRecord {
    fn finish(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.started.elapsed();
        let code_label = code.to_string();
        metrics::counter!("traum_grpc_requests_total", "method" => self.method.clone(), "code" => code_label)
            .increment(1);
        metrics::histogram!("traum_grpc_request_duration_seconds", "method" => self.method.clone())
            .record(elapsed.as_secs_f64());
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let record = is_recorded(&path).then(|| CallRecord {
            method: path,
            started: Instant::now(),
            usage: self.usage.clone(),
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
