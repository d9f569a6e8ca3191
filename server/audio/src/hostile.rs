//! Hostile files through the public entry points: the decoded-sample
//! budget, metadata that declares more than the file holds, and the
//! structure check in front of symphonia.

use std::io::Cursor;
use std::time::{Duration, Instant};

use crate::crafted::*;
use crate::structure::{self, Layout};
use crate::{
    AudioError, AudioFormat, DecodeOptions, Stage, decode_bytes, isolate, probe_bytes, sniff_format,
    sniff_reader,
};

fn options(seconds: u64, format: Option<AudioFormat>) -> DecodeOptions {
    DecodeOptions {
        max_duration: Duration::from_secs(seconds),
        format_hint: format,
    }
}

/// Decodes `bytes`, returning the result and the samples delivered.
fn decode(bytes: Vec<u8>, options: &DecodeOptions) -> (Result<crate::DecodeReport, AudioError>, u64) {
    let mut delivered = 0_u64;
    let result = decode_bytes(bytes, options, |_| {}, |block| delivered += block.len() as u64);
    (result, delivered)
}

fn refused(result: Result<impl std::fmt::Debug, AudioError>, wanted: &[&str]) -> String {
    let err = result.expect_err("the file is refused");
    let message = err.to_string();
    assert!(matches!(err, AudioError::Corrupt(_)), "{err:?}");
    for part in wanted {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    message
}

#[test]
fn a_small_flac_that_decodes_to_hours_is_stopped_at_the_limit() {
    // 2 000 frames of 65 535 constant samples at 8 kHz: 4.55 hours in
    // 28 KB, with no length in STREAMINFO to refuse it by.
    let flac = constant_flac(8_000, 65_535, 2_000, 0, &[]);
    assert!(flac.len() < 32 * 1024, "{} bytes", flac.len());
    let hours = 2_000.0 * 65_535.0 / 8_000.0 / 3600.0;

    let started = Instant::now();
    let (result, delivered) = decode(flac.clone(), &options(60, Some(AudioFormat::Flac)));
    let elapsed = started.elapsed();
    let Err(AudioError::TooLong {
        duration_seconds,
        limit_seconds,
    }) = result
    else {
        panic!("{result:?}");
    };
    println!(
        "constant FLAC: refused after {elapsed:?}, {delivered} samples delivered, reported {duration_seconds} s"
    );
    assert_eq!(limit_seconds, 60.0);
    // Decoding stopped at the limit (checked before each packet, so one
    // more 8.2 s block may pass); the rest was only walked, to say how long
    // the file really is.
    assert!(
        delivered as f64 <= (60.0 + 65_535.0 / 8_000.0) * 48_000.0,
        "{delivered}"
    );
    assert!(
        (duration_seconds / 3600.0 - hours).abs() < 0.01,
        "{duration_seconds}"
    );

    // The probe (the upload's check) walks the frames and finds the length
    // too, without decoding them.
    let started = Instant::now();
    let properties = probe_bytes(flac, AudioFormat::Flac, |_| {}).unwrap();
    assert!((properties.duration_seconds / 3600.0 - hours).abs() < 0.01);
    println!("constant FLAC: probed in {:?}", started.elapsed());
}

#[test]
fn a_header_declaring_less_than_there_is_does_not_lift_the_limit() {
    // STREAMINFO says 1 s; the frames hold 4.5 hours.
    let flac = constant_flac(8_000, 65_535, 2_000, 8_000, &[]);
    let (result, delivered) = decode(flac, &options(60, Some(AudioFormat::Flac)));
    assert!(matches!(result, Err(AudioError::TooLong { .. })), "{result:?}");
    assert!(delivered as f64 <= (60.0 + 65_535.0 / 8_000.0) * 48_000.0);
}

#[test]
fn a_header_declaring_hours_is_refused_before_decoding() {
    let flac = constant_flac(8_000, 4_096, 2, 8_000 * 3_600 * 10, &[]);
    let (result, delivered) = decode(flac, &options(60, Some(AudioFormat::Flac)));
    assert!(
        matches!(result, Err(AudioError::TooLong { duration_seconds, .. }) if duration_seconds == 36_000.0),
        "{result:?}"
    );
    assert_eq!(delivered, 0);
}

#[test]
fn a_streamed_wav_with_placeholder_lengths_is_read_to_its_end() {
    // ffmpeg writing to a pipe cannot know the length and writes
    // 0xFFFFFFFF for RIFF and data; the header claims 37 hours.
    let samples = sine(8_000, 1.0, 440.0);
    let streamed = wav(8_000, &samples, &[], Some(u32::MAX), Some(u32::MAX));
    let properties = probe_bytes(streamed.clone(), AudioFormat::Wav, |_| {}).unwrap();
    assert!((properties.duration_seconds - 1.0).abs() < 1e-9, "{properties:?}");
    let (result, delivered) = decode(streamed, &options(60, None));
    let report = result.unwrap();
    assert_eq!(report.source_frames, 8_000);
    assert_eq!(delivered, 48_000);

    // Behind such a header, audio longer than the limit is stopped there.
    let long = wav(
        8_000,
        &sine(8_000, 5.0, 440.0),
        &[],
        Some(u32::MAX),
        Some(u32::MAX),
    );
    let (result, delivered) = decode(long, &options(2, None));
    assert!(
        matches!(result, Err(AudioError::TooLong { duration_seconds, .. }) if (duration_seconds - 5.0).abs() < 0.01),
        "{result:?}"
    );
    assert!(delivered <= 5 * 48_000);

    // A length that is not the placeholder is a claim: 10 s declared, 1 s
    // there, is a truncated file.
    let cut = wav(8_000, &samples, &[], Some(36 + 160_000), Some(160_000));
    refused(probe_bytes(cut, AudioFormat::Wav, |_| {}), &["truncated"]);
}

#[test]
fn a_flac_picture_declaring_gigabytes_is_refused_unread() {
    let flac = constant_flac(8_000, 4_096, 4, 0, &[(6, flac_picture(u32::MAX, 16))]);
    let message = refused(
        probe_bytes(flac.clone(), AudioFormat::Flac, |_| {}),
        &["PICTURE block", "4294967295 bytes of image data", "holds only 16"],
    );
    println!("{message}");
    refused(decode(flac, &options(60, None)).0, &["PICTURE block"]);
    // A real picture, however large, is no reason to refuse a file.
    let flac = constant_flac(8_000, 4_096, 4, 0, &[(6, flac_picture(300_000, 300_000))]);
    let properties = probe_bytes(flac, AudioFormat::Flac, |_| {}).unwrap();
    assert!((properties.duration_seconds - 4.0 * 4_096.0 / 8_000.0).abs() < 1e-9);
}

#[test]
fn flac_comments_declaring_more_than_they_hold_are_refused() {
    let many = vorbis_comments(u32::MAX, &[(5, b"A=bcd")]);
    refused(
        probe_bytes(
            constant_flac(8_000, 4_096, 4, 0, &[(4, many)]),
            AudioFormat::Flac,
            |_| {},
        ),
        &[
            "VORBIS_COMMENT block",
            "declares 4294967295 comments but holds only 1",
        ],
    );
    let long = vorbis_comments(1, &[(0xFFFF_FFF0, b"TITLE=x")]);
    refused(
        probe_bytes(
            constant_flac(8_000, 4_096, 4, 0, &[(4, long)]),
            AudioFormat::Flac,
            |_| {},
        ),
        &["declares 4294967280 bytes of comment"],
    );
    // symphonia decodes a base64 picture comment and reads it as a PICTURE
    // block: the picture inside is checked too.
    let picture = base64(&flac_picture(u32::MAX, 4));
    let comment = [b"METADATA_BLOCK_PICTURE=".as_slice(), picture.as_bytes()].concat();
    let embedded = vorbis_comments(1, &[(comment.len() as u32, &comment)]);
    refused(
        probe_bytes(
            constant_flac(8_000, 4_096, 4, 0, &[(4, embedded)]),
            AudioFormat::Flac,
            |_| {},
        ),
        &["embedded picture comment", "4294967295 bytes of image data"],
    );
    let fine = vorbis_comments(2, &[(7, b"TITLE=x"), (8, b"ARTIST=y")]);
    probe_bytes(
        constant_flac(8_000, 4_096, 4, 0, &[(4, fine)]),
        AudioFormat::Flac,
        |_| {},
    )
    .unwrap();
}

#[test]
fn a_flac_block_larger_than_the_file_is_refused() {
    let mut flac = constant_flac(8_000, 4_096, 4, 0, &[(2, b"abcdefgh".to_vec())]);
    // The APPLICATION block's length: the byte after STREAMINFO's 38.
    let header = 4 + 38;
    flac[header + 1..header + 4].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    refused(
        probe_bytes(flac, AudioFormat::Flac, |_| {}),
        &["APPLICATION metadata block declares 16777215 bytes"],
    );
    let short = constant_flac(8_000, 4_096, 4, 0, &[(2, b"ab".to_vec())]);
    refused(
        probe_bytes(short, AudioFormat::Flac, |_| {}),
        &["APPLICATION block is 2 bytes"],
    );
}

#[test]
fn an_id3_picture_beyond_the_sniffed_head_is_skipped() {
    let mp3 = fixture("tone.mp3");
    let tag = id3_with_picture(200_000, None);
    let tagged = [tag.clone(), mp3].concat();
    // The first 64 KiB are all tag: the head alone cannot tell what follows.
    assert!(sniff_format(&tagged[..crate::SNIFF_BYTES]).is_err());
    assert_eq!(sniff_reader(&mut Cursor::new(&tagged)).unwrap(), AudioFormat::Mp3);
    let properties = probe_bytes(tagged.clone(), AudioFormat::Mp3, |_| {}).unwrap();
    assert!((properties.duration_seconds - 1.5).abs() < 0.05, "{properties:?}");
    let (result, delivered) = decode(tagged.clone(), &options(60, None));
    result.unwrap();
    assert!((delivered as f64 / 48_000.0 - 1.5).abs() < 0.05);
    let layout = structure::check(&mut Cursor::new(&tagged), tagged.len() as u64, AudioFormat::Mp3).unwrap();
    // Past both tags: ours and the one ffmpeg wrote.
    let own = crate::sniff::id3_len(&fixture("tone.mp3")).unwrap();
    assert_eq!(
        layout,
        Layout {
            start: tag.len() as u64 + own,
            patch: None
        }
    );
}

#[test]
fn an_id3_tag_larger_than_the_file_is_refused() {
    let tagged = [id3_with_picture(100, Some((1 << 28) - 1)), fixture("tone.mp3")].concat();
    let err = sniff_reader(&mut Cursor::new(&tagged)).unwrap_err();
    assert!(err.to_string().contains("ID3 tag of 268435465 bytes"), "{err}");
    refused(
        probe_bytes(tagged, AudioFormat::Mp3, |_| {}),
        &["ID3v2 tag declares 268435465 bytes"],
    );
}

/// Where the first comment's length lies in tone.ogg's comment packet.
fn first_comment_length_offset(ogg: &[u8]) -> usize {
    let packet = ogg.windows(7).position(|w| w == b"\x03vorbis").unwrap();
    let vendor = u32::from_le_bytes(ogg[packet + 7..packet + 11].try_into().unwrap()) as usize;
    7 + 4 + vendor + 4
}

#[test]
fn an_ogg_comment_declaring_gigabytes_is_refused() {
    let ogg = fixture("tone.ogg");
    let at = first_comment_length_offset(&ogg);
    let bomb = patch_ogg_packet(ogg, 1, at, &0xFFFF_FFF0_u32.to_le_bytes());
    refused(
        probe_bytes(bomb.clone(), AudioFormat::Ogg, |_| {}),
        &["Vorbis comment header", "declares 4294967280 bytes of comment"],
    );
    refused(decode(bomb, &options(60, None)).0, &["Vorbis comment header"]);
}

#[test]
fn a_vorbis_codebook_declaring_terabytes_is_refused() {
    // The first codebook: 65 535 dimensions of 16 777 215 entries, a lookup
    // table of 2^40 values.
    let bomb = patch_ogg_packet(fixture("tone.ogg"), 2, 11, &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    refused(
        probe_bytes(bomb, AudioFormat::Ogg, |_| {}),
        &["Vorbis codebook 0 declares 16777215 entries of 65535 dimensions"],
    );
}

#[test]
fn an_ogg_page_with_a_bad_checksum_is_not_judged() {
    // symphonia drops such a page, so its contents cannot hurt; the file
    // fails on the missing headers instead, not on the check.
    let ogg = fixture("tone.ogg");
    let at = first_comment_length_offset(&ogg);
    let mut bomb = patch_ogg_packet(ogg, 1, at, &0xFFFF_FFF0_u32.to_le_bytes());
    let second_page = 4 + bomb[4..].windows(4).position(|w| w == b"OggS").unwrap();
    bomb[second_page + 22] ^= 0xFF;
    assert!(structure::check(&mut Cursor::new(&bomb), bomb.len() as u64, AudioFormat::Ogg).is_ok());
}

#[test]
fn wav_chunks_declaring_more_than_the_file_are_refused() {
    let samples = sine(8_000, 0.1, 440.0);
    let list = wav(
        8_000,
        &samples,
        &[(b"LIST", 0xFFFF_FF00, b"INFOINAM\x00\x00\x00\x01x".to_vec())],
        Some(u32::MAX),
        None,
    );
    refused(
        probe_bytes(list, AudioFormat::Wav, |_| {}),
        &["`LIST` chunk declares 4294967040 bytes"],
    );
    let mut rf64 = wav(8_000, &samples, &[], None, None);
    rf64[..4].copy_from_slice(b"RF64");
    let err = probe_bytes(rf64, AudioFormat::Wav, |_| {}).unwrap_err();
    assert!(matches!(err, AudioError::Unsupported(_)), "{err}");
    // Found by fuzzing: a rate of 0 made symphonia's time base panic, in
    // WAV and AIFF alike.
    refused(
        probe_bytes(wav(0, &samples, &[], None, None), AudioFormat::Wav, |_| {}),
        &["sample rate is 0 Hz"],
    );
    let mut aiff = fixture("tone.aiff");
    let comm = aiff.windows(4).position(|w| w == b"COMM").unwrap();
    aiff[comm + 16..comm + 26].fill(0);
    refused(
        probe_bytes(aiff.clone(), AudioFormat::Aiff, |_| {}),
        &["sample rate is below 1 Hz"],
    );
    // Found by fuzzing, after that: a NaN rate, which the cast makes 0 too.
    aiff[comm + 16..comm + 26].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x40, 0x0D]);
    refused(
        probe_bytes(aiff, AudioFormat::Aiff, |_| {}),
        &["sample rate is below 1 Hz"],
    );
    let fine = wav(8_000, &samples, &[(b"junk", 4, b"abcd".to_vec())], None, None);
    probe_bytes(fine, AudioFormat::Wav, |_| {}).unwrap();
}

