//! The CLAP front-end: log-mel spectrograms identical to Hugging Face
//! `transformers`' `ClapFeatureExtractor`, plus deterministic 10 s windowing
//! of long audio for segment-level search.
//!
//! Reference behaviour reproduced here (transformers 5.x,
//! `models/clap/feature_extraction_clap.py` and `audio_utils.py`):
//! - a clip no longer than `max_length_s` is padded to exactly that length
//!   (`repeatpad`: whole repetitions, then zeros);
//! - STFT with a periodic Hann window, centre padding in `reflect` mode,
//!   computed in f64 but stored as complex64, power 2;
//! - the mel filter bank follows the truncation mode: Slaney scale with
//!   Slaney area normalisation for `rand_trunc`, HTK scale without
//!   normalisation for `fusion`;
//! - `max(1e-10, mel)` then `10 log10` (reference 1.0), output cast to f32.
//!   `top_db` is read but, as in the reference, never applied.
//!
//! Instead of the reference's random crop of long audio, audio longer than
//! one window is cut into fixed windows, each fed to the same padding path
//! as a short clip, so every window gives what the reference gives for that
//! window alone.

use std::path::Path;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::Deserialize;

use crate::error::{ClapError, Result};

/// Floor applied to mel energies before the logarithm (the reference's
/// `mel_floor` and `min_value`).
const MEL_FLOOR: f64 = 1e-10;

/// How clips longer than one window are handled by the reference; it also
/// selects the filter bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Random crop (not used by Traum's windowing); Slaney filter bank.
    RandTrunc,
    /// Four stacked views; HTK filter bank. For windows of at most
    /// `max_length_s` the four views are identical copies of one mel.
    Fusion,
}

/// How clips shorter than one window are extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// Whole repetitions of the clip, then zeros.
    Repeatpad,
    /// Repetitions cut to the window length.
    Repeat,
    /// Zeros only.
    Pad,
}

/// The feature extractor's settings, as found in a checkpoint's
/// `preprocessor_config.json`.
///
/// Fields missing from a JSON file take the defaults of the reference class
/// (e.g. `frequency_min` 0, `truncation` fusion), exactly as `transformers`
/// would; [`MelConfig::default`] instead gives the values of the checkpoints
/// Traum serves by default (`laion/larger_clap_music_and_speech`,
/// `laion/clap-htsat-unfused`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MelConfig {
    /// Number of mel bins.
    #[serde(default = "defaults::feature_size")]
    pub feature_size: usize,
    #[serde(default = "defaults::sampling_rate")]
    pub sampling_rate: u32,
    #[serde(default = "defaults::hop_length")]
    pub hop_length: usize,
    /// FFT and window length.
    #[serde(default = "defaults::fft_window_size")]
    pub fft_window_size: usize,
    #[serde(default)]
    pub frequency_min: f64,
    #[serde(default = "defaults::frequency_max")]
    pub frequency_max: f64,
    /// Window length in seconds; the reference multiplies it by the rate.
    #[serde(default = "defaults::max_length_s")]
    pub max_length_s: f64,
    /// Present in checkpoint files but recomputed by the reference from
    /// `max_length_s × sampling_rate`; kept for reference only.
    #[serde(default)]
    pub nb_max_samples: Option<usize>,
    #[serde(default = "defaults::padding")]
    pub padding: Padding,
    #[serde(default = "defaults::truncation")]
    pub truncation: Truncation,
    /// Read but not applied, like the reference.
    #[serde(default)]
    pub top_db: Option<f64>,
}

mod defaults {
    use super::{Padding, Truncation};

    pub fn feature_size() -> usize {
        64
    }
    pub fn sampling_rate() -> u32 {
        48_000
    }
    pub fn hop_length() -> usize {
        480
    }
    pub fn fft_window_size() -> usize {
        1024
    }
    pub fn frequency_max() -> f64 {
        14_000.0
    }
    pub fn max_length_s() -> f64 {
        10.0
    }
    pub fn padding() -> Padding {
        Padding::Repeatpad
    }
    pub fn truncation() -> Truncation {
        Truncation::Fusion
    }
}

