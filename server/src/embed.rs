//! The CLAP model inside the server.
//!
//! The model is resolved (downloaded if needed) and loaded on a thread of its
//! own at start, so the server answers at once; until it is ready, embedding
//! jobs wait and search reports why. Once loaded, inference runs on one
//! dispatcher thread that batches windows across every file being embedded
//! and hands the tensor work to a dedicated rayon pool: never the async
//! runtime.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};
use traum_clap::hub::{HubOptions, ModelSource};
use traum_clap::{ClapModel, Device, default_device, pool_windows};

use crate::audio::decode::OUTPUT_SAMPLE_RATE;
use crate::audio::mel::{LogMelExtractor, MelConfig, MelError, MelWindow, Windowing};
use crate::error::{Error, Result};
use crate::model::{FileEmbeddings, WindowEmbedding};

/// Distinct text queries whose vectors are kept.
const TEXT_CACHE_ENTRIES: usize = 4096;

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
                StartFailure::Checkpoint(err) => unavailable_message(source, &err),
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
    Checkpoint(String),
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
                                checkpoint (config.json, model.safetensors, tokenizer.json)"
                .to_owned()
        }
        ModelSource::Hub { repo, .. } => format!(
            "let the server reach the Hugging Face hub (or a mirror via HF_ENDPOINT) to download {repo}, or \
             download it elsewhere and point --model-dir (TRAUM_MODEL_DIR) at the directory"
        ),
    };
    format!("{error}. To fix: {how}, then restart. {WHILE_UNAVAILABLE}")
}

/// A request to the inference thread.
enum Request {
    Audio {
        windows: Vec<Vec<f32>>,
        reply: oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
    },
    Text {
        text: String,
        reply: oneshot::Sender<Result<Vec<f32>, String>>,
    },
}

/// A loaded model with its front-end and inference thread.
pub struct Engine {
    model_id: String,
    dim: usize,
    batch_size: usize,
    extractor: LogMelExtractor,
    windowing: Windowing,
    requests: mpsc::Sender<Request>,
    text_cache: Mutex<TextCache>,
    text_encoder_runs: Arc<AtomicU64>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .finish()
    }
}

impl Engine {
    /// Loads the checkpoint in `dir` on the build's device and starts the inference thread.
    pub fn start(dir: &Path, settings: &ModelSettings) -> Result<Self, String> {
        let device = default_device().map_err(|err| err.to_string())?;
        Self::start_on(dir, settings, &device)
    }

