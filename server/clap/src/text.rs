//! RoBERTa text encoder (`transformers` `ClapTextModel` with its pooler).
//!
//! Shapes for `B` queries padded to `T` tokens (T ≤ 77), RoBERTa-base: H = 768, 12 heads, 12
//! layers.
//!
//! ```text
//! ids          [B, T]       tokenizer output with <s> … </s>, right-padded with <pad>
//! embeddings   [B, T, H]    word + token type 0 + position (host gather), layer norm
//! mask         [B, 1, 1, T] 0 for tokens, f32::MIN for padding (only when padded)
//! layer × L    [B, T, H]    post-norm self-attention, post-norm GELU MLP
//! pooled       [B, H]       tanh(dense(hidden[:, 0]))
//! ```

use std::path::Path;

use burn::tensor::activation;
use burn::tensor::{Device, Tensor, TensorData};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::config::TextConfig;
use crate::error::{ClapError, Result};
use crate::nn::{LayerNorm, Linear};
use crate::weights::Loader;

const PREFIX: &str = "text_model";

/// CLAP truncates text at 77 tokens (LAION-CLAP's context length), special tokens included.
pub const MAX_TOKENS: usize = 77;

struct TextLayer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    out_norm: LayerNorm,
    /// What the attention products compute in.
    precision: crate::Precision,
}

/// Intermediate activations of one text forward pass, for parity checks.
#[derive(Debug, Clone)]
pub struct TextTrace {
    /// Token ids fed to the model.
    pub ids: Vec<u32>,
    /// Embedding output (index 0) and each layer's output, each `[T, H]` row-major.
    pub hidden: Vec<Vec<f32>>,
    /// Pooler output `[H]`.
    pub pooled: Vec<f32>,
}

pub(crate) struct TextEncoder {
    /// Gathered on the host: only T rows are needed per query.
    word: Vec<f32>,
    position: Vec<f32>,
    token_type0: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<TextLayer>,
    pooler: Linear,
    hidden: usize,
    heads: usize,
    vocab: usize,
    max_positions: usize,
    pad: usize,
}

impl TextEncoder {
    pub(crate) fn load(l: &mut Loader<'_>, t: &TextConfig) -> Result<Self> {
        let h = t.hidden_size;
        let eps = t.layer_norm_eps;
        let e = format!("{PREFIX}.embeddings");
        let word = l.f32s(&format!("{e}.word_embeddings.weight"), &[t.vocab_size, h])?;
        let position = l.f32s(
            &format!("{e}.position_embeddings.weight"),
            &[t.max_position_embeddings, h],
        )?;
        let types = l.f32s(
            &format!("{e}.token_type_embeddings.weight"),
            &[t.type_vocab_size, h],
        )?;
        // Buffers: arange / zeros, recomputed here.
        l.ignore(&format!("{e}.position_ids"));
        l.ignore(&format!("{e}.token_type_ids"));
        let emb_norm = LayerNorm::load(l, &format!("{e}.LayerNorm"), h, eps)?;
        let mut layers = Vec::with_capacity(t.num_hidden_layers);
        for i in 0..t.num_hidden_layers {
            let p = format!("{PREFIX}.encoder.layer.{i}");
            let a = format!("{p}.attention.self");
            layers.push(TextLayer {
                qkv: Linear::load_fused(
                    l,
                    &[&format!("{a}.query"), &format!("{a}.key"), &format!("{a}.value")],
                    h,
                    h,
                    true,
                )?,
                attn_out: Linear::load(l, &format!("{p}.attention.output.dense"), h, h, true)?,
                attn_norm: LayerNorm::load(l, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                fc1: Linear::load(
                    l,
                    &format!("{p}.intermediate.dense"),
                    h,
                    t.intermediate_size,
                    true,
                )?,
                fc2: Linear::load(l, &format!("{p}.output.dense"), t.intermediate_size, h, true)?,
                out_norm: LayerNorm::load(l, &format!("{p}.output.LayerNorm"), h, eps)?,
                precision: l.precision,
            });
        }
        let pooler = Linear::load(l, &format!("{PREFIX}.pooler.dense"), h, h, true)?;
        Ok(Self {
            word,
            position,
            token_type0: types[..h].to_vec(),
            emb_norm,
            layers,
            pooler,
            hidden: h,
            heads: t.num_attention_heads,
            vocab: t.vocab_size,
            max_positions: t.max_position_embeddings,
            pad: t.pad_token_id.unwrap_or(1),
        })
    }

    /// One unpadded query → pooled output `[1, H]` (and the trace if asked).
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        device: &Device,
        trace: bool,
    ) -> Result<(Tensor<2>, Option<TextTrace>)> {
        self.forward_padded(&[ids], device, trace)
    }

    /// Several queries in one pass → pooled outputs `[B, H]`, in order.
    ///
    /// Shorter queries are padded on the right to the longest with the pad token, and the padded
    /// keys are masked out of every attention softmax, so each row equals the unpadded
    /// [`Self::forward`] of its query (up to the order of float sums in the larger GEMMs).
    pub(crate) fn forward_batch(&self, batch: &[&[u32]], device: &Device) -> Result<Tensor<2>> {
        Ok(self.forward_padded(batch, device, false)?.0)
    }

