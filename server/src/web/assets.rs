//! The web app's static files, embedded at build time (see `build.rs`).
//! Hashed bundles under `/assets/` are cached for good; everything else is
//! revalidated by ETag. A path that names no file and has no extension is a
//! route of the app, answered with `index.html`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    etag: &'static str,
    raw: &'static [u8],
    gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub(super) async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "only GET and HEAD\n",
        )
            .into_response();
    }
    let path = uri.path();
    let asset = match find(path) {
        Some(asset) => asset,
        None if is_app_route(path) => match find("/index.html") {
            Some(index) => index,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "this server was built without the web app (client/web/dist was empty); run `npm ci && npm run build` in client/web and rebuild\n",
                )
                    .into_response();
            }
        },
        None => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    respond(asset, &headers, method == Method::HEAD)
}

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

/// Client-side routes (`/files/ID`, `/system`) have no file extension and
/// are outside the API.
fn is_app_route(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !path.starts_with("/api/") && !path.starts_with("/assets/") && !last.contains('.')
}

fn respond(asset: &'static Asset, headers: &HeaderMap, head: bool) -> Response {
    let cache = if asset.path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == asset.etag));
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accepted| {
            accepted
                .split(',')
                .any(|coding| coding.split(';').next().is_some_and(|name| name.trim() == "gzip"))
        });
    let (status, body, gzipped) = if not_modified {
        (StatusCode::NOT_MODIFIED, &[][..], false)
    } else {
        match asset.gzip {
            Some(gzip) if accepts_gzip => (StatusCode::OK, gzip, true),
            _ => (StatusCode::OK, asset.raw, false),
        }
    };
    let mut response = Response::new(if head { Body::empty() } else { Body::from(body) });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if status == StatusCode::OK {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // The app loads nothing from other origins.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_routes_are_extensionless_paths_outside_the_api() {
        assert!(is_app_route("/"));
        assert!(is_app_route("/files/0d3f6c1e-6c55-4f0b-9a1e-2b8f1d0c4e5a"));
        assert!(is_app_route("/system"));
        assert!(!is_app_route("/api/files/x/audio"));
        assert!(!is_app_route("/assets/index-abc.js"));
        assert!(!is_app_route("/favicon.ico"));
    }

    #[test]
    fn the_embedded_app_has_an_index_and_hashed_bundles() {
        // dist/ is committed: a build without it would serve no app.
        let index = find("/").expect("index.html is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        let html = std::str::from_utf8(index.raw).expect("utf-8");
        for asset in ASSETS
            .iter()
            .filter(|a| a.path.starts_with("/assets/") && a.path.ends_with(".js"))
        {
            if html.contains(asset.path) {
                return;
            }
        }
        panic!("index.html references no embedded /assets/*.js bundle");
    }
}
