//! Domain types shared by storage, jobs, search and the gRPC adapters. Free
//! of any transport type so the domain can be driven without tonic.

use chrono::{DateTime, Utc};
pub use traum_audio::{
    AudioFormat, AudioProperties, Descriptors, KeyEstimate, KeyMode, MusicalKey, PeakLevel, TempoAlternative,
    TempoEstimate, WaveformPeaks,
};

use crate::error::{Error, Result};
use crate::validate;

/// Defines a string-backed enum stored as text in the database.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Returns the stable text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored text.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Lifecycle of a job.
    JobState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

text_enum! {
    /// Pipeline stages in execution order.
    JobStage {
        Store => "store",
        Probe => "probe",
        Decode => "decode",
        Analyse => "analyse",
        Embed => "embed",
    }
}

text_enum! {
    /// Processing state of a file.
    FileState {
        Processing => "processing",
        Ready => "ready",
        Failed => "failed",
    }
}

impl JobState {
    /// Whether no further change will happen without a reprocess.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

impl JobStage {
    /// The stage after this one, or `None` for the last.
    pub fn next(self) -> Option<JobStage> {
        let index = JobStage::ALL.iter().position(|stage| *stage == self)?;
        JobStage::ALL.get(index + 1).copied()
    }

    /// Share of the whole pipeline taken by the stages before this one.
    pub fn progress_before(self) -> f64 {
        let index = JobStage::ALL.iter().position(|stage| *stage == self).unwrap_or(0);
        index as f64 / JobStage::ALL.len() as f64
    }

    /// Share of the whole pipeline taken by this stage.
    pub fn weight(self) -> f64 {
        1.0 / JobStage::ALL.len() as f64
    }

    /// Overall progress once this stage is done; exactly the next stage's
    /// `progress_before`, so progress never steps back by a rounding error.
    pub fn progress_after(self) -> f64 {
        let index = JobStage::ALL.iter().position(|stage| *stage == self).unwrap_or(0);
        (index + 1) as f64 / JobStage::ALL.len() as f64
    }

    /// Overall progress at `fraction` (0 to 1) of this stage.
    pub fn progress_at(self, fraction: f64) -> f64 {
        (self.progress_before() + self.weight() * fraction.clamp(0.0, 1.0)).min(self.progress_after())
    }
}

/// A stored file with its tags.
#[derive(Debug, Clone)]
pub struct FileRecord {
    pub id: String,
    pub filename: String,
    pub tags: Vec<String>,
    pub format: AudioFormat,
    pub size_bytes: u64,
    pub sha256: String,
    pub state: FileState,
    pub latest_job_id: Option<String>,
    pub error: Option<String>,
    pub properties: Option<AudioProperties>,
    pub descriptors: Option<Descriptors>,
    /// Pending zero-shot suggestions (neither accepted nor rejected), by
    /// vocabulary and then best first.
    pub suggested_tags: Vec<SuggestedTag>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Two files whose fingerprints say they are the same recording.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateLink {
    pub file_id: String,
    pub other_id: String,
    /// 0 to 1: `1 − 2 × bit error rate` of the fingerprints where they overlap.
    pub score: f64,
    /// Where `other_id`'s audio starts on `file_id`'s timeline, seconds.
    pub offset_seconds: f64,
}

impl DuplicateLink {
    /// The same link from the lower id's side, as stored.
    pub fn normalised(&self) -> Self {
        if self.file_id <= self.other_id {
            self.clone()
        } else {
            Self {
                file_id: self.other_id.clone(),
                other_id: self.file_id.clone(),
                score: self.score,
                offset_seconds: -self.offset_seconds,
            }
        }
    }
}

/// Files that are the same recording, oldest upload first.
#[derive(Debug, Clone)]
pub struct DuplicateGroup {
    pub members: Vec<DuplicateMember>,
}

/// One file of a [`DuplicateGroup`].
#[derive(Debug, Clone)]
pub struct DuplicateMember {
    pub file: FileRecord,
    /// Against the group's first member; 1 for the first itself.
    pub score: f64,
    /// Where this file's audio starts on the first member's timeline, seconds.
    pub offset_seconds: f64,
    /// The same bytes as the first member.
    pub same_bytes: bool,
}

/// A label the model suggests for a file, from one vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedTag {
    pub vocabulary: String,
    pub label: String,
    /// Softmax over the vocabulary's labels, 0 to 1.
    pub probability: f64,
    /// The model whose vectors gave the probability.
    pub model_id: String,
}

/// Files whose suggestions in `vocabulary` (pending or accepted, never
/// rejected) include any of `labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestedTagFilter {
    pub vocabulary: String,
    pub labels: Vec<String>,
}

/// What a user decided about a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagVerdict {
    /// The label becomes an ordinary tag of the file.
    Accept,
    /// The label is never suggested for the file again.
    Reject,
}

impl TagVerdict {
    /// The `review` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TagVerdict::Accept => "accepted",
            TagVerdict::Reject => "rejected",
        }
    }
}

