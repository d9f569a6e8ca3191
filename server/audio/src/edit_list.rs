//! The edit list of an MP4/M4A audio track, which symphonia 0.5 reads past.
//!
//! AAC encoders start every stream with priming (1024 to 2112 frames that
//! decode to near silence) and pad the last packet; the container's edit list
//! (`moov/trak/edts/elst`) says which decoded frames are the actual audio.
//! Without it every timestamp in a file is late by the priming (+46 ms for a
//! 22.05 kHz file from ffmpeg) and its duration is long by priming plus padding.

use std::io::{self, Read, Seek, SeekFrom};

/// The largest `moov` box read into memory. A 30-minute AAC track's sample
/// tables take about 1 MB; anything far beyond that is not a music file and
/// is decoded untrimmed rather than buffered.
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// The frames of a decoded stream that are its audio: skip `skip` frames,
/// then keep `keep` (all the rest when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameWindow {
    pub skip: u64,
    pub keep: Option<u64>,
}

impl FrameWindow {
    /// Frames left of a stream of `frames` decoded frames.
    pub fn trimmed_length(&self, frames: u64) -> u64 {
        let after_skip = frames.saturating_sub(self.skip);
        self.keep.map_or(after_skip, |keep| after_skip.min(keep))
    }

    /// The frames of the next decoded block of `frames` frames that lie
    /// inside the window; blocks must be passed in stream order.
    pub fn next_range(&mut self, frames: usize) -> std::ops::Range<usize> {
        let start = self.skip.min(frames as u64) as usize;
        self.skip -= start as u64;
        let end = match self.keep.as_mut() {
            Some(keep) => {
                let kept = (*keep).min((frames - start) as u64);
                *keep -= kept;
                start + kept as usize
            }
            None => frames,
        };
        start..end
    }
}

/// A [`FrameWindow`] in the media time scale of its track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MediaWindow {
    window: FrameWindow,
    timescale: u32,
}

impl MediaWindow {
    /// The window as frames at `sample_rate`, from the media time scale the
    /// edit list counts in (for audio tracks usually the sample rate itself).
    pub fn at_rate(self, sample_rate: u32) -> FrameWindow {
        let Self { window, timescale } = self;
        if timescale == sample_rate || timescale == 0 {
            return window;
        }
        let rescale =
            |frames: u64| (u128::from(frames) * u128::from(sample_rate) / u128::from(timescale)) as u64;
        FrameWindow {
            skip: rescale(window.skip),
            keep: window.keep.map(rescale),
        }
    }
}

/// Reads the edit list of the first sound track of an MP4 file. `None` when
/// the file is not MP4, has no edit list, or uses edits other than the common
/// single trim (an initial empty edit or several segments play silence or
/// reorder audio, which is not reproduced).
///
/// Leaves `reader` at an unspecified position.
pub(super) fn read_media_window<R: Read + Seek + ?Sized>(reader: &mut R) -> io::Result<Option<MediaWindow>> {
    let Some(moov) = read_moov(reader)? else {
        return Ok(None);
    };
    let mut movie_timescale = None;
    let mut track = None;
    for (kind, body) in Boxes::new(&moov) {
        match &kind {
            b"mvhd" => movie_timescale = header_timescale(body),
            b"trak" if track.is_none() => track = sound_track_edit(body),
            _ => {}
        }
    }
    let (Some(movie_timescale), Some((edit, timescale))) = (movie_timescale, track) else {
        return Ok(None);
    };
    let keep = edit
        .segment_duration
        .filter(|_| movie_timescale > 0)
        .map(|duration| (u128::from(duration) * u128::from(timescale) / u128::from(movie_timescale)) as u64);
    Ok(Some(MediaWindow {
        window: FrameWindow {
            skip: edit.media_time,
            keep,
        },
        timescale,
    }))
}

