//! Human-readable formatting, tables and the JSON shapes of proto messages.

use prost_types::Timestamp;
use serde::Serialize;
use traum_client::ClientError;
use traum_client::v1::{
    AudioDescriptors, AudioFormat, AudioProperties, DuplicateGroup, DuplicateMember, File, FileState, Job,
    JobEvent, JobStage, JobState, KeyMode, ModelStatus, MusicalKey, SuggestedTag, SuggestionSource,
};

/// Unwraps a generated-client response so RPC failures carry the same
/// `CODE: message` rendering as the library helpers.
pub fn rpc<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, ClientError> {
    result.map(tonic::Response::into_inner).map_err(ClientError::from)
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

macro_rules! enum_names {
    ($full:ident, $ty:ty, $prefix:literal) => {
        /// Proto name of the value, e.g. for JSON output.
        pub fn $full(value: i32) -> String {
            <$ty>::try_from(value)
                .map(|v| v.as_str_name().to_owned())
                .unwrap_or_else(|_| format!("{}{value}", $prefix))
        }
    };
    ($full:ident, $short:ident, $ty:ty, $prefix:literal) => {
        enum_names!($full, $ty, $prefix);

        /// Lower-case name without the enum prefix, for tables.
        pub fn $short(value: i32) -> String {
            let full = $full(value);
            full.strip_prefix($prefix)
                .unwrap_or(&full)
                .to_ascii_lowercase()
        }
    };
}

enum_names!(format_name, format_short, AudioFormat, "AUDIO_FORMAT_");
enum_names!(file_state_name, file_state_short, FileState, "FILE_STATE_");
enum_names!(job_state_name, job_state_short, JobState, "JOB_STATE_");
enum_names!(job_stage_name, job_stage_short, JobStage, "JOB_STAGE_");
enum_names!(model_status_name, ModelStatus, "MODEL_STATUS_");
enum_names!(key_mode_name, KeyMode, "KEY_MODE_");
enum_names!(
    suggestion_source_name,
    suggestion_source_short,
    SuggestionSource,
    "SUGGESTION_SOURCE_"
);

pub fn timestamp(ts: Option<&Timestamp>) -> Option<String> {
    ts.map(ToString::to_string)
}

pub fn timestamp_or_dash(ts: Option<&Timestamp>) -> String {
    timestamp(ts).unwrap_or_else(|| "-".to_owned())
}

/// Binary-prefixed size, e.g. `3.4 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `m:ss.s`, the natural precision for sample and track lengths.
pub fn minutes_seconds(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    // Round once at the display precision so 59.96 s becomes 1:00.0, not 0:60.0.
    let tenths = (seconds * 10.0).round() as u64;
    format!("{}:{:02}.{}", tenths / 600, (tenths / 10) % 60, tenths % 10)
}

/// `h:mm:ss`, for library totals and uptimes.
pub fn hours_minutes_seconds(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    let total = seconds.round() as u64;
    format!("{}:{:02}:{:02}", total / 3600, (total / 60) % 60, total % 60)
}

pub fn percent(fraction: f64) -> String {
    format!("{:.0}%", (fraction * 100.0).clamp(0.0, 100.0))
}

const PITCH_CLASSES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

pub fn key_label(key: &MusicalKey) -> String {
    let pitch = PITCH_CLASSES
        .get(key.pitch_class as usize)
        .copied()
        .unwrap_or("?");
    match KeyMode::try_from(key.mode) {
        Ok(KeyMode::Major) => format!("{pitch} major"),
        Ok(KeyMode::Minor) => format!("{pitch} minor"),
        _ => pitch.to_owned(),
    }
}

/// Prints left-aligned columns separated by two spaces.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: &mut dyn Iterator<Item = &str>| {
        let mut line = String::new();
        for (index, (cell, width)) in cells.zip(&widths).enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        println!("{}", line.trim_end());
    };
    render(&mut headers.iter().copied());
    for row in rows {
        render(&mut row.iter().map(String::as_str));
    }
}

