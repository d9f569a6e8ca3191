//! Inference-only building blocks on plain burn tensors.
//!
//! Weights are stored in the layout the forward pass wants (linear weights transposed to
//! `[in, out]`, query/key/value fused), so no per-call transposes are needed.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData, activation, module};
use rayon::prelude::*;
use traum_kernels::Bf16Weights;

use crate::Precision;
use crate::error::Result;
use crate::weights::Loader;

/// `y = x W + b` over the last dimension.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "a model holds a few hundred, built once at load; boxing would add a pointer chase per product"
)]
pub(crate) enum Linear {
    /// `w`: `[in, out]`, `b`: `[1, out]`, on the model's device.
    F32 { w: Tensor<2>, b: Option<Tensor<2>> },
    /// `--precision bf16` on the CPU: the weights rounded and packed for the
    /// bf16 kernels (products in bf16, sums and bias in f32).
    Bf16 {
        w: Arc<Bf16Weights>,
        b: Option<Arc<[f32]>>,
    },
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
        match l.precision {
            Precision::F32 => {
                let w = l.upload(w, [d_in, total]);
                let b = bias.then(|| l.upload(b, [1, total]));
                Ok(Self::F32 { w, b })
            }
            Precision::Bf16 => Ok(Self::Bf16 {
                w: Arc::new(Bf16Weights::pack(&w, d_in, total)),
                b: bias.then(|| b.into()),
            }),
        }
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims.iter().product::<usize>() / d_in.max(1);
        match self {
            Self::F32 { w, b } => {
                let mut y = x.reshape([rows, d_in]).matmul(w.clone());
                if let Some(b) = b {
                    y = y + b.clone();
                }
                dims[D - 1] = w.dims()[1];
                y.reshape(dims)
            }
            Self::Bf16 { w, b } => {
                let device = x.device();
                let y = with_values(&x.into_data(), |values| w.matmul(values, rows, b.as_deref()));
                dims[D - 1] = w.outputs();
                Tensor::from_data(TensorData::new(y, dims), &device)
            }
        }
    }
}

/// `a · b` over the last two dimensions of `[B, H, M, K]` tensors (with
/// `b_transposed`, `b` is `[B, H, N, K]` and the product is `a · bᵀ`, as
/// attention's `q · kᵀ`), in `precision`.
pub(crate) fn batched_matmul(
    precision: Precision,
    a: Tensor<4>,
    b: Tensor<4>,
    b_transposed: bool,
) -> Tensor<4> {
    match precision {
        Precision::F32 if b_transposed => a.matmul(b.swap_dims(2, 3)),
        Precision::F32 => a.matmul(b),
        Precision::Bf16 => {
            let [batch, heads, m, k] = a.dims();
            let [_, _, rows, columns] = b.dims();
            let n = if b_transposed { rows } else { columns };
            let device = a.device();
            let (a, b) = (a.into_data(), b.into_data());
            let out = with_values(&a, |a| {
                with_values(&b, |b| {
                    traum_kernels::batched_matmul(
                        traum_kernels::Bf16Kernel::best(),
                        a,
                        b,
                        (batch * heads, m, k, n),
                        b_transposed,
                    )
                })
            });
            Tensor::from_data(TensorData::new(out, [batch, heads, m, n]), &device)
        }
    }
}

/// Calls `f` with the tensor's values as f32, converting only if they are stored otherwise.
fn with_values<R>(data: &TensorData, f: impl FnOnce(&[f32]) -> R) -> R {
    match data.as_slice::<f32>() {
        Ok(values) => f(values),
        Err(_) => f(&data.iter::<f32>().collect::<Vec<_>>()),
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
/// with [`traum_kernels::gelu_in_place`], which vectorises: the backend's own GELU runs a
/// scalar libm `erff` per element on one thread, a tenth of HTSAT's time.
/// Other backends keep their fused kernel.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    rewrite_on_cpu(x, 16 * 1024, traum_kernels::gelu_in_place, activation::gelu)
}

/// Softmax over the last dimension.
///
/// On the CPU backend each row is rewritten in place on all threads with
/// [`traum_kernels::softmax_rows_in_place`], which vectorises, where the backend's softmax spends
/// its time in a scalar libm `expf` per element (3 % of HTSAT's time once
/// the matrix products run in bf16). Other backends keep their kernel.
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let width = x.dims()[D - 1];
    if width == 0 {
        return activation::softmax(x, D - 1);
    }
    rewrite_on_cpu(
        x,
        width * (4096 / width).max(1),
        |rows| traum_kernels::softmax_rows_in_place(rows, width),
        |x| activation::softmax(x, D - 1),
    )
}

/// Rewrites the values of `x` in place with `kernel`, in chunks of `chunk`
/// values spread over the pool's threads, when `x` is f32 on the CPU
/// backend; anywhere else `backend` (the backend's own op) computes it.
fn rewrite_on_cpu<const D: usize>(
    x: Tensor<D>,
    chunk: usize,
    kernel: impl Fn(&mut [f32]) + Sync + Send,
    backend: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = x.device();
    if device != crate::model::cpu_device() {
        return backend(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => values.par_chunks_mut(chunk).for_each(kernel),
        Err(_) => return backend(Tensor::from_data(data, &device)),
    }
    Tensor::from_data(data, &device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_match_the_backend_kernel() {
        let device = crate::model::cpu_device();
        let values: Vec<f32> = (0..3 * 70)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
            .collect();
        let mut masked = values.clone();
        masked[140..150].fill(f32::MIN);
        for input in [values, masked] {
            let x = Tensor::<2>::from_data(TensorData::new(input, [3, 70]), &device);
            let ours = softmax_last(x.clone()).into_data().try_to_vec::<f32>().unwrap();
            let theirs = activation::softmax(x, 1).into_data().try_to_vec::<f32>().unwrap();
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} vs {b}");
            }
            for row in ours.chunks_exact(70) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }
}
