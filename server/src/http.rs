//! A small HTTP/1.1 server for what is not gRPC: Prometheus `/metrics`, and
//! the routes a later web port adds on the same machinery.

use std::io;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    // The peer address reaches handlers and the limits as `ConnectInfo`.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await
}

/// Serves `router` over TLS until `shutdown` turns true.
pub async fn serve_tls(
    listener: crate::tls::TlsListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<crate::tls::TlsPeer>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await
}

/// `GET /metrics` in the Prometheus text format; anything else is a 404
/// that says where the metrics are.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
        .fallback(|| async {
            (StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n").into_response()
        })
}
