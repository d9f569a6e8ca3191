//! Level measurements: sample peak, RMS and integrated loudness after
//! ITU-R BS.1770-4 / EBU R128.
//!
//! Loudness and peak belong to the file as stored, so [`LevelMeter`] measures
//! them on the source channels at the source rate while the file is decoded:
//! BS.1770 sums the channels' powers, so a stereo file reads up to 3 LU
//! louder than its mono downmix, and a downmix can hide a peak in one channel.

/// Length of one gating block, seconds (BS.1770-4 §2.8).
const BLOCK_SECONDS: f64 = 0.4;
/// Blocks overlap by 75 %, so a new block starts every quarter block.
const STEPS_PER_BLOCK: usize = 4;
/// Blocks quieter than this never count, LUFS.
const ABSOLUTE_GATE_LUFS: f64 = -70.0;
/// Blocks this far below the absolutely-gated loudness are dropped, LU.
const RELATIVE_GATE_LU: f64 = -10.0;
/// Offset that makes a full-scale 997 Hz sine in one channel read −3.01 LUFS.
const LOUDNESS_OFFSET: f64 = -0.691;

/// Converts a linear amplitude to dBFS (full scale = 1.0), `None` for zero.
pub fn amplitude_to_dbfs(amplitude: f64) -> Option<f64> {
    (amplitude > 0.0).then(|| 20.0 * amplitude.log10())
}

/// Largest absolute sample value in dBFS (sample peak, not true peak);
/// `None` for digital silence.
pub fn peak_dbfs(samples: &[f32]) -> Option<f64> {
    let peak = samples.iter().fold(0.0f32, |peak, sample| peak.max(sample.abs()));
    amplitude_to_dbfs(f64::from(peak))
}

/// Root-mean-square level in dBFS, where a full-scale square wave reads
/// 0 dBFS and a full-scale sine −3.01 dBFS; `None` for digital silence.
pub fn rms_dbfs(samples: &[f32]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let energy: f64 = samples
        .iter()
        .map(|&sample| f64::from(sample) * f64::from(sample))
        .sum();
    amplitude_to_dbfs((energy / samples.len() as f64).sqrt())
}

/// A direct-form-I biquad, run in f64 because the high-pass pole sits very
/// close to the unit circle and f32 state would add audible error.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    /// Stage 1 of the K-weighting: the high shelf modelling the head.
    ///
    /// BS.1770 publishes coefficients for 48 kHz only; these are the analogue
    /// prototype's parameters (centre frequency, gain, Q) fitted to that
    /// table, re-discretised with the bilinear transform for `sample_rate`.
    fn k_shelf(sample_rate: f64) -> Self {
        let centre_hz = 1681.974450955533;
        let gain_db = 3.999843853973347;
        let q = 0.7071752369554196;
        let k = (std::f64::consts::PI * centre_hz / sample_rate).tan();
        let high_gain = 10f64.powf(gain_db / 20.0);
        let band_gain = high_gain.powf(0.4996667741545416);
        let a0 = 1.0 + k / q + k * k;
        Self {
            b: [
                (high_gain + band_gain * k / q + k * k) / a0,
                2.0 * (k * k - high_gain) / a0,
                (high_gain - band_gain * k / q + k * k) / a0,
            ],
            a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
        }
    }

    /// Stage 2 of the K-weighting: the "revised low-frequency B" high-pass.
    /// The numerator stays (1, −2, 1) as in the standard's 48 kHz table.
    fn rlb_high_pass(sample_rate: f64) -> Self {
        let corner_hz = 38.13547087602444;
        let q = 0.5003270373238773;
        let k = (std::f64::consts::PI * corner_hz / sample_rate).tan();
        let a0 = 1.0 + k / q + k * k;
        Self {
            b: [1.0, -2.0, 1.0],
            a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
        }
    }
}

