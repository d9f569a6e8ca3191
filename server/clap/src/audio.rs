//! HTSAT audio encoder (`transformers` `ClapAudioEncoder`, unfused).
//!
//! Shapes for one batch of `B` windows (HTSAT-tiny numbers: spec 256, mel 64, patch 4, window 8,
//! widths 96·2^i):
//!
//! ```text
//! mel        [B, 1001, 64]   log-mel frames × bins (host)
//! batch-norm over the 64 bins, bicubic stretch of time to 1024 frames (host)
//! mel→image  [B, 256, 256]   4 time chunks of 256 frames stacked along frequency (host)
//! patches    [B, 4096, 16]   4×4 patches (host) → linear → layer norm
//! stage 1    [B, 4096, 96]  → merge → [B, 1024, 192]
//! stage 2    [B, 1024, 192] → merge → [B, 256, 384]
//! stage 3    [B, 256, 384]  → merge → [B, 64, 768]
//! stage 4    [B, 64, 768]   (8×8 tokens = one window: no shift)
//! norm, mean over tokens → pooled [B, 768]
//! ```
//!
//! The steps marked "host" are pure data movement or per-bin affine maps on 64k values per
//! window; doing them on the CPU before upload keeps the device graph to GEMMs and reductions.

use burn::tensor::{Int, Tensor, TensorData};

use crate::config::ClapConfig;
use crate::error::{ClapError, Result};
use crate::nn::{LayerNorm, Linear};
use crate::weights::Loader;

const PREFIX: &str = "audio_model.audio_encoder";

/// One Swin block (window attention + MLP, pre-norm).
struct SwinBlock {
    norm_before: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm_after: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    window: usize,
    /// Relative position bias, plus the shifted-window mask when `shift > 0`:
    /// `[1, nW, heads, N, N]` (nW = 1 without shift, broadcast over windows).
    bias: Tensor<5>,
    /// Where each token goes for the shifted window partition, fixed by the
    /// stage's resolution, so it is worked out once at load.
    order: WindowOrder,
    /// What the attention products compute in.
    precision: crate::Precision,
}

struct Stage {
    blocks: Vec<SwinBlock>,
    /// Patch merging: layer norm over 4C, then `[4C] → [2C]` without bias.
    merge: Option<(LayerNorm, Linear)>,
    resolution: (usize, usize),
    dim: usize,
}

/// Intermediate activations of one forward pass, for parity checks.
#[derive(Debug, Clone)]
pub struct AudioTrace {
    /// Patch embedding after its layer norm, `[B, L0, E]` flattened row-major.
    pub patch_embed: Vec<f32>,
    /// Output of each stage (after patch merging), flattened row-major.
    pub stages: Vec<Vec<f32>>,
    /// Pooled output `[B, hidden]` before the projection.
    pub pooled: Vec<f32>,
}

pub(crate) struct AudioEncoder {
    /// Per-bin affine of the eval-mode batch norm: `y = x * scale + shift`.
    bn_scale: Vec<f32>,
    bn_shift: Vec<f32>,
    patch_proj: Linear,
    patch_norm: Option<LayerNorm>,
    stages: Vec<Stage>,
    norm: LayerNorm,
    mel_bins: usize,
    spec_size: usize,
    spec_width: usize,
    patch: (usize, usize),
}

