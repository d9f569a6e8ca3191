//! Tempo estimation: onset envelopes at ~200 frames per second, the
//! autocorrelation of one scored at each candidate beat period and its
//! multiples (a comb over the autocorrelation), a broad log-tempo prior, a
//! metrical check of the chosen level, and a fine search of the comb score
//! for sub-BPM precision.
//!
//! [`estimate`] and [`estimate_from_onsets`] read the metrical structure of
//! drum parts: the periodicity is taken from a "drum" envelope of the bands
//! below 2.7 kHz in amplitude (not log) units, so hi-hat eighths and
//! sixteenths, which carry little energy there, do not pass for beats; and
//! the metrical level is then checked for the kick/snare alternation of a
//! backbeat: on the beat grid, consecutive beats alternate between a
//! low-band-heavy onset (kick) and a mid-band-heavy one (snare or clap),
//! beats two apart match. When the chosen level shows no alternation but
//! its double- or half-time does, that level is the beat (a standard
//! backbeat at 74 BPM is no longer read as its 148 BPM hat grid, a drum and
//! bass break at 174 no longer as 87). Signals without a bass-drum layer
//! (no low-band onsets as strong as the mid-band ones) skip the check.

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
/// Lower end of the range of tempi considered, BPM.
pub const MIN_BPM: f64 = 40.0;
/// Upper end of the range of tempi considered, BPM.
pub const MAX_BPM: f64 = 250.0;
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
/// Mel bands (centres up to ~2.45 kHz) summed into the drum envelope: kick
/// and snare, little of the hats.
const DRUM_BANDS: usize = 21;
/// Mel bands of the kick (centres 83 and 139 Hz) and of the snare body and
/// crack (265 Hz to 1.24 kHz) for the alternation check.
const LOW_BANDS: std::ops::Range<usize> = 0..2;
const MID_BANDS: std::ops::Range<usize> = 3..13;
/// Percentile (of frames) the low- and mid-band envelopes are scaled by.
const BAND_REFERENCE_PERCENTILE: f64 = 0.995;
/// An alternation score (−1 to 1) of at least this marks the level that
/// carries the kick/snare alternation.
const ALTERNATION_MIN: f64 = 0.3;
/// A beat counts in the alternation when its kick or snare reaches this
/// share of the band's reference level.
const STRONG_BEAT: f64 = 0.3;
/// Onsets are looked for this far either side of each grid point, seconds.
const GRID_TOLERANCE_SECONDS: f64 = 0.015;
/// Fewer beats than this in the signal say nothing about alternation.
const MIN_GRID_BEATS: usize = 10;
const MIN_STRONG_BEATS: usize = 4;

/// A tempo estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoEstimate {
    /// Beats per minute, rounded to 0.1.
    pub bpm: f64,
    /// 0 to 1: the onset envelope's normalised autocorrelation at the beat
    /// period (1 for a perfectly periodic envelope, near 0 for noise).
    pub confidence: f64,
    /// The other readings of the same pulse: `[half-time, double-time]`,
    /// at half and twice `bpm`. `None` where that reading lies outside the
    /// range considered ([`MIN_BPM`] to [`MAX_BPM`]).
    pub alternatives: [Option<TempoAlternative>; 2],
}

/// A half- or double-time reading of a [`TempoEstimate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoAlternative {
    /// Beats per minute, rounded to 0.1.
    pub bpm: f64,
    /// 0 to 1: how periodic the envelope is at this reading's beat period,
    /// relative to the chosen one (the comb score of the autocorrelation,
    /// capped at 1). A score near 1 means the periodicity alone could not
    /// tell the two apart and the metrical structure decided.
    pub score: f64,
}

impl TempoEstimate {
    /// An estimate without alternatives (one stored without them).
    pub fn new(bpm: f64, confidence: f64) -> Self {
        Self {
            bpm,
            confidence,
            alternatives: [None, None],
        }
    }

