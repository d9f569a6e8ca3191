//! Checks the sizes a container declares against the bytes that are there,
//! before symphonia reads the file.
//!
//! symphonia allocates what a header declares before it reads it: a FLAC
//! picture or comment, a Vorbis comment, an MP4 table, string or sample, a
//! RIFF `LIST` entry, a Vorbis codebook. It also trusts a child box to fit
//! its parent. A file of a few hundred bytes can so ask for gigabytes, and a
//! failed allocation aborts the whole process, which no `catch_unwind` can
//! stop. Everything symphonia would size from the file is therefore checked
//! here, first, against what the file (or the enclosing structure) holds.
//!
//! The checks mirror how symphonia 0.5 reads each structure; they refuse a
//! file rather than repair it, and they read only headers, never the audio.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};

use crate::{AudioError, AudioFormat};

/// Where a container starts and what its header's length is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset of the container: past any leading ID3v2 tags, which are
    /// skipped rather than read (Traum uses no tags, and a tag may declare
    /// up to 256 MB of pictures).
    pub start: u64,
    /// Bytes to show symphonia instead of the file's, at an offset: the
    /// true length of a WAV's data where the header holds the placeholder
    /// 0xFFFFFFFF (written by a program streaming to a pipe, which cannot
    /// know it), which symphonia would take for 37 hours at 16 kHz.
    pub patch: Option<(u64, [u8; 4])>,
}

/// The largest MP4 `moov` or `moof` box checked (and so accepted). A
/// 30-minute AAC track's sample tables take about 1 MB.
pub(crate) const MAX_MP4_INDEX_BYTES: u64 = 64 << 20;

/// The largest Ogg header packet (comments with embedded pictures included)
/// accepted.
const MAX_OGG_HEADER_PACKET: usize = 64 << 20;

/// Vorbis codebook limits: libvorbis refuses a book whose dimensions and
/// entries need more than 24 bits together; the totals bound what all
/// books of one stream may cost (real encoders stay below 100 000 entries).
const MAX_VORBIS_BOOK_BITS: u32 = 24;
const MAX_VORBIS_ENTRIES: u64 = 1 << 20;
const MAX_VORBIS_LOOKUP_VALUES: u64 = 1 << 22;

/// The most frames per packet a QuickTime PCM description may declare.
const MAX_PCM_FRAMES_PER_PACKET: u32 = 1 << 16;

/// The largest ALAC frame accepted (the encoder's default is 4096).
const MAX_ALAC_FRAME_LENGTH: u32 = 1 << 16;

/// Nesting deeper than any real MP4 needs (about 9 levels) is refused
/// rather than followed.
const MAX_MP4_DEPTH: u32 = 16;

/// Checks `format`'s structure in `reader`, which holds `len` bytes.
pub(crate) fn check<R: Read + Seek + ?Sized>(
    reader: &mut R,
    len: u64,
    format: AudioFormat,
) -> Result<Layout, AudioError> {
    let mut file = File {
        reader,
        len,
        format,
        window: Vec::new(),
        window_at: 0,
    };
    let mut layout = Layout {
        start: 0,
        patch: None,
    };
    match format {
        AudioFormat::Wav => layout.patch = file.wav()?,
        AudioFormat::Aiff => file.aiff()?,
        AudioFormat::Flac => {
            layout.start = file.skip_id3()?;
            file.flac(layout.start)?;
        }
        AudioFormat::Mp3 => layout.start = file.skip_id3()?,
        AudioFormat::Ogg => file.ogg()?,
        AudioFormat::M4a => file.mp4()?,
    }
    Ok(layout)
}

/// The file under check.
struct File<'a, R: ?Sized> {
    reader: &'a mut R,
    len: u64,
    format: AudioFormat,
    /// The last window read, from `window_at`: the walks read headers a
    /// few bytes apart, and a file of tiny chunks would otherwise cost a
    /// system call per header.
    window: Vec<u8>,
    window_at: u64,
}

/// How much [`File::read_at`] reads ahead for small reads.
const WINDOW_BYTES: u64 = 64 * 1024;