impl AudioEncoder {
    pub(crate) fn load(l: &mut Loader<'_>, config: &ClapConfig) -> Result<Self> {
        let a = &config.audio_config;
        let eps = a.layer_norm_eps;
        let bins = a.num_mel_bins;

        // Eval-mode BatchNorm2d, folded the way PyTorch's CPU kernel does (alpha/beta), so the
        // rounding matches.
        let bn = |name: &str| format!("{PREFIX}.batch_norm.{name}");
        let mean = l.f32s(&bn("running_mean"), &[bins])?;
        let var = l.f32s(&bn("running_var"), &[bins])?;
        let weight = l.f32s(&bn("weight"), &[bins])?;
        let bias = l.f32s(&bn("bias"), &[bins])?;
        l.ignore(&bn("num_batches_tracked"));
        let mut bn_scale = Vec::with_capacity(bins);
        let mut bn_shift = Vec::with_capacity(bins);
        for f in 0..bins {
            let invstd = 1.0 / (var[f] + 1e-5).sqrt();
            let alpha = invstd * weight[f];
            bn_scale.push(alpha);
            bn_shift.push(bias[f] - mean[f] * alpha);
        }

        let (ph, pw) = a.patch_size.pair();
        let embed = a.patch_embeds_hidden_size;
        let conv = l.f32s(&format!("{PREFIX}.patch_embed.proj.weight"), &[embed, 1, ph, pw])?;
        let conv_bias = l.f32s(&format!("{PREFIX}.patch_embed.proj.bias"), &[embed])?;
        // Conv weight [E, 1, ph, pw] → GEMM weight [ph*pw, E] over flattened patches.
        let k = ph * pw;
        let mut w = vec![0f32; k * embed];
        for e in 0..embed {
            for i in 0..k {
                w[i * embed + e] = conv[e * k + i];
            }
        }
        // 16 inputs per output: too small a product to gain from bf16.
        let patch_proj = Linear::F32 {
            w: l.upload(w, [k, embed]),
            b: Some(l.upload(conv_bias, [1, embed])),
        };
        let patch_norm = if a.enable_patch_layer_norm {
            // `nn.LayerNorm` with its default eps, not the config's.
            Some(LayerNorm::load(
                l,
                &format!("{PREFIX}.patch_embed.norm"),
                embed,
                1e-5,
            )?)
        } else {
            None
        };

        let resolutions = config.stage_resolutions();
        let n_stages = a.depths.len();
        let mut stages = Vec::with_capacity(n_stages);
        for (s, (&depth, &heads)) in a.depths.iter().zip(&a.num_attention_heads).enumerate() {
            let dim = embed << s;
            let resolution = resolutions[s];
            // As `set_shift_and_window_size`: a stage no larger than one window is one window,
            // never shifted.
            let small = resolution.0.min(resolution.1) <= a.window_size;
            let window = if small {
                resolution.0.min(resolution.1)
            } else {
                a.window_size
            };
            let mut blocks = Vec::with_capacity(depth);
            for b in 0..depth {
                let p = format!("{PREFIX}.layers.{s}.blocks.{b}");
                let shift = if small || b.is_multiple_of(2) {
                    0
                } else {
                    a.window_size / 2
                };
                let hidden = (a.mlp_ratio * dim as f64) as usize;
                let attn = format!("{p}.attention.self");
                let bias = relative_bias(l, &attn, a.window_size, window, heads, shift, resolution)?;
                blocks.push(SwinBlock {
                    norm_before: LayerNorm::load(l, &format!("{p}.layernorm_before"), dim, eps)?,
                    qkv: Linear::load_fused(
                        l,
                        &[
                            &format!("{attn}.query"),
                            &format!("{attn}.key"),
                            &format!("{attn}.value"),
                        ],
                        dim,
                        dim,
                        a.qkv_bias,
                    )?,
                    proj: Linear::load(l, &format!("{p}.attention.output.dense"), dim, dim, true)?,
                    norm_after: LayerNorm::load(l, &format!("{p}.layernorm_after"), dim, eps)?,
                    fc1: Linear::load(l, &format!("{p}.intermediate.dense"), dim, hidden, true)?,
                    fc2: Linear::load(l, &format!("{p}.output.dense"), hidden, dim, true)?,
                    heads,
                    window,
                    bias,
                    order: WindowOrder::new(resolution, window, shift),
                    precision: l.precision,
                });
            }
            let merge = if s + 1 < n_stages {
                let p = format!("{PREFIX}.layers.{s}.downsample");
                Some((
                    LayerNorm::load(l, &format!("{p}.norm"), 4 * dim, 1e-5)?,
                    Linear::load(l, &format!("{p}.reduction"), 4 * dim, 2 * dim, false)?,
                ))
            } else {
                None
            };
            stages.push(Stage {
                blocks,
                merge,
                resolution,
                dim,
            });
        }
        let norm = LayerNorm::load(l, &format!("{PREFIX}.norm"), config.audio_width(), 1e-5)?;
        Ok(Self {
            bn_scale,
            bn_shift,
            patch_proj,
            patch_norm,
            stages,
            norm,
            mel_bins: bins,
            spec_size: a.spec_size,
            spec_width: config.spec_width(),
            patch: (ph, pw),
        })
    }

