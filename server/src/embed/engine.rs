//! A loaded model: its front-end (log-mel windows), the inference thread
//! that batches windows across every file being embedded, and the text cache.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use traum_audio::{OUTPUT_SAMPLE_RATE, Stage};
use traum_clap::mel::{LogMelExtractor, MelConfig, MelWindow, Windowing};
use traum_clap::{ClapError, ClapModel, Device, default_device, pool_windows};

use super::ModelSettings;
use crate::domain::{FileEmbeddings, WindowEmbedding};
use crate::error::{Error, Result};
use crate::isolation::guarded;
use crate::telemetry::metrics;

/// Distinct text queries whose vectors are kept.
const TEXT_CACHE_ENTRIES: usize = 4096;

/// A request to the inference thread.
enum Request {
    Audio {
        windows: Vec<Vec<f32>>,
        reply: oneshot::Sender<Result<Vec<Vec<f32>>, Arc<ClapError>>>,
    },
    Text {
        text: String,
        reply: oneshot::Sender<Result<Vec<f32>, Arc<ClapError>>>,
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
    pub fn start(dir: &Path, settings: &ModelSettings) -> Result<Self> {
        let device = default_device()?;
        Self::start_on(dir, settings, &device)
    }

    /// [`Engine::start`] on `device`.
    pub fn start_on(dir: &Path, settings: &ModelSettings, device: &Device) -> Result<Self> {
        let model = ClapModel::load(dir, device)?;
        let mel_path = dir.join("preprocessor_config.json");
        let mel_config = if mel_path.is_file() {
            MelConfig::from_file(&mel_path)?
        } else {
            MelConfig::default()
        };
        if mel_config.sampling_rate != OUTPUT_SAMPLE_RATE {
            return Err(ClapError::Unsupported(format!(
                "the checkpoint expects {} Hz audio; Traum's decoder produces {OUTPUT_SAMPLE_RATE} Hz",
                mel_config.sampling_rate
            ))
            .into());
        }
        if mel_config.feature_size != model.mel_bins() {
            return Err(ClapError::Preprocessor(format!(
                "preprocessor_config.json has {} mel bins but the model takes {}",
                mel_config.feature_size,
                model.mel_bins()
            ))
            .into());
        }
        let extractor = LogMelExtractor::new(mel_config)?;
        let model_id = weights_id(dir)?;
        let dim = model.dim();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads)
            .thread_name(|i| format!("traum-infer-{i}"))
            .build()
            .map_err(|err| Error::Internal(format!("cannot start the inference pool: {err}")))?;
        let (requests, queue) = mpsc::channel();
        let batch_size = settings.batch_size;
        let text_encoder_runs = Arc::new(AtomicU64::new(0));
        let runs = text_encoder_runs.clone();
        std::thread::Builder::new()
            .name("traum-embed".into())
            .spawn(move || serve(&model, &pool, &queue, batch_size, &runs))?;
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
                ClapError::EmptyAudio => Error::InvalidArgument("the audio holds no samples to embed".into()),
                other => Error::from(other),
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
            metrics::TEXT_CACHE_HITS.increment([], 1);
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
        let windows = tokio::task::spawn_blocking(move || {
            guarded(Stage::Analysis, "log-mel features", || {
                engine.mel_windows(&samples)
            })
        })
        .await??;
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
pub fn weights_id(dir: &Path) -> Result<String, ClapError> {
    let path = dir.join("model.safetensors");
    let unreadable = |source| ClapError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(unreadable)?;
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
            metrics::TEXT_ENCODER_RUNS.increment([], 1);
            text_encoder_runs.fetch_add(1, Ordering::Relaxed);
            let result = pool.install(|| model.embed_text(&text)).map_err(Arc::new);
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
        metrics::EMBED_BATCH_DURATION.record([], started.elapsed().as_secs_f64());
        metrics::EMBEDDED_WINDOWS.increment([], inputs.len() as u64);
        match result {
            Ok(mut vectors) => {
                for (w, reply) in audio.into_iter().rev() {
                    let part = vectors.split_off(vectors.len().saturating_sub(w.len()));
                    let _ = reply.send(Ok(part));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for (_, reply) in audio {
                    let _ = reply.send(Err(err.clone()));
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