impl<R: Read + Seek + ?Sized> File<'_, R> {
    /// The error for a structure that declares more than there is.
    fn refuse(&self, what: impl std::fmt::Display) -> AudioError {
        AudioError::Corrupt(format!(
            "this {} file is damaged or crafted: {what}",
            self.format.display_name()
        ))
    }

    /// Up to `max` bytes at `offset`; fewer at the end of the file.
    fn read_at(&mut self, offset: u64, max: u64) -> Result<Vec<u8>, AudioError> {
        let want = max.min(self.len.saturating_sub(offset));
        let window_end = self.window_at + self.window.len() as u64;
        if offset >= self.window_at && offset + want <= window_end {
            let start = (offset - self.window_at) as usize;
            return Ok(self.window[start..start + want as usize].to_vec());
        }
        if want < WINDOW_BYTES {
            self.window = self.read_exactly_at(offset, WINDOW_BYTES)?;
            self.window_at = offset;
            let held = self.window.len().min(want as usize);
            return Ok(self.window[..held].to_vec());
        }
        self.read_exactly_at(offset, want)
    }

    /// Up to `max` bytes at `offset`, straight from the reader.
    fn read_exactly_at(&mut self, offset: u64, max: u64) -> Result<Vec<u8>, AudioError> {
        let want = max.min(self.len.saturating_sub(offset));
        let mut buf = vec![0; usize::try_from(want).map_err(|_| self.refuse("a header is too large"))?];
        self.reader.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Skips the ID3v2 tags at the start, returning where the audio begins.
    fn skip_id3(&mut self) -> Result<u64, AudioError> {
        let mut at = 0;
        // As many as the sniffer skips, so both agree where the audio starts.
        for _ in 0..crate::sniff::MAX_ID3_TAGS {
            let header = self.read_at(at, 10)?;
            let Some(size) = crate::sniff::id3_len(&header) else {
                return Ok(at);
            };
            let end = at + size;
            if end > self.len {
                return Err(self.refuse(format_args!(
                    "its ID3v2 tag declares {size} bytes but the file holds {}",
                    self.len - at
                )));
            }
            at = end;
        }
        Err(self.refuse(format_args!(
            "it starts with more than {} ID3v2 tags",
            crate::sniff::MAX_ID3_TAGS
        )))
    }

    /// RIFF/WAVE: every chunk before `data` must fit in the file (symphonia
    /// only compares a chunk with the RIFF header's length, which may itself
    /// be a placeholder, and reads `LIST` entries whole). Returns the true
    /// data length where the header has the streaming placeholder.
    fn wav(&mut self) -> Result<Option<(u64, [u8; 4])>, AudioError> {
        let header = self.read_at(0, 12)?;
        if header.starts_with(b"RF64") || header.starts_with(b"BW64") {
            return Err(AudioError::Unsupported(
                "RF64/BW64 WAV files (the 64-bit variant for audio over 4 GB) are not supported; \
                 convert to FLAC or a plain WAV"
                    .to_owned(),
            ));
        }
        let mut at = 12;
        while at + 8 <= self.len {
            let chunk = self.read_at(at, 8)?;
            let id = fourcc(&chunk[..4]);
            let size = u64::from(le_u32(&chunk[4..8]));
            if &chunk[..4] == b"data" {
                if size != u64::from(u32::MAX) {
                    return Ok(None);
                }
                let held = (self.len - at - 8).min(u64::from(u32::MAX - 1)) as u32;
                return Ok(Some((at + 4, held.to_le_bytes())));
            }
            let available = self.len - at - 8;
            if size > available {
                return Err(self.refuse(format_args!(
                    "its `{id}` chunk declares {size} bytes but only {available} follow"
                )));
            }
            if &chunk[..4] == b"fmt " && size >= 16 {
                let fmt = self.read_at(at + 8, size.min(40))?;
                // symphonia builds the time base from the rate, and a zero
                // there panics.
                if le_u32(&fmt[4..8]) == 0 {
                    return Err(self.refuse("its sample rate is 0 Hz"));
                }
                if fmt.len() >= 40 {
                    check_channel_mask(&fmt).map_err(|what| self.refuse(what))?;
                }
            }
            at += 8 + size + (size & 1);
        }
        Ok(None)
    }

    /// AIFF/AIFF-C: every chunk before `SSND` must fit in the file.
    fn aiff(&mut self) -> Result<(), AudioError> {
        let mut at = 12;
        while at + 8 <= self.len {
            let chunk = self.read_at(at, 8)?;
            let id = fourcc(&chunk[..4]);
            let size = u64::from(be_u32(&chunk[4..8]));
            if &chunk[..4] == b"SSND" {
                if size < 8 {
                    return Err(self.refuse(format_args!(
                        "its `SSND` chunk is {size} bytes, too short for its own header"
                    )));
                }
                return Ok(());
            }
            let available = self.len - at - 8;
            if size > available {
                return Err(self.refuse(format_args!(
                    "its `{id}` chunk declares {size} bytes but only {available} follow"
                )));
            }
            if &chunk[..4] == b"COMM" && size >= 18 {
                let comm = self.read_at(at + 8, 18)?;
                // As symphonia converts it: an 80-bit float cast to whole Hz,
                // of which 0 makes its time base panic.
                // NaN casts to 0 as well.
                let rate = extended_to_f64(&comm[8..18]);
                if rate.is_nan() || rate < 1.0 {
                    return Err(self.refuse("its sample rate is below 1 Hz"));
                }
            }
            at += 8 + size + (size & 1);
        }
        Ok(())
    }

    /// Native FLAC: the metadata blocks after the `fLaC` marker at `start`.
    fn flac(&mut self, start: u64) -> Result<(), AudioError> {
        let mut at = start + 4;
        loop {
            let header = self.read_at(at, 4)?;
            if header.len() < 4 {
                // symphonia reports the missing audio itself.
                return Ok(());
            }
            let last = header[0] & 0x80 != 0;
            let kind = header[0] & 0x7F;
            let size = u64::from(be_u24(&header[1..4]));
            let available = self.len - at - 4;
            if size > available {
                return Err(self.refuse(format_args!(
                    "its {} metadata block declares {size} bytes but only {available} follow",
                    flac_block_name(kind)
                )));
            }
            // A block holds at most 16 MB, and this one fits in the file.
            if matches!(kind, 2 | 4 | 6) {
                let body = self.read_at(at + 4, size)?;
                check_flac_block(kind, &body).map_err(|what| self.refuse(what))?;
            }
            at += 4 + size;
            if last {
                return Ok(());
            }
        }
    }

    /// Ogg: the header packets of every logical stream, wherever a stream
    /// begins (a chained file starts new streams mid-way).
    fn ogg(&mut self) -> Result<(), AudioError> {
        // By serial number; a map, as a file can begin thousands of streams.
        let mut streams: HashMap<u32, OggStream> = HashMap::new();
        let mut at = 0;
        while at + 27 <= self.len {
            let header = self.read_at(at, 27)?;
            if &header[..4] != b"OggS" {
                // symphonia scans for the next capture pattern; so do we.
                match self.find_ogg_page(at + 1)? {
                    Some(next) => {
                        at = next;
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            let segments = u64::from(header[26]);
            let lacing = self.read_at(at + 27, segments)?;
            if (lacing.len() as u64) < segments {
                return Ok(());
            }
            let body_len: u64 = lacing.iter().map(|&b| u64::from(b)).sum();
            let page_len = 27 + segments + body_len;
            if at + page_len > self.len {
                // A truncated last page: symphonia stops there too.
                return Ok(());
            }
            let flags = header[5];
            let serial = le_u32(&header[14..18]);
            let stored_crc = le_u32(&header[22..26]);
            let wants_body = flags & 0x02 != 0 || streams.get(&serial).is_some_and(OggStream::in_headers);
            if wants_body {
                let page = self.read_at(at, page_len)?;
                // symphonia drops a page whose checksum is wrong; a check
                // that read it would judge packets symphonia never sees.
                if ogg_crc(&page) == stored_crc {
                    let body = &page[(27 + segments) as usize..];
                    self.ogg_page(&mut streams, serial, flags, &lacing, body)?;
                }
            }
            at += page_len;
        }
        Ok(())
    }

    fn find_ogg_page(&mut self, from: u64) -> Result<Option<u64>, AudioError> {
        const WINDOW: u64 = 64 * 1024;
        let mut at = from;
        while at < self.len {
            let window = self.read_at(at, WINDOW + 3)?;
            if let Some(found) = window.windows(4).position(|w| w == b"OggS") {
                return Ok(Some(at + found as u64));
            }
            if (window.len() as u64) < WINDOW + 3 {
                return Ok(None);
            }
            at += WINDOW;
        }
        Ok(None)
    }

    fn ogg_page(
        &self,
        streams: &mut HashMap<u32, OggStream>,
        serial: u32,
        flags: u8,
        lacing: &[u8],
        body: &[u8],
    ) -> Result<(), AudioError> {
        if flags & 0x02 != 0 {
            streams.insert(serial, OggStream::default());
        }
        let Some(stream) = streams.get_mut(&serial) else {
            return Ok(());
        };
        let continued = flags & 0x01 != 0;
        if !continued {
            stream.partial.clear();
        }
        let mut skipping = continued && stream.partial.is_empty() && stream.packets > 0;
        let mut offset = 0;
        for &segment in lacing {
            let piece = &body[offset..offset + usize::from(segment)];
            offset += usize::from(segment);
            if !skipping {
                if stream.partial.len() + piece.len() > MAX_OGG_HEADER_PACKET {
                    return Err(self.refuse(format_args!(
                        "an Ogg header packet is larger than {} MB",
                        MAX_OGG_HEADER_PACKET >> 20
                    )));
                }
                stream.partial.extend_from_slice(piece);
            }
            if segment < 255 {
                if !skipping {
                    let packet = std::mem::take(&mut stream.partial);
                    stream.header_packet(&packet).map_err(|what| match what {
                        Refusal::Damaged(what) => self.refuse(what),
                        Refusal::Unsupported(what) => AudioError::Unsupported(what),
                    })?;
                }
                skipping = false;
                if !stream.in_headers() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// MP4: the top-level boxes symphonia parses, and everything inside
    /// them.
    fn mp4(&mut self) -> Result<(), AudioError> {
        let mut at = 0;
        while at + 8 <= self.len {
            let header = self.read_at(at, 16)?;
            let kind = fourcc(&header[4..8]);
            let (size, header_len) = match be_u32(&header[..4]) {
                0 => (self.len - at, 8),
                1 if header.len() < 16 => return Err(self.refuse("its last box header is cut off")),
                1 => (be_u64(&header[8..16]), 16),
                size => (u64::from(size), 8),
            };
            if size < header_len {
                return Err(self.refuse(format_args!(
                    "its `{kind}` box is {size} bytes, too short for its own header"
                )));
            }
            let available = self.len - at;
            if size > available {
                // The media data is only seeked into: a cut-off `mdat` is a
                // truncated file, which the probe words as such.
                if &header[4..8] == b"mdat" {
                    return Ok(());
                }
                return Err(self.refuse(format_args!(
                    "its top-level `{kind}` box declares {size} bytes but only {available} remain"
                )));
            }
            match &header[4..8] {
                b"moov" | b"moof" | b"meta" | b"sidx" | b"ftyp" if be_u32(&header[..4]) == 0 => {
                    // symphonia reads a box of size 0 as empty, whatever follows.
                    return Err(self.refuse(format_args!("its top-level `{kind}` box has size 0")));
                }
                b"moov" | b"moof" | b"meta" | b"sidx" | b"ftyp" => {
                    let body_len = size - header_len;
                    if body_len > MAX_MP4_INDEX_BYTES {
                        return Err(AudioError::Unsupported(format!(
                            "the MP4 `{kind}` box is {} MB; Traum reads at most {} MB of index",
                            body_len >> 20,
                            MAX_MP4_INDEX_BYTES >> 20
                        )));
                    }
                    let body = self.read_at(at + header_len, body_len)?;
                    let mut check = Mp4Check { file_len: self.len };
                    check
                        .atom(&header[4..8], &body, 0)
                        .map_err(|what| self.refuse(what))?;
                }
                _ => {}
            }
            at += size;
        }
        Ok(())
    }
}

/// An extensible WAV format's channel mask against its channel count:
/// symphonia adds the missing channels above the mask's highest bit with
/// shifts that overflow when more than 31 are missing or the mask already
/// uses bit 31.
fn check_channel_mask(fmt: &[u8]) -> Result<(), String> {
    if le_u16(&fmt[..2]) != 0xFFFE || le_u16(&fmt[16..18]) != 22 {
        return Ok(());
    }
    let channels = u32::from(le_u16(&fmt[2..4]));
    let mask = le_u32(&fmt[20..24]);
    let missing = channels.saturating_sub(mask.count_ones());
    if missing > 0 && (missing > 31 || mask & 0x8000_0000 != 0) {
        return Err(format!(
            "its channel mask {mask:#010x} cannot describe {channels} channels"
        ));
    }
    Ok(())
}

/// An IEEE 754 80-bit extended float (AIFF's sample rate).
fn extended_to_f64(bytes: &[u8]) -> f64 {
    let sign_exponent = u16::from_be_bytes([bytes[0], bytes[1]]);
    let exponent = i32::from(sign_exponent & 0x7FFF);
    let fraction = be_u64(&bytes[2..10]);
    let magnitude = if exponent == 0x7FFF {
        if fraction == 0 { f64::INFINITY } else { f64::NAN }
    } else {
        fraction as f64 * 2_f64.powi(exponent - 16_383 - 63)
    };
    if sign_exponent & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

fn flac_block_name(kind: u8) -> &'static str {
    match kind {
        0 => "STREAMINFO",
        1 => "PADDING",
        2 => "APPLICATION",
        3 => "SEEKTABLE",
        4 => "VORBIS_COMMENT",
        5 => "CUESHEET",
        6 => "PICTURE",
        _ => "reserved",
    }
}

/// The FLAC metadata blocks symphonia sizes allocations from.
fn check_flac_block(kind: u8, body: &[u8]) -> Result<(), String> {
    match kind {
        2 if body.len() < 4 => Err(format!(
            "its APPLICATION block is {} bytes, shorter than its 4-byte id",
            body.len()
        )),
        4 => check_vorbis_comments(body, "VORBIS_COMMENT block"),
        6 => check_flac_picture(body, "PICTURE block"),
        _ => Ok(()),
    }
}

/// A FLAC picture (a PICTURE block, or a `METADATA_BLOCK_PICTURE` comment):
/// each length-prefixed field must fit in what holds it.
fn check_flac_picture(body: &[u8], what: &str) -> Result<(), String> {
    let mut rest = Fields::new(body, what);
    rest.skip(4, "picture type")?;
    rest.be_sized("media type")?;
    rest.be_sized("description")?;
    rest.skip(16, "picture dimensions")?;
    rest.be_sized("image data")?;
    Ok(())
}

/// A Vorbis comment list (without the framing bit): vendor string, count,
/// then length-prefixed comments, each of which must fit; a picture
/// comment is checked as a picture.
fn check_vorbis_comments(body: &[u8], what: &str) -> Result<(), String> {
    let mut rest = Fields::new(body, what);
    rest.le_sized("vendor string")?;
    let count = rest.le_u32("comment count")?;
    for index in 0..count {
        if rest.remaining() < 4 {
            return Err(format!(
                "its {what} declares {count} comments but holds only {index}"
            ));
        }
        let comment = rest.le_sized("comment")?;
        let Some(split) = comment.iter().position(|&b| b == b'=') else {
            continue;
        };
        if comment[..split].eq_ignore_ascii_case(b"METADATA_BLOCK_PICTURE")
            && let Some(picture) = base64_decode(&comment[split + 1..])
        {
            check_flac_picture(&picture, "embedded picture comment")?;
        }
    }
    Ok(())
}

/// Reads length-prefixed fields, refusing any that runs past the end.
struct Fields<'a> {
    rest: &'a [u8],
    what: &'a str,
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8], what: &'a str) -> Self {
        Self { rest, what }
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn skip(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!(
                "its {} ends inside the {field} ({n} bytes needed, {} left)",
                self.what,
                self.rest.len()
            ));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn le_u32(&mut self, field: &str) -> Result<u32, String> {
        self.skip(4, field).map(le_u32)
    }

    fn sized(&mut self, declared: u32, field: &str) -> Result<&'a [u8], String> {
        let declared = declared as usize;
        if declared > self.rest.len() {
            return Err(format!(
                "its {} declares {declared} bytes of {field} but holds only {}",
                self.what,
                self.rest.len()
            ));
        }
        self.skip(declared, field)
    }

    fn le_sized(&mut self, field: &str) -> Result<&'a [u8], String> {
        let declared = self.le_u32(field)?;
        self.sized(declared, field)
    }

    fn be_sized(&mut self, field: &str) -> Result<&'a [u8], String> {
        let declared = self.skip(4, field).map(be_u32)?;
        self.sized(declared, field)
    }
}

/// Base64 as symphonia decodes picture comments (RFC 4648, `=` padding);
/// `None` where symphonia would give up on the comment too.
pub(crate) fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(symbol: u8) -> Option<u32> {
        Some(u32::from(match symbol {
            b'A'..=b'Z' => symbol - b'A',
            b'a'..=b'z' => symbol - b'a' + 26,
            b'0'..=b'9' => symbol - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    for group in text.chunks(4) {
        let mut bits = 0_u32;
        for &symbol in group {
            bits = (bits << 6) | value(symbol)?;
        }
        bits <<= 6 * (4 - group.len() as u32);
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len().max(1)]);
    }
    Some(out)
}

/// What an Ogg header packet check found wrong.
enum Refusal {
    Damaged(String),
    Unsupported(String),
}

/// One logical Ogg stream, while its header packets arrive.
#[derive(Default)]
struct OggStream {
    /// Header packets seen so far.
    packets: u32,
    /// `None` until the first packet says what the stream is.
    vorbis: Option<bool>,
    partial: Vec<u8>,
}

impl OggStream {
    /// Vorbis has three header packets; a stream of another kind has no
    /// more to check once its first packet is seen.
    fn in_headers(&self) -> bool {
        match self.vorbis {
            None => true,
            Some(true) => self.packets < 3,
            Some(false) => false,
        }
    }

    fn header_packet(&mut self, packet: &[u8]) -> Result<(), Refusal> {
        self.packets += 1;
        match self.packets {
            1 => {
                if packet.starts_with(b"\x7fFLAC") || packet.starts_with(b"fLaC") {
                    return Err(Refusal::Unsupported(
                        "the Ogg file carries a FLAC stream, which is not supported inside Ogg; \
                         upload native FLAC"
                            .to_owned(),
                    ));
                }
                if packet.starts_with(b"OpusHead") {
                    return Err(Refusal::Unsupported(
                        "the Ogg file carries an Opus stream, which is not supported".to_owned(),
                    ));
                }
                self.vorbis = Some(packet.starts_with(b"\x01vorbis"));
                Ok(())
            }
            2 => match packet.strip_prefix(b"\x03vorbis") {
                Some(comments) => {
                    check_vorbis_comments(comments, "Vorbis comment header").map_err(Refusal::Damaged)
                }
                None => Ok(()),
            },
            _ => match packet.strip_prefix(b"\x05vorbis") {
                Some(setup) => check_vorbis_codebooks(setup).map_err(Refusal::Damaged),
                None => Ok(()),
            },
        }
    }
}

/// The codebooks of a Vorbis setup header, as far as they parse: symphonia
/// allocates each book's lengths and lookup table from its declared entry
/// count and dimensions, which a few bits can set to 2^40 values.
fn check_vorbis_codebooks(setup: &[u8]) -> Result<(), String> {
    let mut bits = Bits::new(setup);
    let Some(count) = bits.read(8).map(|n| n + 1) else {
        return Ok(());
    };
    let (mut entries_total, mut lookup_total) = (0_u64, 0_u64);
    for book in 0..count {
        // A header that stops parsing here is symphonia's to refuse.
        if bits.read(24) != Some(0x564342) {
            return Ok(());
        }
        let (Some(dimensions), Some(entries)) = (bits.read(16), bits.read(24)) else {
            return Ok(());
        };
        if ilog(dimensions) + ilog(entries) > MAX_VORBIS_BOOK_BITS {
            return Err(format!(
                "Vorbis codebook {book} declares {entries} entries of {dimensions} dimensions"
            ));
        }
        entries_total += u64::from(entries);
        if entries_total > MAX_VORBIS_ENTRIES {
            return Err(format!(
                "its Vorbis codebooks declare more than {MAX_VORBIS_ENTRIES} entries in all"
            ));
        }
        if skip_codeword_lengths(&mut bits, entries).is_none() {
            return Ok(());
        }
        let Some(lookup_type) = bits.read(4) else {
            return Ok(());
        };
        if lookup_type == 0 {
            continue;
        }
        if lookup_type > 2 {
            return Ok(());
        }
        if dimensions == 0 {
            return Err(format!(
                "Vorbis codebook {book} has a lookup table but no dimensions"
            ));
        }
        lookup_total += u64::from(entries) * u64::from(dimensions);
        if lookup_total > MAX_VORBIS_LOOKUP_VALUES {
            return Err(format!(
                "its Vorbis codebooks declare lookup tables of more than {MAX_VORBIS_LOOKUP_VALUES} values"
            ));
        }
        let (Some(_min), Some(_delta), Some(value_bits), Some(_sequence)) =
            (bits.read(32), bits.read(32), bits.read(4), bits.read(1))
        else {
            return Ok(());
        };
        let values = if lookup_type == 1 {
            lookup1_values(entries, dimensions)
        } else {
            u64::from(entries) * u64::from(dimensions)
        };
        if !bits.skip(values * u64::from(value_bits + 1)) {
            return Ok(());
        }
    }
    Ok(())
}

/// Skips a codebook's codeword lengths; `None` where the header ends or is
/// inconsistent (symphonia refuses it then).
fn skip_codeword_lengths(bits: &mut Bits<'_>, entries: u32) -> Option<()> {
    if bits.read(1)? == 0 {
        let sparse = bits.read(1)? == 1;
        for _ in 0..entries {
            if !sparse || bits.read(1)? == 1 {
                bits.read(5)?;
            }
        }
    } else {
        bits.read(5)?;
        let mut entry = 0_u32;
        while entry < entries {
            entry = entry.checked_add(bits.read(ilog(entries - entry))?)?;
            if entry > entries {
                return None;
            }
        }
    }
    Some(())
}

/// The largest `r` with `r^dimensions <= entries` (Vorbis I, 9.2.3).
fn lookup1_values(entries: u32, dimensions: u32) -> u64 {
    let guess = f64::from(entries).powf(1.0 / f64::from(dimensions)).floor() as u64;
    let fits = |r: u64| {
        r.checked_pow(dimensions)
            .is_some_and(|power| power <= u64::from(entries))
    };
    let mut r = guess.max(1);
    while r > 1 && !fits(r) {
        r -= 1;
    }
    while fits(r + 1) {
        r += 1;
    }
    r
}

/// Bits needed to write `x` (Vorbis `ilog`).
fn ilog(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// A least-significant-bit-first reader, as Vorbis packs its headers.
struct Bits<'a> {
    data: &'a [u8],
    at: u64,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    fn read(&mut self, count: u32) -> Option<u32> {
        let mut value = 0_u64;
        for i in 0..count {
            let byte = *self.data.get(usize::try_from(self.at / 8).ok()?)?;
            let bit = (byte >> (self.at % 8)) & 1;
            value |= u64::from(bit) << i;
            self.at += 1;
        }
        u32::try_from(value).ok()
    }

    fn skip(&mut self, count: u64) -> bool {
        match self.at.checked_add(count) {
            Some(end) if end <= self.data.len() as u64 * 8 => {
                self.at = end;
                true
            }
            _ => false,
        }
    }
}

/// The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, unreflected, the
/// checksum field counted as zero).
pub(crate) fn ogg_crc(page: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0_u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u32) << 24;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04C1_1DB7
                } else {
                    crc << 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    page.iter().enumerate().fold(0_u32, |crc, (i, &byte)| {
        let byte = if (22..26).contains(&i) { 0 } else { byte };
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ byte)]
    })
}

