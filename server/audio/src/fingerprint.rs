//! Acoustic fingerprints: which files are the same recording, whatever their
//! format, bitrate, sample rate, gain or trimmed start.
//!
//! A [`Fingerprint`] is Chromaprint's (the AcoustID algorithm, computed by
//! the pure-Rust port `rusty-chromaprint`, configuration "test2", the one
//! `fpcalc` uses by default): the signal is resampled to 11 025 Hz, cut into
//! 4096-sample frames every 1365 samples ([`ITEM_SECONDS`], about 8 per
//! second), each frame's spectrum folded onto the 12 pitch classes, and 16
//! Haar-like filters over the chroma-against-time image quantised to 2 bits
//! each: one 32-bit *item* per frame. The chroma is normalised per frame, so
//! gain does not matter; it spans 28 Hz to 3.5 kHz, below where lossy codecs
//! and low sample rates cut.
//!
//! Two fingerprints are aligned by [`compare`]: offsets where many items
//! agree on their top [`KEY_BITS`] bits are tried, the one with the
//! fewest differing bits over the overlap wins, and the offset is refined
//! below one item from the bit error rates at its neighbours. A
//! [`FingerprintIndex`] finds the same offsets for one fingerprint among
//! many through an inverted index over those key bits.
//!
//! Cost: about 0.25 s per 3 minutes of 48 kHz audio on a 2-core AMD EPYC,
//! half in Chromaprint's resampling to 11 025 Hz and half in its chroma and
//! classifiers; `tests::cost_benchmark` compares it with decoding and
//! [`crate::analyse`].

use std::collections::HashMap;

use rusty_chromaprint::{Configuration, Fingerprinter as Chromaprinter};

use crate::AudioError;
use crate::resample::MonoResampler;

/// Seconds between consecutive fingerprint items: Chromaprint's hop of 1365
/// samples at 11 025 Hz.
pub const ITEM_SECONDS: f64 = 1365.0 / 11_025.0;

/// Version of the layout [`Fingerprint::to_bytes`] writes, its first byte.
pub const FORMAT_VERSION: u8 = 1;

/// Chromaprint's identifier of the algorithm ("test2"), the second byte.
const ALGORITHM: u8 = 1;

/// A match scores at least this much when both fingerprints are the same
/// recording and overlap by [`FULL_EVIDENCE_SECONDS`] or more; see
/// [`same_recording_threshold`] for shorter overlaps.
///
/// The score is `1 − BER / chance`: the bit error rate over the overlap at
/// the best offset, against the rate two unrelated fingerprints with the
/// same bit statistics would show ([`chance_error_rate`]), so 0 is chance
/// and 1 is identity. For ordinary audio, whose bits are set about half the
/// time, chance is close to 50 % and the score is about `1 − 2 × BER`: 0.6
/// is a bit error rate of 20 %. Audio whose fingerprint bits hardly vary
/// (a bare synthetic drum loop, a held tone) agrees with any other such
/// audio on most bits by chance; measured against chance it scores near 0
/// instead of matching everything like it. On the test songs, transcodes
/// (MP3 128 kbit/s, Vorbis q3, AAC 96 kbit/s, 22.05 kHz), trims and gain
/// changes score 0.86 or more (bit error rate at most 7 %), while different
/// songs with the same voice, drums, tempo, key and chords score at most
/// about 0.45 (27.5 %), at short overlaps where whole bars line up; the
/// tests print both figures.
pub const SAME_RECORDING_SCORE: f64 = 0.6;

/// Overlap from which [`SAME_RECORDING_SCORE`] applies as it is, seconds.
pub const FULL_EVIDENCE_SECONDS: f64 = 10.0;

/// Two fingerprints must overlap at least this long to be compared: over a
/// shorter stretch a chance alignment of unrelated items gets too likely.
pub const MIN_OVERLAP_SECONDS: f64 = 4.0;