impl Default for MelConfig {
    fn default() -> Self {
        Self {
            feature_size: 64,
            sampling_rate: 48_000,
            hop_length: 480,
            fft_window_size: 1024,
            frequency_min: 50.0,
            frequency_max: 14_000.0,
            max_length_s: 10.0,
            nb_max_samples: Some(480_000),
            padding: Padding::Repeatpad,
            truncation: Truncation::RandTrunc,
            top_db: None,
        }
    }
}

impl MelConfig {
    /// Parses the contents of a `preprocessor_config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|err| ClapError::Preprocessor(format!("preprocessor_config.json is not valid: {err}")))
    }

    /// Reads a `preprocessor_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ClapError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Samples in one model window (480 000 for 10 s at 48 kHz).
    pub fn window_samples(&self) -> usize {
        (self.max_length_s * f64::from(self.sampling_rate)).round() as usize
    }

    /// Spectrogram frames of one window (1001 for the defaults).
    pub fn frames_per_window(&self) -> usize {
        1 + self.window_samples() / self.hop_length.max(1)
    }

    fn validate(&self) -> Result<()> {
        let problem = if self.feature_size == 0 {
            Some("feature_size must be positive".to_owned())
        } else if self.hop_length == 0 {
            Some("hop_length must be positive".to_owned())
        } else if self.fft_window_size < 2 || !self.fft_window_size.is_multiple_of(2) {
            Some(format!(
                "fft_window_size must be even and at least 2, not {}",
                self.fft_window_size
            ))
        } else if self.sampling_rate == 0 {
            Some("sampling_rate must be positive".to_owned())
        } else if !(self.frequency_min >= 0.0 && self.frequency_min <= self.frequency_max) {
            Some(format!(
                "frequency_min ({}) must lie between 0 and frequency_max ({})",
                self.frequency_min, self.frequency_max
            ))
        } else if self.window_samples() <= self.fft_window_size / 2 {
            Some(format!(
                "max_length_s ({}) is too short for fft_window_size {}",
                self.max_length_s, self.fft_window_size
            ))
        } else {
            None
        };
        problem.map_or(Ok(()), |message| Err(ClapError::Preprocessor(message)))
    }
}

/// How long audio is cut into model windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Windowing {
    /// Distance between window starts.
    pub hop_seconds: f64,
    /// A trailing part of long audio becomes a window of its own only if it
    /// holds at least this much audio not covered by earlier windows.
    pub min_remainder_seconds: f64,
}

impl Default for Windowing {
    fn default() -> Self {
        Self {
            hop_seconds: 10.0,
            min_remainder_seconds: 1.0,
        }
    }
}

/// The log-mel spectrogram of one window of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct MelWindow {
    /// Position of the window in the audio, from 0.
    pub index: usize,
    /// Where the window's audio starts, in seconds.
    pub start_seconds: f64,
    /// Where the window's real audio ends (not the padded end), in seconds.
    pub end_seconds: f64,
    pub start_sample: u64,
    /// Exclusive.
    pub end_sample: u64,
    /// Number of spectrogram frames (rows of `mel`).
    pub frames: usize,
    /// Number of mel bins (columns of `mel`).
    pub mel_bins: usize,
    /// Row-major `[frames][mel_bins]` log-mel energies in dB.
    pub mel: Vec<f32>,
}

/// A triangular mel filter: its weights for FFT bins `first..first + len`.
#[derive(Debug, Clone)]
struct MelFilter {
    first: usize,
    weights: Vec<f64>,
}

/// Computes CLAP log-mel features. Immutable after construction, so one
/// instance can serve many threads.
pub struct LogMelExtractor {
    config: MelConfig,
    window: Vec<f64>,
    filters: Vec<MelFilter>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for LogMelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMelExtractor")
            .field("config", &self.config)
            .finish()
    }
}

