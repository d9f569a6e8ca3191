//! `config.json` of a Hugging Face CLAP checkpoint (`ClapConfig` with `audio_config` and
//! `text_config`). Defaults are those of `transformers`, so sparse configs behave the same.

use std::path::Path;

use serde::Deserialize;

use crate::error::{ClapError, Result};

/// An int or a pair of ints, as `patch_size` / `patch_stride` may be written either way.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrPair {
    /// Same value for height and width.
    One(usize),
    /// `[height, width]`.
    Pair([usize; 2]),
}

impl IntOrPair {
    /// `(height, width)`.
    pub fn pair(self) -> (usize, usize) {
        match self {
            Self::One(v) => (v, v),
            Self::Pair([h, w]) => (h, w),
        }
    }
}

/// The top-level `ClapConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClapConfig {
    /// HTSAT settings.
    #[serde(default)]
    pub audio_config: AudioConfig,
    /// RoBERTa settings.
    #[serde(default)]
    pub text_config: TextConfig,
    /// Size of the shared embedding space; overrides the sub-configs as in `transformers`.
    #[serde(default = "d_projection_dim")]
    pub projection_dim: usize,
    /// Activation between the two projection layers; overrides the sub-configs.
    #[serde(default = "d_relu")]
    pub projection_hidden_act: String,
}

/// `ClapAudioConfig` (HTSAT, a Swin transformer over the mel image).
#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    /// Swin window side (tokens).
    #[serde(default = "d_8")]
    pub window_size: usize,
    /// Mel bins of the input.
    #[serde(default = "d_64")]
    pub num_mel_bins: usize,
    /// Side of the square image the mel windows are folded into.
    #[serde(default = "d_256")]
    pub spec_size: usize,
    /// MLP activation.
    #[serde(default = "d_gelu")]
    pub hidden_act: String,
    /// Patch-embedding kernel.
    #[serde(default = "d_patch")]
    pub patch_size: IntOrPair,
    /// Patch-embedding stride.
    #[serde(default = "d_patch")]
    pub patch_stride: IntOrPair,
    /// Width of the pooled output (`patch_embeds_hidden_size * 2^(stages-1)`).
    #[serde(default = "d_768")]
    pub hidden_size: usize,
    /// Blocks per stage.
    #[serde(default = "d_depths")]
    pub depths: Vec<usize>,
    /// Attention heads per stage.
    #[serde(default = "d_heads")]
    pub num_attention_heads: Vec<usize>,
    /// Fusion of several crops (the `*-fused` checkpoints).
    #[serde(default)]
    pub enable_fusion: bool,
    /// Fusion variant, only meaningful with `enable_fusion`.
    #[serde(default)]
    pub fusion_type: Option<String>,
    /// Input channels of the patch embedding.
    #[serde(default = "d_1")]
    pub patch_embed_input_channels: usize,
    /// Whether patch embeddings are flattened to tokens.
    #[serde(default = "d_true")]
    pub flatten_patch_embeds: bool,
    /// Width of the first stage.
    #[serde(default = "d_96")]
    pub patch_embeds_hidden_size: usize,
    /// Layer norm after the patch embedding.
    #[serde(default = "d_true")]
    pub enable_patch_layer_norm: bool,
    /// Bias on query/key/value.
    #[serde(default = "d_true")]
    pub qkv_bias: bool,
    /// MLP hidden width / block width.
    #[serde(default = "d_4f")]
    pub mlp_ratio: f64,
    /// Layer norm epsilon.
    #[serde(default = "d_1e5")]
    pub layer_norm_eps: f64,
}

/// `ClapTextConfig` (RoBERTa).
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    /// Tokenizer vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Model width.
    #[serde(default = "d_768")]
    pub hidden_size: usize,
    /// Transformer layers.
    #[serde(default = "d_12")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_12")]
    pub num_attention_heads: usize,
    /// MLP width.
    #[serde(default = "d_3072")]
    pub intermediate_size: usize,
    /// MLP activation.
    #[serde(default = "d_gelu")]
    pub hidden_act: String,
    /// Rows of the position table (RoBERTa: 514 = 512 + padding offset).
    #[serde(default = "d_514")]
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[serde(default = "d_1")]
    pub type_vocab_size: usize,
    /// Layer norm epsilon.
    #[serde(default = "d_1e12")]
    pub layer_norm_eps: f64,
    /// Padding token; RoBERTa positions start after it.
    #[serde(default = "d_pad")]
    pub pad_token_id: Option<usize>,
}

fn d_projection_dim() -> usize {
    512
}
fn d_relu() -> String {
    "relu".into()
}
fn d_gelu() -> String {
    "gelu".into()
}
fn d_1() -> usize {
    1
}
fn d_8() -> usize {
    8
}
fn d_12() -> usize {
    12
}
fn d_64() -> usize {
    64
}
fn d_96() -> usize {
    96
}
fn d_256() -> usize {
    256
}
fn d_514() -> usize {
    514
}
fn d_768() -> usize {
    768
}
fn d_3072() -> usize {
    3072
}
fn d_vocab() -> usize {
    50265
}
fn d_pad() -> Option<usize> {
    Some(1)
}
fn d_patch() -> IntOrPair {
    IntOrPair::One(4)
}
fn d_depths() -> Vec<usize> {
    vec![2, 2, 6, 2]
}
fn d_heads() -> Vec<usize> {
    vec![4, 8, 16, 32]
}
fn d_true() -> bool {
    true
}
fn d_4f() -> f64 {
    4.0
}
fn d_1e5() -> f64 {
    1e-5
}
fn d_1e12() -> f64 {
    1e-12
}