/// The score a match over `overlap_seconds` needs to count as the same
/// recording: [`SAME_RECORDING_SCORE`] from [`FULL_EVIDENCE_SECONDS`] on,
/// rising linearly to 0.7 at [`MIN_OVERLAP_SECONDS`], as fewer items leave
/// more room for chance agreement.
pub fn same_recording_threshold(overlap_seconds: f64) -> f64 {
    let shortfall = (FULL_EVIDENCE_SECONDS - overlap_seconds) / (FULL_EVIDENCE_SECONDS - MIN_OVERLAP_SECONDS);
    SAME_RECORDING_SCORE + 0.1 * shortfall.clamp(0.0, 1.0)
}

/// Bits of an item used as its key, for offset voting and the index.
pub const KEY_BITS: u32 = 20;

/// Items overlap `MIN_OVERLAP_SECONDS` must cover.
fn min_overlap_items() -> usize {
    (MIN_OVERLAP_SECONDS / ITEM_SECONDS).ceil() as usize
}

/// An item's key: its top [`KEY_BITS`] bits, the outputs of Chromaprint's
/// first 10 classifiers (it packs the first into the top two bits). Exact
/// key agreement is only needed at a few offsets for voting; the alignment
/// itself is judged on all 32 bits.
#[inline]
fn key(item: u32) -> u32 {
    item >> (32 - KEY_BITS)
}

/// An acoustic fingerprint: one 32-bit item every [`ITEM_SECONDS`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    items: Vec<u32>,
}

impl Fingerprint {
    /// Fingerprints a whole mono signal; see [`Fingerprinter`] for one fed
    /// in blocks.
    pub fn compute(samples: &[f32], sample_rate: u32) -> Result<Self, AudioError> {
        let mut printer = Fingerprinter::new(sample_rate)?;
        printer.push(samples);
        Ok(printer.finish())
    }

    /// A fingerprint from its items (as [`Fingerprint::items`] returns them).
    pub fn from_items(items: Vec<u32>) -> Self {
        Self { items }
    }

    /// The items, [`ITEM_SECONDS`] apart.
    pub fn items(&self) -> &[u32] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the fingerprint has no items (audio under about 3 s).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The span the items cover, seconds: about 2.7 s less than the audio,
    /// the reach of the first frame and of Chromaprint's filters.
    pub fn duration_seconds(&self) -> f64 {
        self.items.len() as f64 * ITEM_SECONDS
    }