impl LogMelExtractor {
    /// Builds the window and filter bank the configuration implies.
    pub fn new(config: MelConfig) -> Result<Self> {
        config.validate()?;
        let n_fft = config.fft_window_size;
        // Periodic Hann: the first n_fft points of a symmetric window of
        // n_fft + 1 points, which is what `window_function(n, "hann")` does.
        let window = (0..n_fft)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos())
            .collect();
        let scale = match config.truncation {
            Truncation::RandTrunc => MelScale::Slaney,
            Truncation::Fusion => MelScale::Htk,
        };
        let filters = mel_filters(&config, scale);
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        Ok(Self {
            config,
            window,
            filters,
            fft,
        })
    }

    pub fn config(&self) -> &MelConfig {
        &self.config
    }

    /// Log-mel of one clip of at most one window, padded as the reference
    /// pads it. Returns row-major `[frames][mel_bins]`.
    pub fn clip(&self, clip: &[f32]) -> Result<Vec<f32>> {
        let limit = self.config.window_samples();
        if clip.is_empty() {
            return Err(ClapError::EmptyAudio);
        }
        if clip.len() > limit {
            return Err(ClapError::ClipTooLong {
                samples: clip.len(),
                limit,
            });
        }
        let mut padded = Vec::with_capacity(limit);
        match self.config.padding {
            Padding::Repeatpad => {
                for _ in 0..limit / clip.len() {
                    padded.extend_from_slice(clip);
                }
            }
            Padding::Repeat => {
                while padded.len() < limit {
                    let take = clip.len().min(limit - padded.len());
                    padded.extend_from_slice(&clip[..take]);
                }
            }
            Padding::Pad => padded.extend_from_slice(clip),
        }
        padded.resize(limit, 0.0);
        Ok(self.spectrogram(&padded))
    }

    /// Log-mel of `samples` as they are (no padding to the window length):
    /// the reference's `spectrogram(...)` call. Row-major `[frames][bins]`.
    pub fn spectrogram(&self, samples: &[f32]) -> Vec<f32> {
        let n_fft = self.config.fft_window_size;
        let hop = self.config.hop_length;
        let half = n_fft / 2;
        let padded = reflect_pad(samples, half);
        if padded.len() < n_fft {
            return Vec::new();
        }
        let frames = 1 + (padded.len() - n_fft) / hop;
        let bins = self.filters.len();
        let mut out = Vec::with_capacity(frames * bins);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0_f64; spectrum.len()];
        for frame in 0..frames {
            let start = frame * hop;
            for ((slot, sample), weight) in input
                .iter_mut()
                .zip(&padded[start..start + n_fft])
                .zip(&self.window)
            {
                *slot = sample * weight;
            }
            // Lengths come from the plan itself, so the FFT cannot refuse them.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                return Vec::new();
            }
            for (p, value) in power.iter_mut().zip(&spectrum) {
                // The reference stores the spectrum as complex64 before
                // taking the magnitude; rounding the same way keeps parity.
                let re = f64::from(value.re as f32);
                let im = f64::from(value.im as f32);
                *p = re * re + im * im;
            }
            for filter in &self.filters {
                let energy: f64 = filter
                    .weights
                    .iter()
                    .zip(&power[filter.first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out.push((10.0 * energy.max(MEL_FLOOR).log10()) as f32);
            }
        }
        out
    }

    /// Cuts `audio` into windows and computes each one's log-mel. Holds all
    /// results; stream through [`MelWindower`] to keep memory flat.
    pub fn windows(&self, audio: &[f32], windowing: &Windowing) -> Result<Vec<MelWindow>> {
        let mut windower = MelWindower::new(self, windowing)?;
        let mut windows = Vec::new();
        windower.push(audio, &mut |window| windows.push(window))?;
        windower.finish(&mut |window| windows.push(window))?;
        Ok(windows)
    }
}

/// Incremental windowing: feed samples as they are decoded, receive each
/// window's log-mel as soon as its audio is complete. Holds at most about
/// one window of audio (plus one push).
pub struct MelWindower<'a> {
    extractor: &'a LogMelExtractor,
    window: u64,
    hop: u64,
    min_remainder: u64,
    buffer: Vec<f32>,
    /// Absolute index of `buffer[0]`.
    buffer_start: u64,
    next_start: u64,
    total: u64,
    emitted: usize,
    covered_end: u64,
}

impl<'a> MelWindower<'a> {
    pub fn new(extractor: &'a LogMelExtractor, windowing: &Windowing) -> Result<Self> {
        let rate = f64::from(extractor.config.sampling_rate);
        let hop = (windowing.hop_seconds * rate).round();
        let min_remainder = (windowing.min_remainder_seconds * rate).round();
        if hop.is_nan() || hop < 1.0 {
            return Err(ClapError::Windowing(format!(
                "hop must be positive, not {} s",
                windowing.hop_seconds
            )));
        }
        if min_remainder.is_nan() || min_remainder < 0.0 {
            return Err(ClapError::Windowing(format!(
                "minimum remainder must not be negative, not {} s",
                windowing.min_remainder_seconds
            )));
        }
        Ok(Self {
            extractor,
            window: extractor.config.window_samples() as u64,
            hop: hop as u64,
            min_remainder: min_remainder as u64,
            buffer: Vec::new(),
            buffer_start: 0,
            next_start: 0,
            total: 0,
            emitted: 0,
            covered_end: 0,
        })
    }

