//! Tempo estimation: a log-mel spectral-flux onset envelope at ~200 frames
//! per second, its autocorrelation scored at each candidate beat period and
//! its multiples (a comb over the autocorrelation), a broad log-tempo prior,
//! and a fine search of the comb score for sub-BPM precision.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use crate::stft::Stft;

/// Onset envelope frames per second (before rounding the hop to samples).
const ENVELOPE_RATE_HZ: f64 = 200.0;
/// Analysis window, seconds; long enough to resolve kick drums.
const WINDOW_SECONDS: f64 = 0.02;
const MEL_BANDS: usize = 40;
const MEL_MIN_HZ: f64 = 30.0;
const MEL_MAX_HZ: f64 = 12_000.0;
/// Gain inside log(1 + C·x): mel magnitudes (full-scale sine ≈ 1) well
/// below 1/C are compressed linearly, so faint events and noise yield little
/// flux, while above it the log makes flux depend on level ratios; a pure dB
/// scale would let a quiet hi-hat flux as much as a loud kick.
const COMPRESSION: f32 = 1000.0;
/// Flux compares a frame with the one this many frames earlier (10 ms at
/// 200 Hz) because adjacent frames overlap by 80 % and differ too little.
const FLUX_LAG: usize = 2;
/// Range of tempi considered, BPM.
const MIN_BPM: f64 = 40.0;
const MAX_BPM: f64 = 250.0;
/// Centre and width (octaves) of the log-normal tempo prior. Wide, so the
/// prior only breaks ties between metrical levels the envelope supports
/// equally.
const PRIOR_CENTRE_BPM: f64 = 120.0;
const PRIOR_OCTAVES: f64 = 1.5;
/// A halved period replaces the chosen one when its comb score reaches
/// this share of the chosen one's.
const HALVING_RATIO: f64 = 0.85;
/// Halving never goes faster than this: beats above it are almost always
/// subdivisions (a hat on every eighth under a 120 BPM kick is not 240 BPM).
const HALVING_MAX_BPM: f64 = 200.0;
/// Multiples of the period scored in the coarse search.
const COARSE_MULTIPLES: usize = 4;

/// A tempo estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoEstimate {
    /// Beats per minute, rounded to 0.1.
    pub bpm: f64,
    /// 0 to 1: the onset envelope's normalised autocorrelation at the beat
    /// period (1 for a perfectly periodic envelope, near 0 for noise).
    pub confidence: f64,
}

/// Turns magnitude spectra into an onset-strength envelope.
pub struct OnsetDetector {
    fft_len: usize,
    hop_len: usize,
    frame_rate: f64,
    /// Per mel band: first FFT bin and the triangular weights from there.
    bands: Vec<(usize, Vec<f32>)>,
    /// Log-mel frames kept for the flux lag, used as a ring.
    history: Vec<[f32; MEL_BANDS]>,
    current: [f32; MEL_BANDS],
    frames_seen: usize,
    envelope: Vec<f32>,
}

impl OnsetDetector {
    /// A detector for signals at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        let rate = f64::from(sample_rate.max(1));
        let fft_len = ((WINDOW_SECONDS * rate) as usize).max(16).next_power_of_two();
        let hop_len = ((rate / ENVELOPE_RATE_HZ).round() as usize).max(1);
        Self {
            fft_len,
            hop_len,
            frame_rate: rate / hop_len as f64,
            bands: mel_bands(fft_len, rate),
            history: vec![[0.0; MEL_BANDS]; FLUX_LAG],
            current: [0.0; MEL_BANDS],
            frames_seen: 0,
            envelope: Vec::new(),
        }
    }

    /// FFT length the magnitude frames must come from.
    pub fn fft_len(&self) -> usize {
        self.fft_len
    }

    /// Hop between frames, samples.
    pub fn hop_len(&self) -> usize {
        self.hop_len
    }

    /// Envelope frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.frame_rate
    }

    /// Adds one frame of `fft_len / 2 + 1` magnitudes.
    pub fn push_frame(&mut self, magnitudes: &[f32]) {
        for (value, (start, weights)) in self.current.iter_mut().zip(&self.bands) {
            let energy: f32 = magnitudes
                .get(*start..)
                .unwrap_or(&[])
                .iter()
                .zip(weights)
                .map(|(magnitude, weight)| magnitude * weight)
                .sum();
            *value = (1.0 + COMPRESSION * energy).ln();
        }
        let slot = self.frames_seen % FLUX_LAG;
        let flux = if self.frames_seen >= FLUX_LAG {
            let previous = &self.history[slot];
            self.current
                .iter()
                .zip(previous)
                .map(|(now, then)| (now - then).max(0.0))
                .sum::<f32>()
                / MEL_BANDS as f32
        } else {
            0.0
        };
        self.history[slot] = self.current;
        self.envelope.push(flux);
        self.frames_seen += 1;
    }

    /// The onset envelope, one value per frame pushed.
    pub fn finish(&self) -> Vec<f32> {
        self.envelope.clone()
    }
}