    /// The compact form, for storage.
    ///
    /// Layout, version 1: the format version ([`FORMAT_VERSION`]), the
    /// algorithm (Chromaprint's id, 1), the item count as an LEB128 varint,
    /// then each item XORed with the previous one (the first with 0), written
    /// as the distances between its set bits in 4-bit codes (1 to 14: that
    /// distance; 15: 14 more, read on; 0: end of the item), high nibble first,
    /// and last a CRC-32 of everything before it, little-endian.
    ///
    /// Consecutive items share most bits, so this takes about 3 bytes per
    /// item, 1.3 kB per minute of audio (1334 B measured on a test song;
    /// `bytes_round_trip_and_damage_is_an_error` prints it), against 4 bytes
    /// and 1.9 kB per minute for the raw items.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.items.len() * 3);
        out.push(FORMAT_VERSION);
        out.push(ALGORITHM);
        let mut count = self.items.len() as u64;
        loop {
            let byte = (count & 0x7f) as u8;
            count >>= 7;
            if count == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        let mut nibbles = NibbleWriter::new(&mut out);
        let mut previous = 0u32;
        for &item in &self.items {
            let mut delta = item ^ previous;
            previous = item;
            let mut last = 0u32;
            while delta != 0 {
                let bit = delta.trailing_zeros() + 1;
                delta &= delta - 1;
                let mut gap = bit - last;
                last = bit;
                while gap > 14 {
                    nibbles.push(15);
                    gap -= 14;
                }
                nibbles.push(gap as u8);
            }
            nibbles.push(0);
        }
        nibbles.finish();
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads what [`Fingerprint::to_bytes`] wrote; damaged or truncated
    /// input is [`AudioError::Corrupt`], another version
    /// [`AudioError::Unsupported`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AudioError> {
        let corrupt = |what: &str| AudioError::Corrupt(format!("the stored fingerprint is damaged: {what}"));
        if bytes.len() < 7 {
            return Err(corrupt("too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != stored {
            // A version written by a later release may checksum differently.
            if body[0] != FORMAT_VERSION {
                return Err(AudioError::Unsupported(format!(
                    "fingerprint format version {} is not supported (this build reads version {FORMAT_VERSION})",
                    body[0]
                )));
            }
            return Err(corrupt("checksum mismatch"));
        }
        if body[0] != FORMAT_VERSION || body[1] != ALGORITHM {
            return Err(AudioError::Unsupported(format!(
                "fingerprint format version {} algorithm {} is not supported (this build reads version \
                 {FORMAT_VERSION} algorithm {ALGORITHM})",
                body[0], body[1]
            )));
        }
        let mut position = 2;
        let mut count = 0u64;
        let mut shift = 0;
        loop {
            let Some(&byte) = body.get(position) else {
                return Err(corrupt("item count cut short"));
            };
            position += 1;
            if shift > 56 {
                return Err(corrupt("item count too large"));
            }
            count |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let payload = &body[position..];
        // Every item takes at least its terminating nibble.
        if count > 2 * payload.len() as u64 {
            return Err(corrupt("more items declared than stored"));
        }
        let mut items = Vec::with_capacity(count as usize);
        let mut nibbles = payload
            .iter()
            .flat_map(|&byte| [byte >> 4, byte & 0x0f])
            .enumerate();
        let mut previous = 0u32;
        for _ in 0..count {
            let mut delta = 0u32;
            let mut bit = 0u32;
            let mut gap = 0u32;
            loop {
                let Some((_, nibble)) = nibbles.next() else {
                    return Err(corrupt("items cut short"));
                };
                match nibble {
                    0 if gap == 0 => break,
                    0 => return Err(corrupt("bad bit distance")),
                    15 => gap += 14,
                    n => {
                        bit += gap + u32::from(n);
                        gap = 0;
                        if bit > 32 {
                            return Err(corrupt("bit beyond 32"));
                        }
                        delta |= 1 << (bit - 1);
                    }
                }
            }
            previous ^= delta;
            items.push(previous);
        }
        // At most the one padding nibble may remain, and it must be 0.
        match nibbles.next() {
            None => {}
            Some((index, 0)) if index == 2 * payload.len() - 1 => {}
            Some(_) => return Err(corrupt("trailing data")),
        }
        Ok(Self { items })
    }
}

/// Packs 4-bit codes into bytes, high nibble first.
struct NibbleWriter<'a> {
    out: &'a mut Vec<u8>,
    pending: Option<u8>,
}

impl<'a> NibbleWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, pending: None }
    }

    fn push(&mut self, nibble: u8) {
        match self.pending.take() {
            None => self.pending = Some(nibble),
            Some(high) => self.out.push((high << 4) | nibble),
        }
    }

    fn finish(self) {
        if let Some(high) = self.pending {
            self.out.push(high << 4);
        }
    }
}

/// Computes a [`Fingerprint`] from a mono signal delivered in blocks, as
/// [`crate::decode_file`] hands them out.
pub struct Fingerprinter {
    inner: Chromaprinter,
    /// To Chromaprint's rate. Its own resampler (a windowed sinc in f64)
    /// took half of the fingerprinting time; rubato's FFT resampler in f32
    /// does the same job in a fraction of it.
    resampler: MonoResampler,
    block: Vec<i16>,
}

/// The rate Chromaprint analyses.
const CHROMAPRINT_RATE: u32 = 11_025;

