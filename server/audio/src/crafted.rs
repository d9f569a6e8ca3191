//! Hostile files for the tests: small files that declare far more than
//! they hold, or decode to far more than they weigh. Also written out (by
//! the ignored `write_hostile_files` test) as the fixtures of the server's
//! tests and the seeds of the fuzz targets.

use std::path::{Path, PathBuf};

pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A FLAC stream of 16-bit mono at `rate` whose every frame is one
/// constant subframe of `block` samples: 14 bytes that decode to up to
/// 65 535 samples. `total_samples` goes into STREAMINFO (0: unknown).
/// `blocks` are the metadata blocks after STREAMINFO, as (type, contents).
pub(crate) fn constant_flac(
    rate: u32,
    block: u16,
    frames: u32,
    total_samples: u64,
    blocks: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    let mut info = Vec::new();
    info.extend_from_slice(&block.to_be_bytes());
    info.extend_from_slice(&block.to_be_bytes());
    info.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    // 20 bits of rate, 3 of channels - 1, 5 of bits per sample - 1, 36 of
    // total samples.
    let packed: u64 = (u64::from(rate) << 44) | (15 << 36) | (total_samples & 0xF_FFFF_FFFF);
    info.extend_from_slice(&packed.to_be_bytes());
    info.extend_from_slice(&[0; 16]);
    push_flac_block(&mut out, 0, &info, blocks.is_empty());
    for (i, (kind, body)) in blocks.iter().enumerate() {
        push_flac_block(&mut out, *kind, body, i + 1 == blocks.len());
    }
    for number in 0..frames {
        // Subframe header: constant, no wasted bits; then the value.
        out.extend_from_slice(&flac_frame(number, block, &[0x00, 0x10, 0x00]));
    }
    out
}

/// One FLAC frame of `block` samples (mono, sizes from STREAMINFO) around
/// the subframe bytes given.
pub(crate) fn flac_frame(number: u32, block: u16, subframe: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xFF, 0xF8, 0x70, 0x00];
    frame.extend_from_slice(&utf8_number(number));
    frame.extend_from_slice(&(block - 1).to_be_bytes());
    frame.push(crc8(&frame));
    frame.extend_from_slice(subframe);
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// A FLAC file whose first frames are sound and whose `bad`-th declares
/// more wasted bits (17) than its samples have (16): symphonia's decoder
/// subtracts one from the other, which overflows (and panics where
/// overflow is checked, as in the test build). The probe decodes only the
/// first frame, so the file is accepted and its decode crashes.
pub(crate) fn flac_with_wasted_bits_overflow(frames: u32, bad: u32) -> Vec<u8> {
    let mut out = constant_flac(8_000, 4_096, 0, 0, &[]);
    for number in 0..frames {
        let subframe: &[u8] = if number == bad {
            // Constant, wasted-bits flag set, then 16 zeros and a one: 17.
            &[0x01, 0x00, 0x00, 0x80, 0x00, 0x00]
        } else {
            &[0x00, 0x10, 0x00]
        };
        out.extend_from_slice(&flac_frame(number, 4_096, subframe));
    }
    out
}

/// tone.mp3 with its Info tag claiming 0 frames: symphonia subtracts the
/// encoder delay and padding from 0 (and panics where overflow is
/// checked, as in the test build).
pub(crate) fn mp3_with_info_frames_underflow() -> Vec<u8> {
    patch_after(fixture("tone.mp3"), b"Info", 4, 0)
}

/// A FLAC metadata block: header, then body.
pub(crate) fn push_flac_block(out: &mut Vec<u8>, kind: u8, body: &[u8], last: bool) {
    out.push(kind | if last { 0x80 } else { 0 });
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
}

