//! Conversions between proto messages and domain types, in one place.
//! Domain structs are destructured so that a new field fails the build
//! until it is mapped here.

use chrono::{DateTime, Utc};
use traum_proto::v1 as pb;

use crate::error::{Error, Result};
use crate::model::{
    AudioDescriptors, AudioFormat, AudioProperties, FileOrder, FileRecord, FileState, JobRecord, JobStage,
    JobState, KeyMode, MusicalKey, UploadHeader, UploadOutcome, UploadSession,
};

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn audio_format(format: AudioFormat) -> pb::AudioFormat {
    match format {
        AudioFormat::Wav => pb::AudioFormat::Wav,
        AudioFormat::Aiff => pb::AudioFormat::Aiff,
        AudioFormat::Flac => pb::AudioFormat::Flac,
        AudioFormat::Mp3 => pb::AudioFormat::Mp3,
        AudioFormat::Ogg => pb::AudioFormat::Ogg,
        AudioFormat::M4a => pb::AudioFormat::M4a,
    }
}

/// Reads a format filter; UNSPECIFIED and unknown values are refused.
pub fn audio_format_from(raw: i32) -> Result<AudioFormat> {
    match pb::AudioFormat::try_from(raw) {
        Ok(pb::AudioFormat::Wav) => Ok(AudioFormat::Wav),
        Ok(pb::AudioFormat::Aiff) => Ok(AudioFormat::Aiff),
        Ok(pb::AudioFormat::Flac) => Ok(AudioFormat::Flac),
        Ok(pb::AudioFormat::Mp3) => Ok(AudioFormat::Mp3),
        Ok(pb::AudioFormat::Ogg) => Ok(AudioFormat::Ogg),
        Ok(pb::AudioFormat::M4a) => Ok(AudioFormat::M4a),
        Ok(pb::AudioFormat::Unspecified) | Err(_) => Err(Error::InvalidArgument(format!(
            "format {raw} is not a valid AudioFormat filter"
        ))),
    }
}

pub fn job_state(state: JobState) -> pb::JobState {
    match state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
    }
}

/// Reads an optional job-state filter (UNSPECIFIED means any).
pub fn job_state_filter(raw: i32) -> Result<Option<JobState>> {
    match pb::JobState::try_from(raw) {
        Ok(pb::JobState::Unspecified) => Ok(None),
        Ok(pb::JobState::Queued) => Ok(Some(JobState::Queued)),
        Ok(pb::JobState::Running) => Ok(Some(JobState::Running)),
        Ok(pb::JobState::Succeeded) => Ok(Some(JobState::Succeeded)),
        Ok(pb::JobState::Failed) => Ok(Some(JobState::Failed)),
        Err(_) => Err(Error::InvalidArgument(format!(
            "state {raw} is not a valid JobState"
        ))),
    }
}

pub fn job_stage(stage: JobStage) -> pb::JobStage {
    match stage {
        JobStage::Store => pb::JobStage::Store,
        JobStage::Probe => pb::JobStage::Probe,
        JobStage::Decode => pb::JobStage::Decode,
        JobStage::Analyse => pb::JobStage::Analyse,
        JobStage::Embed => pb::JobStage::Embed,
    }
}

pub fn file_state(state: FileState) -> pb::FileState {
    match state {
        FileState::Processing => pb::FileState::Processing,
        FileState::Ready => pb::FileState::Ready,
        FileState::Failed => pb::FileState::Failed,
    }
}

/// Reads an optional file-state filter (UNSPECIFIED means any).
pub fn file_state_filter(raw: i32) -> Result<Option<FileState>> {
    match pb::FileState::try_from(raw) {
        Ok(pb::FileState::Unspecified) => Ok(None),
        Ok(pb::FileState::Processing) => Ok(Some(FileState::Processing)),
        Ok(pb::FileState::Ready) => Ok(Some(FileState::Ready)),
        Ok(pb::FileState::Failed) => Ok(Some(FileState::Failed)),
        Err(_) => Err(Error::InvalidArgument(format!(
            "state {raw} is not a valid FileState"
        ))),
    }
}

pub fn file_order(raw: i32) -> Result<FileOrder> {
    match pb::FileOrder::try_from(raw) {
        Ok(pb::FileOrder::Unspecified | pb::FileOrder::CreatedAt) => Ok(FileOrder::CreatedAt),
        Ok(pb::FileOrder::Filename) => Ok(FileOrder::Filename),
        Ok(pb::FileOrder::Size) => Ok(FileOrder::Size),
        Ok(pb::FileOrder::Duration) => Ok(FileOrder::Duration),
        Err(_) => Err(Error::InvalidArgument(format!(
            "order_by {raw} is not a valid FileOrder"
        ))),
    }
}

pub fn upload_header(header: pb::UploadHeader) -> UploadHeader {
    let pb::UploadHeader {
        filename,
        tags,
        size_bytes,
        sha256,
        always_create_file,
    } = header;
    UploadHeader {
        filename,
        tags,
        declared_size: size_bytes,
        declared_sha256: sha256,
        always_create_file,
    }
}

