//! What follows decoding: descriptors (levels, tempo, key, brightness), the
//! waveform and CLAP's log-mel windows, on arbitrary samples. The first byte
//! picks how the rest becomes samples: 16-bit PCM (what decoders produce) or
//! raw `f32`, NaN and infinities included.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use traum_audio::OUTPUT_SAMPLE_RATE;
use traum_clap::mel::{LogMelExtractor, MelConfig, Padding, Truncation, Windowing};

/// Short windows, so a few kilobytes of input span several; both filter
/// banks and every padding.
static MELS: LazyLock<Vec<LogMelExtractor>> = LazyLock::new(|| {
    [
        (Truncation::Fusion, Padding::Repeatpad),
        (Truncation::RandTrunc, Padding::Repeat),
        (Truncation::Fusion, Padding::Pad),
    ]
    .into_iter()
    .map(|(truncation, padding)| {
        LogMelExtractor::new(MelConfig {
            max_length_s: 0.05,
            nb_max_samples: Some(2_400),
            truncation,
            padding,
            ..MelConfig::default()
        })
        .expect("a valid mel configuration")
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let samples: Vec<f32> = if mode & 1 == 0 {
        bytes
            .chunks_exact(2)
            .map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32_768.0)
            .collect()
    } else {
        bytes
            .chunks_exact(4)
            .map(|word| f32::from_le_bytes([word[0], word[1], word[2], word[3]]))
            .collect()
    };
    let rate = if mode & 2 == 0 { OUTPUT_SAMPLE_RATE } else { 8_000 };
    let _ = traum_audio::analyse(&samples, rate, None, |_| {});
    let _ = traum_audio::waveform(&samples, rate);
    let windowing = Windowing {
        hop_seconds: 0.02,
        min_remainder_seconds: 0.01,
    };
    let mel = &MELS[usize::from(mode >> 2) % MELS.len()];
    let _ = mel.windows(&samples, &windowing);
    if !samples.is_empty() && samples.len() <= mel.config().window_samples() {
        let _ = mel.clip(&samples);
    }
});
