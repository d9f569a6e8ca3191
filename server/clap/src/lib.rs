//! CLAP (Contrastive Language-Audio Pretraining) for Traum, in burn.
//!
//! A port of `transformers`' `ClapModel` for the unfused LAION checkpoints
//! (`laion/clap-htsat-unfused`: HTSAT-tiny; `laion/larger_clap_*`: HTSAT-base), loading the
//! Hugging Face files (`config.json`, `model.safetensors` or `pytorch_model.bin`, `tokenizer.json`)
//! directly.
//!
//! - front-end ([`mel`]): 48 kHz mono audio → 10 s windows of log-mel features, as
//!   `ClapFeatureExtractor` computes them
//! - audio: `B` log-mel windows `[B, frames ≤ 1024, 64]` → HTSAT → projection → `[B, D]`
//! - text: one query (unpadded) or a batch (padded, masked) → RoBERTa (≤ 77 tokens) → projection
//!   → `[D]` each
//!
//! Both outputs are L2-normalised, so their dot product is the cosine CLAP is trained on.
//! See [`audio`] and [`text`] for the tensor shapes of each stage.

pub mod audio;
pub mod config;
pub mod error;
pub mod hub;
pub mod mel;
pub mod model;
mod nn;
pub mod text;
mod weights;

#[cfg(test)]
mod tests;

pub use audio::AudioTrace;
/// The tensor device models are loaded on (see [`default_device`]).
pub use burn::tensor::Device;
pub use config::ClapConfig;
pub use error::{ClapError, Result};
pub use model::{ClapModel, Precision, REQUIRED_FILES, cpu_device, default_device, pool_windows};
pub use text::{ClapTokenizer, MAX_TOKENS, TextTrace};
pub use traum_kernels::Bf16Kernel;
pub use weights::{WEIGHT_FILES, weights_file};
