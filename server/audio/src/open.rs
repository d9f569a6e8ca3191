//! Opening a file's audio track with symphonia, shared by the probe and the
//! decoder so both read files the same way and word the same failures the
//! same way.

use std::io::{Seek, SeekFrom};

use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::edit_list::{FrameWindow, read_media_window};
use crate::sniff::SUPPORTED_FORMATS;
use crate::{AudioError, AudioFormat};

/// A demuxer positioned at the start, with the decoder for its audio track.
pub(crate) struct OpenedTrack {
    pub reader: Box<dyn FormatReader>,
    pub track_id: u32,
    pub params: CodecParameters,
    /// Short codec name as symphonia knows it (e.g. `mp3`, `flac`).
    pub codec: String,
    pub decoder: Box<dyn Decoder>,
    /// The decoded frames that are the audio, where the container says so
    /// and symphonia does not apply it (the MP4 edit list).
    pub window: Option<FrameWindow>,
}

/// Why a track could not be opened.
pub(crate) enum OpenFailure {
    /// The container could not be read.
    Container(SymphoniaError),
    /// The container holds no audio track.
    NoTrack,
    /// The codec is not one symphonia knows.
    UnknownCodec,
    /// The codec is known but no decoder could be made for these parameters.
    Decoder { codec: String, error: SymphoniaError },
}

impl OpenFailure {
    /// Words the failure for users; `format`, where the caller names it,
    /// says which kind of file it was, and "the" stands in for it otherwise.
    pub(crate) fn into_error(self, format: Option<AudioFormat>) -> AudioError {
        let (file, codec_in_file) = match format {
            Some(format) => (
                format.display_name(),
                format!(" in this {} file", format.display_name()),
            ),
            None => ("the", String::new()),
        };
        match self {
            OpenFailure::Container(err) => {
                AudioError::Corrupt(format!("{file} container could not be read: {}", describe(&err)))
            }
            OpenFailure::NoTrack => AudioError::Corrupt(format!("{file} file holds no audio track")),
            OpenFailure::UnknownCodec => AudioError::Unsupported(format!(
                "the audio codec{codec_in_file} is not supported; supported formats: {SUPPORTED_FORMATS}"
            )),
            OpenFailure::Decoder { codec, error } => {
                AudioError::Unsupported(format!("cannot decode {codec} audio: {}", describe(&error)))
            }
        }
    }
}

/// Probes `source` (with the sniffed format as a hint) and prepares the
/// decoder of its first audio track. Gapless trimming is on, so packet
/// durations exclude encoder delay and padding; for MP4, whose edit list
/// symphonia does not read, [`OpenedTrack::window`] carries it instead.
pub(crate) fn open_track(
    mut source: Box<dyn MediaSource>,
    format: Option<AudioFormat>,
) -> Result<OpenedTrack, OpenFailure> {
    let media_window = read_media_window(&mut source)
        .and_then(|window| source.seek(SeekFrom::Start(0)).map(|_| window))
        .map_err(|err| OpenFailure::Container(SymphoniaError::IoError(err)))?;
    let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(format) = format {
        // The stored text of each format is also its usual file extension.
        hint.with_extension(format.as_str());
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(OpenFailure::Container)?;
    let reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|track| track.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(OpenFailure::NoTrack)?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|descriptor| descriptor.short_name.to_owned())
        .ok_or(OpenFailure::UnknownCodec)?;
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|error| OpenFailure::Decoder {
            codec: codec.clone(),
            error,
        })?;
    let window = media_window
        .zip(params.sample_rate)
        .map(|(window, rate)| window.at_rate(rate));
    Ok(OpenedTrack {
        reader,
        track_id,
        params,
        codec,
        decoder,
        window,
    })
}

/// Words a symphonia error for people; a premature end of file is the usual
/// sign of a truncated upload.
pub(crate) fn describe(err: &SymphoniaError) -> String {
    match err {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends unexpectedly (truncated?)".to_owned()
        }
        other => other.to_string(),
    }
}

/// `frames` at `rate` in seconds, for messages and reports; without a usable
/// rate it is the frame count itself, so a message still shows a number.
pub(crate) fn seconds(frames: u64, rate: Option<u32>) -> f64 {
    frames as f64 / f64::from(rate.unwrap_or(1).max(1))
}