pub fn dash_if_empty(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[derive(Serialize)]
pub struct JobJson {
    pub job_id: String,
    pub file_id: String,
    pub state: String,
    pub stage: String,
    pub progress: f64,
    pub stage_progress: f64,
    pub message: String,
    pub error: String,
    pub attempts: u32,
    pub warnings: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<&Job> for JobJson {
    fn from(job: &Job) -> Self {
        Self {
            job_id: job.job_id.clone(),
            file_id: job.file_id.clone(),
            state: job_state_name(job.state),
            stage: job_stage_name(job.stage),
            progress: job.progress,
            stage_progress: job.stage_progress,
            message: job.message.clone(),
            error: job.error.clone(),
            attempts: job.attempts,
            warnings: job.warnings.clone(),
            created_at: timestamp(job.created_at.as_ref()),
            updated_at: timestamp(job.updated_at.as_ref()),
            started_at: timestamp(job.started_at.as_ref()),
            finished_at: timestamp(job.finished_at.as_ref()),
        }
    }
}

#[derive(Serialize)]
pub struct JobEventJson {
    pub job: Option<JobJson>,
    pub terminal: bool,
}

impl From<&JobEvent> for JobEventJson {
    fn from(event: &JobEvent) -> Self {
        Self {
            job: event.job.as_ref().map(JobJson::from),
            terminal: event.terminal,
        }
    }
}

#[derive(Serialize)]
pub struct AudioPropertiesJson {
    pub duration_seconds: f64,
    pub sample_rate_hz: u32,
    pub channels: u32,
    pub bits_per_sample: u32,
    pub codec: String,
    pub bitrate_bps: u64,
    pub frames: u64,
}

impl From<&AudioProperties> for AudioPropertiesJson {
    fn from(p: &AudioProperties) -> Self {
        Self {
            duration_seconds: p.duration_seconds,
            sample_rate_hz: p.sample_rate_hz,
            channels: p.channels,
            bits_per_sample: p.bits_per_sample,
            codec: p.codec.clone(),
            bitrate_bps: p.bitrate_bps,
            frames: p.frames,
        }
    }
}

#[derive(Serialize)]
pub struct FileJson {
    pub file_id: String,
    pub filename: String,
    pub tags: Vec<String>,
    pub format: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub state: String,
    pub latest_job_id: String,
    pub error: String,
    pub properties: Option<AudioPropertiesJson>,
    pub descriptors: Option<DescriptorsJson>,
    pub suggested_tags: Vec<SuggestedTagJson>,
    pub duplicate_group: Option<DuplicateGroupJson>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Serialize)]
pub struct DuplicateGroupJson {
    pub members: Vec<DuplicateMemberJson>,
}

#[derive(Serialize)]
pub struct DuplicateMemberJson {
    pub file_id: String,
    pub filename: String,
    pub format: String,
    pub duration_seconds: f64,
    pub score: f64,
    pub offset_seconds: f64,
    pub same_bytes: bool,
}

impl From<&DuplicateGroup> for DuplicateGroupJson {
    fn from(group: &DuplicateGroup) -> Self {
        Self {
            members: group
                .members
                .iter()
                .map(|member| DuplicateMemberJson {
                    file_id: member.file_id.clone(),
                    filename: member.filename.clone(),
                    format: format_name(member.format),
                    duration_seconds: member.duration_seconds,
                    score: member.score,
                    offset_seconds: member.offset_seconds,
                    same_bytes: member.same_bytes,
                })
                .collect(),
        }
    }
}

/// One member of a duplicate group on one line: id, name, format, duration,
/// and for all but the first, how it matches the first.
pub fn duplicate_member_line(member: &DuplicateMember, first: bool) -> String {
    let head = format!(
        "{}  {}  {}  {}",
        member.file_id,
        member.filename,
        format_short(member.format),
        minutes_seconds(member.duration_seconds)
    );
    if first {
        return head;
    }
    let same = if member.same_bytes { ", same bytes" } else { "" };
    format!(
        "{head}  score {:.2}, offset {:+.3} s{same}",
        member.score, member.offset_seconds
    )
}

#[derive(Serialize)]
pub struct SuggestedTagJson {
    pub vocabulary: String,
    pub label: String,
    pub probability: f64,
    pub model_id: String,
}

impl From<&SuggestedTag> for SuggestedTagJson {
    fn from(tag: &SuggestedTag) -> Self {
        Self {
            vocabulary: tag.vocabulary.clone(),
            label: tag.label.clone(),
            probability: tag.probability,
            model_id: tag.model_id.clone(),
        }
    }
}

/// Suggestions grouped by vocabulary, e.g. `genre: techno 61 %, house 22 %`,
/// one line per vocabulary in the order given.
pub fn suggestion_lines(tags: &[SuggestedTag]) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for tag in tags {
        let item = format!("{} {:.0} %", tag.label, tag.probability * 100.0);
        match lines
            .iter_mut()
            .find(|(vocabulary, _)| *vocabulary == tag.vocabulary)
        {
            Some((_, text)) => {
                text.push_str(", ");
                text.push_str(&item);
            }
            None => lines.push((tag.vocabulary.clone(), item)),
        }
    }
    lines
}

