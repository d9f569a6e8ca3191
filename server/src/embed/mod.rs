//! The CLAP model inside the server.
//!
//! The model is resolved (downloaded if needed) and loaded on a thread of its
//! own at start, so the server answers at once; until it is ready, embedding
//! jobs wait and search reports why. Once loaded, inference runs on one
//! dispatcher thread that batches windows across every file being embedded
//! and hands the tensor work to a dedicated rayon pool: never the async
//! runtime.

mod engine;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use traum_clap::hub::{HubOptions, ModelSource};
use traum_clap::{Device, default_device};

pub use self::engine::{Engine, normalized, text_cache_path, weights_id};
use crate::error::{Error, Result};

/// Where the model comes from and how inference runs.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// `None` runs without a model: nothing is embedded and search is off.
    pub source: Option<ModelSource>,
    pub hub: HubOptions,
    /// Windows per forward pass, gathered across files.
    pub batch_size: usize,
    /// Threads of the inference pool.
    pub threads: usize,
    /// What the linear layers compute in.
    pub precision: traum_clap::Precision,
    /// How text queries are batched and cached.
    pub text: TextSettings,
}

/// Batching and caching of text queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSettings {
    /// Most queries per forward pass, gathered across concurrent searches.
    pub batch_size: usize,
    /// How long a new query waits for others to share its forward pass.
    pub batch_wait: Duration,
    /// Most query vectors kept; 0 keeps none.
    pub cache_entries: usize,
    /// Where the cache is kept across restarts (one file per model id); `None` keeps it in
    /// memory only.
    pub cache_dir: Option<PathBuf>,
}

impl TextSettings {
    /// Batch size and wait measured on 2 cores with the full-size RoBERTa-base text tower
    /// (README → Benchmarks → text queries under load).
    pub const DEFAULT: Self = Self {
        batch_size: 16,
        batch_wait: Duration::from_millis(5),
        cache_entries: 4096,
        cache_dir: None,
    };
}

impl Default for TextSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where the model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    NotConfigured,
    Loading,
    Ready,
    Unavailable,
}

/// The model's status, its display name and a sentence for people: what is
/// happening, or what is missing and how to provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelState {
    pub status: ModelStatus,
    pub name: String,
    pub message: String,
}

/// Handle to the model, whether or not it is loaded yet; cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    shared: Arc<Shared>,
}

struct Shared {
    state: watch::Sender<ModelState>,
    engine: OnceLock<Arc<Engine>>,
}

/// A display name for a model source.
pub fn source_name(source: &ModelSource) -> String {
    match source {
        ModelSource::Dir(dir) => dir.display().to_string(),
        ModelSource::Hub { repo, revision, .. } if revision == "main" => repo.clone(),
        ModelSource::Hub { repo, revision, .. } => format!("{repo}@{revision}"),
    }
}

impl Embedder {
    /// Starts resolving and loading the configured model in the background.
    pub fn start(settings: ModelSettings) -> Self {
        let name = settings.source.as_ref().map(source_name).unwrap_or_default();
        let initial = match &settings.source {
            None => ModelState {
                status: ModelStatus::NotConfigured,
                name,
                message: "no embedding model is configured (--model none): files are stored and analysed \
                          but not embedded, and search is off; set --model or --model-dir to enable it"
                    .to_owned(),
            },
            Some(_) => ModelState {
                status: ModelStatus::Loading,
                name,
                message: "resolving and loading the model".to_owned(),
            },
        };
        let (state, _) = watch::channel(initial);
        let shared = Arc::new(Shared {
            state,
            engine: OnceLock::new(),
        });
        if let Some(source) = settings.source.clone() {
            let loader = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("traum-model-load".into())
                .spawn(move || load(&loader, &source, &settings));
            if let Err(err) = spawned {
                shared.set(
                    ModelStatus::Unavailable,
                    format!("cannot start the model loader: {err}"),
                );
            }
        }
        Self { shared }
    }

    /// The current state.
    pub fn state(&self) -> ModelState {
        self.shared.state.borrow().clone()
    }

    /// Follows state changes.
    pub fn subscribe(&self) -> watch::Receiver<ModelState> {
        self.shared.state.subscribe()
    }

    /// The loaded model, if it is ready.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.shared.engine.get().cloned()
    }

    /// The loaded model, or `Unavailable` saying why there is none.
    pub fn ready(&self) -> Result<Arc<Engine>> {
        self.engine().ok_or_else(|| {
            let state = self.state();
            Error::Unavailable(format!("the embedding model is not ready: {}", state.message))
        })
    }
}

impl Shared {
    fn set(&self, status: ModelStatus, message: String) {
        self.state.send_modify(|state| {
            state.status = status;
            state.message = message;
        });
    }
}

fn load(shared: &Shared, source: &ModelSource, settings: &ModelSettings) {
    load_on(shared, source, settings, default_device);
}

