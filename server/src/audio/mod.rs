//! Audio inspection: format sniffing from content and the symphonia probe.
//! Pure functions over files; callers run them on the blocking pool.

pub mod decode;
pub mod descriptors;
mod edit_list;
pub mod key;
pub mod loudness;
pub mod mel;
mod open;
mod probe;
mod sniff;
pub mod tempo;
#[cfg(test)]
pub(crate) mod testgen;

pub use self::probe::{ProbeError, probe_file};
pub use self::sniff::{SNIFF_BYTES, SUPPORTED_FORMATS, sniff_format};