impl From<&File> for FileJson {
    fn from(file: &File) -> Self {
        Self {
            file_id: file.file_id.clone(),
            filename: file.filename.clone(),
            tags: file.tags.clone(),
            format: format_name(file.format),
            size_bytes: file.size_bytes,
            sha256: file.sha256.clone(),
            state: file_state_name(file.state),
            latest_job_id: file.latest_job_id.clone(),
            error: file.error.clone(),
            properties: file.properties.as_ref().map(AudioPropertiesJson::from),
            descriptors: file.descriptors.as_ref().map(DescriptorsJson::from),
            suggested_tags: file.suggested_tags.iter().map(SuggestedTagJson::from).collect(),
            duplicate_group: file.duplicate_group.as_ref().map(DuplicateGroupJson::from),
            created_at: timestamp(file.created_at.as_ref()),
            updated_at: timestamp(file.updated_at.as_ref()),
        }
    }
}

#[derive(Serialize)]
pub struct MusicalKeyJson {
    pub pitch_class: u32,
    pub mode: String,
}

impl From<&MusicalKey> for MusicalKeyJson {
    fn from(key: &MusicalKey) -> Self {
        Self {
            pitch_class: key.pitch_class,
            mode: key_mode_name(key.mode),
        }
    }
}

#[derive(Serialize)]
pub struct TempoReadingJson {
    pub bpm: f64,
    pub score: f64,
}

#[derive(Serialize)]
pub struct DescriptorsJson {
    pub peak_dbfs: Option<f64>,
    pub loudness_lufs: Option<f64>,
    pub rms_dbfs: Option<f64>,
    pub spectral_centroid_hz: Option<f64>,
    pub zero_crossing_rate_hz: f64,
    pub silence_ratio: f64,
    pub bpm: Option<f64>,
    pub bpm_confidence: f64,
    pub bpm_alternatives: Vec<TempoReadingJson>,
    pub key: Option<MusicalKeyJson>,
    pub key_name: Option<String>,
    pub key_confidence: f64,
}

impl From<&AudioDescriptors> for DescriptorsJson {
    fn from(d: &AudioDescriptors) -> Self {
        Self {
            peak_dbfs: d.peak_dbfs,
            loudness_lufs: d.loudness_lufs,
            rms_dbfs: d.rms_dbfs,
            spectral_centroid_hz: d.spectral_centroid_hz,
            zero_crossing_rate_hz: d.zero_crossing_rate_hz,
            silence_ratio: d.silence_ratio,
            bpm: d.bpm,
            bpm_confidence: d.bpm_confidence,
            bpm_alternatives: d
                .bpm_alternatives
                .iter()
                .map(|r| TempoReadingJson {
                    bpm: r.bpm,
                    score: r.score,
                })
                .collect(),
            key: d.key.as_ref().map(MusicalKeyJson::from),
            key_name: d.key.as_ref().map(key_name),
            key_confidence: d.key_confidence,
        }
    }
}

/// Names a key the way musicians write it, e.g. "F♯ minor" as "F# minor".
pub fn key_name(key: &MusicalKey) -> String {
    const NAMES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
    let tonic = NAMES.get(key.pitch_class as usize).copied().unwrap_or("?");
    let mode = if key.mode == KeyMode::Minor as i32 {
        "minor"
    } else {
        "major"
    };
    format!("{tonic} {mode}")
}

fn db_or_dash(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} {unit}"))
}

