//! Conversions between table rows and domain records.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};

use super::entities::{file, job, upload};
use super::{corrupt, parse_json_array, serde_json_array};
use crate::domain::{
    AudioFormat, AudioProperties, Descriptors, FileRecord, FileState, JobRecord, JobStage, JobState,
    KeyEstimate, KeyMode, MusicalKey, TempoAlternative, TempoEstimate, UploadSession,
};
use crate::error::Result;

pub(super) fn new_job(id: &str, file_id: &str, now: DateTime<Utc>) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        file_id: file_id.to_owned(),
        state: JobState::Queued,
        stage: JobStage::Store,
        progress: 0.0,
        stage_progress: 0.0,
        message: "queued".to_owned(),
        error: None,
        attempts: 0,
        warnings: Vec::new(),
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
        owner: None,
    }
}

pub(super) fn job_to_active(job: &JobRecord) -> job::ActiveModel {
    job::ActiveModel {
        id: Set(job.id.clone()),
        file_id: Set(job.file_id.clone()),
        state: Set(job.state.as_str().to_owned()),
        stage: Set(job.stage.as_str().to_owned()),
        progress: Set(job.progress),
        stage_progress: Set(job.stage_progress),
        message: Set(job.message.clone()),
        error: Set(job.error.clone()),
        attempts: Set(i32::try_from(job.attempts).unwrap_or(i32::MAX)),
        warnings: Set(serde_json_array(&job.warnings)),
        created_at: Set(job.created_at),
        updated_at: Set(job.updated_at),
        started_at: Set(job.started_at),
        finished_at: Set(job.finished_at),
        owner: Set(job.owner.clone()),
        lease_expires_at: NotSet,
    }
}

pub(super) fn job_from_model(model: job::Model) -> Result<JobRecord> {
    Ok(JobRecord {
        state: JobState::parse(&model.state).ok_or_else(|| corrupt("job state", &model.state))?,
        stage: JobStage::parse(&model.stage).ok_or_else(|| corrupt("job stage", &model.stage))?,
        warnings: parse_json_array(&model.warnings)?,
        attempts: u32::try_from(model.attempts).unwrap_or(0),
        id: model.id,
        file_id: model.file_id,
        progress: model.progress,
        stage_progress: model.stage_progress,
        message: model.message,
        error: model.error,
        created_at: model.created_at,
        updated_at: model.updated_at,
        started_at: model.started_at,
        finished_at: model.finished_at,
        owner: model.owner,
    })
}

pub(super) fn file_from_model(model: file::Model, tags: Vec<String>) -> Result<FileRecord> {
    let properties = match (model.duration_seconds, model.sample_rate_hz, model.channels) {
        (Some(duration_seconds), Some(rate), Some(channels)) => Some(AudioProperties {
            duration_seconds,
            sample_rate_hz: u32::try_from(rate).unwrap_or(0),
            channels: u32::try_from(channels).unwrap_or(0),
            bits_per_sample: model
                .bits_per_sample
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or(0),
            codec: model.codec.clone().unwrap_or_default(),
            bitrate_bps: model.bitrate_bps.and_then(|b| u64::try_from(b).ok()).unwrap_or(0),
            frames: model.frames.and_then(|f| u64::try_from(f).ok()).unwrap_or(0),
        }),
        _ => None,
    };
    // The silence ratio is always written by the analyse stage, so it marks
    // an analysed file.
    let descriptors = model.silence_ratio.map(|silence_ratio| Descriptors {
        peak_dbfs: model.peak_dbfs,
        loudness_lufs: model.loudness_lufs,
        rms_dbfs: model.rms_dbfs,
        spectral_centroid_hz: model.spectral_centroid_hz,
        zero_crossing_rate_hz: model.zero_crossing_rate.unwrap_or(0.0),
        silence_ratio,
        tempo: model.bpm.map(|bpm| {
            let reading = |bpm: Option<f64>, score: Option<f64>| match (bpm, score) {
                (Some(bpm), Some(score)) => Some(TempoAlternative { bpm, score }),
                _ => None,
            };
            TempoEstimate {
                bpm,
                confidence: model.bpm_confidence.unwrap_or(0.0),
                alternatives: [
                    reading(model.bpm_half_time, model.bpm_half_time_score),
                    reading(model.bpm_double_time, model.bpm_double_time_score),
                ],
            }
        }),
        key: match (
            model.key_pitch_class,
            model.key_mode.as_deref().and_then(KeyMode::parse),
        ) {
            (Some(pitch), Some(mode)) => Some(KeyEstimate {
                key: MusicalKey {
                    pitch_class: u8::try_from(pitch.rem_euclid(12)).unwrap_or(0),
                    mode,
                },
                confidence: model.key_confidence.unwrap_or(0.0),
            }),
            _ => None,
        },
    });
    Ok(FileRecord {
        descriptors,
        format: AudioFormat::parse(&model.format).ok_or_else(|| corrupt("file format", &model.format))?,
        state: FileState::parse(&model.state).ok_or_else(|| corrupt("file state", &model.state))?,
        size_bytes: u64::try_from(model.size_bytes).unwrap_or(0),
        id: model.id,
        filename: model.filename,
        tags,
        sha256: model.sha256,
        latest_job_id: model.latest_job_id,
        error: model.error,
        properties,
        suggested_tags: Vec::new(),
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

pub(super) fn upload_from_model(model: upload::Model) -> Result<UploadSession> {
    Ok(UploadSession {
        tags: parse_json_array(&model.tags)?,
        declared_size: model.declared_size.and_then(|s| u64::try_from(s).ok()),
        received_bytes: u64::try_from(model.received_bytes).unwrap_or(0),
        id: model.id,
        filename: model.filename,
        declared_sha256: model.declared_sha256,
        expires_at: model.expires_at,
    })
}