/// Per-channel state of the two K-weighting stages in series.
#[derive(Debug, Clone, Copy)]
struct KWeighting {
    stages: [Biquad; 2],
    /// x[n−1], x[n−2], y[n−1], y[n−2] for each stage.
    state: [[f64; 4]; 2],
}

impl KWeighting {
    fn new(sample_rate: f64) -> Self {
        Self {
            stages: [Biquad::k_shelf(sample_rate), Biquad::rlb_high_pass(sample_rate)],
            state: [[0.0; 4]; 2],
        }
    }

    #[inline(always)]
    fn process(&mut self, input: f64) -> f64 {
        let mut value = input;
        for (stage, state) in self.stages.iter().zip(self.state.iter_mut()) {
            let [x1, x2, y1, y2] = *state;
            // y[n−1] enters last: it is the only operand that depends on the
            // previous sample, so the recursion costs one multiply-add.
            let feed = stage.b[0] * value + stage.b[1] * x1 + stage.b[2] * x2 - stage.a[1] * y2;
            let output = feed - stage.a[0] * y1;
            *state = [value, x1, output, y1];
            value = output;
        }
        value
    }
}

/// K-weighted energy of `C` interleaved channels, each weighted, with the
/// filters held in registers; `C` is a constant so the channels' recursions
/// run side by side instead of one after another.
fn filtered_energy<const C: usize>(filters: &mut [KWeighting], weights: &[f64], interleaved: &[f32]) -> f64 {
    let mut local: [KWeighting; C] = std::array::from_fn(|channel| filters[channel]);
    let mut energy = [0.0f64; C];
    for frame in interleaved.chunks_exact(C) {
        for channel in 0..C {
            let weighted = local[channel].process(f64::from(frame[channel]));
            energy[channel] += weighted * weighted;
        }
    }
    filters[..C].copy_from_slice(&local);
    energy
        .iter()
        .zip(weights)
        .map(|(energy, weight)| energy * weight)
        .sum()
}

/// [`filtered_energy`] for layouts with more channels, one channel at a time.
fn filtered_energy_any(filters: &mut [KWeighting], weights: &[f64], interleaved: &[f32]) -> f64 {
    let channels = filters.len();
    let mut total = 0.0;
    for (channel, (filter, &weight)) in filters.iter_mut().zip(weights).enumerate() {
        let mut local = *filter;
        let energy: f64 = interleaved
            .iter()
            .skip(channel)
            .step_by(channels)
            .map(|&sample| {
                let weighted = local.process(f64::from(sample));
                weighted * weighted
            })
            .sum();
        *filter = local;
        total += weight * energy;
    }
    total
}

/// Integrated loudness in LUFS (EBU R128 / ITU-R BS.1770-4) of a mono signal
/// with channel weight 1.0.
///
/// Returns `None` when no 400 ms block passes the −70 LUFS absolute gate:
/// the signal is silent, or shorter than one block.
pub fn integrated_loudness(samples: &[f32], sample_rate: u32) -> Option<f64> {
    let mut meter = LevelMeter::new(sample_rate, vec![1.0]);
    meter.push_interleaved(samples);
    meter.levels().loudness_lufs
}

/// Peak and loudness of a file as stored (all channels, source rate).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SourceLevels {
    /// Largest absolute sample value over all channels, dBFS (sample peak);
    /// `None` for digital silence.
    pub peak_dbfs: Option<f64>,
    /// Integrated loudness over all channels with their BS.1770 weights,
    /// LUFS; `None` when nothing passes the −70 LUFS gate.
    pub loudness_lufs: Option<f64>,
}

/// BS.1770-4 weight of a channel by position: 1.0 in front, 1.41 (+1.5 dB)
/// for surround channels beside and behind the listener, 0 for LFE, which
/// the standard leaves out.
pub fn channel_weight(position: ChannelPosition) -> f64 {
    match position {
        ChannelPosition::Front => 1.0,
        ChannelPosition::Surround => 1.41,
        ChannelPosition::LowFrequency => 0.0,
    }
}