    /// `windows`: `B` log-mel windows of `frames × mel_bins` values each (frames ≤ spec width).
    /// Returns the pooled output `[B, hidden]` and, if `trace`, the intermediate activations.
    pub(crate) fn forward(
        &self,
        windows: &[&[f32]],
        device: &burn::tensor::Device,
        trace: bool,
    ) -> Result<(Tensor<2>, Option<AudioTrace>)> {
        let batch = windows.len();
        let (ph, pw) = self.patch;
        let (gh, gw) = (self.spec_size / ph, self.spec_size / pw);
        let mut patches = Vec::with_capacity(batch * self.spec_size * self.spec_size);
        for window in windows {
            patches.extend(self.image_patches(window)?);
        }
        let x = Tensor::<3>::from_data(TensorData::new(patches, [batch, gh * gw, ph * pw]), device);
        let mut x = self.patch_proj.forward(x);
        if let Some(norm) = &self.patch_norm {
            x = norm.forward(x);
        }
        let mut snapshots = Vec::new();
        if trace {
            snapshots.push(x.clone());
        }
        for stage in &self.stages {
            for block in &stage.blocks {
                x = block.forward(x, stage.resolution);
            }
            if let Some((norm, reduction)) = &stage.merge {
                x = patch_merge(x, stage.resolution, stage.dim);
                x = reduction.forward(norm.forward(x));
            }
            if trace {
                snapshots.push(x.clone());
            }
        }
        let pooled = self.norm.forward(x).mean_dim(1);
        let [b, _, c] = pooled.dims();
        let pooled = pooled.reshape([b, c]);
        let trace = if trace {
            let mut it = snapshots.into_iter().map(read);
            let patch_embed = it.next().transpose()?.unwrap_or_default();
            let stages = it.collect::<Result<Vec<_>>>()?;
            Some(AudioTrace {
                patch_embed,
                stages,
                pooled: read(pooled.clone())?,
            })
        } else {
            None
        };
        Ok((pooled, trace))
    }

    /// Batch norm, time stretch and mel→image fold of one window, cut into flattened patches
    /// `[gh*gw, ph*pw]` (row-major over the patch grid, then within the patch).
    fn image_patches(&self, window: &[f32]) -> Result<Vec<f32>> {
        let bins = self.mel_bins;
        if bins == 0 || !window.len().is_multiple_of(bins) || window.is_empty() {
            return Err(ClapError::Input(format!(
                "a mel window has {} values, not a multiple of {bins} mel bins",
                window.len()
            )));
        }
        let frames = window.len() / bins;
        if frames > self.spec_width {
            return Err(ClapError::Input(format!(
                "a mel window has {frames} frames; the model takes at most {}",
                self.spec_width
            )));
        }
        let normed: Vec<f32> = window
            .iter()
            .enumerate()
            .map(|(i, &v)| v * self.bn_scale[i % bins] + self.bn_shift[i % bins])
            .collect();
        let stretched = if frames < self.spec_width {
            bicubic_time(&normed, frames, bins, self.spec_width)
        } else {
            normed
        };
        // Image row = chunk * bins + bin, column = frame within the chunk.
        let side = self.spec_size;
        let chunk = self.spec_width / (side / bins);
        let image_at = |r: usize, c: usize| {
            let (k, f) = (r / bins, r % bins);
            stretched[(k * chunk + c) * bins + f]
        };
        let (ph, pw) = self.patch;
        let (gh, gw) = (side / ph, side / pw);
        let mut out = Vec::with_capacity(side * side);
        for i in 0..gh {
            for j in 0..gw {
                for kh in 0..ph {
                    for kw in 0..pw {
                        out.push(image_at(i * ph + kh, j * pw + kw));
                    }
                }
            }
        }
        Ok(out)
    }
}

