//! Key estimation: a chromagram from spectral peaks of a long-window STFT
//! (A4 = 440 Hz), summed over time and correlated with the Krumhansl–Kessler
//! key profiles of all 24 major and minor keys.

use crate::stft::Stft;

/// Window length, seconds: ~6 Hz bins at 48 kHz, enough to separate
/// semitones down to about 100 Hz once peaks are interpolated.
const WINDOW_SECONDS: f64 = 0.17;
/// Frequency range whose peaks feed the chroma, Hz.
const MIN_HZ: f64 = 55.0;
const MAX_HZ: f64 = 4200.0;
/// Peaks more than this far below the frame's strongest are ignored, as a
/// ratio of magnitudes (−50 dB).
const PEAK_FLOOR: f32 = 3.16e-3;
/// Frames whose strongest peak is below this magnitude (−70 dBFS) are
/// treated as silence.
const SILENT_FRAME: f32 = 3.16e-4;

/// Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
const MAJOR_PROFILE: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
const MINOR_PROFILE: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

/// Mode of a musical key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyMode {
    Major,
    Minor,
}

impl KeyMode {
    /// Both modes, major first.
    pub const ALL: &'static [KeyMode] = &[KeyMode::Major, KeyMode::Minor];

    /// The stable lower-case name, stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Major => "major",
            KeyMode::Minor => "minor",
        }
    }

    /// Parses [`KeyMode::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|mode| mode.as_str() == text)
    }
}

/// A musical key: tonic pitch class and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MusicalKey {
    /// 0 = C, 1 = C♯/D♭, …, 11 = B.
    pub pitch_class: u8,
    pub mode: KeyMode,
}

impl MusicalKey {
    /// Name such as "F# minor".
    pub fn name(&self) -> String {
        const NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
        format!(
            "{} {}",
            NAMES[usize::from(self.pitch_class % 12)],
            self.mode.as_str()
        )
    }
}

/// A key estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyEstimate {
    pub key: MusicalKey,
    /// 0 to 1: how far the best key's profile correlation r₁ beats the
    /// second best r₂, as (r₁ − r₂) / (1 − r₂).
    pub confidence: f64,
}

/// Estimates the key of a mono signal; `None` when it has no pitched content.
pub fn estimate(samples: &[f32], sample_rate: u32) -> Option<KeyEstimate> {
    let chroma = chromagram_sum(samples, sample_rate);
    estimate_from_chroma(&chroma)
}

/// Chroma energy summed over the whole signal, index 0 = C.
pub fn chromagram_sum(samples: &[f32], sample_rate: u32) -> [f64; 12] {
    let rate = f64::from(sample_rate.max(1));
    let fft_len = ((WINDOW_SECONDS * rate) as usize).max(64).next_power_of_two();
    let bin_hz = rate / fft_len as f64;
    let mut stft = Stft::new(fft_len, fft_len / 2);
    let first = ((MIN_HZ / bin_hz).floor() as usize).max(1);
    let last = ((MAX_HZ / bin_hz).ceil() as usize).min(fft_len / 2 - 1);
    let mut chroma = [0.0f64; 12];
    stft.for_each_frame(samples, |_, magnitudes| {
        let Some(band) = magnitudes.get(first - 1..=last + 1) else {
            return;
        };
        let loudest = band.iter().fold(0.0f32, |top, &m| top.max(m));
        if loudest < SILENT_FRAME {
            return;
        }
        let floor = loudest * PEAK_FLOOR;
        for bin in first..=last {
            let (left, centre, right) = (magnitudes[bin - 1], magnitudes[bin], magnitudes[bin + 1]);
            if centre < floor || centre <= left || centre < right {
                continue;
            }
            // Parabolic interpolation on log magnitude gives the peak's true
            // frequency to a small fraction of a bin for a Hann window.
            let (l, c, r) = (
                f64::from(left.max(1e-12)).ln(),
                f64::from(centre).ln(),
                f64::from(right.max(1e-12)).ln(),
            );
            let curvature = l - 2.0 * c + r;
            let offset = if curvature < 0.0 {
                (0.5 * (l - r) / curvature).clamp(-0.5, 0.5)
            } else {
                0.0
            };
            let hz = (bin as f64 + offset) * bin_hz;
            let midi = 69.0 + 12.0 * (hz / 440.0).log2();
            let nearest = midi.round();
            let deviation = midi - nearest;
            // Peaks between two semitones are ambiguous; fade them out.
            let weight = (std::f64::consts::PI * deviation).cos().powi(2);
            let class = (nearest as i64).rem_euclid(12) as usize;
            chroma[class] += weight * f64::from(centre);
        }
    });
    chroma
}

/// Picks the key whose profile correlates best with `chroma`.
pub fn estimate_from_chroma(chroma: &[f64; 12]) -> Option<KeyEstimate> {
    let total: f64 = chroma.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    // Square-root compression keeps one loud sustained note from outweighing
    // the rest of the pitch-class distribution.
    let compressed = chroma.map(f64::sqrt);
    let mut scores: Vec<(f64, u8, KeyMode)> = Vec::with_capacity(24);
    for tonic in 0..12u8 {
        for (mode, profile) in [(KeyMode::Major, &MAJOR_PROFILE), (KeyMode::Minor, &MINOR_PROFILE)] {
            let rotated: [f64; 12] = std::array::from_fn(|pc| profile[(pc + 12 - usize::from(tonic)) % 12]);
            scores.push((pearson(&compressed, &rotated), tonic, mode));
        }
    }
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (best, tonic, mode) = scores[0];
    let second = scores[1].0;
    if !best.is_finite() {
        return None;
    }
    let confidence = if second < 1.0 {
        ((best - second) / (1.0 - second)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Some(KeyEstimate {
        key: MusicalKey {
            pitch_class: tonic,
            mode,
        },
        confidence,
    })
}

fn pearson(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let mean_a = a.iter().sum::<f64>() / 12.0;
    let mean_b = b.iter().sum::<f64>() / 12.0;
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a).powi(2);
        var_b += (y - mean_b).powi(2);
    }
    let denominator = (var_a * var_b).sqrt();
    if denominator > 0.0 {
        cov / denominator
    } else {
        f64::NAN
    }
}
