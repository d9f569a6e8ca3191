//! A Hann-windowed short-time Fourier transform shared by the descriptors,
//! tempo and key estimators.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// A Hann-windowed short-time Fourier transform with all buffers and the
/// plan allocated once, so a long file costs no per-frame allocations.
pub(crate) struct Stft {
    fft: Arc<dyn RealToComplex<f32>>,
    hop: usize,
    window: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    magnitudes: Vec<f32>,
}

impl Stft {
    /// `fft_len` samples per frame, a new frame every `hop` samples. The
    /// magnitudes are scaled so a full-scale sine peaks near 1.0.
    pub(crate) fn new(fft_len: usize, hop: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(fft_len);
        // Periodic Hann; its coherent gain is 1/2, so 4/N maps a full-scale
        // sine's bin to ~1.
        let scale = 4.0 / fft_len as f64;
        let window = (0..fft_len)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * n as f64 / fft_len as f64;
                (scale * 0.5 * (1.0 - phase.cos())) as f32
            })
            .collect();
        Self {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            magnitudes: vec![0.0; fft_len / 2 + 1],
            fft,
            hop: hop.max(1),
            window,
        }
    }

    /// Number of frames [`Stft::for_each_frame`] yields for `len` samples:
    /// frames start every hop while the start lies inside the signal.
    pub(crate) fn frame_count(&self, len: usize) -> usize {
        len.div_ceil(self.hop)
    }

    /// Calls `visit(frame_index, magnitudes)` for each frame; frames running
    /// past the end are zero-padded.
    pub(crate) fn for_each_frame(&mut self, samples: &[f32], mut visit: impl FnMut(usize, &[f32])) {
        let fft_len = self.window.len();
        for index in 0..self.frame_count(samples.len()) {
            let start = index * self.hop;
            let available = samples.len().saturating_sub(start).min(fft_len);
            for ((slot, &sample), &weight) in self
                .input
                .iter_mut()
                .zip(&samples[start..start + available])
                .zip(&self.window)
            {
                *slot = sample * weight;
            }
            self.input[available..].fill(0.0);
            // Lengths come from the plan itself, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
                .is_err()
            {
                return;
            }
            for (magnitude, bin) in self.magnitudes.iter_mut().zip(&self.spectrum) {
                // Not `norm()`: its overflow-safe `hypot` is a libm call per
                // bin, while this form vectorises (magnitudes are far from
                // overflow).
                *magnitude = (bin.re * bin.re + bin.im * bin.im).sqrt();
            }
            visit(index, &self.magnitudes);
        }
    }
}
