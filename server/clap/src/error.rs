//! The one error type of `traum-clap`.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running CLAP.
///
/// Messages name the file, tensor or option involved and say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClapError {
    /// A file of the checkpoint could not be read.
    #[error("cannot read {path}: {source} (is this a Hugging Face CLAP checkpoint directory?)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or lacks a field.
    #[error("invalid CLAP config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint uses an option this implementation does not support.
    #[error("unsupported CLAP checkpoint: {0}")]
    Unsupported(String),
    /// The weights file (`model.safetensors` or `pytorch_model.bin`) could not be parsed.
    #[error("cannot parse weights {path}: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("weight `{name}` is missing from the checkpoint (config and weights do not match)")]
    MissingTensor {
        /// The checkpoint key.
        name: String,
    },
    /// A tensor has a different shape than the config implies.
    #[error("weight `{name}` has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The checkpoint key.
        name: String,
        /// Shape implied by `config.json`.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a data type that cannot be converted to f32.
    #[error("weight `{name}` has unsupported dtype {dtype} (expected F32, F16 or BF16)")]
    DType {
        /// The checkpoint key.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor holds a value that contradicts the config (e.g. a relative position index).
    #[error("weight `{name}` has unexpected contents: {message}")]
    BadTensor {
        /// The checkpoint key.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint holds tensors the model does not use.
    #[error(
        "checkpoint has {} tensor(s) this model does not use, e.g. `{}` (wrong architecture or config?)",
        .names.len(),
        .names.first().map(String::as_str).unwrap_or("")
    )]
    UnusedTensors {
        /// All unused keys, sorted.
        names: Vec<String>,
    },
    /// The tokenizer could not be loaded or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The input has the wrong shape.
    #[error("bad input: {0}")]
    Input(String),
    /// A `wgpu`/`cuda` build found no device it can run on.
    #[error("{0}")]
    Device(String),
    /// Reading a result back from the device failed.
    #[error("tensor backend error: {0}")]
    Backend(String),
    /// `preprocessor_config.json` holds settings the front-end cannot use.
    #[error("invalid CLAP preprocessor configuration: {0}")]
    Preprocessor(String),
    /// There is no audio to compute features from.
    #[error("no audio samples to compute features from")]
    EmptyAudio,
    /// A single clip was longer than one model window.
    #[error("clip of {samples} samples exceeds the {limit}-sample model window")]
    ClipTooLong {
        /// Samples in the clip.
        samples: usize,
        /// Samples in one window.
        limit: usize,
    },
    /// Windowing settings are unusable.
    #[error("invalid windowing: {0}")]
    Windowing(String),
    /// Downloading the checkpoint from the hub failed.
    #[error("cannot fetch `{file}` of model `{repo}`: {message}")]
    Download {
        /// Hub repository id.
        repo: String,
        /// File in the repository.
        file: String,
        /// What went wrong and what to do.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = ClapError> = std::result::Result<T, E>;
