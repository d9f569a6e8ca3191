//! `GET /api/files/{id}/audio`: a file's original bytes over HTTP, with one
//! byte range per request, so an `<audio>` element can seek and a download
//! can resume. The bytes stream from disk in bounded chunks.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::error_response;
use crate::domain::AudioFormat;
use crate::error::Result;
use crate::library::Library;
use crate::validate;

pub(super) async fn serve(
    State(library): State<Library>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match respond(&library, &id, &headers).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

async fn respond(library: &Library, id: &str, headers: &HeaderMap) -> Result<Response> {
    let id = validate::id("file id", id)?;
    let file = library.open(&id).await?;
    let size = file.size();
    // The content hash names the bytes exactly: a strong validator.
    let etag = format!("\"{}\"", file.record.sha256);
    let content_type = content_type(file.record.format);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"))
    {
        return Ok(with_headers(
            StatusCode::NOT_MODIFIED,
            &etag,
            content_type,
            Body::empty(),
        ));
    }
    // A range is honoured only for the version the client names in If-Range.
    let current = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|tag| tag.trim() == etag);
    let requested = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| current)
        .map(|range| parse_range(range, size));
    let (status, range) = match requested {
        None | Some(Requested::Ignored) => (StatusCode::OK, 0..size),
        Some(Requested::Bytes(range)) => (StatusCode::PARTIAL_CONTENT, range),
        Some(Requested::Unsatisfiable) => {
            let mut response = with_headers(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &etag,
                content_type,
                Body::empty(),
            );
            insert(&mut response, header::CONTENT_RANGE, &format!("bytes */{size}"));
            return Ok(response);
        }
    };
    let length = range.end - range.start;
    let chunks = file.read(range.start, range.end).await?;
    let body = Body::from_stream(chunks.map(|chunk| chunk.map(|chunk| chunk.data)));
    let mut response = with_headers(status, &etag, content_type, body);
    insert(&mut response, header::CONTENT_LENGTH, &length.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", range.start, range.end - 1),
        );
    }
    Ok(response)
}

fn with_headers(status: StatusCode, etag: &str, content_type: &'static str, body: Body) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The bytes behind an id never change, but the id can be deleted.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    insert(&mut response, header::ETAG, etag);
    response
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The media type browsers expect for each format.
fn content_type(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Wav => "audio/wav",
        AudioFormat::Aiff => "audio/aiff",
        AudioFormat::Flac => "audio/flac",
        AudioFormat::Mp3 => "audio/mpeg",
        AudioFormat::Ogg => "audio/ogg",
        AudioFormat::M4a => "audio/mp4",
    }
}

/// What a `Range` header asks for, against a file of a known size.
#[derive(Debug, PartialEq, Eq)]
enum Requested {
    /// One satisfiable range, end exclusive.
    Bytes(Range<u64>),
    /// A range that starts at or past the end (or an empty suffix): 416.
    Unsatisfiable,
    /// Not one byte range (another unit, several ranges, bad syntax): the
    /// whole file, as RFC 9110 lets a server answer.
    Ignored,
}

fn parse_range(header: &str, size: u64) -> Requested {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Requested::Ignored;
    };
    if spec.contains(',') {
        return Requested::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Ignored;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // `-N`: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                Requested::Unsatisfiable
            } else {
                Requested::Bytes(size.saturating_sub(suffix)..size)
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|end| end < start) {
                return Requested::Ignored;
            }
            if start >= size {
                return Requested::Unsatisfiable;
            }
            let end = end.map_or(size, |end| end.saturating_add(1).min(size));
            Requested::Bytes(start..end)
        }
        _ => Requested::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        let size = 1000;
        assert_eq!(parse_range("bytes=0-99", size), Requested::Bytes(0..100));
        assert_eq!(parse_range("bytes=900-", size), Requested::Bytes(900..1000));
        assert_eq!(
            parse_range("bytes=900-5000", size),
            Requested::Bytes(900..1000),
            "clamped to the end"
        );
        assert_eq!(parse_range("bytes=-100", size), Requested::Bytes(900..1000));
        assert_eq!(parse_range("bytes=-5000", size), Requested::Bytes(0..1000));
        assert_eq!(parse_range(" bytes= 10 - 19 ", size), Requested::Bytes(10..20));
        assert_eq!(parse_range("bytes=1000-", size), Requested::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", size), Requested::Unsatisfiable);
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-9",
            "bytes=9-1",
            "bytes=a-b",
            "bytes=",
            "bytes=-",
            "0-1",
        ] {
            assert_eq!(parse_range(ignored, size), Requested::Ignored, "{ignored}");
        }
    }
}