/// Where a channel plays, as far as loudness weighting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPosition {
    Front,
    Surround,
    LowFrequency,
}

/// Streaming sample peak and BS.1770 loudness of interleaved audio.
///
/// Gating blocks are 400 ms long and start every 100 ms, so the meter keeps
/// the K-weighted energy of each 100 ms step (summed over the channels with
/// their weights) and every sample is filtered and squared once.
pub struct LevelMeter {
    filters: Vec<KWeighting>,
    weights: Vec<f64>,
    step_len: usize,
    /// Frames in the step being filled.
    step_fill: usize,
    step_energy: f64,
    steps: Vec<f64>,
    peak: f32,
}

impl LevelMeter {
    /// A meter for `weights.len()` interleaved channels (see
    /// [`channel_weight`]).
    pub fn new(sample_rate: u32, weights: Vec<f64>) -> Self {
        let step_len = ((BLOCK_SECONDS * f64::from(sample_rate)) / STEPS_PER_BLOCK as f64).round() as usize;
        Self {
            filters: weights
                .iter()
                .map(|_| KWeighting::new(f64::from(sample_rate)))
                .collect(),
            weights,
            step_len,
            step_fill: 0,
            step_energy: 0.0,
            steps: Vec::new(),
            peak: 0.0,
        }
    }

    pub fn channels(&self) -> usize {
        self.weights.len()
    }

    /// Adds whole frames of interleaved samples; a trailing partial frame is
    /// ignored.
    pub fn push_interleaved(&mut self, samples: &[f32]) {
        let channels = self.weights.len();
        if channels == 0 || self.step_len == 0 {
            return;
        }
        let mut rest = &samples[..samples.len() / channels * channels];
        self.peak = rest.iter().fold(self.peak, |peak, sample| peak.max(sample.abs()));
        while !rest.is_empty() {
            // Whole segments up to the next step boundary keep the
            // bookkeeping out of the per-sample loop.
            let frames = (rest.len() / channels).min(self.step_len - self.step_fill);
            let (segment, tail) = rest.split_at(frames * channels);
            self.step_energy += match channels {
                1 => filtered_energy::<1>(&mut self.filters, &self.weights, segment),
                2 => filtered_energy::<2>(&mut self.filters, &self.weights, segment),
                _ => filtered_energy_any(&mut self.filters, &self.weights, segment),
            };
            self.step_fill += frames;
            if self.step_fill == self.step_len {
                self.steps.push(self.step_energy);
                self.step_energy = 0.0;
                self.step_fill = 0;
            }
            rest = tail;
        }
    }

    /// Peak and integrated loudness of everything pushed so far.
    pub fn levels(&self) -> SourceLevels {
        let block_len = (self.step_len * STEPS_PER_BLOCK) as f64;
        let blocks: Vec<f64> = self
            .steps
            .windows(STEPS_PER_BLOCK)
            .map(|window| window.iter().sum::<f64>() / block_len)
            .collect();
        SourceLevels {
            peak_dbfs: amplitude_to_dbfs(f64::from(self.peak)),
            loudness_lufs: gated_loudness(&blocks),
        }
    }
}

fn energy_to_lufs(energy: f64) -> f64 {
    LOUDNESS_OFFSET + 10.0 * energy.log10()
}

