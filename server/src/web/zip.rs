//! A zip archive written front to back, for streaming: entries are stored
//! (audio does not deflate), each followed by a data descriptor with the
//! CRC-32 computed while its bytes passed, and the central directory last.
//! ZIP64 records are written exactly where a size, an offset or the entry
//! count does not fit the classic fields, so archives of any size open in
//! every reader, and small ones stay classic zip for the oldest tools.

use bytes::{BufMut, Bytes, BytesMut};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;
const ZIP64_END_LOCATOR: u32 = 0x0706_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
/// Header id of the ZIP64 extended information extra field.
const ZIP64_EXTRA: u16 = 0x0001;
/// Sizes and CRC follow the data; the name is UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
const VERSION: u16 = 20;
/// APPNOTE 4.4.3.2: version 4.5 is needed to read ZIP64 records.
const VERSION_ZIP64: u16 = 45;
/// 1980-01-01 00:00 in MS-DOS format: archives do not depend on the clock.
const DOS_DATE: u16 = (1 << 5) | 1;
/// A classic field holding this value says "see the ZIP64 record".
const FULL_32: u64 = u32::MAX as u64;
const FULL_16: u64 = u16::MAX as u64;

struct Entry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Bytes of an archive being written.
#[derive(Default)]
pub struct ZipWriter {
    entries: Vec<Entry>,
    offset: u64,
    current: Option<(String, u64, u64)>,
}

/// An entry whose own size does not fit 32 bits: its local header carries a
/// ZIP64 extra field, which tells readers its data descriptor has 8-byte
/// sizes (APPNOTE 4.3.9.2).
fn needs_zip64(size: u64) -> bool {
    size >= FULL_32
}

fn clamp_32(value: u64) -> u32 {
    u32::try_from(value).map_or(u32::MAX, |v| if u64::from(v) >= FULL_32 { u32::MAX } else { v })
}