    /// Adds samples; emits every window completed by them.
    pub fn push(&mut self, samples: &[f32], emit: &mut impl FnMut(MelWindow)) -> Result<()> {
        self.total += samples.len() as u64;
        self.buffer.extend_from_slice(samples);
        self.discard_before_next();
        while self.next_start + self.window <= self.buffer_start + self.buffer.len() as u64 {
            let end = self.next_start + self.window;
            self.emit(self.next_start, end, emit)?;
            self.covered_end = end;
            self.next_start += self.hop;
            self.discard_before_next();
        }
        Ok(())
    }

    /// Emits the last window, if any, and returns how many were emitted in
    /// all. Audio no longer than one window always yields exactly one.
    pub fn finish(mut self, emit: &mut impl FnMut(MelWindow)) -> Result<usize> {
        if self.total == 0 {
            return Err(ClapError::EmptyAudio);
        }
        if self.emitted == 0 {
            self.emit(0, self.total, emit)?;
        } else if self.total > self.next_start {
            let fresh = self.total - self.covered_end.max(self.next_start);
            if fresh > 0 && fresh >= self.min_remainder {
                self.emit(self.next_start, self.total, emit)?;
            }
        }
        Ok(self.emitted)
    }

    fn discard_before_next(&mut self) {
        let drop = (self.next_start.saturating_sub(self.buffer_start)).min(self.buffer.len() as u64);
        if drop > 0 {
            self.buffer.drain(..drop as usize);
            self.buffer_start += drop;
        }
    }

    fn emit(&mut self, start: u64, end: u64, emit: &mut impl FnMut(MelWindow)) -> Result<()> {
        let from = (start - self.buffer_start) as usize;
        let to = (end - self.buffer_start) as usize;
        let mel = self.extractor.clip(&self.buffer[from..to])?;
        let rate = f64::from(self.extractor.config.sampling_rate);
        let mel_bins = self.extractor.filters.len();
        emit(MelWindow {
            index: self.emitted,
            start_seconds: start as f64 / rate,
            end_seconds: end as f64 / rate,
            start_sample: start,
            end_sample: end,
            frames: mel.len() / mel_bins.max(1),
            mel_bins,
            mel,
        });
        self.emitted += 1;
        Ok(())
    }
}

/// numpy's `pad(mode="reflect")`: mirror without repeating the edge sample.
/// Falls back to zeros where a clip is too short to mirror (the reference
/// never reaches that case: its input is always a full window).
fn reflect_pad(samples: &[f32], pad: usize) -> Vec<f64> {
    let len = samples.len();
    let at = |index: usize| samples.get(index).map_or(0.0, |s| f64::from(*s));
    let mut out = Vec::with_capacity(len + 2 * pad);
    out.extend((1..=pad).rev().map(at));
    out.extend(samples.iter().map(|s| f64::from(*s)));
    out.extend((1..=pad).map(|k| if len > k { at(len - 1 - k) } else { 0.0 }));
    out
}

#[derive(Debug, Clone, Copy)]
enum MelScale {
    Htk,
    Slaney,
}

const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = 15.0;

fn hz_to_mel(hz: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
        MelScale::Slaney => {
            if hz >= SLANEY_MIN_LOG_HZ {
                SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() * (27.0 / 6.4_f64.ln())
            } else {
                3.0 * hz / 200.0
            }
        }
    }
}

fn mel_to_hz(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10.0_f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney => {
            if mel >= SLANEY_MIN_LOG_MEL {
                SLANEY_MIN_LOG_HZ * ((6.4_f64.ln() / 27.0) * (mel - SLANEY_MIN_LOG_MEL)).exp()
            } else {
                200.0 * mel / 3.0
            }
        }
    }
}

/// numpy's `linspace` (endpoint included, last point exact).
fn linspace(start: f64, stop: f64, count: usize) -> Vec<f64> {
    if count < 2 {
        return vec![start; count];
    }
    let step = (stop - start) / (count - 1) as f64;
    let mut points: Vec<f64> = (0..count).map(|i| i as f64 * step + start).collect();
    if let Some(last) = points.last_mut() {
        *last = stop;
    }
    points
}

