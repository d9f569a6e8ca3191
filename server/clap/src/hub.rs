//! Where the checkpoint comes from: a local directory, or a Hugging Face hub repository
//! downloaded once into a cache directory (hub cache layout, shared with `huggingface_hub`).
//!
//! `HF_ENDPOINT` replaces `https://huggingface.co` (mirrors, tests); `HF_HUB_OFFLINE=1` never
//! touches the network and only uses what the cache already holds.

use std::path::{Path, PathBuf};

use hf_hub::api::Progress;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ClapError, Result};
use crate::model::{MISSING_WEIGHTS, REQUIRED_FILES};
use crate::weights::{WEIGHT_FILES, weights_file};

/// Default checkpoint when none is configured.
pub const DEFAULT_REPO: &str = "laion/larger_clap_music_and_speech";

/// A checkpoint location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A directory holding `config.json`, `model.safetensors` (or `pytorch_model.bin`) and
    /// `tokenizer.json`.
    Dir(PathBuf),
    /// A hub repository, fetched into `cache_dir` on first use.
    Hub {
        /// Repository id, e.g. `laion/larger_clap_music_and_speech`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
        /// Hub cache directory (`$HF_HOME/hub` layout).
        cache_dir: PathBuf,
    },
}

/// How to reach the hub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubOptions {
    /// Base URL replacing `https://huggingface.co` (`HF_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Use only the cache, never the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
}

impl HubOptions {
    /// From `HF_ENDPOINT` and `HF_HUB_OFFLINE` (`1`, `true`, `yes` or `on`).
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
        Self { endpoint, offline }
    }
}

/// Logs download progress at most every 10 %.
struct LogProgress {
    file: String,
    total: usize,
    done: usize,
    next_report: usize,
}

impl Progress for LogProgress {
    fn init(&mut self, size: usize, filename: &str) {
        self.file = filename.to_string();
        self.total = size;
        self.done = 0;
        self.next_report = 0;
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        if self.done >= self.next_report {
            let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
            tracing::info!(file = %self.file, bytes = self.done, total = self.total, "downloading model: {pct}%");
            self.next_report = self.done + self.total / 10 + 1;
        }
    }

    fn finish(&mut self) {
        tracing::info!(file = %self.file, bytes = self.total, "download complete");
    }
}

impl ModelSource {
    /// A directory containing the checkpoint files, downloading them first if needed.
    ///
    /// Offline with nothing cached, the error says which file is missing and how to provide it.
    pub fn resolve(&self, options: &HubOptions) -> Result<PathBuf> {
        match self {
            Self::Dir(dir) => {
                for file in REQUIRED_FILES {
                    let path = dir.join(file);
                    if !path.is_file() {
                        return Err(ClapError::Io {
                            path,
                            source: std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                "missing; the model directory needs config.json, model.safetensors \
                                 (or pytorch_model.bin) and tokenizer.json from a Hugging Face CLAP \
                                 checkpoint",
                            ),
                        });
                    }
                }
                if weights_file(dir).is_none() {
                    return Err(ClapError::Io {
                        path: dir.join(WEIGHT_FILES[0]),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, MISSING_WEIGHTS),
                    });
                }
                Ok(dir.clone())
            }
            Self::Hub {
                repo,
                revision,
                cache_dir,
            } => resolve_hub(repo, revision, cache_dir, options),
        }
    }
}

fn resolve_hub(repo_id: &str, revision: &str, cache_dir: &Path, options: &HubOptions) -> Result<PathBuf> {
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    let cache = Cache::new(cache_dir.to_path_buf()).repo(repo.clone());
    let mut dir: Option<PathBuf> = None;
    let api = if options.offline {
        None
    } else {
        let mut builder = ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf())).with_progress(false);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
        }
        Some(
            builder
                .build()
                .map_err(|e| download_error(repo_id, "(client)", e.to_string()))?,
        )
    };
    // The feature extractor's settings are useful to the front-end but not required. Of the
    // weight files the first the repository has is fetched: pytorch_model.bin only where
    // model.safetensors is missing.
    const FILES: [&str; 5] = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "tokenizer.json",
        "preprocessor_config.json",
    ];
    let mut have_weights = false;
    for file in FILES {
        let is_weights = WEIGHT_FILES.contains(&file);
        if is_weights && have_weights {
            continue;
        }
        let label = if is_weights {
            "model.safetensors or pytorch_model.bin"
        } else {
            file
        };
        // The last weight file is required when no earlier one was found.
        let optional = if is_weights {
            file != WEIGHT_FILES[WEIGHT_FILES.len() - 1]
        } else {
            !REQUIRED_FILES.contains(&file)
        };
        let path = match (cache.get(file), &api) {
            (Some(path), _) => path,
            (None, Some(api)) => {
                tracing::info!(repo = repo_id, revision, file, "fetching model file");
                let progress = LogProgress {
                    file: file.to_string(),
                    total: 0,
                    done: 0,
                    next_report: 0,
                };
                match api.repo(repo.clone()).download_with_progress(file, progress) {
                    Ok(path) => path,
                    Err(_) if optional => continue,
                    Err(e) => return Err(download_error(repo_id, label, e.to_string())),
                }
            }
            (None, None) if optional => continue,
            (None, None) => {
                return Err(download_error(
                    repo_id,
                    label,
                    format!(
                        "offline (HF_HUB_OFFLINE) and not in the cache {}; unset HF_HUB_OFFLINE to \
                         download it, or point the model directory at a local copy of the checkpoint",
                        cache_dir.display()
                    ),
                ));
            }
        };
        have_weights |= is_weights;
        if let Some(parent) = path.parent() {
            match &dir {
                None => dir = Some(parent.to_path_buf()),
                Some(d) if d != parent => {
                    return Err(download_error(
                        repo_id,
                        file,
                        "the cached files belong to different revisions; remove the cache entry".into(),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    dir.ok_or_else(|| download_error(repo_id, "config.json", "no files resolved".into()))
}

fn download_error(repo: &str, file: &str, message: String) -> ClapError {
    ClapError::Download {
        repo: repo.to_string(),
        file: file.to_string(),
        message,
    }
}