impl Fingerprinter {
    /// A fingerprinter for mono samples at `sample_rate` (the pipeline's
    /// 48 kHz; anything from 1 kHz up works).
    pub fn new(sample_rate: u32) -> Result<Self, AudioError> {
        if sample_rate < 1000 {
            return Err(AudioError::Unsupported(format!(
                "cannot fingerprint audio at {sample_rate} Hz: 1000 Hz or more is needed"
            )));
        }
        let mut inner = Chromaprinter::new(&Configuration::preset_test2());
        inner.start(CHROMAPRINT_RATE, 1).map_err(|err| {
            AudioError::Unsupported(format!("cannot fingerprint audio at {sample_rate} Hz: {err}"))
        })?;
        Ok(Self {
            inner,
            resampler: MonoResampler::to_rate(sample_rate, CHROMAPRINT_RATE)?,
            block: Vec::new(),
        })
    }

    /// Adds samples (full scale ±1; louder ones are clipped).
    pub fn push(&mut self, samples: &[f32]) {
        for chunk in samples.chunks(8192) {
            let (inner, block) = (&mut self.inner, &mut self.block);
            // The FFT resampler cannot fail on a rate it was built for.
            let _ = self
                .resampler
                .push(chunk, &mut |resampled| consume(inner, block, resampled));
        }
    }

    /// The fingerprint of everything pushed.
    pub fn finish(mut self) -> Fingerprint {
        let (inner, block) = (&mut self.inner, &mut self.block);
        let _ = self
            .resampler
            .finish(&mut |resampled| consume(inner, block, resampled));
        self.inner.finish();
        Fingerprint {
            items: self.inner.fingerprint().to_vec(),
        }
    }
}

/// Hands samples at [`CHROMAPRINT_RATE`] to Chromaprint, which takes 16-bit ones.
fn consume(inner: &mut Chromaprinter, block: &mut Vec<i16>, samples: &[f32]) {
    block.clear();
    block.extend(
        samples
            .iter()
            .map(|&sample| (sample.clamp(-1.0, 1.0) * 32_767.0).round() as i16),
    );
    inner.consume(block);
}

/// How two fingerprints line up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// `1 − bit error rate / chance` over the overlap, clamped to 0..1: 1 for
    /// identical items, about 0 for unrelated audio. See
    /// [`SAME_RECORDING_SCORE`].
    pub score: f64,
    /// Where the second fingerprint's audio starts on the first one's
    /// timeline, seconds: positive when the second lacks the first's first
    /// `offset_seconds` (it was trimmed), negative when it has more at the
    /// start.
    pub offset_seconds: f64,
    /// How long the two overlap at that offset, seconds.
    pub overlap_seconds: f64,
}

impl Match {
    /// Whether the score says "the same recording".
    pub fn is_same_recording(&self) -> bool {
        self.score >= same_recording_threshold(self.overlap_seconds)
    }
}

/// The two fingerprints as the same recording, or `None` when they are not
/// (their best alignment, over at least [`MIN_OVERLAP_SECONDS`], scores below
/// [`same_recording_threshold`]).
pub fn compare(a: &Fingerprint, b: &Fingerprint) -> Option<Match> {
    best_alignment(a, b).filter(Match::is_same_recording)
}

/// The best alignment of two fingerprints whatever its score; `None` when
/// they cannot overlap by [`MIN_OVERLAP_SECONDS`] or share no key at any
/// offset.
pub fn best_alignment(a: &Fingerprint, b: &Fingerprint) -> Option<Match> {
    let (a, b) = (a.items(), b.items());
    let min_overlap = min_overlap_items();
    if a.len() < min_overlap || b.len() < min_overlap {
        return None;
    }
    let chance = chance_error_rate(&bit_balance(a), &bit_balance(b));
    // Offset d: b's item i lines up with a's item i + d.
    let mut positions: Vec<(u32, u32)> = a.iter().enumerate().map(|(i, &x)| (key(x), i as u32)).collect();
    positions.sort_unstable();
    let bias = b.len();
    let mut votes = vec![0u32; a.len() + b.len()];
    for (j, &item) in b.iter().enumerate() {
        let k = key(item);
        let start = positions.partition_point(|&(key, _)| key < k);
        let run = positions[start..].iter().take_while(|&&(key, _)| key == k);
        // Keys repeated all over a (held notes, silence) say little.
        if run.clone().nth(MAX_KEY_REPEATS).is_some() {
            continue;
        }
        for &(_, i) in run {
            votes[i as usize + bias - j] += 1;
        }
    }
    let mut peaks: Vec<(u32, usize)> = (0..votes.len())
        .map(|d| (votes[d] + votes.get(d + 1).copied().unwrap_or(0), d))
        .filter(|&(count, _)| count > 0)
        .collect();
    peaks.sort_unstable_by(|x, y| y.cmp(x));
    let mut best: Option<Match> = None;
    let mut tried: Vec<usize> = Vec::new();
    for &(_, d) in peaks.iter() {
        if tried.len() >= MAX_CANDIDATE_OFFSETS {
            break;
        }
        if tried.iter().any(|&t| t.abs_diff(d) <= 2) {
            continue;
        }
        tried.push(d);
        let offset = d as i64 - bias as i64;
        if let Some(found) = align_near(a, b, offset, chance)
            && best.is_none_or(|b| found.score > b.score)
        {
            best = Some(found);
        }
    }
    best
}