    fn forward_padded(
        &self,
        batch: &[&[u32]],
        device: &Device,
        trace: bool,
    ) -> Result<(Tensor<2>, Option<TextTrace>)> {
        let h = self.hidden;
        let b = batch.len();
        let t = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        if batch.is_empty() {
            return Err(ClapError::Input("no token sequences to encode".into()));
        }
        if batch.iter().any(|ids| ids.is_empty()) {
            return Err(ClapError::Input("empty token sequence".into()));
        }
        if t >= self.max_positions.saturating_sub(self.pad) {
            return Err(ClapError::Input(format!(
                "{t} tokens exceed the model's {} positions",
                self.max_positions
            )));
        }
        let mut emb = Vec::with_capacity(b * t * h);
        for ids in batch {
            // RoBERTa positions (HF `create_position_ids_from_input_ids`): non-padding tokens
            // count up from the padding index + 1; padding tokens sit at the padding index.
            let mut count = 0;
            let padding = std::iter::repeat_n(self.pad as u32, t - ids.len());
            for id in ids.iter().copied().chain(padding) {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(ClapError::Tokenizer(format!(
                        "token id {id} is outside the model's vocabulary of {} (tokenizer and model do not match)",
                        self.vocab
                    )));
                }
                let pos = if id == self.pad {
                    self.pad
                } else {
                    count += 1;
                    self.pad + count
                };
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                // Same association as HF: (word + token type) + position.
                emb.extend((0..h).map(|k| (word[k] + self.token_type0[k]) + position[k]));
            }
        }
        // Additive key mask `[B, 1, 1, T]`: 0 for a query's own tokens, the most negative f32 for
        // its padding (as HF's `finfo.min`), so after the softmax's max subtraction a padded key
        // weighs exactly 0. Left out when nothing is padded, so single queries take the
        // unmasked path bit for bit.
        let mask = batch.iter().any(|ids| ids.len() < t).then(|| {
            let values: Vec<f32> = batch
                .iter()
                .flat_map(|ids| (0..t).map(move |j| if j < ids.len() { 0.0 } else { f32::MIN }))
                .collect();
            Tensor::<4>::from_data(TensorData::new(values, [b, 1, 1, t]), device)
        });
        let mut x = self
            .emb_norm
            .forward(Tensor::<3>::from_data(TensorData::new(emb, [b, t, h]), device));
        let mut hidden = Vec::new();
        if trace {
            hidden.push(crate::audio::read(x.clone())?);
        }
        for layer in &self.layers {
            x = layer.forward(x, self.heads, mask.as_ref());
            if trace {
                hidden.push(crate::audio::read(x.clone())?);
            }
        }
        let first = x.narrow(1, 0, 1).reshape([b, h]);
        let pooled = activation::tanh(self.pooler.forward(first));
        let trace = match (trace, batch) {
            (true, [ids]) => Some(TextTrace {
                ids: ids.to_vec(),
                hidden,
                pooled: crate::audio::read(pooled.clone())?,
            }),
            _ => None,
        };
        Ok((pooled, trace))
    }
}

impl TextLayer {
    /// `mask`: `[B, 1, 1, T]`, added to the attention scores of every head and query.
    fn forward(&self, x: Tensor<3>, heads: usize, mask: Option<&Tensor<4>>) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let d = h / heads;
        let qkv = self
            .qkv
            .forward(x.clone())
            .reshape([b, t, 3, heads, d])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([b, heads, t, d]);
        let k = qkv.clone().narrow(0, 1, 1).reshape([b, heads, t, d]);
        let v = qkv.narrow(0, 2, 1).reshape([b, heads, t, d]);
        // HF's eager attention multiplies by d^-0.5 (the audio side divides by sqrt(d)).
        let mut scores =
            crate::nn::batched_matmul(self.precision, q, k, true).mul_scalar((d as f64).powf(-0.5));
        if let Some(mask) = mask {
            scores = scores + mask.clone().expand([b, heads, t, t]);
        }
        let probs = crate::nn::softmax_last(scores);
        let ctx = crate::nn::batched_matmul(self.precision, probs, v, false)
            .swap_dims(1, 2)
            .reshape([b, t, h]);
        let attn = self.attn_norm.forward(self.attn_out.forward(ctx) + x);
        let mlp = self.fc2.forward(crate::nn::gelu(self.fc1.forward(attn.clone())));
        self.out_norm.forward(mlp + attn)
    }
}

/// The checkpoint's `tokenizer.json`, set to truncate at [`MAX_TOKENS`] and never pad.
pub struct ClapTokenizer {
    inner: Tokenizer,
}

impl ClapTokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| ClapError::Tokenizer(format!("cannot load {}: {e}", path.display())))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| ClapError::Tokenizer(e.to_string()))?;
        inner.with_padding(None::<PaddingParams>);
        Ok(Self { inner })
    }

    /// Token ids of `text` with the special tokens, at most [`MAX_TOKENS`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| ClapError::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }
}