/// Walks an MP4 box tree held in memory.
struct Mp4Check {
    file_len: u64,
}

/// How each box's contents are laid out, as far as the check cares.
enum Body {
    /// Child boxes from this offset on.
    Children(usize),
    /// A table: version/flags, a 32-bit count at `count_at`, then `count`
    /// entries of `entry` bytes from `entries_at`.
    Table {
        count_at: usize,
        entries_at: usize,
        entry: usize,
    },
    Leaf,
}

impl Mp4Check {
    /// Checks box `kind` with contents `body` at nesting `depth`.
    fn atom(&mut self, kind: &[u8], body: &[u8], depth: u32) -> Result<(), String> {
        if depth > MAX_MP4_DEPTH {
            return Err(format!("its MP4 boxes nest more than {MAX_MP4_DEPTH} deep"));
        }
        let name = fourcc(kind);
        let short = |need: usize| {
            format!(
                "its `{name}` box is {} bytes, shorter than the {need} its fields need",
                body.len()
            )
        };
        let layout = match kind {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"dinf" | b"udta" | b"mvex"
            | b"moof" | b"traf" | b"ilst" | b"wave" => Body::Children(0),
            // ISO `meta` is a full box; QuickTime's has no version and
            // starts straight with its `hdlr`.
            b"meta" if body.get(4..8) == Some(b"hdlr".as_slice()) => Body::Children(0),
            b"meta" => Body::Children(4),
            b"ftyp" if body.len() < 8 => return Err(short(8)),
            // symphonia builds the track's time base from it, and a zero
            // there panics.
            b"mdhd" => {
                let at = if body.first() == Some(&1) { 20 } else { 12 };
                let scale = body.get(at..at + 4).map(be_u32).ok_or_else(|| short(at + 4))?;
                if scale == 0 {
                    return Err("its `mdhd` box declares a time scale of 0".to_owned());
                }
                Body::Leaf
            }
            b"hdlr" if body.len() < 24 => return Err(short(24)),
            b"stsd" => {
                if body.len() < 8 {
                    return Err(short(8));
                }
                return self.sample_entries(&body[8..], depth);
            }
            b"stts" | b"ctts" => Body::Table {
                count_at: 4,
                entries_at: 8,
                entry: 8,
            },
            b"stsc" => Body::Table {
                count_at: 4,
                entries_at: 8,
                entry: 12,
            },
            b"stco" | b"stss" => Body::Table {
                count_at: 4,
                entries_at: 8,
                entry: 4,
            },
            b"co64" => Body::Table {
                count_at: 4,
                entries_at: 8,
                entry: 8,
            },
            b"elst" => Body::Table {
                count_at: 4,
                entries_at: 8,
                entry: if body.first() == Some(&1) { 20 } else { 12 },
            },
            b"stsz" => {
                if body.len() < 12 {
                    return Err(short(12));
                }
                let sample_size = be_u32(&body[4..8]);
                if u64::from(sample_size) > self.file_len {
                    return Err(format!(
                        "its `stsz` box declares samples of {sample_size} bytes, more than the whole file"
                    ));
                }
                if sample_size != 0 {
                    return Ok(());
                }
                Body::Table {
                    count_at: 8,
                    entries_at: 12,
                    entry: 4,
                }
            }
            b"trun" => return self.trun(body),
            b"sidx" => return sidx(body),
            b"esds" => return esds(body),
            b"alac" => return alac(body),
            b"dfLa" => return dfla(body),
            _ => Body::Leaf,
        };
        match layout {
            Body::Children(from) => {
                let children = body.get(from..).ok_or_else(|| short(from))?;
                self.children(kind, children, depth)
            }
            Body::Table {
                count_at,
                entries_at,
                entry,
            } => {
                let count = body
                    .get(count_at..count_at + 4)
                    .map(be_u32)
                    .ok_or_else(|| short(count_at + 4))?;
                let room = body.len().saturating_sub(entries_at) / entry;
                if count as usize > room {
                    return Err(format!(
                        "its `{name}` table declares {count} entries but holds only {room}"
                    ));
                }
                self.table(kind, &body[entries_at..entries_at + count as usize * entry])
            }
            Body::Leaf => Ok(()),
        }
    }

