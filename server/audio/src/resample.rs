//! Band-limited conversion of a mono stream to 48 kHz (or another rate).

use rubato::{FftFixedInOut, Resampler};

use crate::AudioError;
use crate::decode::OUTPUT_SAMPLE_RATE;

/// Input block fed to the resampler, in source frames. Large enough for an
/// efficient FFT, small enough that callers get samples promptly.
const RESAMPLER_CHUNK_FRAMES: usize = 1024;

/// rubato's synchronous FFT resampler applies a windowed-sinc anti-aliasing
/// filter and is exact for the rational ratio between the two rates. Its
/// group delay is removed so output sample `n` lines up with source time
/// `n / 48 000` (to within half a source sample, which the even-length
/// filter cannot express in whole output samples), and the tail is flushed so the output holds exactly
/// `round(frames × 48 000 / rate)` samples.
pub(crate) struct MonoResampler {
    source_rate: u32,
    target_rate: u32,
    inner: Option<Resampling>,
    input_frames: u64,
    output_frames: u64,
}

struct Resampling {
    core: ResamplerCore,
    pending: Vec<f32>,
}

struct ResamplerCore {
    resampler: FftFixedInOut<f32>,
    output: Vec<Vec<f32>>,
    delay_left: usize,
}

impl MonoResampler {
    pub(crate) fn new(source_rate: u32) -> Result<Self, AudioError> {
        Self::to_rate(source_rate, OUTPUT_SAMPLE_RATE)
    }

    /// A resampler from `source_rate` to `target_rate` instead of 48 kHz.
    pub(crate) fn to_rate(source_rate: u32, target_rate: u32) -> Result<Self, AudioError> {
        let inner = if source_rate == target_rate {
            None
        } else {
            let resampler = FftFixedInOut::<f32>::new(
                source_rate as usize,
                target_rate as usize,
                RESAMPLER_CHUNK_FRAMES,
                1,
            )
            .map_err(|err| {
                AudioError::Unsupported(format!("cannot resample from {source_rate} Hz: {err}"))
            })?;
            let output = resampler.output_buffer_allocate(true);
            let delay_left = resampler.output_delay();
            Some(Resampling {
                core: ResamplerCore {
                    resampler,
                    output,
                    delay_left,
                },
                pending: Vec::with_capacity(2 * RESAMPLER_CHUNK_FRAMES),
            })
        };
        Ok(Self {
            source_rate,
            target_rate,
            inner,
            input_frames: 0,
            output_frames: 0,
        })
    }

    pub(crate) fn push(&mut self, samples: &[f32], sink: &mut impl FnMut(&[f32])) -> Result<(), AudioError> {
        self.input_frames += samples.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            self.output_frames += samples.len() as u64;
            sink(samples);
            return Ok(());
        };
        inner.pending.extend_from_slice(samples);
        let chunk = inner.core.resampler.input_frames_next();
        let mut consumed = 0;
        while inner.pending.len() - consumed >= chunk {
            let produced = inner.core.run(&inner.pending[consumed..consumed + chunk], sink)?;
            self.output_frames += produced as u64;
            consumed += chunk;
        }
        inner.pending.drain(..consumed);
        Ok(())
    }

    /// Flushes the resampler and returns the number of samples delivered.
    pub(crate) fn finish(mut self, sink: &mut impl FnMut(&[f32])) -> Result<u64, AudioError> {
        let target = (u128::from(self.input_frames) * u128::from(self.target_rate)
            + u128::from(self.source_rate / 2))
            / u128::from(self.source_rate.max(1));
        let target = target as u64;
        let Some(inner) = self.inner.as_mut() else {
            return Ok(self.output_frames);
        };
        let chunk = inner.core.resampler.input_frames_next();
        let mut block = std::mem::take(&mut inner.pending);
        while self.output_frames < target {
            block.resize(chunk, 0.0);
            let left = (target - self.output_frames) as usize;
            let mut limited = |samples: &[f32]| {
                let take = samples.len().min(left);
                if take > 0 {
                    sink(&samples[..take]);
                }
            };
            let produced = inner.core.run(&block, &mut limited)?;
            self.output_frames += produced.min(left) as u64;
            block.clear();
        }
        Ok(self.output_frames)
    }
}

impl ResamplerCore {
    /// Resamples one input chunk, drops what remains of the initial delay
    /// and returns how many samples went to `sink`.
    fn run(&mut self, input: &[f32], sink: &mut impl FnMut(&[f32])) -> Result<usize, AudioError> {
        let (_, written) = self
            .resampler
            .process_into_buffer(&[input], &mut self.output, None)
            .map_err(|err| AudioError::Corrupt(format!("resampling failed: {err}")))?;
        let out = self
            .output
            .first()
            .map(|channel| &channel[..written])
            .unwrap_or(&[]);
        let skip = self.delay_left.min(out.len());
        self.delay_left -= skip;
        let delivered = &out[skip..];
        if !delivered.is_empty() {
            sink(delivered);
        }
        Ok(delivered.len())
    }
}
