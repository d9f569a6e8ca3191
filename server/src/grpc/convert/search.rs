//! `traum.v1.SearchService` messages ↔ search requests, hits and suggestions.

use traum_proto::v1 as pb;

use super::{audio_format, audio_formats, musical_key, page_offset, page_size, page_token};
use crate::domain::{Descriptors, Facet, SearchFilter};
use crate::error::Result;
use crate::search::{Refinement, SearchPage, SearchRequest, Suggestion, SuggestionSource};
use crate::validate;

/// Hits per page unless the client asks otherwise, and the most.
const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 200;
/// Suggestions unless the client asks otherwise, and the most.
const DEFAULT_SUGGESTIONS: u64 = 10;
const MAX_SUGGESTIONS: u64 = 100;

/// Filters, paging and ranking options of any search RPC.
pub fn request(
    filters: Option<pb::SearchFilters>,
    options: Option<pb::SearchOptions>,
) -> Result<SearchRequest> {
    let pb::SearchOptions {
        limit,
        page_token,
        keyword_weight,
        refine,
        facet_vocabularies,
    } = options.unwrap_or_default();
    let limit = page_size("options.limit", limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let offset = page_offset(&page_token).map_err(|e| e.at("options"))?;
    let pb::Refinement {
        good_file_ids,
        bad_file_ids,
    } = refine.unwrap_or_default();
    let ids = |name: &str, raw: Vec<String>| -> Result<Vec<String>> {
        raw.iter()
            .map(|id| validate::id(name, id).map_err(|e| e.at("options.refine")))
            .collect()
    };
    let refine = Refinement {
        good: ids("good_file_ids", good_file_ids)?,
        bad: ids("bad_file_ids", bad_file_ids)?,
    }
    .validated()
    .map_err(|e| e.at("options.refine"))?;
    // Validated here part by part so that each error names its field's path
    // in the request; `SearchRequest::new` checks the rest (the weight).
    let filter = filter(filters.unwrap_or_default())
        .and_then(SearchFilter::validated)
        .map_err(|e| e.at("filters"))?;
    SearchRequest::new(filter, offset, limit, keyword_weight, refine, facet_vocabularies)
        .map_err(|e| e.at("options"))
}

fn filter(raw: pb::SearchFilters) -> Result<SearchFilter> {
    let pb::SearchFilters {
        min_duration_seconds,
        max_duration_seconds,
        min_bpm,
        max_bpm,
        keys,
        tags_all,
        tags_any,
        tags_none,
        formats,
        keywords,
        min_score,
        suggested,
        bpm_half_or_double,
    } = raw;
    Ok(SearchFilter {
        min_duration_seconds,
        max_duration_seconds,
        min_bpm,
        max_bpm,
        bpm_half_or_double,
        keys: keys
            .iter()
            .map(super::musical_key_from)
            .collect::<Result<_>>()
            .map_err(|e| e.at("keys"))?,
        tags_all,
        tags_any,
        tags_none,
        formats: audio_formats(&formats).map_err(|e| e.at("formats"))?,
        keywords: Some(keywords),
        min_score,
        suggested: super::suggested_filters(suggested).map_err(|e| e.at("suggested"))?,
    })
}

/// The optional time range of `SearchSimilar`: a missing start is the
/// file's start, a missing end its end.
pub fn similar_range(start_seconds: Option<f64>, end_seconds: Option<f64>) -> Option<(f64, f64)> {
    match (start_seconds, end_seconds) {
        (None, None) => None,
        (start, end) => Some((start.unwrap_or(0.0), end.unwrap_or(f64::INFINITY))),
    }
}

pub fn response(page: SearchPage) -> pb::SearchResponse {
    let SearchPage {
        hits,
        next_offset,
        took,
        facets,
    } = page;
    pb::SearchResponse {
        hits: hits
            .into_iter()
            .map(|hit| {
                let file = hit.file;
                let descriptors = file.descriptors.as_ref();
                pb::SearchHit {
                    file: Some(pb::FileSummary {
                        duration_seconds: file.properties.as_ref().map_or(0.0, |p| p.duration_seconds),
                        bpm: descriptors.and_then(|d| d.tempo).map(|t| t.bpm),
                        key: descriptors
                            .and_then(|d: &Descriptors| d.key)
                            .map(|k| musical_key(k.key)),
                        format: audio_format(file.format).into(),
                        file_id: file.id,
                        filename: file.filename,
                        tags: file.tags,
                        suggested_tags: file
                            .suggested_tags
                            .into_iter()
                            .map(super::suggested_tag)
                            .collect(),
                    }),
                    score: hit.score,
                    cosine: hit.cosine,
                    segment_start_seconds: hit.segment_start,
                    segment_end_seconds: hit.segment_end,
                    window_start_seconds: hit.windows.iter().map(|(start, _)| *start as f32).collect(),
                    window_scores: hit.windows.iter().map(|(_, cosine)| *cosine).collect(),
                }
            })
            .collect(),
        next_page_token: page_token(next_offset),
        took_ms: took.as_secs_f64() * 1000.0,
        facets: facets
            .into_iter()
            .map(|Facet { vocabulary, counts }| pb::Facet {
                vocabulary,
                counts: counts
                    .into_iter()
                    .map(|(label, files)| pb::FacetCount { label, files })
                    .collect(),
            })
            .collect(),
    }
}

/// The suggestion count a `Suggest` asks for: 0 means the default.
pub fn suggestion_limit(raw: u32) -> Result<usize> {
    let limit = page_size("limit", raw, DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS)?;
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

pub fn suggestions(suggestions: Vec<Suggestion>) -> pb::SuggestResponse {
    pb::SuggestResponse {
        suggestions: suggestions
            .into_iter()
            .map(|Suggestion { text, source, count }| pb::Suggestion {
                text,
                source: match source {
                    SuggestionSource::Tag => pb::SuggestionSource::Tag,
                    SuggestionSource::Filename => pb::SuggestionSource::Filename,
                    SuggestionSource::Query => pb::SuggestionSource::Query,
                }
                .into(),
                count,
            })
            .collect(),
    }
}