/// Triangular mel filters (HTK mel scale) over magnitude bins, stored
/// sparsely because each bin feeds at most two bands.
fn mel_bands(fft_len: usize, sample_rate: f64) -> Vec<(usize, Vec<f32>)> {
    let to_mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let to_hz = |mel: f64| 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
    let top = MEL_MAX_HZ.min(0.45 * sample_rate);
    let (low_mel, high_mel) = (to_mel(MEL_MIN_HZ), to_mel(top));
    let edges: Vec<f64> = (0..MEL_BANDS + 2)
        .map(|i| to_hz(low_mel + (high_mel - low_mel) * i as f64 / (MEL_BANDS + 1) as f64))
        .collect();
    let bin_hz = sample_rate / fft_len as f64;
    edges
        .windows(3)
        .map(|edge| {
            let (left, centre, right) = (edge[0], edge[1], edge[2]);
            // Low bands are narrower than a bin; widen them to one bin so
            // none is empty.
            let first = (left / bin_hz).floor() as usize;
            let last = ((right / bin_hz).ceil() as usize).max(first + 1);
            let weights = (first..=last)
                .map(|bin| {
                    let hz = bin as f64 * bin_hz;
                    let rise = (hz - left) / (centre - left).max(bin_hz);
                    let fall = (right - hz) / (right - centre).max(bin_hz);
                    rise.min(fall).clamp(0.0, 1.0) as f32
                })
                .collect::<Vec<_>>();
            let weights = if weights.iter().all(|&w| w == 0.0) {
                vec![1.0]
            } else {
                weights
            };
            (first, weights)
        })
        .collect()
}

/// Estimates the tempo of a mono signal.
pub fn estimate(samples: &[f32], sample_rate: u32) -> Option<TempoEstimate> {
    let mut detector = OnsetDetector::new(sample_rate);
    let mut stft = Stft::new(detector.fft_len(), detector.hop_len());
    stft.for_each_frame(samples, |_, magnitudes| detector.push_frame(magnitudes));
    estimate_from_envelope(&detector.finish(), detector.frame_rate())
}