/// Prints every field of a file as `key: value` lines.
pub fn print_file_details(file: &File) {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", file.file_id.clone()),
        ("filename", file.filename.clone()),
        ("format", format_short(file.format)),
        (
            "size",
            format!("{} ({} bytes)", human_bytes(file.size_bytes), file.size_bytes),
        ),
        ("sha256", file.sha256.clone()),
        ("state", file_state_short(file.state)),
        ("tags", dash_if_empty(&file.tags.join(", "))),
        ("latest job", dash_if_empty(&file.latest_job_id)),
    ];
    if !file.error.is_empty() {
        lines.push(("error", file.error.clone()));
    }
    lines.push(("created", timestamp_or_dash(file.created_at.as_ref())));
    lines.push(("updated", timestamp_or_dash(file.updated_at.as_ref())));
    match &file.properties {
        Some(p) => {
            lines.push((
                "duration",
                format!(
                    "{} ({:.3} s)",
                    minutes_seconds(p.duration_seconds),
                    p.duration_seconds
                ),
            ));
            lines.push(("sample rate", format!("{} Hz", p.sample_rate_hz)));
            lines.push(("channels", p.channels.to_string()));
            lines.push((
                "bits per sample",
                if p.bits_per_sample == 0 {
                    "-".to_owned()
                } else {
                    p.bits_per_sample.to_string()
                },
            ));
            lines.push(("codec", dash_if_empty(&p.codec)));
            lines.push(("bitrate", format!("{:.1} kbit/s", p.bitrate_bps as f64 / 1000.0)));
            lines.push(("frames", p.frames.to_string()));
        }
        None => lines.push(("properties", "not probed yet".to_owned())),
    }
    match &file.descriptors {
        Some(d) => {
            lines.push(("peak", db_or_dash(d.peak_dbfs, "dBFS")));
            lines.push(("loudness", db_or_dash(d.loudness_lufs, "LUFS")));
            lines.push(("rms", db_or_dash(d.rms_dbfs, "dBFS")));
            lines.push(("spectral centroid", db_or_dash(d.spectral_centroid_hz, "Hz")));
            lines.push(("zero crossings", format!("{:.1} /s", d.zero_crossing_rate_hz)));
            lines.push(("silence", format!("{:.1} %", d.silence_ratio * 100.0)));
            lines.push((
                "bpm",
                d.bpm.map_or_else(
                    || "-".to_owned(),
                    |bpm| {
                        let readings: Vec<String> = d
                            .bpm_alternatives
                            .iter()
                            .map(|r| format!("{:.1} (score {:.2})", r.bpm, r.score))
                            .collect();
                        let alternatives = if readings.is_empty() {
                            String::new()
                        } else {
                            format!("; also read as {}", readings.join(", "))
                        };
                        format!("{bpm:.1} (confidence {:.2}{alternatives})", d.bpm_confidence)
                    },
                ),
            ));
            lines.push((
                "key",
                d.key.as_ref().map_or_else(
                    || "-".to_owned(),
                    |key| format!("{} (confidence {:.2})", key_name(key), d.key_confidence),
                ),
            ));
        }
        None => lines.push(("descriptors", "not analysed yet".to_owned())),
    }
    let mut lines: Vec<(String, String)> = lines
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    for (vocabulary, text) in suggestion_lines(&file.suggested_tags) {
        lines.push((format!("suggested {vocabulary}"), text));
    }
    let others = file
        .duplicate_group
        .as_ref()
        .map_or(0, |group| group.members.len().saturating_sub(1));
    lines.push((
        "duplicates".to_owned(),
        match others {
            0 => "-".to_owned(),
            1 => "1 other file is the same recording".to_owned(),
            n => format!("{n} other files are the same recording"),
        },
    ));
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    for (key, value) in lines {
        println!("{:<width$} {value}", format!("{key}:"));
    }
    if let Some(group) = &file.duplicate_group {
        for (index, member) in group.members.iter().enumerate() {
            let marker = if member.file_id == file.file_id { "*" } else { " " };
            println!("  {marker} {}", duplicate_member_line(member, index == 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(minutes_seconds(0.0), "0:00.0");
        assert_eq!(minutes_seconds(65.25), "1:05.3");
        assert_eq!(minutes_seconds(59.96), "1:00.0");
        assert_eq!(hours_minutes_seconds(3725.0), "1:02:05");
    }

    #[test]
    fn names_enums() {
        assert_eq!(format_name(AudioFormat::Flac as i32), "AUDIO_FORMAT_FLAC");
        assert_eq!(format_short(AudioFormat::Flac as i32), "flac");
        assert_eq!(job_state_short(JobState::Succeeded as i32), "succeeded");
        assert_eq!(job_state_name(99), "JOB_STATE_99");
    }

    #[test]
    fn labels_keys() {
        let key = MusicalKey {
            pitch_class: 9,
            mode: KeyMode::Minor as i32,
        };
        assert_eq!(key_label(&key), "A minor");
    }
}
