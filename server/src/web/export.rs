//! `GET /api/collections/{id}/export?format=csv|json|m3u8|zip`: a
//! collection as a spreadsheet, as JSON, as a playlist whose entries point at
//! the audio endpoint, or as a zip of the original files, streamed from disk
//! one chunk at a time.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;

use super::error_response;
use super::zip::{ZipWriter, unique_names};
use crate::domain::{FileRecord, KeyMode};
use crate::error::{Error, Result};
use crate::library::{Collection, Library};
use crate::validate;

pub(super) async fn serve(
    State(library): State<Library>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    // The one parameter is a plain word; no decoding needed.
    let format = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("format="));
    match respond(&library, &id, format, &headers).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

async fn respond(library: &Library, id: &str, format: Option<&str>, headers: &HeaderMap) -> Result<Response> {
    let id = validate::id("collection id", id)?;
    let format = format.unwrap_or("csv");
    let collection = library.collection(&id).await?;
    let base = format!("{}.{format}", download_name(&collection.record.name));
    let mut length = None;
    let (content_type, body) = match format {
        "csv" => ("text/csv; charset=utf-8", Body::from(csv(&collection))),
        "json" => ("application/json", Body::from(json(&collection)?)),
        "m3u8" => (
            "audio/x-mpegurl; charset=utf-8",
            Body::from(m3u8(&collection, &origin(headers))),
        ),
        "zip" => {
            let (body, size) = zip(library, collection);
            length = Some(size);
            ("application/zip", body)
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown export format `{other}`; use csv, json, m3u8 or zip"
            )));
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A known length lets the browser show how far a large download is.
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    // RFC 6266: an ASCII fallback and the UTF-8 name.
    let ascii: String = base
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        ascii.replace(['"', '\\'], "_"),
        percent_encode(&base)
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A collection name as a download file name: no path separators.
fn download_name(name: &str) -> String {
    name.chars()
        .map(|c| if matches!(c, '/' | '\\' | ':') { '_' } else { c })
        .collect()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where the client reached us, so playlist entries work from its side
/// (also behind Envoy, which keeps the Host header).
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

const KEY_NAMES: [&str; 12] = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];

fn key_name(file: &FileRecord) -> String {
    file.descriptors
        .as_ref()
        .and_then(|d| d.key)
        .map(|k| {
            let mode = if k.key.mode == KeyMode::Major {
                "major"
            } else {
                "minor"
            };
            format!("{} {mode}", KEY_NAMES[usize::from(k.key.pitch_class % 12)])
        })
        .unwrap_or_default()
}

fn duration(file: &FileRecord) -> Option<f64> {
    file.properties.as_ref().map(|p| p.duration_seconds)
}

fn bpm(file: &FileRecord) -> Option<f64> {
    file.descriptors.as_ref().and_then(|d| d.tempo).map(|t| t.bpm)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv(collection: &Collection) -> String {
    let mut out =
        String::from("position,file_id,filename,duration_seconds,bpm,key,tags,format,size_bytes,sha256\n");
    for (position, file) in collection.files.iter().enumerate() {
        let fields = [
            (position + 1).to_string(),
            file.id.clone(),
            csv_field(&file.filename),
            duration(file).map(|d| format!("{d:.3}")).unwrap_or_default(),
            bpm(file).map(|b| format!("{b:.1}")).unwrap_or_default(),
            key_name(file),
            csv_field(&file.tags.join(";")),
            file.format.to_string(),
            file.size_bytes.to_string(),
            file.sha256.clone(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct ExportJson<'a> {
    collection_id: &'a str,
    name: &'a str,
    files: Vec<ExportFile<'a>>,
}

#[derive(Serialize)]
struct ExportFile<'a> {
    position: usize,
    file_id: &'a str,
    filename: &'a str,
    duration_seconds: Option<f64>,
    bpm: Option<f64>,
    key: String,
    tags: &'a [String],
    format: String,
    size_bytes: u64,
    sha256: &'a str,
}

fn json(collection: &Collection) -> Result<String> {
    let body = ExportJson {
        collection_id: &collection.record.id,
        name: &collection.record.name,
        files: collection
            .files
            .iter()
            .enumerate()
            .map(|(i, file)| ExportFile {
                position: i + 1,
                file_id: &file.id,
                filename: &file.filename,
                duration_seconds: duration(file),
                bpm: bpm(file),
                key: key_name(file),
                tags: &file.tags,
                format: file.format.to_string(),
                size_bytes: file.size_bytes,
                sha256: &file.sha256,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&body).map_err(|err| Error::Internal(format!("export as JSON: {err}")))
}

fn m3u8(collection: &Collection, origin: &str) -> String {
    let mut out = String::from("#EXTM3U\n");
    out.push_str(&format!(
        "#PLAYLIST:{}\n",
        collection.record.name.replace('\n', " ")
    ));
    for file in &collection.files {
        let seconds = duration(file).map_or(-1, |d| d.round() as i64);
        out.push_str(&format!(
            "#EXTINF:{seconds},{}\n",
            file.filename.replace('\n', " ")
        ));
        out.push_str(&format!("{origin}/api/files/{}/audio\n", file.id));
    }
    out
}

/// The original files as one stored zip, read from the blob store one chunk
/// at a time as the client takes them, and the archive's length.
fn zip(library: &Library, collection: Collection) -> (Body, u64) {
    let names = unique_names(collection.files.iter().map(|f| f.filename.as_str()));
    let size = ZipWriter::archive_size(
        names
            .iter()
            .map(String::as_str)
            .zip(collection.files.iter().map(|f| f.size_bytes)),
    );
    let library = library.clone();
    let stream = async_stream::try_stream! {
        let mut writer = ZipWriter::default();
        for (file, name) in collection.files.iter().zip(&names) {
            let opened = library.open(&file.id).await?;
            let total = opened.size();
            if total != file.size_bytes {
                // The announced Content-Length would be a lie; stop rather
                // than send a truncated archive that looks whole.
                Err(Error::Internal(format!(
                    "blob of file {} holds {total} bytes, the database says {}",
                    file.id, file.size_bytes
                )))?;
            }
            yield writer.begin(name, total);
            let mut hasher = crc32fast::Hasher::new();
            let mut chunks = opened.read(0, total).await?;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                hasher.update(&chunk.data);
                yield chunk.data;
            }
            yield writer.end(hasher.finalize(), total);
        }
        yield writer.finish();
    };
    let body =
        Body::from_stream(stream.map(|item: Result<bytes::Bytes>| item.map_err(std::io::Error::other)));
    (body, size)
}