/// [`load`] with the device chosen by `device`, so the failure paths of GPU builds can be
/// exercised on any machine.
fn load_on(
    shared: &Shared,
    source: &ModelSource,
    settings: &ModelSettings,
    device: impl FnOnce() -> traum_clap::Result<Device>,
) {
    let name = source_name(source);
    let started = Instant::now();
    tracing::info!(model = %name, "loading the embedding model");
    let outcome = source
        .resolve(&settings.hub)
        .map_err(|err| unavailable_message(source, &err.to_string()))
        .and_then(|dir| {
            shared.set(ModelStatus::Loading, format!("loading {}", dir.display()));
            start_guarded(&dir, settings, device).map_err(|failure| match failure {
                StartFailure::Checkpoint(err) => unavailable_message(source, &err.to_string()),
                StartFailure::Device(err) => format!("{err}. {WHILE_UNAVAILABLE}"),
            })
        });
    match outcome {
        Ok(engine) => {
            let message = format!(
                "loaded in {:.1} s: {}-d embeddings, model id {}",
                started.elapsed().as_secs_f64(),
                engine.dim(),
                engine.model_id()
            );
            tracing::info!(model = %name, "{message}");
            // Only this thread sets the engine, once.
            let _ = shared.engine.set(Arc::new(engine));
            shared.set(ModelStatus::Ready, message);
        }
        Err(message) => {
            tracing::error!(model = %name, "{message}");
            shared.set(ModelStatus::Unavailable, message);
        }
    }
}

/// Why a resolved checkpoint did not start: the fix differs (the checkpoint files, or the
/// machine's GPU and driver).
enum StartFailure {
    Checkpoint(Error),
    Device(String),
}

/// burn's GPU runtimes panic on their own threads when a device fails after it was acquired
/// (or, for `cuda`, when there is none), and the caller then panics on a closed channel; caught
/// here, so the model is reported unavailable instead of staying `loading` for ever.
fn start_guarded(
    dir: &Path,
    settings: &ModelSettings,
    device: impl FnOnce() -> traum_clap::Result<Device>,
) -> Result<Engine, StartFailure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let device = device().map_err(|err| StartFailure::Device(err.to_string()))?;
        Engine::start_on(dir, settings, &device).map_err(StartFailure::Checkpoint)
    }))
    .unwrap_or_else(|panic| {
        Err(StartFailure::Device(format!(
            "loading the model panicked (on a `wgpu`/`cuda` build, usually the GPU runtime; its own \
             panic message is in the log above): {}",
            panic_text(&*panic)
        )))
    })
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}

const WHILE_UNAVAILABLE: &str =
    "Meanwhile uploads are stored and analysed, and their embedding waits for the model";

fn unavailable_message(source: &ModelSource, error: &str) -> String {
    let how = match source {
        ModelSource::Dir(_) => {
            "point --model-dir (TRAUM_MODEL_DIR) at a directory holding a Hugging Face CLAP \
                                checkpoint (config.json, model.safetensors or pytorch_model.bin, tokenizer.json)"
                .to_owned()
        }
        ModelSource::Hub { repo, .. } => format!(
            "let the server reach the Hugging Face hub (or a mirror via HF_ENDPOINT) to download {repo}, or \
             download it elsewhere and point --model-dir (TRAUM_MODEL_DIR) at the directory"
        ),
    };
    format!("{error}. To fix: {how}, then restart. {WHILE_UNAVAILABLE}")
}

#[cfg(test)]
mod tests {
    use traum_audio::OUTPUT_SAMPLE_RATE;

    use super::*;

