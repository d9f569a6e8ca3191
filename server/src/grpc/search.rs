//! `traum.v1.SearchService`: validates requests, calls [`crate::search`] and
//! converts the results.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};
use traum_proto::v1 as pb;

use super::convert;
use crate::error::{Error, Result};
use crate::model::{KeyMode, MusicalKey, SearchFilter};
use crate::search::{SearchPage, SearchRequest, SuggestionSource};
use crate::state::App;
use crate::validate;

/// What search answers while its model or indexes are missing (kept for
/// clients matching on it; the live message says exactly what is missing).
pub const SEARCH_NOT_READY: &str = "search is not ready";

const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 200;
const MAX_QUERY_CHARS: usize = 1000;
const DEFAULT_SUGGESTIONS: usize = 10;
const MAX_SUGGESTIONS: usize = 100;

/// The SearchService implementation.
pub struct SearchApi {
    app: Arc<App>,
}

impl SearchApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::search_service_server::SearchService for SearchApi {
    async fn search_by_text(
        &self,
        request: Request<pb::SearchByTextRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let pb::SearchByTextRequest {
            query,
            filters,
            options,
        } = request.into_inner();
        let query = query.trim();
        if query.is_empty() {
            return Err(Status::invalid_argument("query must not be empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Status::invalid_argument(format!(
                "query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let request = search_request(filters, options)?;
        let page = self.app.search.by_text(query, &request).await?;
        Ok(Response::new(response(page)))
    }

    async fn search_by_audio(
        &self,
        request: Request<Streaming<pb::SearchByAudioRequest>>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::SearchByAudioRequest {
                payload: Some(pb::search_by_audio_request::Payload::Header(header)),
            }) => header,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message must be a header (filters and options), then the clip's bytes",
                ));
            }
            None => return Err(Status::invalid_argument("the stream ended before the header")),
        };
        let request = search_request(header.filters, header.options)?;
        let limit = self.app.config.max_upload_bytes;
        let mut clip = Vec::new();
        while let Some(message) = stream.message().await? {
            match message.payload {
                Some(pb::search_by_audio_request::Payload::Chunk(chunk)) => {
                    if clip.len() as u64 + chunk.len() as u64 > limit {
                        return Err(Error::TooLarge(format!(
                            "the example clip is larger than the upload limit of {limit} bytes"
                        ))
                        .into());
                    }
                    clip.extend_from_slice(&chunk);
                }
                Some(pb::search_by_audio_request::Payload::Header(_)) => {
                    return Err(Status::invalid_argument("only the first message may be a header"));
                }
                None => {
                    return Err(Status::invalid_argument(
                        "a message carries neither header nor chunk",
                    ));
                }
            }
        }
        let page = self.app.search.by_audio(clip, &request).await?;
        Ok(Response::new(response(page)))
    }

    async fn search_by_audio_clip(
        &self,
        request: Request<pb::SearchByAudioClipRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let pb::SearchByAudioClipRequest {
            audio,
            filters,
            options,
        } = request.into_inner();
        let request = search_request(filters, options)?;
        let page = self.app.search.by_audio(audio.to_vec(), &request).await?;
        Ok(Response::new(response(page)))
    }

    async fn search_similar(
        &self,
        request: Request<pb::SearchSimilarRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let pb::SearchSimilarRequest {
            file_id,
            start_seconds,
            end_seconds,
            filters,
            options,
        } = request.into_inner();
        let file_id = validate::id("file_id", &file_id)?;
        let range = match (start_seconds, end_seconds) {
            (None, None) => None,
            (start, end) => {
                let start = start.unwrap_or(0.0);
                let end = end.unwrap_or(f64::INFINITY);
                if !(start >= 0.0 && end > start) {
                    return Err(Status::invalid_argument(format!(
                        "the range must satisfy 0 ≤ start_seconds < end_seconds (got {start}–{end})"
                    )));
                }
                Some((start, end))
            }
        };
        let request = search_request(filters, options)?;
        let page = self.app.search.similar(&file_id, range, &request).await?;
        Ok(Response::new(response(page)))
    }

    async fn suggest(
        &self,
        request: Request<pb::SuggestRequest>,
    ) -> Result<Response<pb::SuggestResponse>, Status> {
        let pb::SuggestRequest { prefix, limit } = request.into_inner();
        let prefix = prefix.trim();
        if prefix.is_empty() {
            return Err(Status::invalid_argument("prefix must not be empty"));
        }
        if prefix.chars().count() > MAX_QUERY_CHARS {
            return Err(Status::invalid_argument(format!(
                "prefix is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let limit = match limit as usize {
            0 => DEFAULT_SUGGESTIONS,
            n if n > MAX_SUGGESTIONS => {
                return Err(Status::invalid_argument(format!(
                    "limit {n} exceeds the maximum of {MAX_SUGGESTIONS}"
                )));
            }
            n => n,
        };
        let suggestions = self.app.search.suggest(prefix, limit).await?;
        Ok(Response::new(pb::SuggestResponse {
            suggestions: suggestions
                .into_iter()
                .map(|s| pb::Suggestion {
                    text: s.text,
                    source: match s.source {
                        SuggestionSource::Tag => pb::SuggestionSource::Tag,
                        SuggestionSource::Filename => pb::SuggestionSource::Filename,
                        SuggestionSource::Query => pb::SuggestionSource::Query,
                    }
                    .into(),
                    count: s.count,
                })
                .collect(),
        }))
    }
}

fn search_request(
    filters: Option<pb::SearchFilters>,
    options: Option<pb::SearchOptions>,
) -> Result<SearchRequest> {
    let options = options.unwrap_or_default();
    let limit = convert::page_size(options.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let offset = convert::page_offset(&options.page_token)?;
    let keyword_weight = options.keyword_weight;
    if !(0.0..=1.0).contains(&keyword_weight) {
        return Err(Error::InvalidArgument(format!(
            "keyword_weight must be between 0 and 1 (got {keyword_weight})"
        )));
    }
    Ok(SearchRequest {
        filter: search_filter(filters.unwrap_or_default())?,
        offset,
        limit,
        keyword_weight,
    })
}

fn search_filter(raw: pb::SearchFilters) -> Result<SearchFilter> {
    let range = |name: &str, min: Option<f64>, max: Option<f64>| -> Result<()> {
        for value in [min, max].into_iter().flatten() {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} bounds must be finite and not negative (got {value})"
                )));
            }
        }
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(Error::InvalidArgument(format!(
                "min_{name} ({min}) is greater than max_{name} ({max})"
            )));
        }
        Ok(())
    };
    range(
        "duration_seconds",
        raw.min_duration_seconds,
        raw.max_duration_seconds,
    )?;
    range("bpm", raw.min_bpm, raw.max_bpm)?;
    let keys = raw
        .keys
        .iter()
        .map(|key| {
            let pitch_class = u8::try_from(key.pitch_class)
                .ok()
                .filter(|p| *p < 12)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "key pitch_class must be 0 (C) to 11 (B), got {}",
                        key.pitch_class
                    ))
                })?;
            let mode = match pb::KeyMode::try_from(key.mode) {
                Ok(pb::KeyMode::Major) => KeyMode::Major,
                Ok(pb::KeyMode::Minor) => KeyMode::Minor,
                _ => {
                    return Err(Error::InvalidArgument(
                        "key mode must be KEY_MODE_MAJOR or KEY_MODE_MINOR".into(),
                    ));
                }
            };
            Ok(MusicalKey { pitch_class, mode })
        })
        .collect::<Result<Vec<_>>>()?;
    let formats = raw
        .formats
        .iter()
        .map(|&f| convert::audio_format_from(f))
        .collect::<Result<Vec<_>>>()?;
    if let Some(min) = raw.min_score
        && !(-1.0..=1.0).contains(&min)
    {
        return Err(Error::InvalidArgument(format!(
            "min_score must be between -1 and 1 (got {min})"
        )));
    }
    let keywords = raw.keywords.trim();
    Ok(SearchFilter {
        min_duration_seconds: raw.min_duration_seconds,
        max_duration_seconds: raw.max_duration_seconds,
        min_bpm: raw.min_bpm,
        max_bpm: raw.max_bpm,
        keys,
        tags_all: validate::tags(&raw.tags_all)?,
        tags_any: validate::tags(&raw.tags_any)?,
        tags_none: validate::tags(&raw.tags_none)?,
        formats,
        keywords: (!keywords.is_empty()).then(|| keywords.to_owned()),
        min_score: raw.min_score,
    })
}

fn response(page: SearchPage) -> pb::SearchResponse {
    pb::SearchResponse {
        hits: page
            .hits
            .into_iter()
            .map(|hit| {
                let properties = hit.file.properties.as_ref();
                let descriptors = hit.file.descriptors.as_ref();
                pb::SearchHit {
                    file: Some(pb::FileSummary {
                        file_id: hit.file.id.clone(),
                        filename: hit.file.filename.clone(),
                        duration_seconds: properties.map_or(0.0, |p| p.duration_seconds),
                        bpm: descriptors.and_then(|d| d.bpm),
                        key: descriptors.and_then(|d| d.key).map(convert::musical_key),
                        tags: hit.file.tags.clone(),
                        format: convert::audio_format(hit.file.format).into(),
                    }),
                    score: hit.score,
                    cosine: hit.cosine,
                    segment_start_seconds: hit.segment_start,
                    segment_end_seconds: hit.segment_end,
                }
            })
            .collect(),
        next_page_token: convert::page_token(page.next_offset),
        took_ms: page.took.as_secs_f64() * 1000.0,
    }
}