/// A key found at more positions of one fingerprint than this is ignored
/// for voting.
const MAX_KEY_REPEATS: usize = 16;

/// Offsets (vote peaks) [`best_alignment`] verifies.
const MAX_CANDIDATE_OFFSETS: usize = 8;

/// Differing bits and overlap length of `b` placed at `offset` on `a`.
fn bit_errors(a: &[u32], b: &[u32], offset: i64) -> (u64, usize) {
    let first_b = (-offset).max(0) as usize;
    let end_b = (a.len() as i64 - offset).min(b.len() as i64);
    if end_b <= first_b as i64 {
        return (0, 0);
    }
    let end_b = end_b as usize;
    let first_a = (first_b as i64 + offset) as usize;
    let errors = a[first_a..first_a + (end_b - first_b)]
        .iter()
        .zip(&b[first_b..end_b])
        .map(|(x, y)| u64::from((x ^ y).count_ones()))
        .sum();
    (errors, end_b - first_b)
}

fn error_rate(a: &[u32], b: &[u32], offset: i64) -> Option<f64> {
    let (errors, overlap) = bit_errors(a, b, offset);
    (overlap >= min_overlap_items()).then(|| errors as f64 / (32.0 * overlap as f64))
}

/// Per bit position, the fraction of items with that bit set.
fn bit_balance(items: &[u32]) -> [f32; 32] {
    let mut counts = [0u32; 32];
    for &item in items {
        for (bit, count) in counts.iter_mut().enumerate() {
            *count += (item >> bit) & 1;
        }
    }
    let n = items.len().max(1) as f32;
    counts.map(|count| count as f32 / n)
}

/// The bit error rate expected between two unrelated fingerprints with
/// these bit balances: per bit, the chance that one is set and the other
/// not, averaged over the 32 bits. 0.5 for balanced bits; near 0 when both
/// hold the same bits constant.
pub fn chance_error_rate(a: &[f32; 32], b: &[f32; 32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| f64::from(p) * (1.0 - f64::from(q)) + f64::from(q) * (1.0 - f64::from(p)))
        .sum::<f64>()
        / 32.0
}

/// Below this chance error rate two fingerprints carry too little
/// information to tell a match from chance: they never match.
const MIN_CHANCE_ERROR_RATE: f64 = 0.05;

/// The best alignment within two items of `offset`, refined below one item;
/// `chance` is [`chance_error_rate`] of the two.
fn align_near(a: &[u32], b: &[u32], offset: i64, chance: f64) -> Option<Match> {
    if chance < MIN_CHANCE_ERROR_RATE {
        return None;
    }
    let (rate, best) = (offset - 2..=offset + 2)
        .filter_map(|d| error_rate(a, b, d).map(|rate| (rate, d)))
        .min_by(|x, y| x.0.total_cmp(&y.0))?;
    let fraction = match (error_rate(a, b, best - 1), error_rate(a, b, best + 1)) {
        (Some(before), Some(after)) => subitem_offset(before, rate, after),
        _ => 0.0,
    };
    let (_, overlap) = bit_errors(a, b, best);
    Some(Match {
        score: (1.0 - rate / chance).clamp(0.0, 1.0),
        offset_seconds: (best as f64 + fraction) * ITEM_SECONDS,
        overlap_seconds: overlap as f64 * ITEM_SECONDS,
    })
}