    fn engine(batch_size: usize) -> Arc<Engine> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/clap-model/htsat-tiny");
        let settings = ModelSettings {
            source: None,
            hub: HubOptions::default(),
            batch_size,
            threads: 1,
            precision: Default::default(),
            text: TextSettings::default(),
        };
        Arc::new(Engine::start(&dir, &settings).unwrap())
    }

    fn loader_state(device: impl FnOnce() -> traum_clap::Result<Device>) -> (ModelState, bool) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/clap-model/htsat-tiny");
        let source = ModelSource::Dir(dir);
        let settings = ModelSettings {
            source: Some(source.clone()),
            hub: HubOptions::default(),
            batch_size: 1,
            threads: 1,
            precision: Default::default(),
            text: TextSettings::default(),
        };
        let shared = Shared {
            state: watch::channel(ModelState {
                status: ModelStatus::Loading,
                name: source_name(&source),
                message: String::new(),
            })
            .0,
            engine: OnceLock::new(),
        };
        load_on(&shared, &source, &settings, device);
        let state = shared.state.borrow().clone();
        (state, shared.engine.get().is_some())
    }

    #[test]
    fn the_loader_starts_the_model_on_the_device_it_is_given() {
        let (state, loaded) = loader_state(|| Ok(traum_clap::cpu_device()));
        assert_eq!(state.status, ModelStatus::Ready, "{}", state.message);
        assert!(loaded);
    }

    #[test]
    fn a_gpu_build_without_a_device_reports_the_device_error() {
        let (state, loaded) = loader_state(|| {
            Err(traum_clap::ClapError::Device(
                "this build runs CLAP on wgpu, but no usable GPU adapter was found".into(),
            ))
        });
        assert_eq!(state.status, ModelStatus::Unavailable);
        assert!(!loaded);
        assert!(
            state.message.starts_with(
                "this build runs CLAP on wgpu, but no usable GPU adapter was found. Meanwhile uploads are \
                 stored and analysed"
            ),
            "{}",
            state.message
        );
        assert!(
            !state.message.contains("--model-dir"),
            "another checkpoint does not fix a missing GPU: {}",
            state.message
        );
    }

    #[test]
    fn a_panicking_gpu_runtime_leaves_the_model_unavailable_not_loading() {
        let (state, loaded) = loader_state(|| -> traum_clap::Result<Device> {
            panic!("Unable to acquire wgpu device: AdapterUnavailable")
        });
        assert_eq!(state.status, ModelStatus::Unavailable);
        assert!(!loaded);
        assert!(
            state.message.contains("loading the model panicked")
                && state
                    .message
                    .contains("Unable to acquire wgpu device: AdapterUnavailable"),
            "{}",
            state.message
        );
    }

    fn tone(seconds: f64, freq: f64) -> Arc<Vec<f32>> {
        let rate = f64::from(OUTPUT_SAMPLE_RATE);
        Arc::new(
            (0..(seconds * rate) as usize)
                .map(|i| (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as f32)
                .collect(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_text_runs_the_encoder_once() {
        let engine = engine(4);
        let first = engine.embed_text("warm analog pad").await.unwrap();
        let again = engine.embed_text("  warm   analog pad ").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(engine.text_encoder_runs(), 1);
        engine.embed_text("cold digital lead").await.unwrap();
        assert_eq!(engine.text_encoder_runs(), 2);
        let norm: f32 = first.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(matches!(
            engine.embed_text("   ").await,
            Err(Error::InvalidArgument(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_nobody_waits_for_any_more_is_not_encoded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/clap-model/htsat-tiny");
        // A long gathering window, so the abandoned query is still queued when the pass starts.
        let settings = ModelSettings {
            source: None,
            hub: HubOptions::default(),
            batch_size: 1,
            threads: 1,
            precision: Default::default(),
            text: TextSettings {
                batch_size: 16,
                batch_wait: Duration::from_millis(400),
                cache_entries: 64,
                cache_dir: None,
            },
        };
        let engine = Arc::new(Engine::start(&dir, &settings).unwrap());
        let kept = tokio::spawn({
            let engine = engine.clone();
            async move { engine.embed_text("warm analog pad").await }
        });
        // Polled once, so its query is queued, then dropped as a call past its deadline is.
        let gone =
            tokio::time::timeout(Duration::from_millis(1), engine.embed_text("cold digital lead")).await;
        assert!(gone.is_err(), "answered before the batch wait was over");
        assert!(kept.await.unwrap().is_ok());
        assert_eq!(engine.text_encoder_runs(), 1);
        assert_eq!(engine.text_queries_abandoned(), 1);
        // Asked again, the abandoned text is encoded like any new one.
        engine.embed_text("cold digital lead").await.unwrap();
        assert_eq!(engine.text_encoder_runs(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batching_across_files_changes_nothing() {
        let (a, b) = (tone(25.0, 220.0), tone(12.0, 1320.0));
        let alone = engine(1);
        let expected_a = alone.embed_audio(a.clone(), |_| {}).await.unwrap();
        let expected_b = alone.embed_audio(b.clone(), |_| {}).await.unwrap();
        // Batches of 4 windows, shared by two files embedded at once.
        let batched = engine(4);
        let (got_a, got_b) = tokio::join!(batched.embed_audio(a, |_| {}), batched.embed_audio(b, |_| {}));
        for (got, expected) in [(got_a.unwrap(), expected_a), (got_b.unwrap(), expected_b)] {
            assert_eq!(got.windows.len(), expected.windows.len());
            assert_eq!(got.model_id, expected.model_id);
            for (g, e) in got.windows.iter().zip(&expected.windows) {
                assert_eq!((g.start_seconds, g.end_seconds), (e.start_seconds, e.end_seconds));
                let max_diff = g
                    .vector
                    .iter()
                    .zip(&e.vector)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                assert!(max_diff < 1e-5, "window {} differs by {max_diff}", g.index);
            }
        }
        // 25 s: windows at 0, 10 and 20 s (the last 5 s long).
        let again = engine(1).embed_audio(tone(25.0, 220.0), |_| {}).await.unwrap();
        let ranges: Vec<(f64, f64)> = again
            .windows
            .iter()
            .map(|w| (w.start_seconds, w.end_seconds))
            .collect();
        assert_eq!(ranges, vec![(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]);
        assert_eq!(again.file_end, 25.0);
    }
}
