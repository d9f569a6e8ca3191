//! Reads container and codec headers with symphonia and walks the packets to
//! find the true length, so truncated and corrupt files are caught.

use std::fs::File;
use std::path::Path;

use symphonia::core::errors::Error as SymphoniaError;

use super::open::{OpenFailure, OpenedTrack, describe, open_track};
use super::sniff::SUPPORTED_FORMATS;
use crate::model::{AudioFormat, AudioProperties};

/// Why a file could not be probed. Every message names the problem in terms
/// a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The content is damaged or cut short.
    #[error("{0}")]
    Corrupt(String),
    /// The container is readable but its codec is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// The file could not be read.
    #[error("cannot read audio file: {0}")]
    Io(#[from] std::io::Error),
}

/// How many sample frames a file may lack against its header before it
/// counts as truncated (codec priming and padding stay well below this).
const TRUNCATION_SLACK_FRAMES: u64 = 8192;

/// Probes `path`, decodes its first packet and counts its frames.
///
/// `progress` receives the fraction of bytes walked, 0 to 1.
pub fn probe_file(
    path: &Path,
    format: AudioFormat,
    mut progress: impl FnMut(f64),
) -> Result<AudioProperties, ProbeError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let name = format_name(format);
    let opened = open_track(Box::new(file), Some(format)).map_err(|failure| match failure {
        OpenFailure::Container(err) => {
            ProbeError::Corrupt(format!("{name} container could not be read: {}", describe(&err)))
        }
        OpenFailure::NoTrack => ProbeError::Corrupt(format!("{name} file holds no audio track")),
        OpenFailure::UnknownCodec => ProbeError::Unsupported(format!(
            "the audio codec in this {name} file is not supported; supported formats: {SUPPORTED_FORMATS}"
        )),
        OpenFailure::Decoder { codec, error } => {
            ProbeError::Unsupported(format!("cannot decode {codec} audio: {}", describe(&error)))
        }
    })?;
    let OpenedTrack {
        mut reader,
        track_id,
        params,
        codec,
        mut decoder,
        window,
    } = opened;

    let mut frames: u64 = 0;
    let mut decoded_spec = None;
    let mut packets: u64 = 0;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(err) => {
                return Err(ProbeError::Corrupt(format!(
                    "{} data is corrupt after {:.2} s: {}",
                    format_name(format),
                    seconds(frames, params.sample_rate),
                    describe(&err)
                )));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        // Readers that trim (symphonia's `trim_packet`) shorten `dur` by the
        // trimmed frames themselves.
        frames += packet.dur;
        if decoded_spec.is_none() {
            let decoded = decoder.decode(&packet).map_err(|err| {
                ProbeError::Corrupt(format!(
                    "first {codec} packet cannot be decoded: {}",
                    describe(&err)
                ))
            })?;
            decoded_spec = Some(*decoded.spec());
        }
        if packets.is_multiple_of(256) && file_len > 0 {
            progress((packet.ts as f64 / params.n_frames.unwrap_or(u64::MAX).max(1) as f64).min(1.0));
        }
    }
    if packets == 0 {
        return Err(ProbeError::Corrupt(format!(
            "{} file contains no audio data",
            format_name(format)
        )));
    }
    let sample_rate = params
        .sample_rate
        .or(decoded_spec.map(|spec| spec.rate))
        .filter(|rate| *rate > 0)
        .ok_or_else(|| ProbeError::Corrupt("the sample rate is missing from the headers".to_owned()))?;
    if let Some(declared) = params.n_frames
        && frames + TRUNCATION_SLACK_FRAMES < declared
    {
        return Err(ProbeError::Corrupt(format!(
            "{} file is truncated: its header declares {:.2} s of audio but the data ends at {:.2} s",
            format_name(format),
            seconds(declared, Some(sample_rate)),
            seconds(frames, Some(sample_rate))
        )));
    }
    let frames = window.map_or(frames, |window| window.trimmed_length(frames));
    let channels = params
        .channels
        .or(decoded_spec.map(|spec| spec.channels))
        .map(|channels| channels.count() as u32)
        .unwrap_or(0);
    let duration_seconds = frames as f64 / f64::from(sample_rate);
    let bitrate_bps = if duration_seconds > 0.0 {
        (file_len as f64 * 8.0 / duration_seconds).round() as u64
    } else {
        0
    };
    progress(1.0);
    Ok(AudioProperties {
        duration_seconds,
        sample_rate_hz: sample_rate,
        channels,
        bits_per_sample: params.bits_per_sample.unwrap_or(0),
        codec,
        bitrate_bps,
        frames,
    })
}

fn seconds(frames: u64, rate: Option<u32>) -> f64 {
    frames as f64 / f64::from(rate.unwrap_or(1).max(1))
}

/// Name of a format as users know it.
pub fn format_name(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Wav => "WAV",
        AudioFormat::Aiff => "AIFF",
        AudioFormat::Flac => "FLAC",
        AudioFormat::Mp3 => "MP3",
        AudioFormat::Ogg => "Ogg Vorbis",
        AudioFormat::M4a => "M4A",
    }
}

impl From<ProbeError> for crate::error::Error {
    fn from(err: ProbeError) -> Self {
        match err {
            ProbeError::Corrupt(message) => crate::error::Error::InvalidArgument(message),
            ProbeError::Unsupported(message) => crate::error::Error::UnsupportedFormat(message),
            ProbeError::Io(io) => crate::error::Error::Io(io),
        }
    }
}