impl SwinBlock {
    /// `x`: `[B, H*W, C]` → same shape.
    fn forward(&self, x: Tensor<3>, (h, w): (usize, usize)) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let ws = self.window;
        let n = ws * ws;
        let n_windows = (h / ws) * (w / ws);
        let shortcut = x.clone();
        let normed = self.norm_before.forward(x);
        // The cyclic shift and the cut into windows are one permutation of
        // the tokens, applied as a single row gather (and its inverse after
        // attention) instead of two concatenations and a 6-d permute each way.
        let (into_windows, back) = self.order.rows(b, &normed.device());
        let windows = normed
            .reshape([b * l, c])
            .select(0, into_windows)
            .reshape([b * n_windows, n, c]);
        let attended = self.attention(windows, b, n_windows);
        let y = attended.reshape([b * l, c]).select(0, back).reshape([b, l, c]);
        let x = shortcut + y;
        let mlp = self.fc2.forward(crate::nn::gelu(
            self.fc1.forward(self.norm_after.forward(x.clone())),
        ));
        x + mlp
    }

    /// `x`: `[B*nW, N, C]` windows → attended `[B*nW, N, C]`.
    fn attention(&self, x: Tensor<3>, batch: usize, n_windows: usize) -> Tensor<3> {
        let [bw, n, c] = x.dims();
        let heads = self.heads;
        let d = c / heads;
        let qkv = self
            .qkv
            .forward(x)
            .reshape([bw, n, 3, heads, d])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([bw, heads, n, d]);
        let k = qkv.clone().narrow(0, 1, 1).reshape([bw, heads, n, d]);
        let v = qkv.narrow(0, 2, 1).reshape([bw, heads, n, d]);
        let scores = crate::nn::batched_matmul(self.precision, q, k, true).div_scalar((d as f64).sqrt());
        let scores = scores.reshape([batch, n_windows, heads, n, n]) + self.bias.clone();
        let probs = crate::nn::softmax_last(scores).reshape([bw, heads, n, n]);
        let ctx = crate::nn::batched_matmul(self.precision, probs, v, false)
            .swap_dims(1, 2)
            .reshape([bw, n, c]);
        self.proj.forward(ctx)
    }
}

/// The token permutation of one `H×W` image (rows in row-major order) that a
/// cyclic shift by `-shift` along both axes followed by the cut into `ws×ws`
/// windows amounts to (`torch.roll(x, (-shift, -shift), (1, 2))`, then the
/// window partition), and its inverse, which puts attended windows back.
struct WindowOrder {
    into_windows: Vec<i64>,
    back: Vec<i64>,
}

impl WindowOrder {
    fn new((h, w): (usize, usize), ws: usize, shift: usize) -> Self {
        let mut into_windows = Vec::with_capacity(h * w);
        for window_row in 0..h / ws {
            for window_col in 0..w / ws {
                for row in 0..ws {
                    for col in 0..ws {
                        let source_row = (window_row * ws + row + shift) % h;
                        let source_col = (window_col * ws + col + shift) % w;
                        into_windows.push((source_row * w + source_col) as i64);
                    }
                }
            }
        }
        let mut back = vec![0i64; into_windows.len()];
        for (position, &source) in into_windows.iter().enumerate() {
            back[source as usize] = position as i64;
        }
        Self { into_windows, back }
    }

    /// Both permutations as row indices into `batch` images stacked as
    /// `[batch·H·W, C]`.
    fn rows(&self, batch: usize, device: &burn::tensor::Device) -> (Tensor<1, Int>, Tensor<1, Int>) {
        let tokens = self.into_windows.len();
        let stacked = |order: &[i64]| {
            let rows: Vec<i64> = (0..batch)
                .flat_map(|image| order.iter().map(move |&row| row + (image * tokens) as i64))
                .collect();
            let len = rows.len();
            Tensor::<1, Int>::from_data(TensorData::new(rows, [len]), device)
        };
        (stacked(&self.into_windows), stacked(&self.back))
    }
}

/// `[B, H*W, C]` → `[B, H/2*W/2, 4C]` in the order HF concatenates:
/// (row 0, col 0), (row 1, col 0), (row 0, col 1), (row 1, col 1).
fn patch_merge(x: Tensor<3>, (h, w): (usize, usize), c: usize) -> Tensor<3> {
    let [b, _, _] = x.dims();
    x.reshape([b, h / 2, 2, w / 2, 2, c])
        .permute([0, 1, 3, 4, 2, 5])
        .reshape([b, (h / 2) * (w / 2), 4 * c])
}

