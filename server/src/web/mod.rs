//! The web port: what a browser needs, on one origin and without a proxy:
//! gRPC-Web for every RPC of the three services (tonic-web, translated to
//! the same services the native port serves, with the same telemetry), and
//! a file's audio over plain HTTP with byte ranges, and the web app itself.

mod assets;
mod audio;
mod cors;
mod export;
mod session;
mod zip;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower_layer::Layer;

use crate::auth::{AUDIO_ROUTE, Auth, EXPORT_ROUTE, SESSION_ROUTE, access_of_http};
use crate::error::{Error, Problem};
use crate::grpc::{AuthLayer, REQUEST_ID_HEADER, UploadIdleLayer, client_of};
use crate::library::Library;
use crate::telemetry::RpcTelemetryLayer;

/// The web port's routes. `grpc` holds the services by name; each is also
/// reachable over gRPC-Web under its own path prefix.
pub fn router(
    grpc: Routes,
    services: &[&str],
    library: Library,
    auth: Auth,
    telemetry: RpcTelemetryLayer,
    idle: UploadIdleLayer,
    cors_origins: Vec<String>,
) -> Router {
    // The check sits inside the gRPC-Web translation, so a refusal reaches
    // the browser as a gRPC-Web status like any other.
    let grpc_web =
        GrpcWebLayer::new().layer(telemetry.layer(AuthLayer::new(auth.clone()).layer(idle.layer(grpc))));
    let session_routes = Router::new()
        .route(
            SESSION_ROUTE,
            get(session::get).post(session::post).delete(session::delete),
        )
        .with_state(auth.clone());
    let mut router = Router::new()
        .route(AUDIO_ROUTE, get(audio::serve))
        .route(EXPORT_ROUTE, get(export::serve))
        .with_state(library)
        .merge(session_routes)
        .route_layer(middleware::from_fn_with_state(auth, check_http));
    for service in services {
        router = router.route_service(&format!("/{service}/{{*method}}"), grpc_web.clone());
    }
    router
        .fallback(assets::serve)
        .layer(middleware::from_fn_with_state(
            std::sync::Arc::new(cors_origins),
            cors::cors,
        ))
}

/// The credential check of the HTTP routes, by the route's pattern.
async fn check_http(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let pattern = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let client = client_of(request.extensions());
    match auth
        .check_with_cookie(access_of_http(pattern), request.headers(), &client)
        .await
    {
        Ok(()) => next.run(request).await,
        Err(err) => error_response(&err),
    }
}

/// The HTTP status of a kind of problem.
fn http_status(problem: Problem) -> StatusCode {
    match problem {
        Problem::InvalidArgument => StatusCode::BAD_REQUEST,
        Problem::NotFound => StatusCode::NOT_FOUND,
        Problem::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Problem::DataLoss => StatusCode::UNPROCESSABLE_ENTITY,
        Problem::FailedPrecondition | Problem::AlreadyExists | Problem::Aborted => StatusCode::CONFLICT,
        Problem::OutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        Problem::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Problem::Unauthenticated => StatusCode::UNAUTHORIZED,
        Problem::PermissionDenied => StatusCode::FORBIDDEN,
        Problem::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Problem::Stalled => StatusCode::REQUEST_TIMEOUT,
    }
}

/// An error as a plain-text HTTP response: the message for a problem with
/// the request, only a request id (also in `x-request-id`) for a failure
/// inside the server.
fn error_response(err: &Error) -> Response {
    match err.public() {
        Some((problem, message)) => {
            let mut response = (http_status(problem), format!("{message}\n")).into_response();
            if problem == Problem::Unauthenticated {
                // RFC 6750 §3: how to authenticate.
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"traum\""),
                );
            }
            response
        }
        None => {
            let request_id = err.log_internal();
            let mut response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error; the server log has the details under request id {request_id}\n"),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Entity;

    #[test]
    fn problems_become_http_statuses_and_internal_failures_hide_their_detail() {
        let response = error_response(&Error::not_found(Entity::File, "f1"));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = error_response(&Error::InvalidArgument("bad".into()));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = error_response(&Error::Internal("secret detail".into()));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers().get(REQUEST_ID_HEADER).map(|v| v.len()),
            Some(32)
        );
        for problem in [
            Problem::InvalidArgument,
            Problem::NotFound,
            Problem::TooLarge,
            Problem::DataLoss,
            Problem::FailedPrecondition,
            Problem::AlreadyExists,
            Problem::OutOfRange,
            Problem::Aborted,
            Problem::Unavailable,
            Problem::Unauthenticated,
            Problem::PermissionDenied,
            Problem::RateLimited,
            Problem::Stalled,
        ] {
            let status = http_status(problem);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{problem:?}"
            );
        }
    }
}