fn check_m4a(bytes: &[u8]) -> Result<Layout, AudioError> {
    structure::check(&mut Cursor::new(bytes), bytes.len() as u64, AudioFormat::M4a)
}

fn m4a_refused(bytes: &[u8], wanted: &[&str]) {
    refused(check_m4a(bytes), wanted);
}

#[test]
fn mp4_tables_declaring_more_than_they_hold_are_refused() {
    // symphonia #497: an `stts` count read as a 34 GB allocation.
    let bomb = patch_after(fixture("tone.m4a"), b"stts", 4, u32::MAX);
    let message = refused(
        probe_bytes(bomb, AudioFormat::M4a, |_| {}),
        &["`stts` table declares 4294967295 entries but holds only"],
    );
    println!("{message}");
    for kind in [b"stsc", b"stco", b"stsz"] {
        let offset = if kind == b"stsz" { 8 } else { 4 };
        let bomb = patch_after(fixture("tone.m4a"), kind, offset, u32::MAX);
        m4a_refused(
            &bomb,
            &[&format!("`{}` table declares 4294967295 entries", fourcc(kind))],
        );
    }
    // Chunks count from 1; symphonia subtracts 1 from the first.
    let zero_chunk = m4a(
        &sound_hdlr(24),
        &[table(b"stsc", 1, &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1])],
        16,
    );
    m4a_refused(&zero_chunk, &["numbers a chunk 0"]);
    let mut stsz = vec![0; 8];
    stsz.extend_from_slice(&1_u32.to_be_bytes());
    stsz.extend_from_slice(&0xFFFF_FF00_u32.to_be_bytes());
    let huge_sample = m4a(&sound_hdlr(24), &[mp4_box(b"stsz", &stsz)], 16);
    m4a_refused(
        &huge_sample,
        &["sample of 4294967040 bytes, more than the whole file"],
    );
    let overflow = m4a(
        &sound_hdlr(24),
        &[table(b"stts", 2, &[[0xFF; 8], [0xFF; 8]].concat())],
        16,
    );
    m4a_refused(&overflow, &["durations add up past 2^64"]);
    // Found by fuzzing: symphonia counts samples in 32 bits.
    let many = m4a(
        &sound_hdlr(24),
        &[table(
            b"stts",
            2,
            &[[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1], [0, 0, 0, 2, 0, 0, 0, 1]].concat(),
        )],
        16,
    );
    m4a_refused(&many, &["sample counts add up past 2^32"]);
    check_m4a(&m4a(
        &sound_hdlr(30),
        &[table(b"stts", 1, &[0, 0, 0, 1, 0, 0, 4, 0])],
        16,
    ))
    .unwrap();
}

