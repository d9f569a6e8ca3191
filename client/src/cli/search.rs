//! `traum search`, `similar` and `suggest`.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{
    Refinement, SearchByTextRequest, SearchFilters, SearchOptions, SearchResponse, SearchSimilarRequest,
    SuggestRequest, SuggestedTagFilter,
};

use super::output::{
    MusicalKeyJson, SuggestedTagJson, format_name, format_short, key_label, minutes_seconds, print_json,
    print_table, rpc, suggestion_source_name, suggestion_source_short,
};
use super::{FormatArg, Globals, Outcome};

/// Filters shared by the search commands.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Minimum duration in seconds.
    #[arg(long, value_name = "SECONDS")]
    min_duration: Option<f64>,

    /// Maximum duration in seconds.
    #[arg(long, value_name = "SECONDS")]
    max_duration: Option<f64>,

    /// Minimum tempo in BPM.
    #[arg(long, value_name = "BPM")]
    min_bpm: Option<f64>,

    /// Maximum tempo in BPM.
    #[arg(long, value_name = "BPM")]
    max_bpm: Option<f64>,

    /// Let --min-bpm/--max-bpm also match files at half or double the tempo.
    #[arg(long)]
    half_or_double_time: bool,

    /// Tag every hit must carry (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// Hits carry at least one of these tags (repeatable).
    #[arg(long = "any-tag", value_name = "TAG")]
    any_tags: Vec<String>,

    /// Hits carry none of these tags (repeatable).
    #[arg(long = "exclude-tag", value_name = "TAG")]
    exclude_tags: Vec<String>,

    /// Only hits in this format (repeatable; any may match).
    #[arg(long = "format", value_name = "FORMAT")]
    formats: Vec<FormatArg>,

    /// Words every hit's filename or tags must contain.
    #[arg(long, value_name = "WORDS")]
    keywords: Option<String>,

    /// Minimum score of a hit.
    #[arg(long, value_name = "SCORE")]
    min_score: Option<f64>,

    /// Hits whose suggested tags in VOCABULARY include one of the labels,
    /// e.g. `genre=techno,house` (repeatable; all must match).
    #[arg(long = "suggested", value_name = "VOCABULARY=LABEL,...", value_parser = parse_suggested)]
    suggested: Vec<SuggestedTagFilter>,
}

/// Parses `VOCABULARY=LABEL,LABEL`.
pub fn parse_suggested(raw: &str) -> Result<SuggestedTagFilter, String> {
    let (vocabulary, labels) = raw
        .split_once('=')
        .ok_or_else(|| format!("`{raw}` is not VOCABULARY=LABEL,...; e.g. genre=techno,house"))?;
    let labels: Vec<String> = labels
        .split(',')
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(str::to_owned)
        .collect();
    if vocabulary.trim().is_empty() || labels.is_empty() {
        return Err(format!(
            "`{raw}` needs a vocabulary and at least one label, e.g. genre=techno"
        ));
    }
    Ok(SuggestedTagFilter {
        vocabulary: vocabulary.trim().to_owned(),
        labels,
    })
}

impl FilterArgs {
    fn proto(self) -> SearchFilters {
        SearchFilters {
            min_duration_seconds: self.min_duration,
            max_duration_seconds: self.max_duration,
            min_bpm: self.min_bpm,
            max_bpm: self.max_bpm,
            bpm_half_or_double: self.half_or_double_time,
            tags_all: self.tags,
            tags_any: self.any_tags,
            tags_none: self.exclude_tags,
            formats: self.formats.into_iter().map(FormatArg::proto).collect(),
            keywords: self.keywords.unwrap_or_default(),
            min_score: self.min_score,
            suggested: self.suggested,
            ..SearchFilters::default()
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("example").required(true).args(["query", "audio"])))]
pub struct SearchArgs {
    /// Description of the sound, e.g. "warm analog pad".
    query: Option<String>,

    /// Search by an example clip instead: an audio file (any supported format), streamed to the server.
    #[arg(long, value_name = "FILE")]
    audio: Option<PathBuf>,

    /// Maximum hits (1 to 200).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: u32,

