//! Opening a file's audio track with symphonia, shared by the probe and the
//! decoder so both read files the same way and word the same failures the
//! same way.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::{Hint, Probe, QueryDescriptor};
use symphonia::default::formats::{AiffReader, FlacReader, IsoMp4Reader, MpaReader, OggReader, WavReader};

use crate::edit_list::{FrameWindow, read_media_window};
use crate::sniff::SUPPORTED_FORMATS;
use crate::structure;
use crate::{AudioError, AudioFormat};

/// Empty packets in a row after which a stream is refused: they cost no
/// bytes, so a sample table can declare billions of them in a small file.
const MAX_EMPTY_PACKETS_IN_A_ROW: u32 = 4096;

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
    /// The structure check refused the file before symphonia saw it.
    Refused(AudioError),
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
            OpenFailure::Refused(error) => error,
        }
    }
}

/// Checks `source` (`len` bytes of `format`) for declared sizes it cannot
/// hold, then opens it with the reader of that format alone and prepares
/// the decoder of its first audio track. Gapless trimming is on, so packet
/// durations exclude encoder delay and padding; for MP4, whose edit list
/// symphonia does not read, [`OpenedTrack::window`] carries it instead.
pub(crate) fn open_track(
    mut source: Box<dyn MediaSource>,
    len: u64,
    format: AudioFormat,
) -> Result<OpenedTrack, OpenFailure> {
    let layout = structure::check(&mut *source, len, format).map_err(|err| match err {
        AudioError::Io(io) => OpenFailure::Container(SymphoniaError::IoError(io)),
        other => OpenFailure::Refused(other),
    })?;
    let media_window = if format == AudioFormat::M4a {
        read_media_window(&mut source).map_err(|err| OpenFailure::Container(SymphoniaError::IoError(err)))?
    } else {
        None
    };
    let mut source: Box<dyn MediaSource> = match layout.patch {
        Some((at, bytes)) => {
            Box::new(Patched::new(source, at, bytes).map_err(|err| OpenFailure::Container(err.into()))?)
        }
        None => source,
    };
    let source: Box<dyn MediaSource> = if layout.start > 0 {
        Box::new(Skipped::new(source, layout.start).map_err(|err| OpenFailure::Container(err.into()))?)
    } else {
        source
            .seek(SeekFrom::Start(0))
            .map_err(|err| OpenFailure::Container(err.into()))?;
        source
    };
    let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    // The stored text of each format is also its usual file extension.
    hint.with_extension(format.as_str());
    let probed = probe_for(format)
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

/// A probe that knows only `format`'s reader. symphonia's default probe
/// scans for the marker of every format it has, CAF and Matroska included,
/// whose readers crash on crafted input; a file sniffed as one format is
/// read as that format or not at all.
fn probe_for(format: AudioFormat) -> &'static Probe {
    fn only<F: QueryDescriptor>() -> Probe {
        let mut probe = Probe::default();
        probe.register_all::<F>();
        probe
    }
    static WAV: LazyLock<Probe> = LazyLock::new(only::<WavReader>);
    static AIFF: LazyLock<Probe> = LazyLock::new(only::<AiffReader>);
    static FLAC: LazyLock<Probe> = LazyLock::new(only::<FlacReader>);
    static MP3: LazyLock<Probe> = LazyLock::new(only::<MpaReader>);
    static OGG: LazyLock<Probe> = LazyLock::new(only::<OggReader>);
    static M4A: LazyLock<Probe> = LazyLock::new(only::<IsoMp4Reader>);
    match format {
        AudioFormat::Wav => &WAV,
        AudioFormat::Aiff => &AIFF,
        AudioFormat::Flac => &FLAC,
        AudioFormat::Mp3 => &MP3,
        AudioFormat::Ogg => &OGG,
        AudioFormat::M4a => &M4A,
    }
}

/// A source seen from `start` on: the container without the ID3v2 tags in
/// front of it, which symphonia would otherwise read whole.
struct Skipped {
    inner: Box<dyn MediaSource>,
    start: u64,
}

impl Skipped {
    fn new(mut inner: Box<dyn MediaSource>, start: u64) -> io::Result<Self> {
        inner.seek(SeekFrom::Start(start))?;
        Ok(Self { inner, start })
    }
}

impl Read for Skipped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for Skipped {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(at) => SeekFrom::Start(
                self.start
                    .checked_add(at)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek past the end"))?,
            ),
            relative => relative,
        };
        let at = self.inner.seek(target)?;
        if at < self.start {
            self.inner.seek(SeekFrom::Start(self.start))?;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the audio",
            ));
        }
        Ok(at - self.start)
    }
}