fn fourcc(kind: &[u8; 4]) -> &str {
    std::str::from_utf8(kind).unwrap()
}

#[test]
fn mp4_boxes_larger_than_their_parent_or_too_short_are_refused() {
    // symphonia #431: an `hdlr` shorter than its fields, whose name length
    // underflows to a 4 GB allocation.
    m4a_refused(
        &m4a(&sound_hdlr(12), &[], 16),
        &["`hdlr` box is 12 bytes, shorter than the 24"],
    );
    let mut liar = mp4_box(b"free", &[0; 10]);
    liar[..4].copy_from_slice(&1000_u32.to_be_bytes());
    m4a_refused(
        &m4a(&sound_hdlr(24), &[liar], 16),
        &["`free` box declares 1000 bytes but its parent `stbl` holds only 18"],
    );
    let mut zero = mp4_box(b"stts", &[0; 8]);
    zero[..4].fill(0);
    m4a_refused(
        &m4a(&sound_hdlr(24), &[zero], 16),
        &["`stts` box inside `stbl` has size 0"],
    );
    // Found by fuzzing: a media time scale of 0 made symphonia's time base
    // panic.
    let mut no_scale = m4a(&sound_hdlr(24), &[], 16);
    let mdhd = no_scale.windows(4).position(|w| w == b"mdhd").unwrap();
    no_scale[mdhd + 16..mdhd + 20].fill(0);
    m4a_refused(&no_scale, &["`mdhd` box declares a time scale of 0"]);
    // The `moov` of a real file, made to claim more than the file holds.
    let file = fixture("tone.m4a");
    let moov = file.windows(4).position(|w| w == b"moov").unwrap() - 4;
    let mut lying = file.clone();
    lying[moov..moov + 4].copy_from_slice(&0x7FFF_0000_u32.to_be_bytes());
    m4a_refused(&lying, &["top-level `moov` box declares 2147418112 bytes"]);
    // A cut-off `mdat` is a truncated file, worded as one by the probe.
    let mut cut = fixture("tone.m4a");
    if cut.windows(4).position(|w| w == b"mdat") > cut.windows(4).position(|w| w == b"moov") {
        cut.truncate(cut.len() - 100);
        check_m4a(&cut).unwrap();
    }
}

