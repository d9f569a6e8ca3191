//! A zip archive written front to back, for streaming: entries are stored
//! (audio does not deflate), each followed by a data descriptor with the
//! CRC-32 computed while its bytes passed, and the central directory last.
//! No ZIP64, so the whole archive must stay under 4 GiB; callers check that
//! before the first byte goes out.

use bytes::{BufMut, Bytes, BytesMut};

/// The largest archive this writer can describe.
pub const MAX_ARCHIVE_BYTES: u64 = u32::MAX as u64;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
/// Sizes and CRC follow the data; the name is UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
const VERSION: u16 = 20;
/// 1980-01-01 00:00 in MS-DOS format: archives do not depend on the clock.
const DOS_DATE: u16 = (1 << 5) | 1;

struct Entry {
    name: String,
    crc: u32,
    size: u32,
    offset: u32,
}

/// Bytes of an archive being written.
#[derive(Default)]
pub struct ZipWriter {
    entries: Vec<Entry>,
    offset: u64,
    current: Option<(String, u32)>,
}

impl ZipWriter {
    /// Total archive size for entries with these names and sizes, to check
    /// against [`MAX_ARCHIVE_BYTES`] and to send as `Content-Length`.
    pub fn archive_size<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
        let mut total = 22;
        for (name, size) in entries {
            let name = name.len() as u64;
            total += 30 + name + size + 16 + 46 + name;
        }
        total
    }

    /// Starts an entry; its bytes follow.
    pub fn begin(&mut self, name: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(30 + name.len());
        out.put_u32_le(LOCAL_HEADER);
        out.put_u16_le(VERSION);
        out.put_u16_le(FLAGS);
        out.put_u16_le(0); // stored
        out.put_u16_le(0);
        out.put_u16_le(DOS_DATE);
        out.put_u32_le(0);
        out.put_u32_le(0);
        out.put_u32_le(0);
        out.put_u16_le(name_len(name));
        out.put_u16_le(0);
        out.put_slice(name.as_bytes());
        self.current = Some((name.to_owned(), self.offset as u32));
        self.offset += out.len() as u64;
        out.freeze()
    }

    /// Ends the entry begun last, whose bytes had this CRC-32 and length.
    pub fn end(&mut self, crc: u32, size: u64) -> Bytes {
        self.offset += size;
        let (name, offset) = self.current.take().unwrap_or_default();
        let size = size as u32;
        let mut out = BytesMut::with_capacity(16);
        out.put_u32_le(DATA_DESCRIPTOR);
        out.put_u32_le(crc);
        out.put_u32_le(size);
        out.put_u32_le(size);
        self.offset += out.len() as u64;
        self.entries.push(Entry {
            name,
            crc,
            size,
            offset,
        });
        out.freeze()
    }

    /// The central directory and its end record.
    pub fn finish(self) -> Bytes {
        let mut out = BytesMut::new();
        let start = self.offset as u32;
        for entry in &self.entries {
            out.put_u32_le(CENTRAL_HEADER);
            out.put_u16_le(VERSION);
            out.put_u16_le(VERSION);
            out.put_u16_le(FLAGS);
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u16_le(DOS_DATE);
            out.put_u32_le(entry.crc);
            out.put_u32_le(entry.size);
            out.put_u32_le(entry.size);
            out.put_u16_le(name_len(&entry.name));
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u32_le(0);
            out.put_u32_le(entry.offset);
            out.put_slice(entry.name.as_bytes());
        }
        let size = out.len() as u32;
        let count = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        out.put_u32_le(END_OF_CENTRAL);
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u16_le(count);
        out.put_u16_le(count);
        out.put_u32_le(size);
        out.put_u32_le(start);
        out.put_u16_le(0);
        out.freeze()
    }
}

/// Names are at most 255 bytes (validated filenames), far inside u16.
fn name_len(name: &str) -> u16 {
    u16::try_from(name.len()).unwrap_or(u16::MAX)
}

/// Entry names for files, unique within one archive: a repeated name gets
/// " (2)", " (3)", … before its extension.
pub fn unique_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    names
        .into_iter()
        .map(|name| {
            let (stem, ext) = match name.rfind('.') {
                Some(dot) if dot > 0 => name.split_at(dot),
                _ => (name, ""),
            };
            let mut candidate = name.to_owned();
            let mut n = 2;
            while !used.insert(candidate.to_lowercase()) {
                candidate = format!("{stem} ({n}){ext}");
                n += 1;
            }
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up_and_names_stay_unique() {
        let mut zip = ZipWriter::default();
        let mut bytes = Vec::new();
        for (name, data) in [("a.wav", &b"hello"[..]), ("b.wav", &b"audio!"[..])] {
            bytes.extend_from_slice(&zip.begin(name));
            bytes.extend_from_slice(data);
            bytes.extend_from_slice(&zip.end(crc32fast::hash(data), data.len() as u64));
        }
        bytes.extend_from_slice(&zip.finish());
        assert_eq!(
            bytes.len() as u64,
            ZipWriter::archive_size([("a.wav", 5), ("b.wav", 6)])
        );
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        assert_eq!(&bytes[bytes.len() - 22..bytes.len() - 18], b"PK\x05\x06");
        assert_eq!(
            unique_names(["kick.wav", "Kick.wav", "kick.wav", "pad"]),
            ["kick.wav", "Kick (2).wav", "kick (3).wav", "pad"]
        );
    }
}