/// Estimates the tempo from an onset envelope sampled at `frame_rate` Hz.
pub fn estimate_from_envelope(envelope: &[f32], frame_rate: f64) -> Option<TempoEstimate> {
    let min_lag = frame_rate * 60.0 / MAX_BPM;
    let max_lag = frame_rate * 60.0 / MIN_BPM;
    // At least two beats at the slowest tempo, so its period is observable.
    if envelope.len() < (2.0 * max_lag) as usize + 4 {
        return None;
    }
    let smoothed = smooth(envelope);
    let acf = autocorrelation(&smoothed)?;
    let usable = acf.len().min(smoothed.len() * 3 / 4);
    let acf = &acf[..usable];

    let score = |lag: f64, multiples: usize| -> f64 {
        let mut total = 0.0;
        let mut count = 0;
        for k in 1..=multiples {
            match interpolate(acf, lag * k as f64) {
                Some(value) => {
                    total += value;
                    count += 1;
                }
                None => break,
            }
        }
        if count == 0 {
            f64::NEG_INFINITY
        } else {
            total / count as f64
        }
    };
    let prior = |lag: f64| {
        let octaves = (frame_rate * 60.0 / lag / PRIOR_CENTRE_BPM).log2() / PRIOR_OCTAVES;
        (-0.5 * octaves * octaves).exp()
    };

    // Coarse: quarter-frame steps over the whole range.
    let mut best: Option<(f64, f64)> = None;
    let mut lag = min_lag;
    while lag <= max_lag {
        let value = score(lag, COARSE_MULTIPLES);
        if value.is_finite() {
            let weighted = value.max(0.0) * prior(lag);
            if best.is_none_or(|(_, top)| weighted > top) {
                best = Some((lag, weighted));
            }
        }
        lag += 0.25;
    }
    let (mut coarse_lag, coarse_score) = best?;
    if coarse_score <= 0.0 {
        return None;
    }
    // The prior cannot tell a beat from its half-time, which the comb scores
    // alike; the beat is the fastest level carrying nearly all of the
    // periodicity, so halve the period while the halved one scores almost as
    // well (its extra, odd multiples are then real onsets, not gaps).
    let fastest_lag = min_lag.max(frame_rate * 60.0 / HALVING_MAX_BPM);
    while coarse_lag / 2.0 >= fastest_lag {
        let (here, half) = (
            score(coarse_lag, COARSE_MULTIPLES),
            score(coarse_lag / 2.0, COARSE_MULTIPLES),
        );
        if half >= HALVING_RATIO * here {
            coarse_lag /= 2.0;
        } else {
            break;
        }
    }

    // Fine: every multiple that fits, so the error of the period is divided
    // by the number of beats observed.
    let many = (usable as f64 / coarse_lag) as usize;
    let mut fine = (coarse_lag, f64::NEG_INFINITY);
    let steps = 200;
    for step in 0..=steps {
        let lag = coarse_lag - 0.5 + step as f64 / steps as f64;
        let value = score(lag, many);
        if value > fine.1 {
            fine = (lag, value);
        }
    }
    let bpm = frame_rate * 60.0 / fine.0;
    let confidence = interpolate(acf, fine.0).unwrap_or(0.0).clamp(0.0, 1.0);
    Some(TempoEstimate {
        bpm: (bpm * 10.0).round() / 10.0,
        confidence,
    })
}

/// A short Gaussian-like smoothing (σ ≈ 1.2 frames) so autocorrelation
/// peaks span several lags and interpolate well; the mean is removed so the
/// autocorrelation measures periodicity, not level.
fn smooth(envelope: &[f32]) -> Vec<f64> {
    const KERNEL: [f64; 7] = [0.0146, 0.0877, 0.2339, 0.3276, 0.2339, 0.0877, 0.0146];
    let len = envelope.len();
    let mut out: Vec<f64> = (0..len)
        .map(|i| {
            KERNEL
                .iter()
                .enumerate()
                .filter_map(|(j, weight)| {
                    let index = (i + j).checked_sub(3)?;
                    envelope.get(index).map(|&value| weight * f64::from(value))
                })
                .sum()
        })
        .collect();
    let mean = out.iter().sum::<f64>() / len.max(1) as f64;
    for value in &mut out {
        *value -= mean;
    }
    out
}

/// Unbiased autocorrelation (each lag divided by its number of terms),
/// normalised to 1 at lag 0, computed with one FFT pair.
fn autocorrelation(signal: &[f64]) -> Option<Vec<f64>> {
    let len = signal.len();
    let padded = (2 * len).next_power_of_two();
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(padded);
    let inverse = planner.plan_fft_inverse(padded);
    let mut buffer = forward.make_input_vec();
    buffer[..len].copy_from_slice(signal);
    let mut spectrum = forward.make_output_vec();
    forward.process(&mut buffer, &mut spectrum).ok()?;
    for bin in &mut spectrum {
        *bin = Complex::new(bin.norm_sqr(), 0.0);
    }
    inverse.process(&mut spectrum, &mut buffer).ok()?;
    let zero = buffer[0] / len as f64;
    if zero <= 0.0 {
        return None;
    }
    Some(
        (0..len)
            .map(|lag| buffer[lag] / (len - lag) as f64 / zero)
            .collect(),
    )
}

/// Linear interpolation of `values` at a fractional index.
fn interpolate(values: &[f64], position: f64) -> Option<f64> {
    let index = position.floor();
    let fraction = position - index;
    let index = index as usize;
    let (&low, &high) = (values.get(index)?, values.get(index + 1)?);
    Some(low + (high - low) * fraction)
}