    /// Weight of the keyword match in the score, 0 to 1 (0: vector similarity only).
    #[arg(long, default_value_t = 0.0)]
    keyword_weight: f64,

    /// Count the files per suggested label of this vocabulary under the
    /// filters, e.g. `genre` (repeatable).
    #[arg(long = "facet", value_name = "VOCABULARY")]
    facets: Vec<String>,

    #[command(flatten)]
    refine: RefineArgs,

    #[command(flatten)]
    filters: FilterArgs,
}

/// Relevance feedback shared by the search commands.
#[derive(Debug, Args)]
pub struct RefineArgs {
    /// A file that was a good hit: the query moves towards it (repeatable).
    #[arg(long = "good", value_name = "FILE_ID")]
    good: Vec<String>,

    /// A file that was a bad hit: the query moves away from it, and it is left out (repeatable).
    #[arg(long = "bad", value_name = "FILE_ID")]
    bad: Vec<String>,
}

impl RefineArgs {
    fn proto(self) -> Option<Refinement> {
        (!self.good.is_empty() || !self.bad.is_empty()).then_some(Refinement {
            good_file_ids: self.good,
            bad_file_ids: self.bad,
        })
    }
}

#[derive(Debug, Args)]
pub struct SimilarArgs {
    /// The example file.
    file_id: String,

    /// Maximum hits (1 to 200).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: u32,

    /// Start of the example's time range, in seconds.
    #[arg(long, value_name = "SECONDS")]
    start: Option<f64>,

    /// End of the example's time range, in seconds.
    #[arg(long, value_name = "SECONDS")]
    end: Option<f64>,

    #[command(flatten)]
    refine: RefineArgs,

    #[command(flatten)]
    filters: FilterArgs,
}

#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// Text typed so far.
    prefix: String,

    /// Maximum suggestions (1 to 50).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=50))]
    limit: u32,
}

#[derive(Serialize)]
struct FileSummaryJson {
    file_id: String,
    filename: String,
    duration_seconds: f64,
    bpm: Option<f64>,
    key: Option<MusicalKeyJson>,
    tags: Vec<String>,
    format: String,
    suggested_tags: Vec<SuggestedTagJson>,
}

#[derive(Serialize)]
struct FacetJson {
    vocabulary: String,
    counts: Vec<FacetCountJson>,
}

#[derive(Serialize)]
struct FacetCountJson {
    label: String,
    files: u64,
}

#[derive(Serialize)]
struct SearchHitJson {
    file: Option<FileSummaryJson>,
    score: f64,
    cosine: f64,
    segment_start_seconds: f64,
    segment_end_seconds: f64,
}

#[derive(Serialize)]
struct SearchResponseJson {
    hits: Vec<SearchHitJson>,
    next_page_token: String,
    took_ms: f64,
    facets: Vec<FacetJson>,
}

pub async fn search(client: &TraumClient, globals: Globals, args: SearchArgs) -> anyhow::Result<Outcome> {
    let filters = Some(args.filters.proto());
    let options = Some(SearchOptions {
        keyword_weight: args.keyword_weight,
        refine: args.refine.proto(),
        facet_vocabularies: args.facets,
        ..options(args.limit)
    });
    let response = match (args.query, args.audio) {
        (_, Some(path)) => client.search_by_audio_file(&path, filters, options).await?,
        (Some(query), None) => rpc(client
            .search()
            .search_by_text(SearchByTextRequest {
                query,
                filters,
                options,
            })
            .await)?,
        // The argument group requires one of the two; this is a bug, not bad input.
        (None, None) => anyhow::bail!("give a text query or --audio FILE"),
    };
    print_hits(globals, &response)
}

pub async fn similar(client: &TraumClient, globals: Globals, args: SimilarArgs) -> anyhow::Result<Outcome> {
    let request = SearchSimilarRequest {
        file_id: args.file_id,
        start_seconds: args.start,
        end_seconds: args.end,
        filters: Some(args.filters.proto()),
        options: Some(SearchOptions {
            refine: args.refine.proto(),
            ..options(args.limit)
        }),
    };
    let response = rpc(client.search().search_similar(request).await)?;
    print_hits(globals, &response)
}

