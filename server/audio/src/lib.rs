//! Audio for Traum: what a file is (sniffed from content, probed with
//! symphonia), its samples (decoded to 48 kHz mono, with encoder priming
//! trimmed) and what it sounds like (peak, loudness, brightness, silence,
//! tempo, key).
//!
//! Everything here is synchronous and CPU-bound or blocking: callers run it
//! on a blocking pool, never on an async runtime.

#[cfg(test)]
mod crafted;
pub mod decode;
pub mod descriptors;
mod edit_list;
mod error;
pub mod fingerprint;
mod format;
#[cfg(test)]
mod hostile;
mod isolate;
pub mod key;
pub mod loudness;
mod open;
mod probe;
mod resample;
mod sniff;
mod stft;
mod structure;
pub mod tempo;
#[cfg(test)]
mod testgen;
mod waveform;

pub use self::decode::{
    DecodeOptions, DecodeReport, OUTPUT_SAMPLE_RATE, decode_bytes, decode_file, decode_to_vec,
};
pub use self::descriptors::{Descriptors, analyse};
pub use self::error::{AudioError, Result};
pub use self::fingerprint::{
    DuplicateGroup, Fingerprint, FingerprintIndex, Fingerprinter, GroupMember, Match, compare,
    group_duplicates,
};
pub use self::format::AudioFormat;
pub use self::isolate::{Stage, isolate};
pub use self::key::{KeyEstimate, KeyMode, MusicalKey};
pub use self::loudness::SourceLevels;
pub use self::probe::{AudioProperties, probe_bytes, probe_file};
pub use self::sniff::{SNIFF_BYTES, SUPPORTED_FORMATS, sniff_file, sniff_format, sniff_reader};
pub use self::tempo::{TempoAlternative, TempoEstimate};
pub use self::waveform::{MAX_DETAIL_PAIRS, OVERVIEW_PAIRS, PeakLevel, WaveformPeaks, waveform};