#[test]
fn mp4_codec_configurations_are_checked() {
    // An ALAC cookie sizes the decoder's buffer from its frame length.
    let mut cookie = vec![0; 4];
    cookie.extend_from_slice(&u32::MAX.to_be_bytes());
    cookie.extend_from_slice(&[
        0, 16, 40, 10, 14, 1, 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x56, 0x22,
    ]);
    let entry = |kind: &[u8; 4], child: Vec<u8>| {
        let mut body = vec![0; 28];
        body.extend_from_slice(&child);
        let mut stsd = vec![0; 4];
        stsd.extend_from_slice(&1_u32.to_be_bytes());
        stsd.extend_from_slice(&mp4_box(kind, &body));
        mp4_box(b"stsd", &stsd)
    };
    m4a_refused(
        &m4a(&sound_hdlr(24), &[entry(b"alac", mp4_box(b"alac", &cookie))], 16),
        &["ALAC configuration declares frames of 4294967295 samples"],
    );
    let mut fine = cookie.clone();
    fine[4..8].copy_from_slice(&4_096_u32.to_be_bytes());
    check_m4a(&m4a(
        &sound_hdlr(24),
        &[entry(b"alac", mp4_box(b"alac", &fine))],
        16,
    ))
    .unwrap();
    // The decoder configuration inside `esds` is read whole.
    let esds = [vec![0, 0, 0, 0, 0x03, 0x80, 0x80, 0x80, 0x7F], vec![0; 8]].concat();
    m4a_refused(
        &m4a(&sound_hdlr(24), &[entry(b"mp4a", mp4_box(b"esds", &esds))], 16),
        &["ES descriptor 0x03 declares 127 bytes but holds only 8"],
    );
    // Found by fuzzing: symphonia unwraps an ES descriptor that is not there.
    let esds = [vec![0, 0, 0, 0, 0x05, 0x02], vec![0x12, 0x10]].concat();
    m4a_refused(
        &m4a(&sound_hdlr(24), &[entry(b"mp4a", mp4_box(b"esds", &esds))], 16),
        &["`esds` box holds no ES descriptor"],
    );
    // What ffmpeg writes for AAC passes.
    let dsi = [0x05, 0x02, 0x13, 0x88];
    let config = [
        &[0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0x7D, 0, 0, 0, 0x7D, 0][..],
        &dsi,
    ]
    .concat();
    let es = [
        &[0x03, (3 + config.len() + 3) as u8, 0, 1, 0][..],
        &config,
        &[0x06, 1, 2],
    ]
    .concat();
    let esds = [vec![0; 4], es].concat();
    check_m4a(&m4a(
        &sound_hdlr(24),
        &[entry(b"mp4a", mp4_box(b"esds", &esds))],
        16,
    ))
    .unwrap();
    // A sample description shorter than its own fields.
    let mut stsd = vec![0; 4];
    stsd.extend_from_slice(&1_u32.to_be_bytes());
    stsd.extend_from_slice(&mp4_box(b"mp4a", &[0; 12]));
    m4a_refused(
        &m4a(&sound_hdlr(24), &[mp4_box(b"stsd", &stsd)], 16),
        &["`mp4a` sample description is 12 bytes, shorter than its 28"],
    );
}

