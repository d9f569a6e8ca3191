//! `/api/session`: how the web app signs in. `GET` says whether the server
//! requires a credential and whom the presented one names; `POST` checks
//! the `authorization` header and keeps the credential in an HttpOnly,
//! `SameSite=Strict` session cookie (no expiry: it ends with the browser
//! session), which the GET routes accept because `<audio src>` sends no
//! header; `DELETE` forgets it.

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error_response;
use crate::auth::{Auth, AuthMode, Principal, Role, SESSION_COOKIE, principal_name};
use crate::error::Error;
use crate::grpc::client_of;

#[derive(Serialize)]
struct Session {
    /// `off` or `required`.
    auth: &'static str,
    /// What the caller may do; with auth off, everything.
    role: Option<Role>,
    principal: Option<String>,
}

fn session(auth: &Auth, principal: Option<&Principal>) -> Session {
    match auth.mode() {
        AuthMode::Off => Session {
            auth: "off",
            role: Some(Role::Admin),
            principal: None,
        },
        AuthMode::Required => Session {
            auth: "required",
            role: principal.map(|p| p.role),
            principal: principal.map(principal_name),
        },
    }
}

pub(super) async fn get(State(auth): State<Auth>, parts: Parts) -> Response {
    // A stale cookie is no error here: the app shows its sign-in form.
    let principal = auth
        .whoami(&parts.headers, &client_of(&parts.extensions))
        .await
        .ok()
        .flatten();
    Json(session(&auth, principal.as_ref())).into_response()
}

pub(super) async fn post(State(auth): State<Auth>, parts: Parts) -> Response {
    let headers = &parts.headers;
    if auth.mode() == AuthMode::Off {
        return Json(session(&auth, None)).into_response();
    }
    // Only a header may start a session; a stale cookie must not renew itself.
    let credential = match crate::auth::credential(headers) {
        Ok(Some(credential)) if headers.contains_key(header::AUTHORIZATION) => credential.to_owned(),
        Ok(_) => {
            return error_response(&Error::Unauthenticated(
                "send the API key or token as `authorization: Bearer <credential>`".into(),
            ));
        }
        Err(err) => return error_response(&err),
    };
    let principal = match auth.whoami(headers, &client_of(&parts.extensions)).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return error_response(&Error::Unauthenticated("no credential was sent".into())),
        Err(err) => return error_response(&err),
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{SESSION_COOKIE}={credential}; Path=/api/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = Json(session(&auth, Some(&principal))).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        Err(_) => {
            return error_response(&Error::Unauthenticated(
                "the credential is not a valid cookie value".into(),
            ));
        }
    }
    response
}

pub(super) async fn delete() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("traum_session=; Path=/api/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}
