//! Reads container and codec headers with symphonia and walks the packets to
//! find the true length, so truncated and corrupt files are caught.

use std::fs::File;
use std::io::Cursor;
use std::path::Path;

use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::io::MediaSource;

use crate::open::{EmptyPackets, OpenedTrack, describe, open_track, seconds};
use crate::{AudioError, AudioFormat};

/// Header properties of a file, as the probe finds them.
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

/// How many sample frames a file may lack against its header before it
/// counts as truncated (codec priming and padding stay well below this).
const TRUNCATION_SLACK_FRAMES: u64 = 8192;

/// Probes `path`, decodes its first packet and counts its frames.
///
/// `progress` receives the fraction of bytes walked, 0 to 1.
pub fn probe_file(
    path: &Path,
    format: AudioFormat,
    progress: impl FnMut(f64),
) -> Result<AudioProperties, AudioError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    probe_source(Box::new(file), file_len, format, progress)
}

/// [`probe_file`] for a file held in memory.
pub fn probe_bytes(
    bytes: Vec<u8>,
    format: AudioFormat,
    progress: impl FnMut(f64),
) -> Result<AudioProperties, AudioError> {
    let len = bytes.len() as u64;
    probe_source(Box::new(Cursor::new(bytes)), len, format, progress)
}

fn probe_source(
    source: Box<dyn MediaSource>,
    file_len: u64,
    format: AudioFormat,
    mut progress: impl FnMut(f64),
) -> Result<AudioProperties, AudioError> {
    let opened = open_track(source, file_len, format).map_err(|failure| failure.into_error(Some(format)))?;
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
    let mut empty = EmptyPackets::default();
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(err) => {
                return Err(AudioError::Corrupt(format!(
                    "{} data is corrupt after {:.2} s: {}",
                    format.display_name(),
                    seconds(frames, params.sample_rate),
                    describe(&err)
                )));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        empty.note(&packet, format)?;
        packets += 1;
        // Readers that trim (symphonia's `trim_packet`) shorten `dur` by the
        // trimmed frames themselves.
        frames = frames.saturating_add(packet.dur);
        if decoded_spec.is_none() {
            let decoded = decoder.decode(&packet).map_err(|err| {
                AudioError::Corrupt(format!(
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
        return Err(AudioError::Corrupt(format!(
            "{} file contains no audio data",
            format.display_name()
        )));
    }
    let sample_rate = params
        .sample_rate
        .or(decoded_spec.map(|spec| spec.rate))
        .filter(|rate| *rate > 0)
        .ok_or_else(|| AudioError::Corrupt("the sample rate is missing from the headers".to_owned()))?;
    if let Some(declared) = params.n_frames
        && frames.saturating_add(TRUNCATION_SLACK_FRAMES) < declared
    {
        return Err(AudioError::Corrupt(format!(
            "{} file is truncated: its header declares {:.2} s of audio but the data ends at {:.2} s",
            format.display_name(),
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