#[test]
fn itunes_metadata_items_are_checked() {
    let item = |data_len: usize| mp4_box(b"\xA9nam", &mp4_box(b"data", &vec![0; data_len]));
    let udta = |item: Vec<u8>| {
        let meta = [
            vec![0; 4],
            mp4_box(b"hdlr", &sound_hdlr(24)),
            mp4_box(b"ilst", &item),
        ]
        .concat();
        mp4_box(b"udta", &mp4_box(b"meta", &meta))
    };
    let with_udta = |udta: Vec<u8>| {
        let mut file = m4a(&sound_hdlr(24), &[], 16);
        // Grow `moov` by the `udta` appended to it.
        let moov = file.windows(4).position(|w| w == b"moov").unwrap() - 4;
        let size = u32::from_be_bytes(file[moov..moov + 4].try_into().unwrap()) as usize;
        file.splice(moov + size..moov + size, udta.iter().copied());
        file[moov..moov + 4].copy_from_slice(&((size + udta.len()) as u32).to_be_bytes());
        file
    };
    m4a_refused(
        &with_udta(udta(item(4))),
        &["`data` box in metadata item `?nam` is 4 bytes, shorter than its 8"],
    );
    check_m4a(&with_udta(udta(item(12)))).unwrap();
}

/// Standard base64 with padding, as taggers write picture comments.
fn base64(bytes: &[u8]) -> String {
    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut word = [0_u8; 3];
        word[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes([0, word[0], word[1], word[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(SYMBOLS[((bits >> (18 - 6 * i)) & 0x3F) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_round_trips_as_symphonia_reads_it() {
    for len in 0..12 {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
        assert_eq!(structure::base64_decode(base64(&bytes).as_bytes()), Some(bytes));
    }
}

/// A WAV of `frames` frames of noise in any sample format (`tag` 1: PCM,
/// 3: float, 6/7: A-law/µ-law, 0xFFFE: extensible PCM).
fn wav_of(tag: u16, channels: u16, bits: u16, rate: u32, frames: usize) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&tag.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if matches!(tag, 6 | 7) {
        fmt.extend_from_slice(&0_u16.to_le_bytes());
    }
    if tag == 0xFFFE {
        fmt.extend_from_slice(&22_u16.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(&(if channels == 2 { 3_u32 } else { 4 }).to_le_bytes());
        fmt.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    }
    let mut seed = 0x1234_5678_u32;
    let data: Vec<u8> = (0..frames * usize::from(block))
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) as u8
        })
        .collect();
    let mut body = b"WAVEfmt ".to_vec();
    body.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    body.extend_from_slice(&fmt);
    body.extend_from_slice(b"data");
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&data);
    [b"RIFF".as_slice(), &(body.len() as u32).to_le_bytes(), &body].concat()
}

/// Small valid files of every format and variant the readers know.
fn valid_files() -> Vec<(String, AudioFormat, Vec<u8>)> {
    let mut valid: Vec<(String, AudioFormat, Vec<u8>)> = [
        ("tone.flac", AudioFormat::Flac),
        ("tone.mp3", AudioFormat::Mp3),
        ("tone.ogg", AudioFormat::Ogg),
        ("tone.m4a", AudioFormat::M4a),
        ("tone.aiff", AudioFormat::Aiff),
        ("clicks.m4a", AudioFormat::M4a),
        ("clicks.mp3", AudioFormat::Mp3),
    ]
    .into_iter()
    .map(|(name, format)| (name.to_owned(), format, fixture(name)))
    .collect();
    for (tag, channels, bits) in [
        (1, 1, 8),
        (1, 2, 16),
        (1, 1, 24),
        (1, 2, 32),
        (3, 1, 32),
        (3, 2, 64),
        (6, 1, 8),
        (7, 1, 8),
        (0xFFFE, 2, 24),
    ] {
        valid.push((
            format!("pcm-{tag:x}-{channels}ch-{bits}bit.wav"),
            AudioFormat::Wav,
            wav_of(tag, channels, bits, 11_025, 600),
        ));
    }
    let blocks = vec![
        (2, b"traumAPP".to_vec()),
        (
            3,
            [
                0_u64.to_be_bytes().as_slice(),
                &0_u64.to_be_bytes(),
                &4_096_u16.to_be_bytes(),
            ]
            .concat(),
        ),
        (4, vorbis_comments(2, &[(7, b"TITLE=x"), (8, b"ARTIST=y")])),
        (6, flac_picture(64, 64)),
        (1, vec![0; 16]),
    ];
    valid.push((
        "constant-with-metadata.flac".to_owned(),
        AudioFormat::Flac,
        constant_flac(8_000, 1_024, 6, 6_144, &blocks),
    ));
    valid.push((
        "id3-tagged.mp3".to_owned(),
        AudioFormat::Mp3,
        [id3_with_picture(300, None), fixture("clicks.mp3")].concat(),
    ));
    valid.push((
        "streamed.wav".to_owned(),
        AudioFormat::Wav,
        wav(
            8_000,
            &sine(8_000, 1.0, 440.0),
            &[],
            Some(u32::MAX),
            Some(u32::MAX),
        ),
    ));

    valid
}

#[test]
fn every_valid_variant_passes_the_checks_and_decodes() {
    for (name, format, bytes) in valid_files() {
        let sniffed = sniff_reader(&mut Cursor::new(&bytes)).unwrap();
        assert_eq!(sniffed, format, "{name}");
        let properties =
            probe_bytes(bytes.clone(), format, |_| {}).unwrap_or_else(|err| panic!("{name}: {err}"));
        let (result, delivered) = decode(bytes, &options(60, None));
        let report = result.unwrap_or_else(|err| panic!("{name}: {err}"));
        println!(
            "{name}: {} s, {} Hz, {delivered} samples",
            properties.duration_seconds, report.source_sample_rate
        );
        assert!(
            (report.duration_seconds - properties.duration_seconds).abs() < 0.1,
            "{name}"
        );
    }
}

/// The hostile files the server's tests upload, and the seed corpus of the
/// fuzz targets: small valid files of every format, plus these.
#[test]
#[ignore = "writes tests/fixtures/hostile and server/audio/fuzz/seeds"]
fn write_hostile_files() {
    let write = |dir: &std::path::Path, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let ogg = fixture("tone.ogg");
    let comment_at = first_comment_length_offset(&ogg);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("wasted-bits.flac", flac_with_wasted_bits_overflow(8, 4)),
        ("info-underflow.mp3", mp3_with_info_frames_underflow()),
        (
            "constant-frames.flac",
            constant_flac(8_000, 65_535, 2_000, 0, &[]),
        ),
        (
            "picture-bomb.flac",
            constant_flac(8_000, 4_096, 4, 0, &[(6, flac_picture(u32::MAX, 16))]),
        ),
        (
            "comment-bomb.ogg",
            patch_ogg_packet(ogg.clone(), 1, comment_at, &0xFFFF_FFF0_u32.to_le_bytes()),
        ),
        (
            "codebook-bomb.ogg",
            patch_ogg_packet(ogg.clone(), 2, 11, &[0xFF; 5]),
        ),
        (
            "stts-bomb.m4a",
            patch_after(fixture("tone.m4a"), b"stts", 4, u32::MAX),
        ),
        (
            "id3-bomb.mp3",
            [id3_with_picture(100, Some((1 << 28) - 1)), fixture("tone.mp3")].concat(),
        ),
        (
            "streamed.wav",
            wav(
                8_000,
                &sine(8_000, 1.0, 440.0),
                &[],
                Some(u32::MAX),
                Some(u32::MAX),
            ),
        ),
    ];
    for (name, bytes) in &hostile {
        write(&hostile_dir(), name, bytes);
    }

    let valid = valid_files();
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, format, bytes) in &valid {
        write(&seeds.join("sniff_probe"), name, bytes);
        let selector = AudioFormat::ALL.iter().position(|f| f == format).unwrap() as u8;
        write(
            &seeds.join("decode"),
            name,
            &[&[selector], bytes.as_slice()].concat(),
        );
    }
    // The sniffer's path, as example clips take it.
    write(
        &seeds.join("decode"),
        "sniffed-tone.ogg",
        &[&[7], ogg.as_slice()].concat(),
    );
    let pcm = |samples: &[i16]| -> Vec<u8> { samples.iter().flat_map(|s| s.to_le_bytes()).collect() };
    write(
        &seeds.join("analysis"),
        "sine",
        &[&[0], pcm(&sine(48_000, 0.05, 440.0)).as_slice()].concat(),
    );
    write(
        &seeds.join("analysis"),
        "sine-8k",
        &[&[2], pcm(&sine(8_000, 0.3, 440.0)).as_slice()].concat(),
    );
    let clicks: Vec<i16> = (0..4_800).map(|i| if i % 480 < 5 { 20_000 } else { 0 }).collect();
    write(
        &seeds.join("analysis"),
        "clicks",
        &[&[4], pcm(&clicks).as_slice()].concat(),
    );
    write(&seeds.join("analysis"), "silence", &[8; 2_001]);
    let specials: Vec<u8> = [
        0.5_f32,
        f32::NAN,
        f32::INFINITY,
        -1.0,
        f32::NEG_INFINITY,
        1e-40,
        0.0,
    ]
    .iter()
    .cycle()
    .take(1_400)
    .flat_map(|s| s.to_le_bytes())
    .collect();
    write(
        &seeds.join("analysis"),
        "specials-f32",
        &[&[1], specials.as_slice()].concat(),
    );
}

#[test]
fn float_samples_that_are_not_numbers_become_silence() {
    // A float WAV holding NaN, infinities and 1e38: each reached rubato's
    // FFT, whose check of the result then panicked.
    let values = [
        0.5_f32,
        f32::NAN,
        f32::INFINITY,
        -1e38,
        f32::NEG_INFINITY,
        1e38,
        -0.25,
    ];
    let data: Vec<u8> = values
        .iter()
        .cycle()
        .take(8_000)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut fmt = 3_u16.to_le_bytes().to_vec();
    fmt.extend_from_slice(&1_u16.to_le_bytes());
    fmt.extend_from_slice(&8_000_u32.to_le_bytes());
    fmt.extend_from_slice(&32_000_u32.to_le_bytes());
    fmt.extend_from_slice(&4_u16.to_le_bytes());
    fmt.extend_from_slice(&32_u16.to_le_bytes());
    let body = [
        b"WAVEfmt ".as_slice(),
        &16_u32.to_le_bytes(),
        &fmt,
        b"data",
        &(data.len() as u32).to_le_bytes(),
        &data,
    ]
    .concat();
    let file = [b"RIFF".as_slice(), &(body.len() as u32).to_le_bytes(), &body].concat();
    let mut samples = Vec::new();
    let report = decode_bytes(
        file,
        &options(60, None),
        |_| {},
        |block| samples.extend_from_slice(block),
    )
    .unwrap();
    assert_eq!(samples.len(), 48_000);
    assert!(samples.iter().all(|s| s.is_finite() && s.abs() <= 1_000.0 * 1.1));
    assert!(report.levels.peak_dbfs.is_some_and(f64::is_finite), "{report:?}");
}

#[test]
fn an_awkward_sample_rate_resamples_in_bounded_time() {
    // A prime rate shares no factor with 48 kHz: the resampler's FFTs are
    // as long as the rate allows. The accepted range keeps that bounded.
    let rate = 767_957;
    let started = Instant::now();
    let (result, delivered) = decode(
        wav(rate, &sine(rate, 0.2, 440.0), &[], None, None),
        &options(60, None),
    );
    let report = result.unwrap();
    println!("{rate} Hz: {delivered} samples in {:?}", started.elapsed());
    assert_eq!(report.source_sample_rate, rate);
    assert!((delivered as f64 / 48_000.0 - 0.2).abs() < 0.01);
}

/// The inputs the fuzz targets crashed on (`tests/fixtures/hostile/fuzz`,
/// named after their target), each run as its target runs it: every one
/// must now be refused cleanly, or read. Those ending in `-isolated`
/// panic inside symphonia where nothing in front of it can rule that out
/// (deep in a codec's bitstream, or an overflow, which panics only with
/// overflow checks on, as here): they must surface as the crash of that
/// one file, as the server's guard reports it.
#[test]
fn fuzz_findings_no_longer_crash() {
    let dir = std::path::Path::new(FIXTURES).join("hostile/fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let run = || -> Result<String, AudioError> {
            if name.starts_with("sniff_probe-") {
                let head = &bytes[..bytes.len().min(crate::SNIFF_BYTES)];
                let read = sniff_reader(&mut Cursor::new(&bytes));
                if bytes.len() <= crate::SNIFF_BYTES {
                    assert_eq!(sniff_format(head).ok(), read.as_ref().ok().copied(), "{name}");
                }
                let format = read?;
                isolate(Stage::Probe, || probe_bytes(bytes.clone(), format, |_| {}))
                    .map(|p| format!("{} s", p.duration_seconds))
            } else if name.starts_with("decode-") {
                let (selector, file) = bytes.split_first().unwrap();
                let format = AudioFormat::ALL.get(usize::from(selector % 8)).copied();
                let (result, delivered) = isolate(Stage::Decode, || {
                    let (result, delivered) = decode(file.to_vec(), &options(5, format));
                    Ok::<_, AudioError>((result, delivered))
                })?;
                assert!(delivered as f64 <= 71.0 * 48_000.0, "{name}: {delivered}");
                result.map(|report| format!("{} s", report.duration_seconds))
            } else {
                panic!("{name}: no target of that name");
            }
        };
        let outcome = run();
        println!("{name}: {outcome:?}");
        let crashed = matches!(&outcome, Err(AudioError::Crashed { .. }));
        if name.ends_with("-isolated") {
            assert!(crashed || !cfg!(debug_assertions), "{name}: {outcome:?}");
        } else {
            assert!(!crashed, "{name}: {outcome:?}");
        }
        seen += 1;
    }
    assert!(seen > 0);
}

