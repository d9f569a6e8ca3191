//! Inference-only building blocks on plain burn tensors.
//!
//! Weights are stored in the layout the forward pass wants (linear weights transposed to
//! `[in, out]`, query/key/value fused), so no per-call transposes are needed.

use burn::tensor::Tensor;
use burn::tensor::activation;

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
        let mean = x.clone().mean_dim(D - 1);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(D - 1);
        let normed = centered / var.add_scalar(self.eps).sqrt();
        normed * self.gamma.clone().unsqueeze::<D>() + self.beta.clone().unsqueeze::<D>()
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
        let h = if self.gelu {
            activation::gelu(h)
        } else {
            activation::relu(h)
        };
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
