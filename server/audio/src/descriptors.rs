//! Signal descriptors people filter by: level, loudness, brightness, noisiness,
//! silence, tempo and key, computed from the decoded mono signal.
//!
//! Pure and CPU-bound; callers run [`analyse`] on the blocking pool.

use crate::key::{self, KeyEstimate};
use crate::loudness::{self, SourceLevels};
use crate::stft::Stft;
use crate::tempo::{self, OnsetDetector, TempoEstimate};

/// Frames quieter than this count as silent, dBFS (RMS over the frame).
pub const SILENCE_THRESHOLD_DBFS: f64 = -60.0;
/// Length of the frames the silence ratio is counted over, seconds.
pub const SILENCE_FRAME_SECONDS: f64 = 0.05;

/// Everything [`analyse`] measures. Levels are `None` for digital silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptors {
    /// Largest absolute sample value, dBFS (sample peak, not true peak).
    pub peak_dbfs: Option<f64>,
    /// Integrated loudness after EBU R128 / ITU-R BS.1770-4, LUFS. `None` when
    /// nothing passes the −70 LUFS gate (silence, or under 400 ms of audio).
    pub loudness_lufs: Option<f64>,
    /// Root-mean-square level of the mono downmix over the whole signal,
    /// dBFS (a full-scale sine reads −3.01 dBFS).
    pub rms_dbfs: Option<f64>,
    /// Spectral centroid, Hz: the centroid of the magnitude spectrum summed
    /// over all frames, which is the per-frame centroid averaged with each
    /// frame weighted by its total magnitude, so near-silent frames, whose
    /// centroid is arbitrary, barely count. `None` for silence.
    pub spectral_centroid_hz: Option<f64>,
    /// Zero-crossing rate, sign changes per second (divide by the sample
    /// rate for librosa's per-sample figure).
    pub zero_crossing_rate_hz: f64,
    /// Fraction (0 to 1) of 50 ms frames whose RMS is below −60 dBFS.
    pub silence_ratio: f64,
    /// Tempo, `None` when the signal has no periodic onsets to speak of.
    pub tempo: Option<TempoEstimate>,
    /// Key and mode, `None` when the signal has no pitched content.
    pub key: Option<KeyEstimate>,
}

/// Computes all descriptors of a mono signal.
///
/// Peak and loudness come from `source_levels` when given: measured on the
/// file's own channels while decoding ([`DecodeReport::levels`]), as BS.1770
/// and a sample peak are defined; without them they are measured on
/// `samples`.
///
/// `progress` receives the fraction done, 0 to 1, roughly proportional to
/// the work spent.
///
/// [`DecodeReport::levels`]: crate::DecodeReport::levels
pub fn analyse(
    samples: &[f32],
    sample_rate: u32,
    source_levels: Option<SourceLevels>,
    mut progress: impl FnMut(f64),
) -> Descriptors {
    let rms_dbfs = loudness::rms_dbfs(samples);
    let zero_crossing_rate_hz = zero_crossing_rate_hz(samples, sample_rate);
    let silence_ratio = silence_ratio(samples, sample_rate);
    progress(0.05);
    let SourceLevels {
        peak_dbfs,
        loudness_lufs,
    } = source_levels.unwrap_or_else(|| SourceLevels {
        peak_dbfs: loudness::peak_dbfs(samples),
        loudness_lufs: loudness::integrated_loudness(samples, sample_rate),
    });
    progress(0.25);

    // One short-window STFT feeds both the centroid and the onset envelope.
    let mut onsets = OnsetDetector::new(sample_rate);
    let mut stft = Stft::new(onsets.fft_len(), onsets.hop_len());
    let bin_hz = f64::from(sample_rate) / onsets.fft_len() as f64;
    let (mut weighted_frequency, mut total_magnitude) = (0.0f64, 0.0f64);
    let frames = stft.frame_count(samples.len()).max(1);
    stft.for_each_frame(samples, |index, magnitudes| {
        for (bin, &magnitude) in magnitudes.iter().enumerate() {
            weighted_frequency += bin as f64 * bin_hz * f64::from(magnitude);
            total_magnitude += f64::from(magnitude);
        }
        onsets.push_frame(magnitudes);
        if index % 512 == 0 {
            progress(0.25 + 0.45 * index as f64 / frames as f64);
        }
    });
    let spectral_centroid_hz = (total_magnitude > 0.0).then(|| weighted_frequency / total_magnitude);
    let tempo = tempo::estimate_from_onsets(&onsets.envelopes());
    progress(0.75);

    let key = key::estimate(samples, sample_rate);
    progress(1.0);

    Descriptors {
        peak_dbfs,
        loudness_lufs,
        rms_dbfs,
        spectral_centroid_hz,
        zero_crossing_rate_hz,
        silence_ratio,
        tempo,
        key,
    }
}

/// Sign changes per second; a zero sample counts as positive so digital
/// silence has no crossings.
pub fn zero_crossing_rate_hz(samples: &[f32], sample_rate: u32) -> f64 {
    if samples.len() < 2 || sample_rate == 0 {
        return 0.0;
    }
    let crossings = samples
        .windows(2)
        .filter(|pair| (pair[0] < 0.0) != (pair[1] < 0.0))
        .count();
    crossings as f64 * f64::from(sample_rate) / (samples.len() - 1) as f64
}

/// Fraction of 50 ms frames with an RMS below [`SILENCE_THRESHOLD_DBFS`]; a
/// trailing partial frame counts in proportion to its length.
pub fn silence_ratio(samples: &[f32], sample_rate: u32) -> f64 {
    let frame_len = ((SILENCE_FRAME_SECONDS * f64::from(sample_rate)).round() as usize).max(1);
    if samples.is_empty() {
        return 0.0;
    }
    let threshold = 10f64.powf(SILENCE_THRESHOLD_DBFS / 10.0);
    let silent: usize = samples
        .chunks(frame_len)
        .filter(|frame| {
            let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            energy / (frame.len() as f64) < threshold
        })
        .map(<[f32]>::len)
        .sum();
    silent as f64 / samples.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_descriptors_of_a_tone() {
        let rate = 48_000;
        let mut signal: Vec<f32> = (0..rate * 2)
            .map(|n| (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 48_000.0).sin()) as f32)
            .collect();
        signal.extend(std::iter::repeat_n(0.0, rate as usize * 2));
        let mut last = 0.0;
        let descriptors = analyse(&signal, rate, None, |fraction| {
            assert!(fraction >= last);
            last = fraction;
        });
        assert_eq!(last, 1.0);
        assert!((descriptors.peak_dbfs.unwrap() + 6.02).abs() < 0.01);
        // Half the signal is a 1 kHz tone: 2000 crossings per second of tone.
        assert!((descriptors.zero_crossing_rate_hz - 1000.0).abs() < 2.0);
        assert!((descriptors.silence_ratio - 0.5).abs() < 1e-9);
        let centroid = descriptors.spectral_centroid_hz.unwrap();
        assert!((centroid - 1000.0).abs() < 30.0, "{centroid}");
    }

    #[test]
    fn silence_has_no_levels() {
        let descriptors = analyse(&vec![0.0; 48_000], 48_000, None, |_| {});
        assert_eq!(descriptors.peak_dbfs, None);
        assert_eq!(descriptors.loudness_lufs, None);
        assert_eq!(descriptors.spectral_centroid_hz, None);
        assert_eq!(descriptors.silence_ratio, 1.0);
        assert_eq!(descriptors.zero_crossing_rate_hz, 0.0);
        assert!(descriptors.tempo.is_none());
        assert!(descriptors.key.is_none());
    }
}