#[test]
fn symphonia_overflows_fail_their_file_alone() {
    // Where overflow is checked (the test build) these panic inside
    // symphonia; without the checks (release) the value wraps and the file
    // is refused as damaged instead. Either way only this file fails.
    let (result, _) = isolate(Stage::Decode, || {
        Ok::<_, AudioError>(decode(flac_with_wasted_bits_overflow(8, 4), &options(60, None)))
    })
    .unwrap_or_else(|err| (Err(err), 0));
    let probe = probe_bytes(flac_with_wasted_bits_overflow(8, 4), AudioFormat::Flac, |_| {});
    // The probe decodes the first frame only: it accepts the file.
    assert!((probe.unwrap().duration_seconds - 8.0 * 4_096.0 / 8_000.0).abs() < 1e-9);
    let info = isolate(Stage::Probe, || {
        probe_bytes(mp3_with_info_frames_underflow(), AudioFormat::Mp3, |_| {})
    });
    if cfg!(debug_assertions) {
        for outcome in [result.map(|_| ()), info.map(|_| ())] {
            let err = outcome.unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("crashed on this file: attempt to subtract with overflow"),
                "{err}"
            );
        }
    } else {
        assert!(info.is_err());
    }
}

#[test]
fn containers_traum_does_not_read_never_reach_symphonia() {
    // symphonia's CAF and Matroska readers panic on crafted sizes
    // (symphonia #489, #490). A clip is sniffed like an upload, and a
    // sniffed file is opened with its own format's reader alone, so they
    // are refused before either reader runs.
    let mut caf = b"caff\x00\x01\x00\x00desc".to_vec();
    caf.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut mkv = b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\x82\x84webm".to_vec();
    mkv.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    for (file, wanted) in [
        (caf, "(CAF) files are not supported"),
        (mkv, "not a recognised audio format"),
    ] {
        let err = decode_bytes(file, &options(60, None), |_| {}, |_| {}).unwrap_err();
        assert!(matches!(err, AudioError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains(wanted), "{err}");
    }
}

#[test]
fn a_file_of_tiny_chunks_is_checked_in_bounded_time() {
    // A million empty chunks before `data`: every one is a header to read.
    let chunks: Vec<(&[u8; 4], u32, Vec<u8>)> = (0..1_000_000).map(|_| (b"junk", 0, Vec::new())).collect();
    let file = wav(8_000, &sine(8_000, 0.1, 440.0), &chunks, None, None);
    let started = Instant::now();
    structure::check(&mut Cursor::new(&file), file.len() as u64, AudioFormat::Wav).unwrap();
    println!("{} bytes checked in {:?}", file.len(), started.elapsed());
}

#[test]
fn a_panic_in_symphonia_aac_decoder_fails_its_file_alone() {
    // Found by fuzzing: section data that indexes past symphonia's table
    // of 64 sections (an index out of bounds in any build). Its first
    // packet decodes, so the probe accepts the file; decoding crashes.
    let file =
        std::fs::read(std::path::Path::new(FIXTURES).join("hostile/aac-section-overflow.m4a")).unwrap();
    let properties = probe_bytes(file.clone(), AudioFormat::M4a, |_| {}).unwrap();
    assert_eq!(properties.codec, "aac");
    let err = isolate(Stage::Decode, || decode(file, &options(60, None)).0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the decoder crashed on this file: index out of bounds: the len is 64 but the index is 64"
    );
}