/// Applies the absolute then the relative gate to block mean squares.
fn gated_loudness(blocks: &[f64]) -> Option<f64> {
    let mean_above = |threshold_lufs: f64| -> Option<f64> {
        let (sum, count) = blocks
            .iter()
            .filter(|&&energy| energy > 0.0 && energy_to_lufs(energy) > threshold_lufs)
            .fold((0.0, 0usize), |(sum, count), &energy| (sum + energy, count + 1));
        (count > 0).then(|| sum / count as f64)
    };
    let absolute = mean_above(ABSOLUTE_GATE_LUFS)?;
    let relative_gate = energy_to_lufs(absolute) + RELATIVE_GATE_LU;
    // The relative gate lies at or below the mean of the blocks it is
    // computed from, so at least one of them stays above it.
    mean_above(relative_gate.max(ABSOLUTE_GATE_LUFS)).map(energy_to_lufs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(frequency: f64, amplitude: f64, seconds: f64, sample_rate: u32) -> Vec<f32> {
        let len = (seconds * f64::from(sample_rate)) as usize;
        (0..len)
            .map(|n| {
                (amplitude
                    * (2.0 * std::f64::consts::PI * frequency * n as f64 / f64::from(sample_rate)).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn full_scale_sine_reads_minus_3_lufs() {
        // BS.1770-4 defines the scale so a 0 dBFS 997 Hz sine in one channel
        // reads −3.01 LUFS, and a −20 dBFS one 20 dB lower.
        let loudness = integrated_loudness(&sine(997.0, 1.0, 5.0, 48_000), 48_000).unwrap();
        assert!((loudness + 3.01).abs() < 0.02, "{loudness}");
        let loudness = integrated_loudness(&sine(997.0, 0.1, 5.0, 48_000), 48_000).unwrap();
        assert!((loudness + 23.01).abs() < 0.02, "{loudness}");
    }

    #[test]
    fn filter_is_designed_for_the_actual_rate() {
        // The same tone at 44.1 kHz and 96 kHz must read like at 48 kHz.
        for rate in [44_100, 96_000] {
            let loudness = integrated_loudness(&sine(997.0, 0.1, 3.0, rate), rate).unwrap();
            assert!((loudness + 23.01).abs() < 0.03, "{rate}: {loudness}");
        }
    }

    #[test]
    fn coefficients_match_the_48k_table() {
        // The 48 kHz coefficients printed in BS.1770-4 Table 1 and 2.
        let shelf = Biquad::k_shelf(48_000.0);
        let expected_b = [1.53512485958697, -2.69169618940638, 1.19839281085285];
        let expected_a = [-1.69065929318241, 0.73248077421585];
        for (ours, theirs) in shelf
            .b
            .iter()
            .zip(expected_b)
            .chain(shelf.a.iter().zip(expected_a))
        {
            assert!((ours - theirs).abs() < 1e-9, "{ours} vs {theirs}");
        }
        let high_pass = Biquad::rlb_high_pass(48_000.0);
        let expected_a = [-1.99004745483398, 0.99007225036621];
        for (ours, theirs) in high_pass.a.iter().zip(expected_a) {
            assert!((ours - theirs).abs() < 1e-9, "{ours} vs {theirs}");
        }
    }

    #[test]
    fn silence_and_short_input_have_no_loudness() {
        assert_eq!(integrated_loudness(&vec![0.0; 96_000], 48_000), None);
        assert_eq!(integrated_loudness(&sine(997.0, 1.0, 0.3, 48_000), 48_000), None);
        assert_eq!(integrated_loudness(&[], 48_000), None);
        assert_eq!(peak_dbfs(&[0.0; 10]), None);
        assert_eq!(rms_dbfs(&[]), None);
    }

    #[test]
    fn relative_gate_drops_quiet_passages() {
        // 2 s at −20 dBFS then 2 s at −50 dBFS: the quiet half is more than
        // 10 LU down, so only the loud half (and the blocks straddling the
        // edge) counts, not the energy average of both.
        let mut signal = sine(997.0, 0.1, 2.0, 48_000);
        signal.extend(sine(997.0, 0.1 / 31.62, 2.0, 48_000));
        let loudness = integrated_loudness(&signal, 48_000).unwrap();
        assert!((loudness + 23.0).abs() < 0.5, "{loudness}");
    }

    fn interleave(channels: &[&[f32]]) -> Vec<f32> {
        (0..channels[0].len())
            .flat_map(|i| channels.iter().map(move |channel| channel[i]))
            .collect()
    }

    #[test]
    fn channels_add_their_weighted_power() {
        let tone = sine(997.0, 0.1, 3.0, 44_100);
        let quiet = sine(997.0, 0.05, 3.0, 44_100);
        let silent = vec![0.0; tone.len()];
        let measure = |weights: Vec<f64>, channels: &[&[f32]]| {
            let mut meter = LevelMeter::new(44_100, weights);
            meter.push_interleaved(&interleave(channels));
            meter.levels()
        };
        // One channel: −23.01 LUFS, as the mono function says.
        let mono = measure(vec![1.0], &[&tone]);
        assert!((mono.loudness_lufs.unwrap() + 23.01).abs() < 0.03, "{mono:?}");
        // The same tone in both channels has twice the power: +3.01 LU.
        let stereo = measure(vec![1.0, 1.0], &[&tone, &tone]);
        assert!((stereo.loudness_lufs.unwrap() + 20.0).abs() < 0.03, "{stereo:?}");
        // A silent second channel adds nothing; the peak is the louder one's.
        let one_sided = measure(vec![1.0, 1.0], &[&silent, &tone]);
        assert!((one_sided.loudness_lufs.unwrap() + 23.01).abs() < 0.03);
        assert!((one_sided.peak_dbfs.unwrap() + 20.0).abs() < 0.01);
        // Surround channels weigh 1.41, LFE nothing.
        let surround = measure(
            vec![
                channel_weight(ChannelPosition::Surround),
                channel_weight(ChannelPosition::LowFrequency),
            ],
            &[&tone, &quiet],
        );
        let expected = -23.01 + 10.0 * 1.41f64.log10();
        assert!(
            (surround.loudness_lufs.unwrap() - expected).abs() < 0.03,
            "{surround:?}"
        );
        // Pushing in odd-sized pieces changes nothing.
        let mut meter = LevelMeter::new(44_100, vec![1.0, 1.0]);
        for piece in interleave(&[&tone, &quiet]).chunks(2 * 777) {
            meter.push_interleaved(piece);
        }
        // Sums per piece round differently, nothing more.
        assert_same_levels(meter.levels(), measure(vec![1.0, 1.0], &[&tone, &quiet]));
    }

    /// Same peak, and loudness equal up to the rounding of sums taken in a
    /// different order.
    fn assert_same_levels(a: SourceLevels, b: SourceLevels) {
        assert_eq!(a.peak_dbfs, b.peak_dbfs);
        let difference = a.loudness_lufs.unwrap() - b.loudness_lufs.unwrap();
        assert!(difference.abs() < 1e-9, "{a:?} vs {b:?}");
    }

    #[test]
    fn layouts_beyond_stereo_measure_like_stereo() {
        // Mono and stereo run on a path specialised for their channel count,
        // wider layouts on a general one; both must filter the same way.
        let tone = sine(997.0, 0.1, 3.0, 44_100);
        let quiet = sine(440.0, 0.05, 3.0, 44_100);
        let silent = vec![0.0; tone.len()];
        let mut stereo = LevelMeter::new(44_100, vec![1.0, 1.41]);
        stereo.push_interleaved(&interleave(&[&tone, &quiet]));
        let mut wide = LevelMeter::new(44_100, vec![1.0, 1.41, 1.0, 0.0]);
        for piece in interleave(&[&tone, &quiet, &silent, &tone]).chunks(4 * 1001) {
            wide.push_interleaved(piece);
        }
        assert_same_levels(stereo.levels(), wide.levels());
    }

    #[test]
    fn peak_and_rms_of_a_sine() {
        let signal = sine(1000.0, 0.5, 1.0, 48_000);
        assert!((peak_dbfs(&signal).unwrap() + 6.02).abs() < 0.01);
        assert!((rms_dbfs(&signal).unwrap() + 9.03).abs() < 0.01);
    }
}