/// The contents of the top-level `moov` box, found by walking box headers
/// (the media data is seeked over, never read).
fn read_moov<R: Read + Seek + ?Sized>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let end = reader.seek(SeekFrom::End(0))?;
    let mut at = 0_u64;
    let mut first = true;
    while at + 8 <= end {
        reader.seek(SeekFrom::Start(at))?;
        let mut header = [0_u8; 16];
        reader.read_exact(&mut header[..8])?;
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        if first && &kind != b"ftyp" {
            return Ok(None);
        }
        first = false;
        let (size, header_len) = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
            0 => (end - at, 8),
            1 if at + 16 > end => return Ok(None),
            1 => {
                reader.read_exact(&mut header[8..16])?;
                let mut large = [0_u8; 8];
                large.copy_from_slice(&header[8..16]);
                (u64::from_be_bytes(large), 16)
            }
            size => (u64::from(size), 8),
        };
        if size < header_len || at + size > end {
            return Ok(None);
        }
        if &kind == b"moov" {
            let body_len = size - header_len;
            if body_len > MAX_MOOV_BYTES {
                return Ok(None);
            }
            let mut body = vec![0_u8; body_len as usize];
            reader.read_exact(&mut body)?;
            return Ok(Some(body));
        }
        at += size;
    }
    Ok(None)
}

/// The single trimming edit of a track.
struct Edit {
    /// First media frame played, in the media time scale.
    media_time: u64,
    /// How long it plays, in the movie time scale (`None`: to the end).
    segment_duration: Option<u64>,
}

/// The edit and media time scale of `trak` if it is a sound track.
fn sound_track_edit(trak: &[u8]) -> Option<(Edit, u32)> {
    let mut edit = None;
    let mut media = None;
    for (kind, body) in Boxes::new(trak) {
        match &kind {
            b"edts" => {
                edit = Boxes::new(body)
                    .find(|(kind, _)| kind == b"elst")
                    .and_then(|(_, elst)| single_edit(elst));
            }
            b"mdia" => media = Some(body),
            _ => {}
        }
    }
    let media = media?;
    let is_sound = Boxes::new(media)
        .find(|(kind, _)| kind == b"hdlr")
        .is_some_and(|(_, hdlr)| hdlr.get(8..12) == Some(b"soun".as_slice()));
    if !is_sound {
        return None;
    }
    let timescale = Boxes::new(media)
        .find(|(kind, _)| kind == b"mdhd")
        .and_then(|(_, mdhd)| header_timescale(mdhd))?;
    Some((edit?, timescale))
}

/// The one edit of an `elst` box that plays media at normal rate, or `None`
/// for lists this module does not reproduce.
fn single_edit(elst: &[u8]) -> Option<Edit> {
    let version = *elst.first()?;
    let count = be_u32(elst.get(4..8)?);
    if count != 1 {
        return None;
    }
    let entry = elst.get(8..)?;
    let (segment_duration, media_time, rate) = if version == 1 {
        (
            be_u64(entry.get(0..8)?),
            be_u64(entry.get(8..16)?) as i64,
            entry.get(16..20)?,
        )
    } else {
        (
            u64::from(be_u32(entry.get(0..4)?)),
            i64::from(be_u32(entry.get(4..8)?) as i32),
            entry.get(8..12)?,
        )
    };
    // media_time -1 is an empty edit (silence); a rate other than 1.0 plays
    // the media faster, slower or frozen.
    if media_time < 0 || rate != [0, 1, 0, 0] {
        return None;
    }
    Some(Edit {
        media_time: media_time as u64,
        segment_duration: (segment_duration > 0).then_some(segment_duration),
    })
}

/// The time scale of an `mvhd` or `mdhd` box.
fn header_timescale(body: &[u8]) -> Option<u32> {
    let offset = if *body.first()? == 1 { 20 } else { 12 };
    Some(be_u32(body.get(offset..offset + 4)?))
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0_u8; 4];
    word.copy_from_slice(bytes);
    u32::from_be_bytes(word)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut word = [0_u8; 8];
    word.copy_from_slice(bytes);
    u64::from_be_bytes(word)
}

/// The child boxes of a container box's contents, as (type, contents); stops
/// at the first malformed header.
struct Boxes<'a> {
    rest: &'a [u8],
}

impl<'a> Boxes<'a> {
    fn new(contents: &'a [u8]) -> Self {
        Self { rest: contents }
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.rest.get(..8)?;
        let kind = [header[4], header[5], header[6], header[7]];
        let (size, header_len) = match be_u32(&header[..4]) {
            0 => (self.rest.len(), 8),
            1 => (usize::try_from(be_u64(self.rest.get(8..16)?)).ok()?, 16),
            size => (size as usize, 8),
        };
        if size < header_len || size > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let body = &self.rest[header_len..size];
        self.rest = &self.rest[size..];
        Some((kind, body))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        let mut contents = vec![version, 0, 0, 0];
        contents.extend_from_slice(body);
        mp4_box(kind, &contents)
    }