impl ZipWriter {
    /// Total archive size for entries with these names and sizes, to send
    /// as `Content-Length`. It writes the headers without the data, so it
    /// cannot disagree with what the stream sends.
    pub fn archive_size<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
        let mut writer = ZipWriter::default();
        let mut total = 0;
        for (name, size) in entries {
            total += writer.begin(name, size).len() as u64 + size;
            total += writer.end(0, size).len() as u64;
        }
        total + writer.finish().len() as u64
    }

    /// Starts an entry of `size` bytes; its bytes follow.
    pub fn begin(&mut self, name: &str, size: u64) -> Bytes {
        let zip64 = needs_zip64(size);
        let mut out = BytesMut::with_capacity(30 + name.len() + 20);
        out.put_u32_le(LOCAL_HEADER);
        out.put_u16_le(if zip64 { VERSION_ZIP64 } else { VERSION });
        out.put_u16_le(FLAGS);
        out.put_u16_le(0); // stored
        out.put_u16_le(0);
        out.put_u16_le(DOS_DATE);
        out.put_u32_le(0);
        // With bit 3 set the real sizes come in the data descriptor; the
        // markers only announce that they are 8 bytes wide.
        let marker = if zip64 { u32::MAX } else { 0 };
        out.put_u32_le(marker);
        out.put_u32_le(marker);
        out.put_u16_le(name_len(name));
        out.put_u16_le(if zip64 { 20 } else { 0 });
        out.put_slice(name.as_bytes());
        if zip64 {
            out.put_u16_le(ZIP64_EXTRA);
            out.put_u16_le(16);
            out.put_u64_le(0);
            out.put_u64_le(0);
        }
        self.current = Some((name.to_owned(), self.offset, size));
        self.offset += out.len() as u64;
        out.freeze()
    }

    /// Ends the entry begun last, whose bytes had this CRC-32 and length.
    pub fn end(&mut self, crc: u32, size: u64) -> Bytes {
        self.offset += size;
        let (name, offset, announced) = self.current.take().unwrap_or_default();
        let mut out = BytesMut::with_capacity(24);
        out.put_u32_le(DATA_DESCRIPTOR);
        out.put_u32_le(crc);
        if needs_zip64(announced) {
            out.put_u64_le(size);
            out.put_u64_le(size);
        } else {
            out.put_u32_le(clamp_32(size));
            out.put_u32_le(clamp_32(size));
        }
        self.offset += out.len() as u64;
        self.entries.push(Entry {
            name,
            crc,
            size,
            offset,
        });
        out.freeze()
    }

    /// The central directory and its end records.
    pub fn finish(self) -> Bytes {
        let mut out = BytesMut::new();
        let start = self.offset;
        for entry in &self.entries {
            let big_size = entry.size >= FULL_32;
            let big_offset = entry.offset >= FULL_32;
            let mut extra = BytesMut::new();
            if big_size {
                extra.put_u64_le(entry.size);
                extra.put_u64_le(entry.size);
            }
            if big_offset {
                extra.put_u64_le(entry.offset);
            }
            let version = if extra.is_empty() { VERSION } else { VERSION_ZIP64 };
            out.put_u32_le(CENTRAL_HEADER);
            out.put_u16_le(version);
            out.put_u16_le(version);
            out.put_u16_le(FLAGS);
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u16_le(DOS_DATE);
            out.put_u32_le(entry.crc);
            out.put_u32_le(clamp_32(entry.size));
            out.put_u32_le(clamp_32(entry.size));
            out.put_u16_le(name_len(&entry.name));
            out.put_u16_le(if extra.is_empty() {
                0
            } else {
                4 + extra.len() as u16
            });
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u16_le(0);
            out.put_u32_le(0);
            out.put_u32_le(clamp_32(entry.offset));
            out.put_slice(entry.name.as_bytes());
            if !extra.is_empty() {
                out.put_u16_le(ZIP64_EXTRA);
                out.put_u16_le(extra.len() as u16);
                out.put_slice(&extra);
            }
        }
        let size = out.len() as u64;
        let count = self.entries.len() as u64;
        if count >= FULL_16 || size >= FULL_32 || start >= FULL_32 {
            let zip64_end = start + size;
            out.put_u32_le(ZIP64_END_OF_CENTRAL);
            out.put_u64_le(44); // the record's size after this field
            out.put_u16_le(VERSION_ZIP64);
            out.put_u16_le(VERSION_ZIP64);
            out.put_u32_le(0);
            out.put_u32_le(0);
            out.put_u64_le(count);
            out.put_u64_le(count);
            out.put_u64_le(size);
            out.put_u64_le(start);
            out.put_u32_le(ZIP64_END_LOCATOR);
            out.put_u32_le(0);
            out.put_u64_le(zip64_end);
            out.put_u32_le(1);
        }
        let count_16 = u16::try_from(count).unwrap_or(u16::MAX);
        out.put_u32_le(END_OF_CENTRAL);
        out.put_u16_le(0);
        out.put_u16_le(0);
        out.put_u16_le(count_16);
        out.put_u16_le(count_16);
        out.put_u32_le(clamp_32(size));
        out.put_u32_le(clamp_32(start));
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
    use std::io::{Seek, SeekFrom, Write};
    use std::process::Command;

    use super::*;

    /// Writes an archive of `(name, data or a run of zeros)` entries to a
    /// file, the zeros as a hole so that a 4.5 GiB entry costs no disk.
    fn write_archive(path: &std::path::Path, entries: &[(&str, Result<&[u8], u64>)]) -> u64 {
        let mut file = std::fs::File::create(path).unwrap();
        let mut zip = ZipWriter::default();
        for (name, data) in entries {
            match data {
                Ok(bytes) => {
                    file.write_all(&zip.begin(name, bytes.len() as u64)).unwrap();
                    file.write_all(bytes).unwrap();
                    file.write_all(&zip.end(crc32fast::hash(bytes), bytes.len() as u64))
                        .unwrap();
                }
                Err(zeros) => {
                    file.write_all(&zip.begin(name, *zeros)).unwrap();
                    file.seek(SeekFrom::Current(*zeros as i64)).unwrap();
                    file.write_all(&zip.end(crc_of_zeros(*zeros), *zeros)).unwrap();
                }
            }
        }
        file.write_all(&zip.finish()).unwrap();
        file.stream_position().unwrap()
    }

    fn crc_of_zeros(len: u64) -> u32 {
        const CHUNK: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK as usize];
        let mut chunk = crc32fast::Hasher::new();
        chunk.update(&zeros);
        let mut total = crc32fast::Hasher::new();
        for _ in 0..len / CHUNK {
            total.combine(&chunk);
        }
        total.update(&zeros[..(len % CHUNK) as usize]);
        total.finalize()
    }

    /// Python's zipfile, an independent reader: each entry's name, size and
    /// offset, and the bytes of the entries named in `read`.
    fn python_reads(path: &std::path::Path, read: &[&str]) -> String {
        let script = "import sys, zipfile\n\
            z = zipfile.ZipFile(sys.argv[1])\n\
            for i in z.infolist():\n    print(i.filename, i.file_size, i.header_offset)\n\
            for n in sys.argv[2:]:\n    print(n, z.read(n).decode())\n";
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(path)
            .args(read)
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn sizes_add_up_and_names_stay_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.zip");
        let written = write_archive(&path, &[("a.wav", Ok(b"hello")), ("b.wav", Ok(b"audio!"))]);
        assert_eq!(written, ZipWriter::archive_size([("a.wav", 5), ("b.wav", 6)]));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        assert_eq!(
            &bytes[bytes.len() - 22..bytes.len() - 18],
            b"PK\x05\x06",
            "no ZIP64 record"
        );
        assert_eq!(
            python_reads(&path, &["b.wav"]),
            "a.wav 5 0\nb.wav 6 56\nb.wav audio!\n"
        );
        assert_eq!(
            unique_names(["kick.wav", "Kick.wav", "kick.wav", "pad"]),
            ["kick.wav", "Kick (2).wav", "kick (3).wav", "pad"]
        );
    }

    #[test]
    fn an_entry_past_4_gib_and_one_behind_it_read_back() {
        let big = (9u64 << 29) + 7; // 4.5 GiB and a few bytes
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.zip");
        let entries = [("long.wav", Err(big)), ("after.wav", Ok(&b"still here"[..]))];
        let written = write_archive(&path, &entries);
        assert_eq!(
            written,
            ZipWriter::archive_size([("long.wav", big), ("after.wav", 10)])
        );
        let after_offset = 30 + 8 + 20 + big + 24;
        assert_eq!(
            python_reads(&path, &["after.wav"]),
            format!("long.wav {big} 0\nafter.wav 10 {after_offset}\nafter.wav still here\n")
        );
    }

    #[test]
    fn more_entries_than_16_bits_count_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.zip");
        let names: Vec<String> = (0..70_000).map(|i| format!("{i}.wav")).collect();
        let entries: Vec<(&str, Result<&[u8], u64>)> =
            names.iter().map(|n| (n.as_str(), Ok(&b"x"[..]))).collect();
        let written = write_archive(&path, &entries);
        assert_eq!(
            written,
            ZipWriter::archive_size(names.iter().map(|n| (n.as_str(), 1)))
        );
        let listing = python_reads(&path, &["69999.wav"]);
        assert_eq!(listing.lines().count(), 70_001);
        assert!(
            listing.ends_with("69999.wav x\n"),
            "{}",
            &listing[listing.len() - 40..]
        );
    }
}