pub fn upload_result(outcome: UploadOutcome) -> pb::UploadResult {
    let UploadOutcome {
        file_id,
        job_id,
        duplicate,
        size_bytes,
        sha256,
        format,
    } = outcome;
    pb::UploadResult {
        file_id,
        job_id,
        duplicate,
        size_bytes,
        sha256,
        format: audio_format(format).into(),
    }
}

pub fn upload_session(session: UploadSession, max_chunk_bytes: u64) -> pb::UploadSession {
    let UploadSession {
        id,
        filename,
        tags,
        declared_size,
        declared_sha256: _,
        received_bytes,
        expires_at,
    } = session;
    pb::UploadSession {
        upload_id: id,
        filename,
        tags,
        received_bytes,
        size_bytes: declared_size,
        max_chunk_bytes,
        expires_at: Some(timestamp(expires_at)),
    }
}

pub fn job(job: JobRecord) -> pb::Job {
    let JobRecord {
        id,
        file_id,
        state,
        stage,
        progress,
        stage_progress,
        message,
        error,
        attempts,
        warnings,
        created_at,
        updated_at,
        started_at,
        finished_at,
    } = job;
    pb::Job {
        job_id: id,
        file_id,
        state: job_state(state).into(),
        stage: job_stage(stage).into(),
        progress,
        stage_progress,
        message,
        error: error.unwrap_or_default(),
        attempts,
        warnings,
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
        started_at: started_at.map(timestamp),
        finished_at: finished_at.map(timestamp),
    }
}

pub fn job_event(record: JobRecord) -> pb::JobEvent {
    let terminal = record.state.is_terminal();
    pb::JobEvent {
        job: Some(job(record)),
        terminal,
    }
}

pub fn properties(props: AudioProperties) -> pb::AudioProperties {
    let AudioProperties {
        duration_seconds,
        sample_rate_hz,
        channels,
        bits_per_sample,
        codec,
        bitrate_bps,
        frames,
    } = props;
    pb::AudioProperties {
        duration_seconds,
        sample_rate_hz,
        channels,
        bits_per_sample,
        codec,
        bitrate_bps,
        frames,
    }
}

pub fn file(record: FileRecord) -> pb::File {
    let FileRecord {
        id,
        filename,
        tags,
        format,
        size_bytes,
        sha256,
        state,
        latest_job_id,
        error,
        properties: props,
        descriptors: analysis,
        created_at,
        updated_at,
    } = record;
    pb::File {
        file_id: id,
        filename,
        tags,
        format: audio_format(format).into(),
        size_bytes,
        sha256,
        state: file_state(state).into(),
        latest_job_id: latest_job_id.unwrap_or_default(),
        error: error.unwrap_or_default(),
        properties: props.map(properties),
        descriptors: analysis.map(descriptors),
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
    }
}

pub fn musical_key(key: MusicalKey) -> pb::MusicalKey {
    let MusicalKey { pitch_class, mode } = key;
    let mode = match mode {
        KeyMode::Major => pb::KeyMode::Major,
        KeyMode::Minor => pb::KeyMode::Minor,
    };
    pb::MusicalKey {
        pitch_class: u32::from(pitch_class),
        mode: mode.into(),
    }
}

pub fn descriptors(d: AudioDescriptors) -> pb::AudioDescriptors {
    let AudioDescriptors {
        peak_dbfs,
        loudness_lufs,
        rms_dbfs,
        spectral_centroid_hz,
        zero_crossing_rate_hz,
        silence_ratio,
        bpm,
        bpm_confidence,
        key,
        key_confidence,
    } = d;
    pb::AudioDescriptors {
        peak_dbfs,
        loudness_lufs,
        rms_dbfs,
        spectral_centroid_hz,
        zero_crossing_rate_hz,
        silence_ratio,
        bpm,
        bpm_confidence,
        key: key.map(musical_key),
        key_confidence,
    }
}

/// Page tokens are opaque to clients; inside they carry the next offset.
pub fn page_token(next_offset: Option<u64>) -> String {
    next_offset
        .map(|offset| format!("o{offset:x}"))
        .unwrap_or_default()
}

pub fn page_offset(token: &str) -> Result<u64> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix('o')
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| {
            Error::InvalidArgument(
                "page_token is invalid; pass the next_page_token of the previous response".into(),
            )
        })
}

/// Resolves a page size: 0 means the default, above the maximum is refused.
pub fn page_size(raw: u32, default: u64, max: u64) -> Result<u64> {
    match u64::from(raw) {
        0 => Ok(default),
        size if size > max => Err(Error::InvalidArgument(format!(
            "page_size {size} exceeds the maximum of {max}"
        ))),
        size => Ok(size),
    }
}

pub fn std_duration(
    raw: Option<prost_types::Duration>,
    default: std::time::Duration,
) -> Result<std::time::Duration> {
    match raw {
        None => Ok(default),
        Some(d) if d.seconds == 0 && d.nanos == 0 => Ok(default),
        Some(d) => std::time::Duration::try_from(d)
            .map_err(|_| Error::InvalidArgument("durations must be positive".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(page_offset(&page_token(Some(250))).unwrap(), 250);
        assert_eq!(page_token(None), "");
        assert_eq!(page_offset("").unwrap(), 0);
        assert!(page_offset("garbage").is_err());
    }
}
