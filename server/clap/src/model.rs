//! The loaded CLAP model: both encoders, their projection heads and the tokenizer.

use std::path::Path;

use burn::tensor::Device;

use crate::audio::{AudioEncoder, AudioTrace, read};
use crate::config::ClapConfig;
use crate::error::{ClapError, Result};
use crate::nn::{Projection, l2_normalize};
use crate::text::{ClapTokenizer, TextEncoder, TextTrace};
use crate::weights::{Loader, WEIGHT_FILES, WeightBytes, weights_file};

/// Why a checkpoint directory without weights cannot load.
pub(crate) const MISSING_WEIGHTS: &str = "missing, and no pytorch_model.bin either; the model directory needs config.json, \
     model.safetensors (or pytorch_model.bin) and tokenizer.json from a Hugging Face CLAP checkpoint";

/// Files a checkpoint directory must contain (hub layout), besides one of the
/// [`WEIGHT_FILES`](crate::WEIGHT_FILES).
pub const REQUIRED_FILES: [&str; 2] = ["config.json", "tokenizer.json"];

/// What the encoders' linear layers (every large matrix product) compute in.
///
/// Layer norms, softmax, GELU, attention scores and every sum stay f32 in
/// both modes; `Bf16` rounds the weights and each layer's inputs to bf16 and
/// runs the products on the CPU's bf16 instructions where it has them
/// ([`traum_kernels::Bf16Kernel`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub const NAMES: [&str; 2] = ["f32", "bf16"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "int8" => Err("int8 precision is not implemented; use f32 or bf16".into()),
            other => Err(format!("unknown precision {other:?}; use f32 or bf16")),
        }
    }
}

/// CLAP (HTSAT audio encoder + RoBERTa text encoder) loaded from a Hugging Face checkpoint.
///
/// Immutable after loading; calls are deterministic (same input, same output).
pub struct ClapModel {
    config: ClapConfig,
    pub(crate) device: Device,
    audio: AudioEncoder,
    audio_projection: Projection,
    pub(crate) text: TextEncoder,
    text_projection: Projection,
    tokenizer: ClapTokenizer,
    logit_scale_audio: f32,
    logit_scale_text: f32,
    precision: Precision,
}

/// The CPU device of the default build: burn's pure-Rust `flex` backend (burn 0.22 deprecates
/// `ndarray` in its favour, and it measures faster, README → Benchmarks).
#[cfg(not(feature = "ndarray"))]
pub fn cpu_device() -> Device {
    Device::flex()
}

/// The CPU device with the `ndarray` feature: burn's `ndarray` backend, whose matrix products go
/// to OpenBLAS with `openblas-system`. Kept so the default can be measured against it.
#[cfg(feature = "ndarray")]
#[expect(
    deprecated,
    reason = "burn 0.22 deprecates ndarray; this build exists to measure it"
)]
pub fn cpu_device() -> Device {
    Device::ndarray()
}

/// The device this build runs on: CUDA with the `cuda` feature, else the best wgpu adapter with
/// the `wgpu` feature, else the CPU.
#[cfg(feature = "cuda")]
pub fn default_device() -> Result<Device> {
    Ok(Device::cuda(burn::tensor::DeviceIndex::Default))
}

/// The device this build runs on: CUDA with the `cuda` feature, else the best wgpu adapter with
/// the `wgpu` feature, else the CPU.
///
/// The wgpu runtime is brought up here, once per process, through its fallible constructor: left
/// to the first tensor operation it would panic on a device thread and leave the caller with a
/// bare `RecvError` instead of the reason (no adapter, no driver).
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub fn default_device() -> Result<Device> {
    static DEVICE: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| Device::wgpu_options().init().map_err(|err| err.to_string()))
        .clone()
        .map_err(|message| {
            ClapError::Device(format!(
                "this build runs CLAP on wgpu, but no usable GPU adapter was found: {message}. \
                 Install a Vulkan/Metal/DX12/GL driver for the GPU, pick another adapter with \
                 CUBECL_WGPU_DEFAULT_DEVICE, or run a build without the `wgpu` feature (CPU)"
            ))
        })
}

/// The device this build runs on: CUDA with the `cuda` feature, else the best wgpu adapter with
/// the `wgpu` feature, else the CPU.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
pub fn default_device() -> Result<Device> {
    Ok(cpu_device())
}