/// Relative position bias `[1, nW, heads, N, N]` from the checkpoint's table, plus the -100
/// mask between regions that a cyclic shift made adjacent.
fn relative_bias(
    l: &mut Loader<'_>,
    prefix: &str,
    configured_window: usize,
    window: usize,
    heads: usize,
    shift: usize,
    (h, w): (usize, usize),
) -> Result<Tensor<5>> {
    let cw = configured_window;
    let table_rows = (2 * cw - 1) * (2 * cw - 1);
    let table = l.f32s(
        &format!("{prefix}.relative_position_bias_table"),
        &[table_rows, heads],
    )?;
    let n = window * window;
    // Index into the table for token pair (a, b) of a window: relative (dy, dx) shifted to be
    // non-negative, row-major over (2w-1) x (2w-1).
    let index: Vec<usize> = (0..n * n)
        .map(|ab| {
            let (a, b) = (ab / n, ab % n);
            let (ya, xa) = (a / window, a % window);
            let (yb, xb) = (b / window, b % window);
            (ya + window - 1 - yb) * (2 * window - 1) + (xa + window - 1 - xb)
        })
        .collect();
    let index_name = format!("{prefix}.relative_position_index");
    if l.has(&index_name) {
        // The buffer is derived from the configured window; verify rather than trust it.
        let stored = l.i64s(&index_name, &[cw * cw, cw * cw])?;
        let matches = window == cw
            && stored
                .iter()
                .zip(&index)
                .all(|(&s, &i)| usize::try_from(s) == Ok(i));
        if !matches {
            return Err(ClapError::BadTensor {
                name: index_name,
                message: format!("does not match a {cw}x{cw} window"),
            });
        }
    }
    let n_windows = if shift > 0 { (h / window) * (w / window) } else { 1 };
    let region =
        |pos: usize, size: usize| usize::from(pos >= size - window) + usize::from(pos >= size - shift);
    let mut out = Vec::with_capacity(n_windows * heads * n * n);
    for win in 0..n_windows {
        let (wy, wx) = (win / (w / window), win % (w / window));
        let region_of = |t: usize| {
            let (y, x) = (wy * window + t / window, wx * window + t % window);
            region(y, h) * 3 + region(x, w)
        };
        for head in 0..heads {
            for a in 0..n {
                for b in 0..n {
                    let bias = table[index[a * n + b] * heads + head];
                    let masked = shift > 0 && region_of(a) != region_of(b);
                    out.push(if masked { bias + -100.0 } else { bias });
                }
            }
        }
    }
    Ok(l.upload(out, [1, n_windows, heads, n, n]))
}

/// Bicubic interpolation along time with `align_corners=True`, as PyTorch's CPU
/// `upsample_bicubic2d` (A = -0.75, clamped taps, f32 arithmetic). `x`: `[frames, bins]`.
fn bicubic_time(x: &[f32], frames: usize, bins: usize, out_frames: usize) -> Vec<f32> {
    const A: f32 = -0.75;
    let cc1 = |t: f32| ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let cc2 = |t: f32| ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A;
    let scale = if out_frames > 1 {
        (frames - 1) as f32 / (out_frames - 1) as f32
    } else {
        0.0
    };
    let mut out = Vec::with_capacity(out_frames * bins);
    for o in 0..out_frames {
        let real = scale * o as f32;
        let idx = (real.floor() as usize).min(frames - 1);
        let t = (real - idx as f32).clamp(0.0, 1.0);
        let coeffs = [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)];
        let taps: [usize; 4] = std::array::from_fn(|j| (idx + j).saturating_sub(1).min(frames - 1));
        for f in 0..bins {
            let acc = taps
                .iter()
                .zip(&coeffs)
                .fold(0f32, |acc, (&tap, &c)| acc + x[tap * bins + f] * c);
            out.push(acc);
        }
    }
    out
}

/// Reads a tensor back to the host as f32 values.
pub(crate) fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_data()
        .map_err(|e| ClapError::Backend(format!("{e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| ClapError::Backend(format!("{e:?}")))
}