/// Where between the neighbouring offsets the error rate bottoms out, in
/// items, from the rates one item before, at and after the best whole
/// offset: a V fitted through the three, as the error rate grows about in
/// proportion to the misalignment.
fn subitem_offset(before: f64, at: f64, after: f64) -> f64 {
    let rise = before.max(after) - at;
    if rise <= 0.0 {
        return 0.0;
    }
    ((before - after) / (2.0 * rise)).clamp(-0.5, 0.5)
}

/// One posting of the inverted index.
#[derive(Debug, Clone, Copy)]
struct Posting {
    slot: u32,
    position: u32,
}

/// Only every `INDEX_STRIDE`-th item of a stored fingerprint is indexed: a
/// query votes with all its items, so whatever the offset half of them meet
/// an indexed one.
const INDEX_STRIDE: usize = 2;

/// Candidates a lookup verifies at most, the most voted first.
const MAX_CANDIDATES: usize = 64;

/// Votes a candidate needs (two neighbouring offsets counted together).
const MIN_VOTES: u32 = 2;

struct Entry {
    id: i64,
    fingerprint: Fingerprint,
    balance: [f32; 32],
}

/// Fingerprints held in memory for finding a file's duplicates.
///
/// An inverted index maps each item's key ([`KEY_BITS`] bits) to the stored
/// fingerprints and positions where it occurs (every second item). A lookup
/// lets each of the query's items vote for (fingerprint, offset) pairs, and
/// verifies the most voted ones with [`compare`]'s alignment. Memory: the
/// items (4 bytes each) plus 8 bytes per posting (one per two items), about
/// 4 kB per minute of audio, and 24 MB for the key table: 100 000
/// fingerprints of 30 s to 3 min took 339 MB of items and 338 MB of
/// postings in `tests::lookup_benchmark`.
pub struct FingerprintIndex {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    slots: HashMap<i64, u32>,
    buckets: Vec<Vec<Posting>>,
    postings: usize,
}

