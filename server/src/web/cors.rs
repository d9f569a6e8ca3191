//! CORS on the web port. By default no origin but the page's own is
//! granted anything (the app is same-origin and needs none); origins named
//! by `--cors-origin`, compared exactly, may call the RPCs over gRPC-Web and
//! fetch audio and exports. No credentials are granted cross-origin: the
//! session cookie is `SameSite=Strict` and stays on its own site.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "content-type, authorization, x-api-key, x-grpc-web, x-user-agent, grpc-timeout, \
                             connect-protocol-version, connect-timeout-ms, range, if-none-match, if-range";
const EXPOSE_HEADERS: &str = "grpc-status, grpc-message, grpc-status-details-bin, retry-after, x-request-id, \
                              content-range, accept-ranges, content-length, etag";

/// The origins granted cross-origin access.
pub type AllowedOrigins = Arc<Vec<String>>;

pub(super) async fn cors(State(allowed): State<AllowedOrigins>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let granted = allowed.contains(&origin);
    if preflight {
        if !granted {
            return (
                StatusCode::FORBIDDEN,
                format!(
                    "origin {origin} is not allowed; the server's --cors-origin names the origins that are\n"
                ),
            )
                .into_response();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        grant(headers, &origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return response;
    }
    let mut response = next.run(request).await;
    if granted {
        let headers = response.headers_mut();
        grant(headers, &origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    response
}

fn grant(headers: &mut http::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
