//! Conversions between proto messages and domain types, one module per
//! service plus what they share here. Domain structs are destructured, so
//! a new field fails the build until it is mapped.

pub mod admin;
pub mod analytics;
pub mod audio;
pub mod search;

use chrono::{DateTime, Utc};
use traum_proto::v1 as pb;

use crate::domain::{
    AudioFormat, AudioProperties, Descriptors, FileRecord, FileState, JobStage, JobState, KeyEstimate,
    KeyMode, MusicalKey, SuggestedTag, SuggestedTagFilter, TempoAlternative, TempoEstimate,
};
use crate::error::{Error, Result};
use crate::validate;

/// Moves a domain struct into the proto message with the same field names.
/// The domain struct is destructured, so a new field fails the build until
/// it is listed here.
/// Fields that change on the way are listed after `with`, by the names
/// they bind, and given their proto fields after `=>`.
macro_rules! same_fields {
    ($value:expr, $from:path => $to:path { $($field:ident),+ $(,)? }
        $(with { $($other:ident),+ } => { $($name:ident: $mapped:expr),+ $(,)? })?) => {{
        let $from { $($field,)+ $($($other),+)? } = $value;
        $to { $($field,)+ $($($name: $mapped),+)? }
    }};
}

/// Both directions between a domain enum and its proto twin; the proto's
/// `UNSPECIFIED` reads as "no value" (e.g. no filter).
macro_rules! proto_enum {
    ($to:ident, $from:ident, $field:literal: $domain:ident <=> $proto:ident { $($variant:ident),+ $(,)? }) => {
        pub fn $to(value: $domain) -> pb::$proto {
            match value {
                $($domain::$variant => pb::$proto::$variant,)+
            }
        }

        /// Reads the proto value; `None` for UNSPECIFIED, an error naming
        /// the field for values this server does not know.
        pub fn $from(raw: i32) -> Result<Option<$domain>> {
            match pb::$proto::try_from(raw) {
                Ok(pb::$proto::Unspecified) => Ok(None),
                $(Ok(pb::$proto::$variant) => Ok(Some($domain::$variant)),)+
                Err(_) => Err(Error::InvalidArgument(format!(
                    "{} {raw} is not a valid {}",
                    $field,
                    stringify!($proto)
                ))),
            }
        }
    };
}

proto_enum!(audio_format, audio_format_from, "format": AudioFormat <=> AudioFormat { Wav, Aiff, Flac, Mp3, Ogg, M4a });
proto_enum!(job_state, job_state_from, "state": JobState <=> JobState { Queued, Running, Succeeded, Failed });
proto_enum!(file_state, file_state_from, "state": FileState <=> FileState { Processing, Ready, Failed });
proto_enum!(key_mode, key_mode_from, "key mode": KeyMode <=> KeyMode { Major, Minor });

/// Reads a list of format filters; UNSPECIFIED is refused there.
pub fn audio_formats(raw: &[i32]) -> Result<Vec<AudioFormat>> {
    raw.iter()
        .map(|&value| {
            audio_format_from(value)?.ok_or_else(|| {
                Error::InvalidArgument(
                    "format filters must name a format, not AUDIO_FORMAT_UNSPECIFIED".into(),
                )
            })
        })
        .collect()
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

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn properties(props: AudioProperties) -> pb::AudioProperties {
    same_fields!(props, AudioProperties => pb::AudioProperties {
        duration_seconds, sample_rate_hz, channels, bits_per_sample, codec, bitrate_bps, frames,
    })
}

pub fn musical_key(key: MusicalKey) -> pb::MusicalKey {
    let MusicalKey { pitch_class, mode } = key;
    pb::MusicalKey {
        pitch_class: u32::from(pitch_class),
        mode: key_mode(mode).into(),
    }
}

/// Reads a key filter: pitch class 0–11 and a mode.
pub fn musical_key_from(key: &pb::MusicalKey) -> Result<MusicalKey> {
    let pitch_class = u8::try_from(key.pitch_class)
        .ok()
        .filter(|p| *p < 12)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "key pitch_class must be 0 (C) to 11 (B), got {}",
                key.pitch_class
            ))
        })?;
    let mode = key_mode_from(key.mode)
        .ok()
        .flatten()
        .ok_or_else(|| Error::InvalidArgument("key mode must be KEY_MODE_MAJOR or KEY_MODE_MINOR".into()))?;
    Ok(MusicalKey { pitch_class, mode })
}