/// Files per label of one vocabulary under a search's filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facet {
    pub vocabulary: String,
    /// (label, files), most files first, then by label.
    pub counts: Vec<(String, u64)>,
}

/// A processing job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub file_id: String,
    pub state: JobState,
    pub stage: JobStage,
    pub progress: f64,
    pub stage_progress: f64,
    pub message: String,
    pub error: Option<String>,
    pub attempts: u32,
    pub warnings: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The replica that claimed the job last (`--replica-id`).
    pub owner: Option<String>,
}

/// A resumable upload session.
#[derive(Debug, Clone)]
pub struct UploadSession {
    pub id: String,
    pub filename: String,
    pub tags: Vec<String>,
    pub declared_size: Option<u64>,
    pub declared_sha256: Option<String>,
    pub received_bytes: u64,
    pub expires_at: DateTime<Utc>,
}

/// What a client says about a file before sending it.
#[derive(Debug, Clone)]
pub struct UploadHeader {
    pub filename: String,
    pub tags: Vec<String>,
    pub declared_size: Option<u64>,
    pub declared_sha256: Option<String>,
    pub always_create_file: bool,
}

/// Outcome of an accepted upload.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub file_id: String,
    pub job_id: String,
    pub duplicate: bool,
    pub size_bytes: u64,
    pub sha256: String,
    pub format: AudioFormat,
}

/// Sort key for file listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileOrder {
    #[default]
    CreatedAt,
    Filename,
    Size,
    Duration,
}

/// Filters and paging of a file listing.
#[derive(Debug, Clone, Default)]
pub struct FileQuery {
    pub tags_all: Vec<String>,
    pub state: Option<FileState>,
    pub formats: Vec<AudioFormat>,
    pub filename_contains: Option<String>,
    pub collection_id: Option<String>,
    /// Every entry must match (see [`SuggestedTagFilter`]).
    pub suggested: Vec<SuggestedTagFilter>,
    pub order: FileOrder,
    pub ascending: bool,
    pub offset: u64,
    pub limit: u64,
}

/// Filters and paging of a job listing.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub state: Option<JobState>,
    pub file_id: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// One page of results and the total over all pages.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub next_offset: Option<u64>,
}

/// Changes to a file's name and tags.
#[derive(Debug, Clone, Default)]
pub struct FileUpdate {
    pub filename: Option<String>,
    pub replace_tags: Option<Vec<String>>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
}

/// One window's CLAP vector and where it lies in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEmbedding {
    pub index: u32,
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// L2-normalised.
    pub vector: Vec<f32>,
}

/// A file's waveform as stored: peaks of its decoded audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWaveform {
    pub sample_rate_hz: u32,
    /// Decoded sample frames the peaks summarise.
    pub frames: u64,
    pub peaks: WaveformPeaks,
}

impl StoredWaveform {
    /// Peaks of decoded audio.
    pub fn of(samples: &[f32], sample_rate_hz: u32) -> Self {
        Self {
            sample_rate_hz,
            frames: samples.len() as u64,
            peaks: traum_audio::waveform(samples, sample_rate_hz),
        }
    }
}

/// A named, ordered set of files.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRecord {
    pub id: String,
    pub name: String,
    /// In order; empty when only the count was read.
    pub file_ids: Vec<String>,
    pub file_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to a collection: replace, then add, then remove.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionUpdate {
    pub name: Option<String>,
    pub replace: Option<Vec<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl CollectionUpdate {
    /// The files in order after applying the change to `current`; a file
    /// appears once, where it first appeared.
    pub fn apply(&self, current: &[String]) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        let base = self.replace.as_deref().unwrap_or(current);
        for id in base.iter().chain(&self.add) {
            if !files.contains(id) {
                files.push(id.clone());
            }
        }
        files.retain(|id| !self.remove.contains(id));
        files
    }
}

/// A change to the library, as `WatchLibrary` streams it.
#[derive(Debug, Clone)]
pub enum LibraryEvent {
    /// A job was queued or changed; its file's state follows it.
    Job(JobRecord),
    /// A file's name or tags changed.
    File(Box<FileRecord>),
    /// A file was deleted.
    Deleted(String),
    /// The watcher fell behind and missed events.
    Resync,
}

/// What the embed stage computed for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEmbeddings {
    pub model_id: String,
    /// Mean of the raw window projections, L2-normalised.
    pub file: Vec<f32>,
    pub file_start: f64,
    pub file_end: f64,
    pub windows: Vec<WindowEmbedding>,
}

/// A vector as stored, with its row id (the vector index key).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEmbedding {
    pub id: u64,
    pub file_id: String,
    /// `None` for the pooled whole-file vector.
    pub window: Option<u32>,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub vector: Vec<f32>,
}