    /// The half-time reading, if in range.
    pub fn half_time(&self) -> Option<TempoAlternative> {
        self.alternatives[0]
    }

    /// The double-time reading, if in range.
    pub fn double_time(&self) -> Option<TempoAlternative> {
        self.alternatives[1]
    }
}

/// The onset envelopes of one signal, one value per frame each.
#[derive(Debug, Clone, Default)]
pub struct OnsetEnvelopes {
    /// Log-mel spectral flux over all bands.
    pub full: Vec<f32>,
    /// Spectral flux of mel amplitudes (square root of the band sums)
    /// below ~2.7 kHz: kick and snare, little hi-hat.
    pub drums: Vec<f32>,
    /// Linear flux of the kick bands (below ~200 Hz).
    pub low: Vec<f32>,
    /// Linear flux of the snare bands (~200 Hz to ~1.3 kHz).
    pub mid: Vec<f32>,
    /// Frames per second.
    pub frame_rate: f64,
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
    /// Linear mel frames, the same ring.
    linear_history: Vec<[f32; MEL_BANDS]>,
    current: [f32; MEL_BANDS],
    linear: [f32; MEL_BANDS],
    frames_seen: usize,
    envelope: Vec<f32>,
    drums: Vec<f32>,
    low: Vec<f32>,
    mid: Vec<f32>,
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
            linear_history: vec![[0.0; MEL_BANDS]; FLUX_LAG],
            current: [0.0; MEL_BANDS],
            linear: [0.0; MEL_BANDS],
            frames_seen: 0,
            envelope: Vec::new(),
            drums: Vec::new(),
            low: Vec::new(),
            mid: Vec::new(),
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
        for ((value, linear), (start, weights)) in
            self.current.iter_mut().zip(&mut self.linear).zip(&self.bands)
        {
            let energy: f32 = magnitudes
                .get(*start..)
                .unwrap_or(&[])
                .iter()
                .zip(weights)
                .map(|(magnitude, weight)| magnitude * weight)
                .sum();
            *value = (1.0 + COMPRESSION * energy).ln();
            *linear = energy;
        }
        let slot = self.frames_seen % FLUX_LAG;
        let (flux, drums, low, mid) = if self.frames_seen >= FLUX_LAG {
            let previous = &self.history[slot];
            let flux = self
                .current
                .iter()
                .zip(previous)
                .map(|(now, then)| (now - then).max(0.0))
                .sum::<f32>()
                / MEL_BANDS as f32;
            let then = &self.linear_history[slot];
            let rise = |band: usize, root: bool| {
                let (a, b) = (self.linear[band], then[band]);
                if root {
                    (a.sqrt() - b.sqrt()).max(0.0)
                } else {
                    (a - b).max(0.0)
                }
            };
            let mean = |bands: std::ops::Range<usize>, root: bool| {
                let len = bands.len() as f32;
                bands.map(|band| rise(band, root)).sum::<f32>() / len
            };
            (
                flux,
                mean(0..DRUM_BANDS, true),
                mean(LOW_BANDS, false),
                mean(MID_BANDS, false),
            )
        } else {
            (0.0, 0.0, 0.0, 0.0)
        };
        self.history[slot] = self.current;
        self.linear_history[slot] = self.linear;
        self.envelope.push(flux);
        self.drums.push(drums);
        self.low.push(low);
        self.mid.push(mid);
        self.frames_seen += 1;
    }

    /// The onset envelope, one value per frame pushed.
    pub fn finish(&self) -> Vec<f32> {
        self.envelope.clone()
    }

    /// All onset envelopes, for [`estimate_from_onsets`].
    pub fn envelopes(&self) -> OnsetEnvelopes {
        OnsetEnvelopes {
            full: self.envelope.clone(),
            drums: self.drums.clone(),
            low: self.low.clone(),
            mid: self.mid.clone(),
            frame_rate: self.frame_rate,
        }
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
    estimate_from_onsets(&detector.envelopes())
}