impl Default for FingerprintIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl FingerprintIndex {
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            slots: HashMap::new(),
            buckets: vec![Vec::new(); 1 << KEY_BITS],
            postings: 0,
        }
    }

    /// Number of fingerprints held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds (or replaces) the fingerprint of file `id`.
    pub fn insert(&mut self, id: i64, fingerprint: &Fingerprint) {
        self.remove(id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as u32
            }
        };
        let mut previous = None;
        for (position, &item) in fingerprint.items.iter().enumerate().step_by(INDEX_STRIDE) {
            let k = key(item);
            // A held key is indexed once per run.
            if previous == Some(k) {
                continue;
            }
            previous = Some(k);
            self.buckets[k as usize].push(Posting {
                slot,
                position: position as u32,
            });
            self.postings += 1;
        }
        self.entries[slot as usize] = Some(Entry {
            id,
            fingerprint: fingerprint.clone(),
            balance: bit_balance(fingerprint.items()),
        });
        self.slots.insert(id, slot);
    }

    /// Drops the fingerprint of file `id`; whether there was one.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        if let Some(entry) = self.entries[slot as usize].take() {
            let mut keys: Vec<u32> = entry.fingerprint.items.iter().map(|&item| key(item)).collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                let bucket = &mut self.buckets[k as usize];
                let before = bucket.len();
                bucket.retain(|posting| posting.slot != slot);
                self.postings -= before - bucket.len();
            }
        }
        self.free.push(slot);
        true
    }

    /// The fingerprint stored for `id`.
    pub fn get(&self, id: i64) -> Option<&Fingerprint> {
        let slot = *self.slots.get(&id)?;
        self.entries[slot as usize]
            .as_ref()
            .map(|entry| &entry.fingerprint)
    }

    /// Buckets longer than this (8 times the mean, at least 256) are skipped
    /// by lookups: a key that common (silence, a held tone, bits most items
    /// share) matches much and tells little, and would dominate the time.
    fn max_bucket(&self) -> usize {
        ((8 * self.postings) >> KEY_BITS).max(256)
    }

    /// The stored fingerprints that are the same recording as `query`, with
    /// how each lines up: [`Match::offset_seconds`] is where `query` starts
    /// on the stored file's timeline. Best score first; a stored copy of
    /// `query` itself is included.
    pub fn matches(&self, query: &Fingerprint) -> Vec<(i64, Match)> {
        let items = query.items();
        if items.len() < min_overlap_items() {
            return Vec::new();
        }
        let max_bucket = self.max_bucket();
        let query_balance = bit_balance(items);
        // (slot, offset + bias) packed for one sort.
        let bias = 1i64 << 31;
        let mut hits: Vec<u64> = Vec::new();
        for (j, &item) in items.iter().enumerate() {
            let bucket = &self.buckets[key(item) as usize];
            if bucket.len() > max_bucket {
                continue;
            }
            for posting in bucket {
                let offset = i64::from(posting.position) - j as i64 + bias;
                hits.push((u64::from(posting.slot) << 32) | offset as u64);
            }
        }
        hits.sort_unstable();
        // Per slot, the best pair of neighbouring offsets.
        let mut candidates: Vec<(u32, u32, i64)> = Vec::new(); // (votes, slot, offset)
        let mut i = 0;
        while i < hits.len() {
            let slot = (hits[i] >> 32) as u32;
            let mut best = (0u32, 0i64);
            let mut previous: Option<(i64, u32)> = None;
            while i < hits.len() && (hits[i] >> 32) as u32 == slot {
                let offset = (hits[i] & 0xffff_ffff) as i64;
                let mut count = 0;
                while i < hits.len() && hits[i] == (u64::from(slot) << 32 | offset as u64) {
                    count += 1;
                    i += 1;
                }
                let pair = match previous {
                    Some((last, last_count)) if last + 1 == offset => count + last_count,
                    _ => count,
                };
                if pair > best.0 {
                    best = (pair, offset - bias);
                }
                previous = Some((offset, count));
            }
            if best.0 >= MIN_VOTES {
                candidates.push((best.0, slot, best.1));
            }
        }
        candidates.sort_unstable_by_key(|&(votes, _, _)| std::cmp::Reverse(votes));
        candidates.truncate(MAX_CANDIDATES);
        let mut found: Vec<(i64, Match)> = candidates
            .into_iter()
            .filter_map(|(_, slot, offset)| {
                let entry = self.entries[slot as usize].as_ref()?;
                let chance = chance_error_rate(&entry.balance, &query_balance);
                let found = align_near(entry.fingerprint.items(), items, offset, chance)?;
                found.is_same_recording().then_some((entry.id, found))
            })
            .collect();
        found.sort_by(|x, y| y.1.score.total_cmp(&x.1.score).then(x.0.cmp(&y.0)));
        found
    }

    /// All groups of two or more stored files that are the same recording.
    ///
    /// Files are grouped when [`FingerprintIndex::matches`] links them,
    /// directly or through others (connected components). Each group lists
    /// its lowest id first, with score 1 and offset 0; every other member
    /// carries its score and offset against that first member, measured
    /// directly where the two overlap enough, otherwise chained along the
    /// links (offsets added, the lowest score kept). Groups come in order of
    /// their first id.
    pub fn duplicate_groups(&self) -> Vec<DuplicateGroup> {
        let live: Vec<&Entry> = self.entries.iter().flatten().collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(16);
        let chunk = live.len().div_ceil(threads).max(1);
        let links: Vec<(i64, i64, Match)> = std::thread::scope(|scope| {
            let handles: Vec<_> = live
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut links = Vec::new();
                        for entry in part {
                            for (other, found) in self.matches(&entry.fingerprint) {
                                if other != entry.id {
                                    // `found` places entry on other's timeline.
                                    links.push((other, entry.id, found));
                                }
                            }
                        }
                        links
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().unwrap_or_default())
                .collect()
        });
        group_links(&links, |id| self.get(id))
    }
}