/// Conditions every search hit must meet. Only ready (fully processed)
/// files are ever searched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    pub min_duration_seconds: Option<f64>,
    pub max_duration_seconds: Option<f64>,
    pub min_bpm: Option<f64>,
    pub max_bpm: Option<f64>,
    /// The BPM range also admits files whose half or double tempo lies in it.
    pub bpm_half_or_double: bool,
    /// Any of these keys; empty means any key (or none).
    pub keys: Vec<MusicalKey>,
    pub tags_all: Vec<String>,
    pub tags_any: Vec<String>,
    pub tags_none: Vec<String>,
    pub formats: Vec<AudioFormat>,
    /// Every entry must match (see [`SuggestedTagFilter`]).
    pub suggested: Vec<SuggestedTagFilter>,
    /// Keyword query over filename and tags; every term must match.
    pub keywords: Option<String>,
    pub min_score: Option<f64>,
}

impl SearchFilter {
    /// Whether the metadata conditions (everything but keywords and the
    /// score) narrow the set of files.
    pub fn has_metadata_conditions(&self) -> bool {
        self.min_duration_seconds.is_some()
            || self.max_duration_seconds.is_some()
            || self.min_bpm.is_some()
            || self.max_bpm.is_some()
            || !self.keys.is_empty()
            || !self.tags_all.is_empty()
            || !self.tags_any.is_empty()
            || !self.tags_none.is_empty()
            || !self.formats.is_empty()
            || !self.suggested.is_empty()
    }

    /// Checks every bound and normalises tags and keywords. Messages name the
    /// field and the rule, so a person can fix the request.
    pub fn validated(self) -> Result<Self> {
        check_range(
            "duration_seconds",
            self.min_duration_seconds,
            self.max_duration_seconds,
        )?;
        check_range("bpm", self.min_bpm, self.max_bpm)?;
        if let Some(min) = self.min_score
            && !(-1.0..=1.0).contains(&min)
        {
            return Err(Error::invalid_field(
                "min_score",
                format!("min_score must be between -1 and 1 (got {min})"),
            ));
        }
        Ok(Self {
            tags_all: validate::tags(&self.tags_all).map_err(|e| e.at("tags_all"))?,
            tags_any: validate::tags(&self.tags_any).map_err(|e| e.at("tags_any"))?,
            tags_none: validate::tags(&self.tags_none).map_err(|e| e.at("tags_none"))?,
            suggested: validate::suggested_filters(&self.suggested).map_err(|e| e.at("suggested"))?,
            keywords: self
                .keywords
                .map(|words| words.trim().to_owned())
                .filter(|words| !words.is_empty()),
            ..self
        })
    }
}

/// A `min_NAME`/`max_NAME` pair: finite, not negative, min ≤ max.
fn check_range(name: &str, min: Option<f64>, max: Option<f64>) -> Result<()> {
    for (bound, value) in [("min", min), ("max", max)] {
        if let Some(value) = value
            && (!value.is_finite() || value < 0.0)
        {
            return Err(Error::invalid_field(
                format!("{bound}_{name}"),
                format!("{name} bounds must be finite and not negative (got {value})"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(Error::invalid_field(
            format!("min_{name}"),
            format!("min_{name} ({min}) is greater than max_{name} ({max})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(filter: SearchFilter) -> String {
        match filter.validated() {
            Err(Error::InvalidArgument(message) | Error::InvalidField { message, .. }) => message,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_filter_is_normalised() {
        let filter = SearchFilter {
            tags_all: vec![" Drums".into(), "drums".into()],
            keywords: Some("  kick  ".into()),
            min_bpm: Some(100.0),
            max_bpm: Some(100.0),
            min_score: Some(-1.0),
            ..SearchFilter::default()
        }
        .validated()
        .unwrap();
        assert_eq!(filter.tags_all, vec!["drums"]);
        assert_eq!(filter.keywords.as_deref(), Some("kick"));
        let blank = SearchFilter {
            keywords: Some("   ".into()),
            ..SearchFilter::default()
        };
        assert_eq!(blank.validated().unwrap().keywords, None);
    }

    #[test]
    fn impossible_bounds_name_the_field() {
        let message = invalid(SearchFilter {
            min_bpm: Some(140.0),
            max_bpm: Some(100.0),
            ..SearchFilter::default()
        });
        assert_eq!(message, "min_bpm (140) is greater than max_bpm (100)");
        let message = invalid(SearchFilter {
            max_duration_seconds: Some(f64::NAN),
            ..SearchFilter::default()
        });
        assert!(
            message.starts_with("duration_seconds bounds must be finite"),
            "{message}"
        );
        let message = invalid(SearchFilter {
            min_duration_seconds: Some(-1.0),
            ..SearchFilter::default()
        });
        assert!(message.contains("not negative (got -1)"), "{message}");
        let message = invalid(SearchFilter {
            min_score: Some(1.5),
            ..SearchFilter::default()
        });
        assert_eq!(message, "min_score must be between -1 and 1 (got 1.5)");
        let message = invalid(SearchFilter {
            tags_any: vec!["x".repeat(65)],
            ..SearchFilter::default()
        });
        assert!(message.contains("longer than 64"), "{message}");
    }
}