/// Estimates the tempo from one onset envelope sampled at `frame_rate` Hz:
/// periodicity and prior only, without the metrical check, which needs the
/// band envelopes of [`estimate_from_onsets`].
pub fn estimate_from_envelope(envelope: &[f32], frame_rate: f64) -> Option<TempoEstimate> {
    let pulse = Pulse::new(envelope, frame_rate)?;
    let lag = pulse.coarse_lag()?;
    Some(pulse.finish(lag))
}

/// Estimates the tempo from the envelopes of an [`OnsetDetector`]: the
/// drum envelope's periodicity, then the kick/snare alternation of the
/// low- and mid-band envelopes picks the metrical level.
pub fn estimate_from_onsets(onsets: &OnsetEnvelopes) -> Option<TempoEstimate> {
    let frame_rate = onsets.frame_rate;
    let pulse = Pulse::new(&onsets.drums, frame_rate)?;
    let mut lag = pulse.coarse_lag()?;
    lag = pulse.fine_lag(lag);
    if let Some(bands) = Backbeat::new(&onsets.low, &onsets.mid, frame_rate) {
        let here = bands.alternation(lag).unwrap_or(f64::NEG_INFINITY);
        let fastest = frame_rate * 60.0 / HALVING_MAX_BPM;
        let double = (lag / 2.0 >= fastest)
            .then(|| bands.alternation(lag / 2.0))
            .flatten()
            .unwrap_or(f64::NEG_INFINITY);
        let half = (lag * 2.0 <= frame_rate * 60.0 / MIN_BPM)
            .then(|| bands.alternation(lag * 2.0))
            .flatten()
            .unwrap_or(f64::NEG_INFINITY);
        if double >= ALTERNATION_MIN && double > here {
            lag = pulse.fine_lag(lag / 2.0);
        } else if here < ALTERNATION_MIN && half >= ALTERNATION_MIN {
            lag = pulse.fine_lag(lag * 2.0);
        } else if here < ALTERNATION_MIN {
            // Triplet hi-hat rolls can make the period of three rolled
            // notes per two eighths (4:3 of the beat) the strongest; the
            // beat is the slower one whose neighbours alternate kick and
            // snare.
            let (slowest, fastest) = (frame_rate * 60.0 / MIN_BPM, frame_rate * 60.0 / MAX_BPM);
            let metrical = [4.0 / 3.0]
                .into_iter()
                .map(|factor| lag * factor)
                .filter(|&candidate| (fastest..=slowest).contains(&candidate))
                .filter_map(|candidate| Some((bands.alternation(candidate)?, candidate)))
                .filter(|&(alternation, _)| alternation >= ALTERNATION_MIN)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, candidate)) = metrical {
                lag = pulse.fine_lag(candidate);
            }
        }
    }
    Some(pulse.finish(lag))
}

/// The autocorrelation of one onset envelope, and the searches over it.
struct Pulse {
    acf: Vec<f64>,
    frame_rate: f64,
    min_lag: f64,
    max_lag: f64,
}

impl Pulse {
    fn new(envelope: &[f32], frame_rate: f64) -> Option<Self> {
        let min_lag = frame_rate * 60.0 / MAX_BPM;
        let max_lag = frame_rate * 60.0 / MIN_BPM;
        // At least two beats at the slowest tempo, so its period is observable.
        if envelope.len() < (2.0 * max_lag) as usize + 4 {
            return None;
        }
        let smoothed = smooth(envelope);
        let mut acf = autocorrelation(&smoothed)?;
        acf.truncate(smoothed.len() * 3 / 4);
        Some(Self {
            acf,
            frame_rate,
            min_lag,
            max_lag,
        })
    }