pub fn descriptors(d: Descriptors) -> pb::AudioDescriptors {
    same_fields!(d, Descriptors => pb::AudioDescriptors {
        peak_dbfs, loudness_lufs, rms_dbfs, spectral_centroid_hz, zero_crossing_rate_hz, silence_ratio,
    } with { tempo, key } => {
        bpm: tempo.map(|TempoEstimate { bpm, .. }| bpm),
        bpm_confidence: tempo.map_or(0.0, |t| t.confidence),
        bpm_alternatives: tempo
            .map(|t| {
                t.alternatives
                    .into_iter()
                    .flatten()
                    .map(|TempoAlternative { bpm, score }| pb::TempoReading { bpm, score })
                    .collect()
            })
            .unwrap_or_default(),
        key: key.map(|KeyEstimate { key, .. }| musical_key(key)),
        key_confidence: key.map_or(0.0, |k| k.confidence),
    })
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
        suggested_tags,
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
        suggested_tags: suggested_tags.into_iter().map(suggested_tag).collect(),
        duplicate_group: None,
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
    }
}

pub fn suggested_tag(tag: SuggestedTag) -> pb::SuggestedTag {
    let SuggestedTag {
        vocabulary,
        label,
        probability,
        model_id,
    } = tag;
    pb::SuggestedTag {
        vocabulary,
        label,
        probability,
        model_id,
    }
}

/// Conditions on suggested tags, validated; errors name `INDEX.field`.
pub fn suggested_filters(raw: Vec<pb::SuggestedTagFilter>) -> Result<Vec<SuggestedTagFilter>> {
    let conditions: Vec<SuggestedTagFilter> = raw
        .into_iter()
        .map(|pb::SuggestedTagFilter { vocabulary, labels }| SuggestedTagFilter { vocabulary, labels })
        .collect();
    validate::suggested_filters(&conditions)
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
            Error::invalid_field(
                "page_token",
                "page_token is invalid; pass the next_page_token of the previous response",
            )
        })
}

/// Resolves a page size given in `field`: 0 means the default, above the
/// maximum is refused.
pub fn page_size(field: &str, raw: u32, default: u64, max: u64) -> Result<u64> {
    match u64::from(raw) {
        0 => Ok(default),
        size if size > max => Err(Error::invalid_field(
            field,
            format!("{field} {size} exceeds the maximum of {max}"),
        )),
        size => Ok(size),
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

    #[test]
    fn enum_values_map_both_ways_and_unknown_ones_are_refused() {
        for format in AudioFormat::ALL {
            assert_eq!(
                audio_format_from(audio_format(*format) as i32).unwrap(),
                Some(*format)
            );
        }
        for state in JobState::ALL {
            assert_eq!(job_state_from(job_state(*state) as i32).unwrap(), Some(*state));
        }
        assert_eq!(file_state_from(0).unwrap(), None, "UNSPECIFIED: no filter");
        let err = job_state_from(99).unwrap_err().to_string();
        assert_eq!(err, "state 99 is not a valid JobState");
        assert!(audio_formats(&[0]).is_err(), "a format filter must name a format");
        assert!(audio_formats(&[99]).is_err());
    }

    #[test]
    fn key_filters_are_checked() {
        let key = |pitch_class, mode: pb::KeyMode| pb::MusicalKey {
            pitch_class,
            mode: mode as i32,
        };
        assert_eq!(
            musical_key_from(&key(9, pb::KeyMode::Minor)).unwrap(),
            MusicalKey {
                pitch_class: 9,
                mode: KeyMode::Minor
            }
        );
        assert!(musical_key_from(&key(12, pb::KeyMode::Major)).is_err());
        assert!(musical_key_from(&key(0, pb::KeyMode::Unspecified)).is_err());
    }
}