    /// A file with one track: `elst` entries (duration, media time) in
    /// version 0, the given handler and time scales.
    fn file(handler: &[u8; 4], entries: &[(u32, i32)], movie_scale: u32, media_scale: u32) -> Vec<u8> {
        let mut elst = (entries.len() as u32).to_be_bytes().to_vec();
        for (duration, media_time) in entries {
            elst.extend_from_slice(&duration.to_be_bytes());
            elst.extend_from_slice(&media_time.to_be_bytes());
            elst.extend_from_slice(&[0, 1, 0, 0]);
        }
        let timescale_header = |scale: u32| {
            let mut body = vec![0_u8; 8];
            body.extend_from_slice(&scale.to_be_bytes());
            body.extend_from_slice(&[0; 8]);
            body
        };
        let mut hdlr = vec![0_u8; 4];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let mdia = [
            full_box(b"mdhd", 0, &timescale_header(media_scale)),
            full_box(b"hdlr", 0, &hdlr),
        ]
        .concat();
        let trak = [
            mp4_box(b"tkhd", &[0; 84]),
            mp4_box(b"edts", &full_box(b"elst", 0, &elst)),
            mp4_box(b"mdia", &mdia),
        ]
        .concat();
        let moov = [
            full_box(b"mvhd", 0, &timescale_header(movie_scale)),
            mp4_box(b"trak", &trak),
        ]
        .concat();
        [
            mp4_box(b"ftyp", b"M4A \0\0\0\0"),
            mp4_box(b"mdat", &[0x55; 300]),
            mp4_box(b"moov", &moov),
        ]
        .concat()
    }

    fn window(bytes: Vec<u8>, rate: u32) -> Option<FrameWindow> {
        read_media_window(&mut Cursor::new(bytes))
            .unwrap()
            .map(|media| media.at_rate(rate))
    }

    #[test]
    fn a_single_edit_trims_priming_and_padding() {
        // ffmpeg's layout: movie time in ms, media time in samples.
        let found = window(file(b"soun", &[(1500, 1024)], 1000, 22_050), 22_050);
        assert_eq!(
            found,
            Some(FrameWindow {
                skip: 1024,
                keep: Some(33_075)
            })
        );
        // A media time scale other than the sample rate is rescaled.
        let found = window(file(b"soun", &[(1500, 2048)], 1000, 44_100), 22_050);
        assert_eq!(
            found,
            Some(FrameWindow {
                skip: 1024,
                keep: Some(33_075)
            })
        );
    }

    #[test]
    fn edits_that_are_not_a_plain_trim_are_left_alone() {
        assert_eq!(window(file(b"vide", &[(1500, 1024)], 1000, 22_050), 22_050), None);
        assert_eq!(
            window(file(b"soun", &[(500, -1), (1500, 0)], 1000, 22_050), 22_050),
            None
        );
        assert_eq!(window(file(b"soun", &[], 1000, 22_050), 22_050), None);
        let mut flac = b"fLaC".to_vec();
        flac.extend_from_slice(&[0; 64]);
        assert_eq!(window(flac, 44_100), None);
        // A box running past the end of the file ends the walk.
        let mut cut = file(b"soun", &[(1500, 1024)], 1000, 22_050);
        cut.truncate(cut.len() - 10);
        assert_eq!(window(cut, 22_050), None);
    }

    #[test]
    fn the_window_cuts_blocks_in_stream_order() {
        let mut frames = FrameWindow {
            skip: 3,
            keep: Some(4),
        };
        assert_eq!(frames.trimmed_length(10), 4);
        assert_eq!(frames.trimmed_length(5), 2);
        let mut out = Vec::new();
        for block in [
            vec![1.0, 2.0],
            vec![3.0, 4.0, 5.0],
            vec![6.0, 7.0, 8.0],
            vec![9.0],
        ] {
            let kept = frames.next_range(block.len());
            out.extend_from_slice(&block[kept]);
        }
        assert_eq!(out, vec![4.0, 5.0, 6.0, 7.0]);
    }
}
