//! A full decode: the first byte picks the container the rest is read as
//! (or, from 6 on, leaves it to the sniffer, as example clips are read), so
//! every reader also sees data that is not its own.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use traum_audio::{AudioFormat, DecodeOptions, OUTPUT_SAMPLE_RATE, Stage, decode_bytes, isolate};

mod isolated;

/// Short, so each run stays fast; the budget logic is the same at any limit.
const LIMIT: Duration = Duration::from_secs(2);

fuzz_target!(init: isolated::leave_symphonia_overflows_to_isolate(), |data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let options = DecodeOptions {
        max_duration: LIMIT,
        format_hint: AudioFormat::ALL.get(usize::from(selector % 8)).copied(),
    };
    let mut delivered = 0_u64;
    let result = isolate(Stage::Decode, || {
        decode_bytes(file.to_vec(), &options, |_| {}, |block| delivered += block.len() as u64)
    });
    // The decoded-sample budget: never more than the limit, and the one
    // packet that crosses it (at most 65 535 frames at the lowest accepted
    // rate, 1 kHz), reaches the sink, whatever the file declares.
    let most = (LIMIT.as_secs_f64() + 66.0) * f64::from(OUTPUT_SAMPLE_RATE);
    assert!((delivered as f64) <= most, "{delivered} samples delivered");
    if let Ok(report) = result {
        assert_eq!(report.output_frames, delivered);
    }
});