impl ClapModel {
    /// Loads `config.json`, the weights (`model.safetensors`, or else
    /// `pytorch_model.bin`) and `tokenizer.json` from `dir`.
    ///
    /// Fails if the config asks for something unsupported (e.g. fusion), or if any tensor is
    /// missing, mis-shaped or left unused.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, Precision::F32)
    }

    /// [`Self::load`] with the linear layers in `precision`; `Bf16` runs on the CPU device only.
    pub fn load_with(dir: &Path, device: &Device, precision: Precision) -> Result<Self> {
        if precision == Precision::Bf16 && *device != cpu_device() {
            return Err(ClapError::Unsupported(
                "bf16 precision runs on the CPU backend only; use f32 with the GPU build".into(),
            ));
        }
        let config = ClapConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = ClapTokenizer::from_file(&dir.join("tokenizer.json"))?;
        let weights_path = weights_file(dir).ok_or_else(|| ClapError::Io {
            path: dir.join(WEIGHT_FILES[0]),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, MISSING_WEIGHTS),
        })?;
        let bytes = WeightBytes::read(&weights_path)?;
        let mut l = Loader::new(&weights_path, &bytes, device)?;
        l.precision = precision;
        let dim = config.projection_dim;
        let act = config.projection_hidden_act.clone();
        let audio = AudioEncoder::load(&mut l, &config)?;
        let audio_projection = Projection::load(&mut l, "audio_projection", config.audio_width(), dim, &act)?;
        let text = TextEncoder::load(&mut l, &config.text_config)?;
        let text_projection = Projection::load(
            &mut l,
            "text_projection",
            config.text_config.hidden_size,
            dim,
            &act,
        )?;
        let logit_scale_audio = l.f32s("logit_scale_a", &[])?.first().copied().unwrap_or_default();
        let logit_scale_text = l.f32s("logit_scale_t", &[])?.first().copied().unwrap_or_default();
        l.finish()?;
        tracing::info!(
            dir = %dir.display(),
            depths = ?config.audio_config.depths,
            width = config.audio_config.patch_embeds_hidden_size,
            dim,
            %precision,
            kernel = if precision == Precision::Bf16 { traum_kernels::Bf16Kernel::best().name() } else { "f32" },
            "CLAP model loaded"
        );
        Ok(Self {
            config,
            device: device.clone(),
            audio,
            audio_projection,
            text,
            text_projection,
            tokenizer,
            logit_scale_audio,
            logit_scale_text,
            precision,
        })
    }

    /// What the linear layers compute in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The checkpoint's configuration.
    pub fn config(&self) -> &ClapConfig {
        &self.config
    }

    /// Dimension of the shared embedding space.
    pub fn dim(&self) -> usize {
        self.config.projection_dim
    }

    /// Mel bins each input frame must have.
    pub fn mel_bins(&self) -> usize {
        self.config.audio_config.num_mel_bins
    }

    /// The tokenizer (77-token truncation, no padding).
    pub fn tokenizer(&self) -> &ClapTokenizer {
        &self.tokenizer
    }

    /// `exp(logit_scale_a)`, `exp(logit_scale_t)`: the trained temperature of the logits.
    pub fn logit_scales(&self) -> (f32, f32) {
        (self.logit_scale_audio.exp(), self.logit_scale_text.exp())
    }

    /// Audio projections before L2 normalisation, one per window. Each window is
    /// `frames × mel_bins` log-mel values (row-major, frames ≤ 1024; 1001 for 10 s), exactly
    /// as HF `ClapFeatureExtractor` produces them.
    pub fn project_audio(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let (pooled, _) = self.audio.forward(windows, &self.device, false)?;
        let raw = read(self.audio_projection.forward(pooled))?;
        Ok(raw.chunks_exact(self.dim()).map(<[f32]>::to_vec).collect())
    }

    /// L2-normalised audio embeddings, one per window (see [`Self::project_audio`]).
    pub fn embed_audio(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let raw: Vec<f32> = self.project_audio(windows)?.concat();
        Ok(l2_normalize(raw, self.dim()))
    }

    /// L2-normalised text embedding of one query (truncated at 77 tokens, unpadded).
    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.trace_text_inner(text, false)?.1)
    }

    /// L2-normalised text embeddings of several queries in one forward pass, in order: padded to
    /// the longest, with the padding masked out, so each equals [`Self::embed_text`] of its
    /// query (to within float rounding of the larger matrix products). Empty input gives an
    /// empty result; one query that cannot be tokenised fails the whole call.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = texts
            .iter()
            .map(|text| self.tokenizer.encode(text))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let pooled = self.text.forward_batch(&ids, &self.device)?;
        let raw = read(self.text_projection.forward(pooled))?;
        Ok(l2_normalize(raw, self.dim()))
    }

    /// Audio embeddings plus the intermediate activations (for parity checks).
    pub fn trace_audio(&self, windows: &[&[f32]]) -> Result<(AudioTrace, Vec<Vec<f32>>)> {
        let (pooled, trace) = self.audio.forward(windows, &self.device, true)?;
        let raw = read(self.audio_projection.forward(pooled))?;
        let trace = trace.ok_or_else(|| ClapError::Backend("trace was not recorded".into()))?;
        Ok((trace, l2_normalize(raw, self.dim())))
    }

    /// Text embedding plus the intermediate activations (for parity checks).
    pub fn trace_text(&self, text: &str) -> Result<(TextTrace, Vec<f32>)> {
        let (trace, embedding) = self.trace_text_inner(text, true)?;
        let trace = trace.ok_or_else(|| ClapError::Backend("trace was not recorded".into()))?;
        Ok((trace, embedding))
    }

    fn trace_text_inner(&self, text: &str, trace: bool) -> Result<(Option<TextTrace>, Vec<f32>)> {
        let ids = self.tokenizer.encode(text)?;
        let (pooled, trace) = self.text.forward(&ids, &self.device, trace)?;
        let raw = read(self.text_projection.forward(pooled))?;
        let embedding = l2_normalize(raw, self.dim())
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok((trace, embedding))
    }
}

/// The file vector: mean of the raw (unnormalised, [`ClapModel::project_audio`]) window
/// projections, then L2-normalised. Empty input gives an empty vector.
pub fn pool_windows(raw: &[Vec<f32>]) -> Vec<f32> {
    let Some(dim) = raw.first().map(Vec::len) else {
        return Vec::new();
    };
    let mut mean = vec![0f32; dim];
    for row in raw {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    let n = raw.len() as f32;
    mean.iter_mut().for_each(|m| *m /= n);
    l2_normalize(mean, dim).into_iter().next().unwrap_or_default()
}