    /// Entries symphonia computes with: stsc's chunk numbers start at 1,
    /// stts's durations sum in 64 bits, and a sample is never larger than
    /// the file.
    fn table(&mut self, kind: &[u8], entries: &[u8]) -> Result<(), String> {
        match kind {
            b"stsc" if entries.chunks_exact(12).any(|entry| be_u32(&entry[..4]) == 0) => {
                return Err("its `stsc` table numbers a chunk 0 (chunks count from 1)".to_owned());
            }
            b"stts" => {
                let total = entries.chunks_exact(8).try_fold(0_u64, |total, entry| {
                    total.checked_add(u64::from(be_u32(&entry[..4])) * u64::from(be_u32(&entry[4..8])))
                });
                if total.is_none() {
                    return Err("its `stts` durations add up past 2^64".to_owned());
                }
                // symphonia counts the samples in 32 bits.
                let samples = entries
                    .chunks_exact(8)
                    .try_fold(0_u32, |total, entry| total.checked_add(be_u32(&entry[..4])));
                if samples.is_none() {
                    return Err("its `stts` sample counts add up past 2^32".to_owned());
                }
            }
            b"stsz" => {
                if let Some(size) = entries
                    .chunks_exact(4)
                    .map(be_u32)
                    .find(|size| u64::from(*size) > self.file_len)
                {
                    return Err(format!(
                        "its `stsz` table declares a sample of {size} bytes, more than the whole file"
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Child boxes of `parent`'s contents: each must fit in what is left.
    fn children(&mut self, parent: &[u8], mut rest: &[u8], depth: u32) -> Result<(), String> {
        let parent = fourcc(parent);
        while !rest.is_empty() {
            // A QuickTime list may end in a 4-byte zero terminator.
            if rest.len() < 8 {
                if rest.iter().all(|&b| b == 0) {
                    return Ok(());
                }
                return Err(format!("its `{parent}` box ends with {} stray bytes", rest.len()));
            }
            let kind = &rest[4..8];
            let (size, header_len) = match be_u32(&rest[..4]) {
                0 => (rest.len() as u64, 8),
                1 => match rest.get(8..16) {
                    Some(large) => (be_u64(large), 16),
                    None => return Err(format!("a box header in `{parent}` is cut off")),
                },
                size => (u64::from(size), 8),
            };
            // Only the last box of a file may run "to the end" (size 0);
            // symphonia reads one inside a parent as empty.
            if be_u32(&rest[..4]) == 0 {
                return Err(format!("its `{}` box inside `{parent}` has size 0", fourcc(kind)));
            }
            if size < header_len as u64 {
                return Err(format!(
                    "its `{}` box is {size} bytes, too short for its own header",
                    fourcc(kind)
                ));
            }
            if size > rest.len() as u64 {
                return Err(format!(
                    "its `{}` box declares {size} bytes but its parent `{parent}` holds only {}",
                    fourcc(kind),
                    rest.len()
                ));
            }
            let size = size as usize;
            let body = &rest[header_len..size];
            if parent == "ilst" {
                self.ilst_item(kind, body)?;
            } else {
                self.atom(kind, body, depth + 1)?;
            }
            rest = &rest[size..];
        }
        Ok(())
    }

    /// An iTunes metadata item (`©nam`, `covr`, `----`, ...): `data`,
    /// `mean` and `name` boxes, whose fixed fields symphonia subtracts from
    /// their size.
    fn ilst_item(&mut self, item: &[u8], mut rest: &[u8]) -> Result<(), String> {
        let item = fourcc(item);
        while rest.len() >= 8 {
            let size = be_u32(&rest[..4]) as usize;
            let kind = &rest[4..8];
            if size < 8 || size > rest.len() {
                return Err(format!(
                    "its `{}` box declares {size} bytes but its metadata item `{item}` holds only {}",
                    fourcc(kind),
                    rest.len()
                ));
            }
            let fixed = match kind {
                b"data" => 8,
                b"mean" | b"name" => 4,
                _ => 0,
            };
            if size - 8 < fixed {
                return Err(format!(
                    "its `{}` box in metadata item `{item}` is {} bytes, shorter than its {fixed} bytes of fields",
                    fourcc(kind),
                    size - 8
                ));
            }
            rest = &rest[size..];
        }
        if !rest.is_empty() {
            return Err(format!("its metadata item `{item}` ends with stray bytes"));
        }
        Ok(())
    }

    /// The sample descriptions of `stsd` (after its version and count).
    fn sample_entries(&mut self, mut rest: &[u8], depth: u32) -> Result<(), String> {
        while rest.len() >= 8 {
            let size = be_u32(&rest[..4]) as usize;
            let kind = &rest[4..8];
            if size < 8 || size > rest.len() {
                return Err(format!(
                    "its `{}` sample description declares {size} bytes but `stsd` holds only {}",
                    fourcc(kind),
                    rest.len()
                ));
            }
            let body = &rest[8..size];
            if is_audio_sample_entry(kind) {
                // The base entry (8 bytes) and the audio fields (20), more
                // in QuickTime's versions 1 and 2; symphonia subtracts what
                // it read from the entry's size.
                let version = body.get(8..10).map(be_u16);
                let fields = match version {
                    Some(1) => 44,
                    Some(2) => 64,
                    _ => 28,
                };
                let Some(children) = body.get(fields..) else {
                    return Err(format!(
                        "its `{}` sample description is {} bytes, shorter than its {fields} bytes of fields",
                        fourcc(kind),
                        body.len()
                    ));
                };
                // Version 2 declares the frames per PCM packet, which size
                // the decoder's buffer.
                let pcm = matches!(
                    kind,
                    b"lpcm"
                        | b"raw "
                        | b"sowt"
                        | b"twos"
                        | b"in24"
                        | b"in32"
                        | b"fl32"
                        | b"fl64"
                        | b"alaw"
                        | b"ulaw"
                );
                if pcm && version == Some(2) && be_u32(&body[60..64]) > MAX_PCM_FRAMES_PER_PACKET {
                    return Err(format!(
                        "its `{}` sample description declares {} frames per packet",
                        fourcc(kind),
                        be_u32(&body[60..64])
                    ));
                }
                self.children(kind, children, depth + 1)?;
            }
            rest = &rest[size..];
        }
        Ok(())
    }

    /// A track fragment run: a sample count, optional fields, then one
    /// record per sample whose size depends on the flags.
    fn trun(&mut self, body: &[u8]) -> Result<(), String> {
        if body.len() < 8 {
            return Err("its `trun` box is shorter than its header".to_owned());
        }
        let flags = be_u32(&body[..4]) & 0x00FF_FFFF;
        let count = be_u32(&body[4..8]) as usize;
        let optional = 4 * (usize::from(flags & 0x1 != 0) + usize::from(flags & 0x4 != 0));
        let per_sample = 4 * [0x100, 0x200, 0x400, 0x800]
            .iter()
            .filter(|&&bit| flags & bit != 0)
            .count();
        let room = body.len().saturating_sub(8 + optional);
        if per_sample > 0 && count > room / per_sample {
            return Err(format!(
                "its `trun` box declares {count} samples but holds only {}",
                room / per_sample
            ));
        }
        if flags & 0x200 != 0 {
            let size_at = 4 * usize::from(flags & 0x100 != 0);
            let records = &body[8 + optional..8 + optional + count * per_sample];
            if let Some(size) = records
                .chunks_exact(per_sample)
                .map(|record| be_u32(&record[size_at..size_at + 4]))
                .find(|size| u64::from(*size) > self.file_len)
            {
                return Err(format!(
                    "its `trun` box declares a sample of {size} bytes, more than the whole file"
                ));
            }
        }
        Ok(())
    }
}

/// A segment index: fixed fields by version, then 12 bytes per reference.
fn sidx(body: &[u8]) -> Result<(), String> {
    let fixed = if body.first() == Some(&1) { 28 } else { 20 };
    let count = body
        .get(fixed + 2..fixed + 4)
        .map(be_u16)
        .ok_or("its `sidx` box is shorter than its header")?;
    let room = body.len().saturating_sub(fixed + 4) / 12;
    if usize::from(count) > room {
        return Err(format!(
            "its `sidx` box declares {count} references but holds only {room}"
        ));
    }
    Ok(())
}

/// An elementary stream descriptor, walked as symphonia walks it: it reads
/// a descriptor header wherever more than 2 bytes remain, reads the decoder
/// configuration whole, subtracts fixed field sizes from declared lengths,
/// and unwraps an ES descriptor (with its decoder and SL configurations)
/// that must be there.
fn esds(body: &[u8]) -> Result<(), String> {
    let mut rest = body.get(4..).ok_or("its `esds` box is shorter than its header")?;
    let mut found = false;
    while rest.len() > 2 {
        let (tag, len, at) = descriptor_header(rest)?;
        let consumed = if tag == 0x03 {
            found = true;
            es_descriptor(&rest[at..], len)?
        } else {
            len
        };
        rest = rest
            .get(at + consumed..)
            .ok_or_else(|| too_long("`esds` descriptor", tag, len, rest.len() - at))?;
    }
    if !found {
        return Err("its `esds` box holds no ES descriptor".to_owned());
    }
    Ok(())
}

/// Reads a descriptor's tag and its length of up to four 7-bit bytes;
/// returns them and where the contents start.
fn descriptor_header(rest: &[u8]) -> Result<(u8, usize, usize), String> {
    let tag = rest[0];
    let mut len = 0_usize;
    let mut at = 1;
    for _ in 0..4 {
        let &byte = rest.get(at).ok_or("an `esds` descriptor header is cut off")?;
        at += 1;
        len = (len << 7) | usize::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, len, at))
}

fn too_long(what: &str, tag: u8, len: usize, held: usize) -> String {
    format!("its {what} {tag:#04x} declares {len} bytes but holds only {held}")
}

/// The ES descriptor's contents (`len` declared); returns the bytes
/// symphonia consumes, which exceed `len` by the optional fields it does
/// not count.
fn es_descriptor(contents: &[u8], len: usize) -> Result<usize, String> {
    if len < 3 {
        return Err(format!(
            "its ES descriptor is {len} bytes, shorter than its 3 bytes of fields"
        ));
    }
    let &flags = contents.get(2).ok_or("its ES descriptor is cut off")?;
    let mut optional = 0;
    if flags & 0x80 != 0 {
        optional += 2;
    }
    if flags & 0x40 != 0 {
        optional += 1 + usize::from(*contents.get(3 + optional).ok_or("its ES descriptor is cut off")?);
    }
    if flags & 0x20 != 0 {
        optional += 2;
    }
    let mut region = contents
        .get(3 + optional..3 + optional + len - 3)
        .ok_or_else(|| too_long("ES descriptor", 0x03, len, contents.len()))?;
    let (mut decoder, mut sl) = (false, false);
    while region.len() > 2 {
        let (tag, len, at) = descriptor_header(region)?;
        let consumed = match tag {
            0x04 => {
                decoder = true;
                decoder_config(&region[at..], len)?;
                len
            }
            // symphonia reads the one byte it needs and goes on from there.
            0x06 => {
                sl = true;
                1
            }
            _ => len,
        };
        region = region
            .get(at + consumed..)
            .ok_or_else(|| too_long("ES descriptor's descriptor", tag, len, region.len() - at))?;
    }
    if !decoder || !sl {
        return Err("its ES descriptor lacks its decoder or SL configuration".to_owned());
    }
    Ok(len + optional)
}

/// A decoder configuration: 13 bytes of fields, then descriptors, of which
/// the decoder-specific information is read whole.
fn decoder_config(contents: &[u8], len: usize) -> Result<(), String> {
    if len < 13 {
        return Err(format!(
            "its decoder configuration is {len} bytes, shorter than its 13 bytes of fields"
        ));
    }
    let mut region = contents
        .get(13..len)
        .ok_or_else(|| too_long("decoder configuration", 0x04, len, contents.len()))?;
    while region.len() > 2 {
        let (tag, len, at) = descriptor_header(region)?;
        region = region
            .get(at + len..)
            .ok_or_else(|| too_long("decoder configuration's descriptor", tag, len, region.len() - at))?;
    }
    Ok(())
}

/// The ALAC magic cookie: symphonia sizes the decoder's buffers from its
/// frame length.
fn alac(body: &[u8]) -> Result<(), String> {
    let cookie = body.get(4..).unwrap_or_default();
    if cookie.len() < 24 {
        return Err(format!(
            "its ALAC configuration is {} bytes, shorter than the 24 it needs",
            cookie.len()
        ));
    }
    let frame_length = be_u32(&cookie[..4]);
    if frame_length == 0 || frame_length > MAX_ALAC_FRAME_LENGTH {
        return Err(format!(
            "its ALAC configuration declares frames of {frame_length} samples (at most \
             {MAX_ALAC_FRAME_LENGTH} are accepted)"
        ));
    }
    Ok(())
}

/// FLAC in MP4: a full box holding FLAC metadata blocks.
fn dfla(body: &[u8]) -> Result<(), String> {
    let mut rest = body.get(4..).unwrap_or_default();
    while rest.len() >= 4 {
        let kind = rest[0] & 0x7F;
        let size = be_u24(&rest[1..4]) as usize;
        if size > rest.len() - 4 {
            return Err(format!(
                "its `dfLa` {} block declares {size} bytes but holds only {}",
                flac_block_name(kind),
                rest.len() - 4
            ));
        }
        check_flac_block(kind, &rest[4..4 + size])?;
        let last = rest[0] & 0x80 != 0;
        rest = &rest[4 + size..];
        if last {
            break;
        }
    }
    Ok(())
}

fn is_audio_sample_entry(kind: &[u8]) -> bool {
    matches!(
        kind,
        b"mp4a"
            | b"alac"
            | b"fLaC"
            | b"Opus"
            | b".mp3"
            | b"lpcm"
            | b"alaw"
            | b"ulaw"
            | b"raw "
            | b"sowt"
            | b"twos"
            | b"in24"
            | b"in32"
            | b"fl32"
            | b"fl64"
            | b"sawb"
    )
}

fn fourcc(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

fn le_u16(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[0], bytes[1]])
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn be_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn be_u24(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut word = [0_u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(word)
}