/// A FLAC PICTURE block body declaring `declared` bytes of image data and
/// holding `held`.
pub(crate) fn flac_picture(declared: u32, held: usize) -> Vec<u8> {
    let mut body = 3_u32.to_be_bytes().to_vec();
    body.extend_from_slice(&9_u32.to_be_bytes());
    body.extend_from_slice(b"image/png");
    body.extend_from_slice(&0_u32.to_be_bytes());
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&declared.to_be_bytes());
    body.extend(std::iter::repeat_n(0x89, held));
    body
}

/// A Vorbis comment list (FLAC block or Ogg packet body) whose comments are
/// given as (declared length, bytes held).
pub(crate) fn vorbis_comments(count: u32, comments: &[(u32, &[u8])]) -> Vec<u8> {
    let mut body = 6_u32.to_le_bytes().to_vec();
    body.extend_from_slice(b"crafty");
    body.extend_from_slice(&count.to_le_bytes());
    for (declared, bytes) in comments {
        body.extend_from_slice(&declared.to_le_bytes());
        body.extend_from_slice(bytes);
    }
    body
}

fn utf8_number(n: u32) -> Vec<u8> {
    match n {
        0..=0x7F => vec![n as u8],
        0x80..=0x7FF => vec![0xC0 | (n >> 6) as u8, 0x80 | (n & 0x3F) as u8],
        _ => vec![
            0xE0 | (n >> 12) as u8,
            0x80 | ((n >> 6) & 0x3F) as u8,
            0x80 | (n & 0x3F) as u8,
        ],
    }
}

fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0_u8, |mut crc, &byte| {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0_u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// A 16-bit mono PCM WAV of `samples`, with `chunks` before `data` and the
/// RIFF and data lengths as given (`None`: the true ones).
pub(crate) fn wav(
    rate: u32,
    samples: &[i16],
    chunks: &[(&[u8; 4], u32, Vec<u8>)],
    riff_len: Option<u32>,
    data_len: Option<u32>,
) -> Vec<u8> {
    let mut body = b"WAVEfmt ".to_vec();
    body.extend_from_slice(&16_u32.to_le_bytes());
    body.extend_from_slice(&1_u16.to_le_bytes());
    body.extend_from_slice(&1_u16.to_le_bytes());
    body.extend_from_slice(&rate.to_le_bytes());
    body.extend_from_slice(&(rate * 2).to_le_bytes());
    body.extend_from_slice(&2_u16.to_le_bytes());
    body.extend_from_slice(&16_u16.to_le_bytes());
    for (id, declared, contents) in chunks {
        body.extend_from_slice(*id);
        body.extend_from_slice(&declared.to_le_bytes());
        body.extend_from_slice(contents);
    }
    body.extend_from_slice(b"data");
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    body.extend_from_slice(&data_len.unwrap_or(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&data);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&riff_len.unwrap_or(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub(crate) fn sine(rate: u32, seconds: f64, hz: f64) -> Vec<i16> {
    (0..(f64::from(rate) * seconds) as usize)
        .map(|i| (8_000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// An ID3v2.3 tag with one APIC frame of `picture` bytes, the tag's size
/// field as `declared` says (`None`: the true size).
pub(crate) fn id3_with_picture(picture: usize, declared: Option<u32>) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(b"image/jpeg\0");
    frame.push(3);
    frame.push(0);
    frame.extend(std::iter::repeat_n(0x42, picture));
    let mut body = b"APIC".to_vec();
    body.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&frame);
    let size = declared.unwrap_or(body.len() as u32);
    let mut tag = b"ID3\x03\x00\x00".to_vec();
    tag.extend((0..4).rev().map(|i| ((size >> (7 * i)) & 0x7F) as u8));
    tag.extend_from_slice(&body);
    tag
}

/// `ogg` with bytes `at..at + patch.len()` of its `packet`-th packet (from
/// 0) overwritten, and the checksum of the page holding them recomputed;
/// the patch must not cross a page boundary.
pub(crate) fn patch_ogg_packet(mut ogg: Vec<u8>, packet: usize, at: usize, patch: &[u8]) -> Vec<u8> {
    let mut seen = 0;
    let mut offset_in_packet = 0;
    let mut page = 0;
    while page < ogg.len() {
        assert_eq!(&ogg[page..page + 4], b"OggS");
        let segments = usize::from(ogg[page + 26]);
        let lacing = ogg[page + 27..page + 27 + segments].to_vec();
        let mut body = page + 27 + segments;
        for segment in lacing.iter().map(|&s| usize::from(s)) {
            if seen == packet && (offset_in_packet..offset_in_packet + segment).contains(&at) {
                let start = body + at - offset_in_packet;
                ogg[start..start + patch.len()].copy_from_slice(patch);
                ogg[page + 22..page + 26].fill(0);
                let end = page + 27 + segments + lacing.iter().map(|&s| usize::from(s)).sum::<usize>();
                let crc = crate::structure::ogg_crc(&ogg[page..end]);
                ogg[page + 22..page + 26].copy_from_slice(&crc.to_le_bytes());
                return ogg;
            }
            offset_in_packet += segment;
            body += segment;
            if segment < 255 {
                seen += 1;
                offset_in_packet = 0;
            }
        }
        page = body;
    }
    panic!("packet {packet} byte {at} not found");
}

/// An MP4 box.
pub(crate) fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// An M4A file around `stbl` children (the sample tables) and a `hdlr`
/// body, with an `mdat` of `media` bytes: the box tree of a real one, for
/// the structure check (it holds no playable track).
pub(crate) fn m4a(hdlr: &[u8], stbl: &[Vec<u8>], media: usize) -> Vec<u8> {
    let mut mdhd = vec![0; 12];
    mdhd.extend_from_slice(&22_050_u32.to_be_bytes());
    mdhd.extend_from_slice(&[0; 8]);
    let mdia = [
        mp4_box(b"mdhd", &mdhd),
        mp4_box(b"hdlr", hdlr),
        mp4_box(b"minf", &mp4_box(b"stbl", &stbl.concat())),
    ]
    .concat();
    let mut mvhd = vec![0; 12];
    mvhd.extend_from_slice(&1000_u32.to_be_bytes());
    mvhd.extend_from_slice(&[0; 84]);
    let moov = [
        mp4_box(b"mvhd", &mvhd),
        mp4_box(
            b"trak",
            &[mp4_box(b"tkhd", &[0; 84]), mp4_box(b"mdia", &mdia)].concat(),
        ),
    ]
    .concat();
    [
        mp4_box(b"ftyp", b"M4A \0\0\0\0M4A isom"),
        mp4_box(b"moov", &moov),
        mp4_box(b"mdat", &vec![0x21; media]),
    ]
    .concat()
}

/// A sound handler body (`hdlr` of `len` bytes, at least 24).
pub(crate) fn sound_hdlr(len: usize) -> Vec<u8> {
    let mut body = vec![0; 8];
    body.extend_from_slice(b"soun");
    body.resize(len.max(12), 0);
    body.truncate(len);
    body
}

/// A table box: version/flags, a count, then the entries.
pub(crate) fn table(kind: &[u8; 4], count: u32, entries: &[u8]) -> Vec<u8> {
    let mut body = vec![0; 4];
    body.extend_from_slice(&count.to_be_bytes());
    body.extend_from_slice(entries);
    mp4_box(kind, &body)
}

/// `file` with the 4 bytes at `offset` past the first occurrence of `kind`
/// overwritten by `value`.
pub(crate) fn patch_after(mut file: Vec<u8>, kind: &[u8; 4], offset: usize, value: u32) -> Vec<u8> {
    let at = file
        .windows(4)
        .position(|w| w == kind)
        .unwrap_or_else(|| panic!("no {kind:?}"));
    file[at + 4 + offset..at + 8 + offset].copy_from_slice(&value.to_be_bytes());
    file
}

/// Where `write_hostile_files` puts what it writes.
pub(crate) fn hostile_dir() -> PathBuf {
    Path::new(FIXTURES).join("hostile")
}
