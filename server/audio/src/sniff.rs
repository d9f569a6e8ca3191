//! Recognises a file's format from its first bytes, never from its name.

use crate::{AudioError, AudioFormat};

/// Human-readable list of what Traum accepts, used in every rejection.
pub const SUPPORTED_FORMATS: &str =
    "WAV (PCM 8/16/24/32-bit integer or float), AIFF/AIFF-C, FLAC, MP3, Ogg Vorbis, M4A/MP4 (AAC or ALAC)";

/// How many leading bytes `sniff_format` wants to see.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// Identifies the container from the first bytes of a file.
///
/// The error ([`AudioError::Unsupported`]) names what was recognised (e.g.
/// Opus, WMA) and lists what is supported, so the user knows why it was
/// refused.
pub fn sniff_format(head: &[u8]) -> Result<AudioFormat, AudioError> {
    recognise(head).map_err(|reason| {
        AudioError::Unsupported(format!("{reason}; supported formats: {SUPPORTED_FORMATS}"))
    })
}

fn recognise(head: &[u8]) -> Result<AudioFormat, String> {
    let body = skip_id3(head);
    if head.len() >= 12 && (&head[..4] == b"RIFF" || &head[..4] == b"RF64" || &head[..4] == b"BW64") {
        return if &head[8..12] == b"WAVE" {
            Ok(AudioFormat::Wav)
        } else {
            Err(format!(
                "RIFF file of type `{}` is not WAVE audio",
                printable(&head[8..12])
            ))
        };
    }
    if head.len() >= 12 && &head[..4] == b"FORM" && (&head[8..12] == b"AIFF" || &head[8..12] == b"AIFC") {
        return Ok(AudioFormat::Aiff);
    }
    if body.starts_with(b"fLaC") {
        return Ok(AudioFormat::Flac);
    }
    if head.starts_with(b"OggS") {
        let window = &head[..head.len().min(256)];
        if contains(window, b"\x01vorbis") {
            return Ok(AudioFormat::Ogg);
        }
        if contains(window, b"OpusHead") {
            return Err("Ogg Opus audio is not supported".to_owned());
        }
        if contains(window, b"Speex") {
            return Err("Ogg Speex audio is not supported".to_owned());
        }
        if contains(window, b"\x7fFLAC") {
            return Err("FLAC inside an Ogg container is not supported; upload native FLAC".to_owned());
        }
        return Err("Ogg file without a Vorbis stream is not supported".to_owned());
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        if [
            b"M4A ", b"M4B ", b"mp41", b"mp42", b"isom", b"iso2", b"dash", b"M4V ", b"avc1", b"3gp4", b"3gp5",
        ]
        .iter()
        .any(|known| brand == *known)
        {
            return Ok(AudioFormat::M4a);
        }
        return Err(format!(
            "MPEG-4 file of brand `{}` is not supported",
            printable(brand)
        ));
    }
    if head.starts_with(&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
        return Err("WMA/ASF audio is not supported".to_owned());
    }
    if head.starts_with(b"caff") {
        return Err("Core Audio Format (CAF) files are not supported".to_owned());
    }
    if body.len() >= 4 && is_mpeg_layer3_frame(body) {
        return Ok(AudioFormat::Mp3);
    }
    if body.len() < head.len() && !body.is_empty() {
        // An ID3 tag followed by something that is not an MPEG frame: the
        // tag alone does not make a file MP3.
        return Err("file starts with an ID3 tag but holds no MP3 audio after it".to_owned());
    }
    if head.is_empty() {
        return Err("file is empty".to_owned());
    }
    Err("content is not a recognised audio format".to_owned())
}

/// Skips a leading ID3v2 tag (which may precede MP3 and, rarely, FLAC).
fn skip_id3(head: &[u8]) -> &[u8] {
    if head.len() >= 10 && head.starts_with(b"ID3") {
        let size = head[6..10]
            .iter()
            .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7F));
        let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
        let start = 10 + size + footer;
        if start <= head.len() {
            return &head[start..];
        }
        return &[];
    }
    head
}

/// Checks an MPEG audio frame header: sync, layer III, valid bitrate and
/// sample-rate indices.
fn is_mpeg_layer3_frame(bytes: &[u8]) -> bool {
    let [b0, b1, b2, _] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let sync = b0 == 0xFF && (b1 & 0xE0) == 0xE0;
    let version_ok = (b1 >> 3) & 0b11 != 0b01;
    let layer3 = (b1 >> 1) & 0b11 == 0b01;
    let bitrate_ok = (b2 >> 4) != 0b1111;
    let rate_ok = (b2 >> 2) & 0b11 != 0b11;
    sync && version_ok && layer3 && bitrate_ok && rate_ok
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn printable(bytes: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_magic_numbers() {
        assert_eq!(sniff_format(b"RIFF\0\0\0\0WAVEfmt ").ok(), Some(AudioFormat::Wav));
        assert_eq!(
            sniff_format(b"FORM\0\0\0\0AIFFCOMM").ok(),
            Some(AudioFormat::Aiff)
        );
        assert_eq!(sniff_format(b"fLaC\0\0\0\x22").ok(), Some(AudioFormat::Flac));
        assert_eq!(
            sniff_format(&[0xFF, 0xFB, 0x90, 0x64]).ok(),
            Some(AudioFormat::Mp3)
        );
        assert_eq!(
            sniff_format(b"\0\0\0\x20ftypM4A \0\0\0\0").ok(),
            Some(AudioFormat::M4a)
        );
        let mut id3 = b"ID3\x04\0\0\0\0\0\x02ab".to_vec();
        id3.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        assert_eq!(sniff_format(&id3).ok(), Some(AudioFormat::Mp3));
    }

    #[test]
    fn names_what_it_refuses() {
        let opus = b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead";
        assert!(sniff_format(opus).unwrap_err().to_string().contains("Opus"));
        assert!(
            sniff_format(b"hello world, not audio")
                .unwrap_err()
                .to_string()
                .contains("not a recognised")
        );
        assert!(sniff_format(b"").unwrap_err().to_string().contains("empty"));
    }
}
