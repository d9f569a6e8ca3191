//! Inference-only building blocks on plain burn tensors.
//!
//! Weights are stored in the layout the forward pass wants (linear weights transposed to
//! `[in, out]`, query/key/value fused), so no per-call transposes are needed.

use burn::tensor::{Tensor, activation, module};
use rayon::prelude::*;

use crate::error::Result;
use crate::weights::Loader;

/// `y = x W + b` over the last dimension. `w`: `[in, out]`, `b`: `[1, out]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub(crate) w: Tensor<2>,
    pub(crate) b: Option<Tensor<2>>,
}

impl Linear {
    /// Loads `{prefix}.weight` (`[out, in]` as in PyTorch) and, if `bias`, `{prefix}.bias`.
    pub(crate) fn load(
        l: &mut Loader<'_>,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        Self::load_fused(l, &[prefix], d_in, d_out, bias)
    }

    /// Several linears with the same input, concatenated along the output (e.g. query, key,
    /// value), so one GEMM computes them all.
    pub(crate) fn load_fused(
        l: &mut Loader<'_>,
        prefixes: &[&str],
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        let total = d_out * prefixes.len();
        let mut w = vec![0f32; d_in * total];
        let mut b = Vec::with_capacity(total);
        for (k, prefix) in prefixes.iter().enumerate() {
            let wk = l.f32s(&format!("{prefix}.weight"), &[d_out, d_in])?;
            for o in 0..d_out {
                for i in 0..d_in {
                    w[i * total + k * d_out + o] = wk[o * d_in + i];
                }
            }
            if bias {
                b.extend(l.f32s(&format!("{prefix}.bias"), &[d_out])?);
            }
        }
        let w = l.upload(w, [d_in, total]);
        let b = bias.then(|| l.upload(b, [1, total]));
        Ok(Self { w, b })
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims.iter().product::<usize>() / d_in.max(1);
        let mut y = x.reshape([rows, d_in]).matmul(self.w.clone());
        if let Some(b) = &self.b {
            y = y + b.clone();
        }
        dims[D - 1] = self.w.dims()[1];
        y.reshape(dims)
    }
}

/// Layer norm over the last dimension (biased variance, as PyTorch).
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn load(l: &mut Loader<'_>, prefix: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            gamma: l.tensor(&format!("{prefix}.weight"), [dim])?,
            beta: l.tensor(&format!("{prefix}.bias"), [dim])?,
            eps,
        })
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // The backend's fused kernel reads and writes the activations once;
        // composed from tensor ops, the same norm took nine passes.
        module::layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps)
    }
}

/// The two-layer projection head into the shared space (`ClapProjectionLayer`).
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    linear1: Linear,
    linear2: Linear,
    gelu: bool,
}

impl Projection {
    pub(crate) fn load(l: &mut Loader<'_>, prefix: &str, d_in: usize, dim: usize, act: &str) -> Result<Self> {
        Ok(Self {
            linear1: Linear::load(l, &format!("{prefix}.linear1"), d_in, dim, true)?,
            linear2: Linear::load(l, &format!("{prefix}.linear2"), dim, dim, true)?,
            gelu: act == "gelu",
        })
    }

    /// `[B, d_in]` → `[B, dim]`, not normalised.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.linear1.forward(x);
        let h = if self.gelu { gelu(h) } else { activation::relu(h) };
        self.linear2.forward(h)
    }
}

/// Divides each row by its L2 norm (floored at 1e-12, as `F.normalize`).
pub(crate) fn l2_normalize(mut rows: Vec<f32>, dim: usize) -> Vec<Vec<f32>> {
    rows.chunks_exact_mut(dim.max(1))
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(|v| v / norm).collect()
        })
        .collect()
}

/// GELU in its exact (erf) form, as `nn.GELU()`.
///
/// On the CPU backend the activations are rewritten in place on all threads
/// with [`gelu_scalar`], which vectorises: the backend's own GELU runs a
/// scalar libm `erff` per element on one thread, a tenth of HTSAT's time.
/// Other backends keep their fused kernel.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if device != crate::model::cpu_device() {
        return activation::gelu(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => values.par_chunks_mut(16 * 1024).for_each(|chunk| {
            for value in chunk {
                *value = gelu_scalar(*value);
            }
        }),
        Err(_) => return activation::gelu(Tensor::from_data(data, &device)),
    }
    Tensor::from_data(data, &device)
}

/// `0.5·x·(1 + erf(x/√2))` from branch-free arithmetic the compiler turns
/// into SIMD: erfc by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7)
/// over a polynomial `exp`. `1 + erf` is taken as `erfc(|z|)` for negative
/// `x` and `2 − erfc(z)` otherwise, so the negative tail keeps its relative
/// precision instead of cancelling against 1.
#[inline(always)]
pub(crate) fn gelu_scalar(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + P * z);
    let series = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erfc = series * exp_negative(z * z);
    let one_plus_erf = if x < 0.0 { erfc } else { 2.0 - erfc };
    0.5 * x * one_plus_erf
}

/// `e^(−w)` for `w ≥ 0` to about one ulp, flushing to 0 past `w = 87`:
/// `2^n · e^r` with `n = round(−w / ln 2)`, `|r| ≤ ln 2 / 2`, and a degree-6
/// Taylor polynomial for `e^r`.
#[inline(always)]
fn exp_negative(w: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without
    // a rounding instruction the baseline x86-64 target lacks.
    const ROUND: f32 = 12_582_912.0;
    let w = w.min(87.0);
    let n = (-w * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (-w - n * LN2_HI) - n * LN2_LO;
    let poly = 1.0
        + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    poly * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_reference(x: f64) -> f64 {
        0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2))
    }

    /// erf in f64 by its Taylor series (|x| ≤ 3) or continued fraction, so
    /// the test does not lean on the approximation it checks.
    fn libm_erf(x: f64) -> f64 {
        let sign = x.signum();
        let x = x.abs();
        if x < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sign * sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut fraction = 0.0;
            for k in (1..60).rev() {
                fraction = f64::from(k) / 2.0 / (x + fraction);
            }
            let erfc = (-x * x).exp() / std::f64::consts::PI.sqrt() / (x + fraction);
            sign * (1.0 - erfc)
        }
    }

    #[test]
    fn gelu_matches_the_erf_definition() {
        // Error relative to max(1, |gelu|): absolute near zero, where the
        // activations that matter live, relative for large inputs.
        let error = |x: f32| {
            let exact = gelu_reference(f64::from(x));
            (f64::from(gelu_scalar(x)) - exact).abs() / exact.abs().max(1.0)
        };
        let worst = (-200_000..=200_000)
            .map(|step| error(step as f32 * 1e-4))
            .fold(0.0f64, f64::max);
        assert!(worst < 1e-6, "max error {worst}");
        for x in [-1e30f32, -100.0, -30.0, 30.0, 100.0, 1e30] {
            assert!(error(x) < 1e-6, "{x}: {}", error(x));
        }
        assert_eq!(gelu_scalar(0.0), 0.0);
    }

    #[test]
    fn exp_negative_is_accurate_to_an_ulp_or_two() {
        for step in 0..=86_900 {
            let w = step as f32 * 1e-3;
            let exact = (-f64::from(w)).exp();
            let relative = (f64::from(exp_negative(w)) - exact).abs() / exact;
            assert!(relative < 3e-7, "e^-{w}: relative error {relative}");
        }
        assert!(exp_negative(1e6) < 1e-37);
    }
}