impl Default for AudioConfig {
    fn default() -> Self {
        // An empty object takes every serde default above.
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

impl Default for TextConfig {
    fn default() -> Self {
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

impl ClapConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ClapError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| ClapError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects configurations this implementation would compute wrongly.
    pub fn validate(&self) -> Result<()> {
        let a = &self.audio_config;
        let t = &self.text_config;
        if a.enable_fusion {
            return Err(ClapError::Unsupported(format!(
                "`audio_config.enable_fusion` is true (fusion_type {:?}); fused CLAP checkpoints \
                 (e.g. laion/clap-htsat-fused) are not supported, use an unfused one such as \
                 laion/clap-htsat-unfused or laion/larger_clap_music_and_speech",
                a.fusion_type
            )));
        }
        let unsupported = |what: String| Err(ClapError::Unsupported(what));
        if a.patch_size.pair() != a.patch_stride.pair() {
            return unsupported(format!(
                "`patch_size` {:?} differs from `patch_stride` {:?} (overlapping patches)",
                a.patch_size, a.patch_stride
            ));
        }
        if a.patch_embed_input_channels != 1 || !a.flatten_patch_embeds {
            return unsupported(
                "`patch_embed_input_channels` must be 1 and `flatten_patch_embeds` true".into(),
            );
        }
        if a.depths.is_empty() || a.depths.len() != a.num_attention_heads.len() {
            return unsupported(format!(
                "`depths` {:?} and `num_attention_heads` {:?} must be non-empty and of equal length",
                a.depths, a.num_attention_heads
            ));
        }
        if a.num_mel_bins == 0 || !a.spec_size.is_multiple_of(a.num_mel_bins) {
            return unsupported(format!(
                "`spec_size` {} must be a multiple of `num_mel_bins` {}",
                a.spec_size, a.num_mel_bins
            ));
        }
        let (ph, pw) = a.patch_size.pair();
        if ph == 0 || pw == 0 || !a.spec_size.is_multiple_of(ph) || !a.spec_size.is_multiple_of(pw) {
            return unsupported(format!(
                "`spec_size` {} is not a multiple of the patch size",
                a.spec_size
            ));
        }
        for (i, &heads) in a.num_attention_heads.iter().enumerate() {
            let dim = a.patch_embeds_hidden_size << i;
            if heads == 0 || !dim.is_multiple_of(heads) {
                return unsupported(format!(
                    "stage {i}: width {dim} is not a multiple of {heads} heads"
                ));
            }
        }
        for (i, (h, w)) in self.stage_resolutions().into_iter().enumerate() {
            let window = a.window_size.min(h).min(w);
            if window == 0 || !h.is_multiple_of(window) || !w.is_multiple_of(window) {
                return unsupported(format!(
                    "stage {i}: resolution {h}x{w} is not a multiple of the window {window} (padding)"
                ));
            }
            if window != a.window_size && h.min(w) != window {
                return unsupported(format!("stage {i}: window {window} smaller than configured"));
            }
        }
        if a.hidden_size != self.audio_width() {
            return unsupported(format!(
                "`audio_config.hidden_size` {} differs from the last stage width {}",
                a.hidden_size,
                self.audio_width()
            ));
        }
        for act in [&a.hidden_act, &t.hidden_act] {
            if act != "gelu" {
                return unsupported(format!("activation `{act}` (only `gelu` is implemented)"));
            }
        }
        if !matches!(self.projection_hidden_act.as_str(), "relu" | "gelu") {
            return unsupported(format!(
                "`projection_hidden_act` `{}`",
                self.projection_hidden_act
            ));
        }
        if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return unsupported(format!(
                "text width {} is not a multiple of {} heads",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if t.type_vocab_size == 0 {
            return unsupported("`text_config.type_vocab_size` is 0".into());
        }
        Ok(())
    }

    /// Token grid `(height, width)` entering each Swin stage.
    pub fn stage_resolutions(&self) -> Vec<(usize, usize)> {
        let a = &self.audio_config;
        let (ph, pw) = a.patch_stride.pair();
        let (h, w) = (a.spec_size / ph.max(1), a.spec_size / pw.max(1));
        (0..a.depths.len()).map(|i| (h >> i, w >> i)).collect()
    }

    /// Width of the last Swin stage (the pooled audio output).
    pub fn audio_width(&self) -> usize {
        self.audio_config.patch_embeds_hidden_size << (self.audio_config.depths.len().saturating_sub(1))
    }

    /// Mel frames per window the model consumes natively (`spec_size * freq_ratio`).
    pub fn spec_width(&self) -> usize {
        let a = &self.audio_config;
        a.spec_size * (a.spec_size / a.num_mel_bins)
    }
}
