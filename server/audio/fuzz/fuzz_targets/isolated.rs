//! What the fuzz targets let through, exactly as far as the server lets it.
//!
//! libfuzzer-sys aborts on every panic, caught or not. The server runs each
//! file's work in `traum_audio::isolate`, which turns a panic into the
//! failure of that file. Some panics cannot be ruled out in front of
//! symphonia: its arithmetic overflowing (checked here, as `cargo fuzz -a`
//! turns overflow checks on; it wraps in release), and the sites below,
//! deep in a codec's bitstream, each found here and kept as a regression
//! input in `tests/fixtures/hostile/fuzz/*-isolated`. Those are left to
//! `isolate`, each site reported once; any other panic still aborts, and
//! is a finding.

use std::collections::HashSet;
use std::sync::Mutex;

/// Panic sites in symphonia's codecs, found by these targets.
const KNOWN_SITES: &[&str] = &[
    // AAC section data indexing past its 64 sections.
    "symphonia-codec-aac-0.5.5/src/aac/ics/mod.rs:242:",
];

/// Installs the hook; call it from the target's `init`.
pub fn leave_symphonia_overflows_to_isolate() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        let place = info.location().map(ToString::to_string).unwrap_or_default();
        let overflow = place.contains("/symphonia-") && message.contains("with overflow");
        if overflow || KNOWN_SITES.iter().any(|site| place.contains(site)) {
            static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
            let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.get_or_insert_with(HashSet::new).insert(place.clone()) {
                eprintln!("isolated: symphonia {message} at {place}");
            }
            return;
        }
        abort(info);
    }));
}