fn options(limit: u32) -> SearchOptions {
    SearchOptions {
        limit,
        ..SearchOptions::default()
    }
}

fn print_hits(globals: Globals, response: &SearchResponse) -> anyhow::Result<Outcome> {
    if globals.json {
        print_json(&SearchResponseJson {
            hits: response
                .hits
                .iter()
                .map(|hit| SearchHitJson {
                    file: hit.file.as_ref().map(|f| FileSummaryJson {
                        file_id: f.file_id.clone(),
                        filename: f.filename.clone(),
                        duration_seconds: f.duration_seconds,
                        bpm: f.bpm,
                        key: f.key.as_ref().map(MusicalKeyJson::from),
                        tags: f.tags.clone(),
                        format: format_name(f.format),
                        suggested_tags: f.suggested_tags.iter().map(SuggestedTagJson::from).collect(),
                    }),
                    score: hit.score,
                    cosine: hit.cosine,
                    segment_start_seconds: hit.segment_start_seconds,
                    segment_end_seconds: hit.segment_end_seconds,
                })
                .collect(),
            next_page_token: response.next_page_token.clone(),
            took_ms: response.took_ms,
            facets: response
                .facets
                .iter()
                .map(|facet| FacetJson {
                    vocabulary: facet.vocabulary.clone(),
                    counts: facet
                        .counts
                        .iter()
                        .map(|c| FacetCountJson {
                            label: c.label.clone(),
                            files: c.files,
                        })
                        .collect(),
                })
                .collect(),
        })?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = response
        .hits
        .iter()
        .map(|hit| {
            let file = hit.file.as_ref();
            vec![
                format!("{:.3}", hit.score),
                format!("{:.3}", hit.cosine),
                file.map_or_else(String::new, |f| f.file_id.clone()),
                file.map_or_else(String::new, |f| f.filename.clone()),
                format!(
                    "{}-{}",
                    minutes_seconds(hit.segment_start_seconds),
                    minutes_seconds(hit.segment_end_seconds)
                ),
                file.map_or_else(|| "-".to_owned(), |f| minutes_seconds(f.duration_seconds)),
                file.and_then(|f| f.bpm)
                    .map_or_else(|| "-".to_owned(), |bpm| format!("{bpm:.1}")),
                file.and_then(|f| f.key.as_ref())
                    .map_or_else(|| "-".to_owned(), key_label),
                file.map_or_else(String::new, |f| format_short(f.format)),
                file.map_or_else(String::new, |f| f.tags.join(",")),
            ]
        })
        .collect();
    print_table(
        &[
            "SCORE", "COSINE", "ID", "FILE", "SEGMENT", "DURATION", "BPM", "KEY", "FORMAT", "TAGS",
        ],
        &rows,
    );
    println!("{} hits in {:.1} ms", response.hits.len(), response.took_ms);
    for facet in &response.facets {
        let counts: Vec<String> = facet
            .counts
            .iter()
            .map(|c| format!("{} {}", c.label, c.files))
            .collect();
        println!(
            "{}: {}",
            facet.vocabulary,
            if counts.is_empty() {
                "-".to_owned()
            } else {
                counts.join(", ")
            }
        );
    }
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct SuggestionJson {
    text: String,
    source: String,
    count: u64,
}

pub async fn suggest(client: &TraumClient, globals: Globals, args: SuggestArgs) -> anyhow::Result<Outcome> {
    let request = SuggestRequest {
        prefix: args.prefix,
        limit: args.limit,
    };
    let response = rpc(client.search().suggest(request).await)?;
    if globals.json {
        let suggestions: Vec<SuggestionJson> = response
            .suggestions
            .iter()
            .map(|s| SuggestionJson {
                text: s.text.clone(),
                source: suggestion_source_name(s.source),
                count: s.count,
            })
            .collect();
        print_json(&suggestions)?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = response
        .suggestions
        .iter()
        .map(|s| {
            vec![
                s.text.clone(),
                suggestion_source_short(s.source),
                s.count.to_string(),
            ]
        })
        .collect();
    print_table(&["SUGGESTION", "SOURCE", "COUNT"], &rows);
    Ok(Outcome::Success)
}
