//! Sniffing and probing any bytes: what an upload goes through before it is
//! stored.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use traum_audio::{Stage, isolate};

mod isolated;

fuzz_target!(init: isolated::leave_symphonia_overflows_to_isolate(), |data: &[u8]| {
    let head = &data[..data.len().min(traum_audio::SNIFF_BYTES)];
    let sniffed = traum_audio::sniff_format(head);
    let read = traum_audio::sniff_reader(&mut Cursor::new(data));
    // Both look at the same bytes when no ID3 tag hides the audio beyond
    // the head.
    if data.len() <= traum_audio::SNIFF_BYTES {
        assert_eq!(sniffed.as_ref().ok(), read.as_ref().ok());
    }
    if let Ok(format) = read {
        let _ = isolate(Stage::Probe, || {
            traum_audio::probe_bytes(data.to_vec(), format, |fraction| {
                assert!((0.0..=1.0).contains(&fraction), "progress {fraction}");
            })
        });
    }
});