    /// Mean autocorrelation at `lag` and its first `multiples` multiples.
    fn score(&self, lag: f64, multiples: usize) -> f64 {
        let mut total = 0.0;
        let mut count = 0;
        for k in 1..=multiples {
            match interpolate(&self.acf, lag * k as f64) {
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
    }

    fn prior(&self, lag: f64) -> f64 {
        let octaves = (self.frame_rate * 60.0 / lag / PRIOR_CENTRE_BPM).log2() / PRIOR_OCTAVES;
        (-0.5 * octaves * octaves).exp()
    }

    /// The best-scoring period under the prior, halved while the halved
    /// one scores almost as well.
    fn coarse_lag(&self) -> Option<f64> {
        // Coarse: quarter-frame steps over the whole range.
        let mut best: Option<(f64, f64)> = None;
        let mut lag = self.min_lag;
        while lag <= self.max_lag {
            let value = self.score(lag, COARSE_MULTIPLES);
            if value.is_finite() {
                let weighted = value.max(0.0) * self.prior(lag);
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
        // The prior cannot tell a beat from its half-time, which the comb
        // scores alike; the beat is the fastest level carrying nearly all of
        // the periodicity, so halve the period while the halved one scores
        // almost as well (its extra, odd multiples are then real onsets, not
        // gaps).
        let fastest_lag = self.min_lag.max(self.frame_rate * 60.0 / HALVING_MAX_BPM);
        while coarse_lag / 2.0 >= fastest_lag {
            let (here, half) = (
                self.score(coarse_lag, COARSE_MULTIPLES),
                self.score(coarse_lag / 2.0, COARSE_MULTIPLES),
            );
            if half >= HALVING_RATIO * here {
                coarse_lag /= 2.0;
            } else {
                break;
            }
        }
        Some(coarse_lag)
    }

    /// Fine: every multiple that fits, so the error of the period is
    /// divided by the number of beats observed.
    fn fine_lag(&self, coarse_lag: f64) -> f64 {
        let many = (self.acf.len() as f64 / coarse_lag) as usize;
        let mut fine = (coarse_lag, f64::NEG_INFINITY);
        let steps = 200;
        for step in 0..=steps {
            let lag = coarse_lag - 0.5 + step as f64 / steps as f64;
            let value = self.score(lag, many);
            if value > fine.1 {
                fine = (lag, value);
            }
        }
        fine.0
    }

    fn finish(&self, coarse_lag: f64) -> TempoEstimate {
        let lag = self.fine_lag(coarse_lag);
        let bpm = self.frame_rate * 60.0 / lag;
        let confidence = interpolate(&self.acf, lag).unwrap_or(0.0).clamp(0.0, 1.0);
        let chosen = self.score(lag, COARSE_MULTIPLES).max(f64::MIN_POSITIVE);
        let alternative = |factor: f64| {
            let reading = bpm * factor;
            (MIN_BPM..=MAX_BPM).contains(&reading).then(|| {
                let score = self.score(lag / factor, COARSE_MULTIPLES);
                TempoAlternative {
                    bpm: round_tenth(reading),
                    score: if score.is_finite() {
                        (score / chosen).clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                }
            })
        };
        TempoEstimate {
            bpm: round_tenth(bpm),
            confidence,
            alternatives: [alternative(0.5), alternative(2.0)],
        }
    }
}

fn round_tenth(bpm: f64) -> f64 {
    (bpm * 10.0).round() / 10.0
}

/// Kick (low-band) and snare (mid-band) envelopes, each smoothed and scaled
/// to its loud onsets, for the alternation check.
struct Backbeat {
    low: Vec<f64>,
    mid: Vec<f64>,
    tolerance: usize,
}

impl Backbeat {
    /// `None` without a bass-drum layer: when the low band's loud onsets are
    /// weaker than the mid band's (a click track, a plucked line), kick
    /// versus snare means nothing.
    fn new(low: &[f32], mid: &[f32], frame_rate: f64) -> Option<Self> {
        let (mut low, mut mid) = (smooth_raw(low), smooth_raw(mid));
        let (low_ref, mid_ref) = (percentile(&low)?, percentile(&mid)?);
        if low_ref <= 0.0 || mid_ref <= 0.0 || low_ref < mid_ref {
            return None;
        }
        for value in &mut low {
            *value /= low_ref;
        }
        for value in &mut mid {
            *value /= mid_ref;
        }
        Some(Self {
            low,
            mid,
            tolerance: (GRID_TOLERANCE_SECONDS * frame_rate).round() as usize,
        })
    }

    fn window_max(values: &[f64], centre: usize, tolerance: usize) -> f64 {
        let first = centre.saturating_sub(tolerance);
        let last = (centre + tolerance + 1).min(values.len());
        values[first..last].iter().copied().fold(0.0, f64::max)
    }

    /// −1 to 1: on a grid of period `lag` (frames), phased on the strongest
    /// kick-plus-snare onsets, how far consecutive beats alternate between
    /// kick-heavy and snare-heavy while beats two apart match. `None` for
    /// fewer than [`MIN_GRID_BEATS`] beats.
    fn alternation(&self, lag: f64) -> Option<f64> {
        let len = self.low.len();
        let tolerance = self.tolerance;
        let end = len.checked_sub(tolerance + 1)? as f64;
        let drum: Vec<f64> = self.low.iter().zip(&self.mid).map(|(l, m)| l + m).collect();
        let grid = |phase: f64| {
            (0..)
                .map(move |k| phase + k as f64 * lag)
                .take_while(move |&position| position < end)
                .map(|position| position as usize)
        };
        let mut best = (f64::NEG_INFINITY, 0.0);
        let mut phase = 0.0;
        while phase < lag {
            let (sum, count) = grid(phase).fold((0.0, 0usize), |(sum, count), position| {
                (sum + Self::window_max(&drum, position, tolerance), count + 1)
            });
            if count > 0 && sum / count as f64 > best.0 {
                best = (sum / count as f64, phase);
            }
            phase += 1.0;
        }
        let beats: Vec<(f64, f64)> = grid(best.1)
            .map(|position| {
                (
                    Self::window_max(&self.low, position, tolerance).min(1.0),
                    Self::window_max(&self.mid, position, tolerance).min(1.0),
                )
            })
            .collect();
        if beats.len() < MIN_GRID_BEATS {
            return None;
        }
        let strong: Vec<bool> = beats.iter().map(|&(l, m)| l.max(m) >= STRONG_BEAT).collect();
        let strong_count = strong.iter().filter(|&&s| s).count();
        if strong_count < MIN_STRONG_BEATS {
            return Some(0.0);
        }
        // Kick-heaviness, centred over the strong beats so a kit whose snare
        // also rings low still alternates around zero; weak beats are 0.
        let centre = beats
            .iter()
            .zip(&strong)
            .filter(|(_, s)| **s)
            .map(|(&(l, m), _)| l - m)
            .sum::<f64>()
            / strong_count as f64;
        let kick: Vec<f64> = beats
            .iter()
            .zip(&strong)
            .map(|(&(l, m), &s)| if s { l - m - centre } else { 0.0 })
            .collect();
        let energy = kick.iter().map(|k| k * k).sum::<f64>() / kick.len() as f64 + 1e-9;
        let correlation = |distance: usize| {
            let pairs = kick.len() - distance;
            kick.iter()
                .zip(&kick[distance..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / pairs as f64
                / energy
        };
        Some(0.5 * (correlation(2) - correlation(1)))
    }
}

/// The envelope smoothed by the kernel of [`smooth`], mean kept.
fn smooth_raw(envelope: &[f32]) -> Vec<f64> {
    let mut out = smooth(envelope);
    let mean = envelope.iter().map(|&v| f64::from(v)).sum::<f64>() / envelope.len().max(1) as f64;
    for value in &mut out {
        *value += mean;
    }
    out
}

/// The [`BAND_REFERENCE_PERCENTILE`] of `values` (nearest rank).
fn percentile(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() - 1) as f64 * BAND_REFERENCE_PERCENTILE).round() as usize;
    Some(sorted[rank])
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