impl MediaSource for Skipped {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len().map(|len| len.saturating_sub(self.start))
    }
}

/// A source with four bytes at `at` replaced; see [`structure::Layout::patch`].
struct Patched {
    inner: Box<dyn MediaSource>,
    at: u64,
    bytes: [u8; 4],
    position: u64,
}

impl Patched {
    fn new(mut inner: Box<dyn MediaSource>, at: u64, bytes: [u8; 4]) -> io::Result<Self> {
        inner.seek(SeekFrom::Start(0))?;
        Ok(Self {
            inner,
            at,
            bytes,
            position: 0,
        })
    }
}

impl Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let span = self.position..self.position + read as u64;
        for (i, byte) in self.bytes.iter().enumerate() {
            let at = self.at + i as u64;
            if span.contains(&at) {
                buf[(at - self.position) as usize] = *byte;
            }
        }
        self.position = span.end;
        Ok(read)
    }
}

impl Seek for Patched {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.position = self.inner.seek(pos)?;
        Ok(self.position)
    }
}

impl MediaSource for Patched {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

/// Counts empty packets in a row, which cost no bytes of the file.
#[derive(Debug, Default)]
pub(crate) struct EmptyPackets {
    in_a_row: u32,
}

impl EmptyPackets {
    /// Notes `packet`; fails once too many in a row held no data.
    pub(crate) fn note(&mut self, packet: &Packet, format: AudioFormat) -> Result<(), AudioError> {
        if packet.data.is_empty() {
            self.in_a_row += 1;
            if self.in_a_row > MAX_EMPTY_PACKETS_IN_A_ROW {
                return Err(AudioError::Corrupt(format!(
                    "this {} file declares more than {MAX_EMPTY_PACKETS_IN_A_ROW} empty packets in a row",
                    format.display_name()
                )));
            }
        } else {
            self.in_a_row = 0;
        }
        Ok(())
    }
}

/// Words a symphonia error for people; a premature end of file is the usual
/// sign of a truncated upload.
pub(crate) fn describe(err: &SymphoniaError) -> String {
    match err {
        SymphoniaError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_of_empty_packets_is_refused() {
        let mut empty = EmptyPackets::default();
        let nothing = Packet::new_from_slice(0, 0, 1024, &[]);
        let something = Packet::new_from_slice(0, 0, 1024, &[1, 2, 3]);
        for _ in 0..MAX_EMPTY_PACKETS_IN_A_ROW {
            empty.note(&nothing, AudioFormat::M4a).unwrap();
        }
        // Data in between starts the count again.
        empty.note(&something, AudioFormat::M4a).unwrap();
        for _ in 0..MAX_EMPTY_PACKETS_IN_A_ROW {
            empty.note(&nothing, AudioFormat::M4a).unwrap();
        }
        let err = empty.note(&nothing, AudioFormat::M4a).unwrap_err();
        assert!(err.to_string().contains("empty packets in a row"), "{err}");
    }

    #[test]
    fn skipped_and_patched_sources_show_the_file_as_checked() {
        let bytes: Vec<u8> = (0..100).collect();
        let mut skipped = Skipped::new(Box::new(io::Cursor::new(bytes.clone())), 10).unwrap();
        let mut head = [0; 4];
        skipped.read_exact(&mut head).unwrap();
        assert_eq!(head, [10, 11, 12, 13]);
        assert_eq!(skipped.seek(SeekFrom::Start(5)).unwrap(), 5);
        assert_eq!(skipped.seek(SeekFrom::End(0)).unwrap(), 90);
        assert_eq!(skipped.byte_len(), Some(90));
        assert!(skipped.seek(SeekFrom::Current(-95)).is_err());
        let mut patched = Patched::new(Box::new(io::Cursor::new(bytes)), 6, [0xAA; 4]).unwrap();
        let mut all = Vec::new();
        // Reads that split the patched bytes still see all of them.
        let mut piece = [0; 7];
        while let Ok(read @ 1..) = patched.read(&mut piece) {
            all.extend_from_slice(&piece[..read]);
        }
        assert_eq!(&all[4..12], &[4, 5, 0xAA, 0xAA, 0xAA, 0xAA, 10, 11]);
        patched.seek(SeekFrom::Start(8)).unwrap();
        patched.read_exact(&mut head).unwrap();
        assert_eq!(head, [0xAA, 0xAA, 10, 11]);
    }
}
