//! Domain types shared by storage, jobs and the gRPC adapters. Free of any
//! transport type so the domain can be driven without tonic.

use chrono::{DateTime, Utc};

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
    /// Container/codec family, sniffed from content.
    AudioFormat {
        Wav => "wav",
        Aiff => "aiff",
        Flac => "flac",
        Mp3 => "mp3",
        Ogg => "ogg",
        M4a => "m4a",
    }
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

/// Header properties found by the probe stage.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioProperties {
    pub duration_seconds: f64,
    pub sample_rate_hz: u32,
    pub channels: u32,
    pub bits_per_sample: u32,
    pub codec: String,
    pub bitrate_bps: u64,
    pub frames: u64,
}

text_enum! {
    /// Mode of a musical key.
    KeyMode {
        Major => "major",
        Minor => "minor",
    }
}

/// A musical key: tonic pitch class (0 = C … 11 = B) and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MusicalKey {
    pub pitch_class: u8,
    pub mode: KeyMode,
}

/// Descriptors computed from the decoded audio by the analyse stage.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioDescriptors {
    /// dBFS; `None` for digital silence.
    pub peak_dbfs: Option<f64>,
    /// LUFS; `None` for silence.
    pub loudness_lufs: Option<f64>,
    /// dBFS; `None` for digital silence.
    pub rms_dbfs: Option<f64>,
    /// Hz; `None` without energy.
    pub spectral_centroid_hz: Option<f64>,
    /// Crossings per second.
    pub zero_crossing_rate_hz: f64,
    /// 0 to 1.
    pub silence_ratio: f64,
    /// Beats per minute; `None` without a steady beat.
    pub bpm: Option<f64>,
    pub bpm_confidence: f64,
    pub key: Option<MusicalKey>,
    pub key_confidence: f64,
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
    pub descriptors: Option<AudioDescriptors>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    /// Any of these keys; empty means any key (or none).
    pub keys: Vec<MusicalKey>,
    pub tags_all: Vec<String>,
    pub tags_any: Vec<String>,
    pub tags_none: Vec<String>,
    pub formats: Vec<AudioFormat>,
    /// Keyword query over filename, tags and text; every term must match.
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
    }
}