    /// [`Engine::start`] on `device`.
    pub fn start_on(dir: &Path, settings: &ModelSettings, device: &Device) -> Result<Self, String> {
        let model = ClapModel::load(dir, device).map_err(|err| err.to_string())?;
        let mel_path = dir.join("preprocessor_config.json");
        let mel_config = if mel_path.is_file() {
            MelConfig::from_file(&mel_path).map_err(|err| err.to_string())?
        } else {
            MelConfig::default()
        };
        if mel_config.sampling_rate != OUTPUT_SAMPLE_RATE {
            return Err(format!(
                "the checkpoint expects {} Hz audio; Traum's decoder produces {OUTPUT_SAMPLE_RATE} Hz",
                mel_config.sampling_rate
            ));
        }
        if mel_config.feature_size != model.mel_bins() {
            return Err(format!(
                "preprocessor_config.json has {} mel bins but the model takes {}",
                mel_config.feature_size,
                model.mel_bins()
            ));
        }
        let extractor = LogMelExtractor::new(mel_config).map_err(|err| err.to_string())?;
        let model_id = weights_id(dir)?;
        let dim = model.dim();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads)
            .thread_name(|i| format!("traum-infer-{i}"))
            .build()
            .map_err(|err| format!("cannot start the inference pool: {err}"))?;
        let (requests, queue) = mpsc::channel();
        let batch_size = settings.batch_size;
        let text_encoder_runs = Arc::new(AtomicU64::new(0));
        let runs = text_encoder_runs.clone();
        std::thread::Builder::new()
            .name("traum-embed".into())
            .spawn(move || serve(&model, &pool, &queue, batch_size, &runs))
            .map_err(|err| format!("cannot start the inference thread: {err}"))?;
        Ok(Self {
            model_id,
            dim,
            batch_size,
            extractor,
            windowing: Windowing::default(),
            requests,
            text_cache: Mutex::new(TextCache::default()),
            text_encoder_runs,
        })
    }

    /// Identifies the embedding space: a digest of the weights, so vectors
    /// of different checkpoints are never mixed.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How many times the text encoder ran (cache misses).
    pub fn text_encoder_runs(&self) -> u64 {
        self.text_encoder_runs.load(Ordering::Relaxed)
    }

    /// The model's log-mel windows of 48 kHz mono audio. CPU-heavy: call it
    /// off the async runtime.
    pub fn mel_windows(&self, samples: &[f32]) -> Result<Vec<MelWindow>> {
        self.extractor
            .windows(samples, &self.windowing)
            .map_err(|err| match err {
                MelError::EmptyAudio => Error::InvalidArgument("the audio holds no samples to embed".into()),
                other => Error::Internal(other.to_string()),
            })
    }

    /// Raw (unnormalised) projections of log-mel windows, batched with
    /// whatever else is being embedded.
    pub async fn project_windows(&self, windows: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Audio { windows, reply })?;
        answer
            .await
            .map_err(|_| Error::Internal("the inference thread stopped".into()))?
            .map_err(Error::Model)
    }

    /// The L2-normalised vector of a text query; repeated queries come from
    /// a cache instead of the text encoder.
    pub async fn embed_text(&self, text: &str) -> Result<Arc<Vec<f32>>> {
        let key = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if key.is_empty() {
            return Err(Error::InvalidArgument("the query text is empty".into()));
        }
        if let Some(hit) = self.cache().get(&key) {
            metrics::counter!("traum_text_cache_hits_total").increment(1);
            return Ok(hit);
        }
        let (reply, answer) = oneshot::channel();
        self.send(Request::Text {
            text: key.clone(),
            reply,
        })?;
        let vector = Arc::new(
            answer
                .await
                .map_err(|_| Error::Internal("the inference thread stopped".into()))?
                .map_err(Error::Model)?,
        );
        self.cache().insert(key, vector.clone());
        Ok(vector)
    }

    /// Embeds decoded 48 kHz mono audio: log-mel windows on the blocking
    /// pool, then batches of windows through the model. `progress` gets the
    /// fraction of windows done.
    pub async fn embed_audio(
        self: &Arc<Self>,
        samples: Arc<Vec<f32>>,
        mut progress: impl FnMut(f64) + Send,
    ) -> Result<FileEmbeddings> {
        let engine = self.clone();
        let windows = tokio::task::spawn_blocking(move || engine.mel_windows(&samples)).await??;
        let total = windows.len();
        let mut raw = Vec::with_capacity(total);
        for chunk in windows.chunks(self.batch_size) {
            let mels = chunk.iter().map(|w| w.mel.clone()).collect();
            raw.extend(self.project_windows(mels).await?);
            progress(raw.len() as f64 / total.max(1) as f64);
        }
        if raw.len() != total {
            return Err(Error::Internal(format!(
                "the model returned {} vectors for {total} windows",
                raw.len()
            )));
        }
        let file = pool_windows(&raw);
        let file_end = windows.iter().map(|w| w.end_seconds).fold(0.0, f64::max);
        let windows = windows
            .iter()
            .zip(raw)
            .map(|(window, vector)| {
                Ok(WindowEmbedding {
                    index: u32::try_from(window.index)
                        .map_err(|_| Error::Internal("too many windows".into()))?,
                    start_seconds: window.start_seconds,
                    end_seconds: window.end_seconds,
                    vector: normalized(vector),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FileEmbeddings {
            model_id: self.model_id.clone(),
            file,
            file_start: 0.0,
            file_end,
            windows,
        })
    }

    fn send(&self, request: Request) -> Result<()> {
        self.requests
            .send(request)
            .map_err(|_| Error::Internal("the inference thread stopped".into()))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TextCache> {
        self.text_cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Scales a vector to unit length (zero stays zero).
pub fn normalized(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    vector
}

/// The model id of the checkpoint in `dir`: the first 16 hex digits of the
/// weights' sha256.
pub fn weights_id(dir: &Path) -> Result<String, String> {
    let path = dir.join("model.safetensors");
    let mut file =
        std::fs::File::open(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Ok(hex::encode(hasher.finalize())[..16].to_owned())
}

/// The inference loop: takes every request already waiting, up to
/// `batch_size` windows, and runs them as one forward pass.
fn serve(
    model: &ClapModel,
    pool: &rayon::ThreadPool,
    queue: &mpsc::Receiver<Request>,
    batch_size: usize,
    text_encoder_runs: &AtomicU64,
) {
    while let Ok(first) = queue.recv() {
        let mut texts = Vec::new();
        let mut audio = Vec::new();
        let mut windows = 0;
        let mut take = |request: Request, windows: &mut usize| match request {
            Request::Text { text, reply } => texts.push((text, reply)),
            Request::Audio { windows: w, reply } => {
                *windows += w.len();
                audio.push((w, reply));
            }
        };
        take(first, &mut windows);
        while windows < batch_size {
            match queue.try_recv() {
                Ok(request) => take(request, &mut windows),
                Err(_) => break,
            }
        }
        // Text first: a person is waiting for a search.
        for (text, reply) in texts {
            metrics::counter!("traum_text_encoder_runs_total").increment(1);
            text_encoder_runs.fetch_add(1, Ordering::Relaxed);
            let result = pool
                .install(|| model.embed_text(&text))
                .map_err(|err| err.to_string());
            let _ = reply.send(result);
        }
        if audio.is_empty() {
            continue;
        }
        let inputs: Vec<&[f32]> = audio
            .iter()
            .flat_map(|(w, _)| w.iter().map(Vec::as_slice))
            .collect();
        let started = Instant::now();
        let result = pool.install(|| model.project_audio(&inputs));
        metrics::histogram!("traum_embed_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("traum_embedded_windows_total").increment(inputs.len() as u64);
        match result {
            Ok(mut vectors) => {
                for (w, reply) in audio.into_iter().rev() {
                    let part = vectors.split_off(vectors.len().saturating_sub(w.len()));
                    let _ = reply.send(Ok(part));
                }
            }
            Err(err) => {
                let message = err.to_string();
                for (_, reply) in audio {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Text vectors by normalised query, evicted oldest first.
#[derive(Default)]
struct TextCache {
    vectors: HashMap<String, Arc<Vec<f32>>>,
    order: VecDeque<String>,
}

impl TextCache {
    fn get(&self, key: &str) -> Option<Arc<Vec<f32>>> {
        self.vectors.get(key).cloned()
    }

    fn insert(&mut self, key: String, vector: Arc<Vec<f32>>) {
        if self.vectors.insert(key.clone(), vector).is_none() {
            self.order.push_back(key);
            while self.order.len() > TEXT_CACHE_ENTRIES {
                if let Some(old) = self.order.pop_front() {
                    self.vectors.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(batch_size: usize) -> Arc<Engine> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/clap-model/htsat-tiny");
        let settings = ModelSettings {
            source: None,
            hub: HubOptions::default(),
            batch_size,
            threads: 1,
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
