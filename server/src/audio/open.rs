//! Opening a file's audio track with symphonia, shared by the probe and the
//! decoder so both read files the same way. Each caller words the failures
//! for its own error type.

use std::io::{Seek, SeekFrom};

use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::edit_list::{FrameWindow, read_media_window};
use crate::model::AudioFormat;

/// A demuxer positioned at the start, with the decoder for its audio track.
pub(super) struct OpenedTrack {
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
pub(super) enum OpenFailure {
    /// The container could not be read.
    Container(SymphoniaError),
    /// The container holds no audio track.
    NoTrack,
    /// The codec is not one symphonia knows.
    UnknownCodec,
    /// The codec is known but no decoder could be made for these parameters.
    Decoder { codec: String, error: SymphoniaError },
}

/// Probes `source` (with the sniffed format as a hint) and prepares the
/// decoder of its first audio track. Gapless trimming is on, so packet
/// durations exclude encoder delay and padding; for MP4, whose edit list
/// symphonia does not read, [`OpenedTrack::window`] carries it instead.
pub(super) fn open_track(
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
pub(super) fn describe(err: &SymphoniaError) -> String {
    match err {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends unexpectedly (truncated?)".to_owned()
        }
        other => other.to_string(),
    }
}