/// A member of a [`DuplicateGroup`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupMember {
    pub id: i64,
    /// Score against the group's first member (1 for the first itself).
    pub score: f64,
    /// Where this member starts on the first member's timeline, seconds.
    pub offset_seconds: f64,
}

/// Files that are the same recording, lowest id first.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateGroup {
    pub members: Vec<GroupMember>,
}

/// Groups files into duplicate groups; see
/// [`FingerprintIndex::duplicate_groups`].
pub fn group_duplicates<'a>(files: impl IntoIterator<Item = (i64, &'a Fingerprint)>) -> Vec<DuplicateGroup> {
    let mut index = FingerprintIndex::new();
    for (id, fingerprint) in files {
        index.insert(id, fingerprint);
    }
    index.duplicate_groups()
}

/// Groups files by links `(a, b, where b starts on a's timeline)` found
/// elsewhere (e.g. stored as files were fingerprinted): connected
/// components, each with its lowest id first and every other member's score
/// and offset against it: a link's own where the member is linked to it,
/// else measured directly with `fingerprint` where the two overlap enough,
/// else chained along the links (offsets added, the lowest score kept).
/// Only a link's score and offset are read.
pub fn group_links<'a>(
    links: &[(i64, i64, Match)],
    fingerprint: impl Fn(i64) -> Option<&'a Fingerprint>,
) -> Vec<DuplicateGroup> {
    // Adjacency with offsets both ways.
    let mut neighbours: HashMap<i64, Vec<(i64, Match)>> = HashMap::new();
    for &(a, b, found) in links {
        neighbours.entry(a).or_default().push((b, found));
        let reverse = Match {
            offset_seconds: -found.offset_seconds,
            ..found
        };
        neighbours.entry(b).or_default().push((a, reverse));
    }
    let mut ids: Vec<i64> = neighbours.keys().copied().collect();
    ids.sort_unstable();
    let mut seen: HashMap<i64, ()> = HashMap::new();
    let mut groups = Vec::new();
    for &first in &ids {
        if seen.contains_key(&first) {
            continue;
        }
        // Breadth-first from the lowest id: chained offsets and scores.
        seen.insert(first, ());
        let mut members = vec![GroupMember {
            id: first,
            score: 1.0,
            offset_seconds: 0.0,
        }];
        let mut queue = std::collections::VecDeque::from([(first, 1.0f64, 0.0f64)]);
        while let Some((id, score, offset)) = queue.pop_front() {
            let mut next: Vec<(i64, Match)> = neighbours.get(&id).cloned().unwrap_or_default();
            next.sort_by_key(|&(other, _)| other);
            for (other, found) in next {
                if seen.contains_key(&other) {
                    continue;
                }
                seen.insert(other, ());
                let chained = (score.min(found.score), offset + found.offset_seconds);
                queue.push_back((other, chained.0, chained.1));
                members.push(GroupMember {
                    id: other,
                    score: chained.0,
                    offset_seconds: chained.1,
                });
            }
        }
        // Direct measurements against the first member where they exist: a
        // member linked to it already carries one (its link), the others
        // are compared here.
        let linked_to_first: Vec<i64> = neighbours
            .get(&first)
            .map(|next| next.iter().map(|&(id, _)| id).collect())
            .unwrap_or_default();
        if let Some(head) = fingerprint(first) {
            for member in members.iter_mut().skip(1) {
                if linked_to_first.contains(&member.id) {
                    continue;
                }
                if let Some(direct) = fingerprint(member.id).and_then(|other| compare(head, other)) {
                    member.score = direct.score;
                    member.offset_seconds = direct.offset_seconds;
                }
            }
        }
        members.sort_by_key(|member| member.id);
        groups.push(DuplicateGroup { members });
    }
    groups
}

#[cfg(test)]
mod tests;