/// Triangular filters between mel-spaced centre frequencies, triangles in
/// Hz, as `audio_utils.mel_filter_bank` builds them.
fn mel_filters(config: &MelConfig, scale: MelScale) -> Vec<MelFilter> {
    let bins = config.fft_window_size / 2 + 1;
    let count = config.feature_size;
    let mel_points = linspace(
        hz_to_mel(config.frequency_min, scale),
        hz_to_mel(config.frequency_max, scale),
        count + 2,
    );
    let centres: Vec<f64> = mel_points.iter().map(|mel| mel_to_hz(*mel, scale)).collect();
    // The reference spaces bins with the integer half rate.
    let bin_freqs = linspace(0.0, f64::from(config.sampling_rate / 2), bins);
    (0..count)
        .map(|j| {
            let (low, centre, high) = (centres[j], centres[j + 1], centres[j + 2]);
            let norm = match scale {
                MelScale::Slaney => 2.0 / (high - low),
                MelScale::Htk => 1.0,
            };
            let weights: Vec<f64> = bin_freqs
                .iter()
                .map(|freq| {
                    let down = (freq - low) / (centre - low);
                    let up = (high - freq) / (high - centre);
                    down.min(up).max(0.0) * norm
                })
                .collect();
            let first = weights.iter().position(|w| *w > 0.0).unwrap_or(0);
            let last = weights.iter().rposition(|w| *w > 0.0).map_or(first, |i| i + 1);
            MelFilter {
                first,
                weights: weights[first..last].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/clap");

    #[derive(Deserialize)]
    struct Manifest {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        samples: usize,
        seed: u32,
        truncation: Truncation,
        signal_sum: f64,
        signal_abs_sum: f64,
        signal_head: Vec<f32>,
        windows: Vec<FixtureWindow>,
    }

    #[derive(Deserialize)]
    struct FixtureWindow {
        start_sample: u64,
        end_sample: u64,
        frames: usize,
        bins: usize,
        file: String,
    }

    /// The same formula as `signal()` in make_mel_fixtures.py.
    fn signal(samples: usize, seed: u32) -> Vec<f32> {
        let rate = 48_000.0;
        let two_pi = 2.0 * std::f64::consts::PI;
        let f1 = 220.0 + 55.0 * f64::from(seed % 5);
        let mut state = seed;
        (0..samples)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = f64::from(state >> 8) / 16_777_216.0 * 2.0 - 1.0;
                let n = i as f64;
                let x = 0.25 * (two_pi * f1 * n / rate).sin()
                    + 0.15 * (two_pi * 1234.5 * n / rate + 0.5).sin()
                    + 0.08
                        * (two_pi * 7000.0 * n / rate).sin()
                        * (0.5 + 0.5 * (two_pi * 0.7 * n / rate).sin())
                    + 0.05 * noise;
                x as f32
            })
            .collect()
    }

    fn read_f32(path: &str) -> Vec<f32> {
        let bytes = std::fs::read(path).unwrap();
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn matches_reference_clap_feature_extractor() {
        let manifest: Manifest =
            serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/manifest.json")).unwrap())
                .unwrap();
        let mut worst = 0.0_f32;
        for case in &manifest.cases {
            let audio = signal(case.samples, case.seed);
            assert_eq!(
                &audio[..case.signal_head.len()],
                &case.signal_head[..],
                "{}",
                case.name
            );
            let sum: f64 = audio.iter().map(|s| f64::from(*s)).sum();
            let abs_sum: f64 = audio.iter().map(|s| f64::from(s.abs())).sum();
            assert!(
                (sum - case.signal_sum).abs() < 1e-6,
                "{}: signal differs",
                case.name
            );
            assert!(
                (abs_sum - case.signal_abs_sum).abs() < 1e-6,
                "{}: signal differs",
                case.name
            );

            let config = MelConfig {
                truncation: case.truncation,
                ..MelConfig::default()
            };
            let extractor = LogMelExtractor::new(config).unwrap();
            let windows = extractor.windows(&audio, &Windowing::default()).unwrap();
            assert_eq!(windows.len(), case.windows.len(), "{}: window count", case.name);
            for (window, expected) in windows.iter().zip(&case.windows) {
                assert_eq!(window.start_sample, expected.start_sample);
                assert_eq!(window.end_sample, expected.end_sample);
                assert_eq!((window.frames, window.mel_bins), (expected.frames, expected.bins));
                let reference = read_f32(&format!("{FIXTURES}/{}", expected.file));
                assert_eq!(reference.len(), window.mel.len());
                let max_diff = window
                    .mel
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0_f32, f32::max);
                println!(
                    "{} window {} ({:.1}-{:.1} s): max |Δ| = {max_diff:.3e} dB",
                    case.name, window.index, window.start_seconds, window.end_seconds
                );
                worst = worst.max(max_diff);
                assert!(
                    max_diff <= 1e-3,
                    "{} window {}: max |Δ| {max_diff} dB",
                    case.name,
                    window.index
                );
            }
        }
        println!("worst max |Δ| over all fixtures: {worst:.3e} dB");
    }

    #[test]
    fn reads_checkpoint_config() {
        let text = r#"{
            "chunk_length_s": 10, "feature_extractor_type": "ClapFeatureExtractor",
            "feature_size": 64, "fft_window_size": 1024, "frequency_max": 14000,
            "frequency_min": 50, "hop_length": 480, "max_length_s": 10, "n_fft": 1024,
            "nb_frequency_bins": 513, "nb_max_frames": 1000, "nb_max_samples": 480000,
            "padding": "repeatpad", "padding_side": "right", "padding_value": 0.0,
            "processor_class": "ClapProcessor", "return_attention_mask": false,
            "sampling_rate": 48000, "top_db": null, "truncation": "rand_trunc"
        }"#;
        assert_eq!(MelConfig::from_json(text).unwrap(), MelConfig::default());
        // Missing fields take the reference class defaults, not Traum's.
        let sparse = MelConfig::from_json("{}").unwrap();
        assert_eq!(sparse.truncation, Truncation::Fusion);
        assert_eq!(sparse.frequency_min, 0.0);
        assert!(MelConfig::from_json(r#"{"truncation": "random"}"#).is_err());
        let bad = MelConfig {
            hop_length: 0,
            ..MelConfig::default()
        };
        assert!(matches!(
            LogMelExtractor::new(bad),
            Err(ClapError::Preprocessor(_))
        ));
    }

    #[test]
    fn windows_are_deterministic_with_real_end_times() {
        let extractor = LogMelExtractor::new(MelConfig::default()).unwrap();
        let spans = |seconds: f64, windowing: Windowing| {
            let audio = vec![0.1_f32; (seconds * 48_000.0) as usize];
            extractor
                .windows(&audio, &windowing)
                .unwrap()
                .iter()
                .map(|w| (w.start_seconds, w.end_seconds))
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(0.2, Windowing::default()), vec![(0.0, 0.2)]);
        assert_eq!(spans(10.0, Windowing::default()), vec![(0.0, 10.0)]);
        // A 0.5 s tail is below the 1 s minimum and is dropped.
        assert_eq!(spans(20.5, Windowing::default()), vec![(0.0, 10.0), (10.0, 20.0)]);
        assert_eq!(
            spans(21.5, Windowing::default()),
            vec![(0.0, 10.0), (10.0, 20.0), (20.0, 21.5)]
        );
        let overlapping = Windowing {
            hop_seconds: 5.0,
            min_remainder_seconds: 1.0,
        };
        assert_eq!(
            spans(21.5, overlapping),
            vec![(0.0, 10.0), (5.0, 15.0), (10.0, 20.0), (15.0, 21.5)]
        );
        assert!(extractor.windows(&[], &Windowing::default()).is_err());
    }

    #[test]
    fn streaming_in_odd_blocks_gives_the_same_windows() {
        let extractor = LogMelExtractor::new(MelConfig::default()).unwrap();
        let audio = signal(48_000 * 23, 9);
        let whole = extractor.windows(&audio, &Windowing::default()).unwrap();
        let mut windower = MelWindower::new(&extractor, &Windowing::default()).unwrap();
        let mut streamed = Vec::new();
        for block in audio.chunks(7_919) {
            windower.push(block, &mut |w| streamed.push(w)).unwrap();
        }
        windower.finish(&mut |w| streamed.push(w)).unwrap();
        assert_eq!(whole, streamed);
    }
}
