//! Waveform peaks: min/max pairs of decoded audio, small enough to send to a
//! browser and draw without the audio itself.

/// Pairs in the overview of a whole file.
pub const OVERVIEW_PAIRS: usize = 2048;
/// Upper bound on the detail level, so a very long file's detail stays
/// around half a megabyte.
pub const MAX_DETAIL_PAIRS: usize = 262_144;
/// The detail level aims at one pair per this many seconds.
const DETAIL_SECONDS_PER_PAIR: f64 = 0.01;

/// Min/max pairs at one resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeakLevel {
    /// Samples summarised by each pair (the last pair may cover fewer).
    pub samples_per_pair: u32,
    /// Interleaved min, max; ±127 is full scale.
    pub peaks: Vec<i8>,
}

impl PeakLevel {
    pub fn pair_count(&self) -> usize {
        self.peaks.len() / 2
    }
}

/// A file's overview and, when the file is long enough for it to differ, a
/// finer level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveformPeaks {
    pub overview: PeakLevel,
    pub detail: Option<PeakLevel>,
}

/// Computes the peaks of `samples` (mono) at `sample_rate`.
pub fn waveform(samples: &[f32], sample_rate: u32) -> WaveformPeaks {
    let overview_step = samples.len().div_ceil(OVERVIEW_PAIRS).max(1);
    let fine_step = ((f64::from(sample_rate) * DETAIL_SECONDS_PER_PAIR).round() as usize)
        .max(samples.len().div_ceil(MAX_DETAIL_PAIRS))
        .max(1);
    let detail = (fine_step < overview_step).then(|| peaks(samples, fine_step));
    WaveformPeaks {
        overview: peaks(samples, overview_step),
        detail,
    }
}

fn peaks(samples: &[f32], step: usize) -> PeakLevel {
    let mut out = Vec::with_capacity(2 * samples.len().div_ceil(step));
    for window in samples.chunks(step) {
        let (low, high) = window
            .iter()
            .fold((0.0_f32, 0.0_f32), |(low, high), &s| (low.min(s), high.max(s)));
        // Rounding away from zero keeps quiet but non-silent passages
        // visible as at least one step.
        out.push(quantise(low, f32::floor));
        out.push(quantise(high, f32::ceil));
    }
    PeakLevel {
        samples_per_pair: u32::try_from(step).unwrap_or(u32::MAX),
        peaks: out,
    }
}

fn quantise(value: f32, round: fn(f32) -> f32) -> i8 {
    let scaled = if value.is_finite() {
        round(value.clamp(-1.0, 1.0) * 127.0)
    } else {
        0.0
    };
    scaled as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_holds_at_most_2048_pairs_with_the_true_extremes() {
        let rate = 48_000;
        // 30 s of a 0.5-amplitude sine, then 1 s at full scale.
        let mut samples: Vec<f32> = (0..rate * 30)
            .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect();
        samples.extend((0..rate).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }));
        let peaks = waveform(&samples, rate as u32);
        let overview = &peaks.overview;
        assert!(overview.pair_count() <= OVERVIEW_PAIRS);
        assert_eq!(
            overview.pair_count(),
            samples.len().div_ceil(overview.samples_per_pair as usize)
        );
        // The sine part peaks at ±64 (0.5 × 127, rounded away from zero).
        assert_eq!(&overview.peaks[..2], &[-64, 64]);
        let last = overview.pair_count() - 1;
        assert_eq!(&overview.peaks[2 * last..], &[-127, 127]);
        let detail = peaks
            .detail
            .expect("11 s is longer than the overview's resolution");
        assert_eq!(detail.samples_per_pair, 480);
        assert_eq!(detail.pair_count(), samples.len().div_ceil(480));
    }

    #[test]
    fn short_files_have_no_detail_and_silence_stays_flat() {
        let peaks = waveform(&vec![0.0; 4800], 48_000);
        assert_eq!(peaks.overview.samples_per_pair, 3);
        assert!(peaks.overview.peaks.iter().all(|&p| p == 0));
        assert_eq!(peaks.detail, None);
        let empty = waveform(&[], 48_000);
        assert!(empty.overview.peaks.is_empty());
    }

    #[test]
    fn detail_is_capped_for_very_long_files() {
        // 100 minutes at a low rate keeps the test light: 1 kHz × 6000 s.
        let samples = vec![0.25_f32; 6_000_000];
        let peaks = waveform(&samples, 1_000);
        let detail = peaks.detail.expect("detail");
        assert!(detail.pair_count() <= MAX_DETAIL_PAIRS);
        assert_eq!(
            detail.samples_per_pair as usize,
            samples.len().div_ceil(MAX_DETAIL_PAIRS)
        );
        assert!(detail.peaks.chunks(2).all(|pair| pair == [0, 32]));
    }
}
