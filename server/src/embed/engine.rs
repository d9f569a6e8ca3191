//! A loaded model: its front-end (log-mel windows), the inference thread
//! that batches windows across every file being embedded and text queries
//! across concurrent searches, and the text cache.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

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

/// A text query's vector, or why the encoder could not make it.
type TextResult = Result<Arc<Vec<f32>>, Arc<ClapError>>;

/// Where an audio request's projections go.
type AudioReply = oneshot::Sender<Result<Vec<Vec<f32>>, Arc<ClapError>>>;

/// A text query as the cache knows it: the sha256 of its normalised text.
type TextKey = [u8; 32];

/// A request to the inference thread.
enum Request {
    Audio {
        windows: Vec<Vec<f32>>,
        reply: AudioReply,
    },
    /// Answered through [`TextState::in_flight`], so everyone asking for the same text shares it.
    Text {
        key: TextKey,
        text: String,
        queued: Instant,
    },
}

/// Text vectors known, and text queries being encoded.
struct TextState {
    cache: TextCache,
    /// Queries sent to the inference thread and not answered yet, each with everyone waiting
    /// for it. The inference thread answers them all, so a caller that gives up leaves the
    /// others unharmed.
    in_flight: HashMap<TextKey, Vec<oneshot::Sender<TextResult>>>,
}

/// A loaded model with its front-end and inference thread.
pub struct Engine {
    model_id: String,
    dim: usize,
    /// `exp(logit_scale_a)`: the checkpoint's temperature for audio-to-text logits.
    audio_logit_scale: f32,
    batch_size: usize,
    extractor: LogMelExtractor,
    windowing: Windowing,
    requests: mpsc::Sender<Request>,
    text: Arc<Mutex<TextState>>,
    counters: Arc<TextCounters>,
}

#[derive(Default)]
struct TextCounters {
    /// Queries encoded.
    runs: AtomicU64,
    /// Forward passes they took.
    passes: AtomicU64,
    /// Queries left out because nobody waited for them any more.
    abandoned: AtomicU64,
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
        let model = ClapModel::load_with(dir, device, settings.precision)?;
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
        let (audio_logit_scale, _) = model.logit_scales();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads)
            .thread_name(|i| format!("traum-infer-{i}"))
            .build()
            .map_err(|err| Error::Internal(format!("cannot start the inference pool: {err}")))?;
        let mut cache = TextCache::new(settings.text.cache_entries);
        let cache_file = match &settings.text.cache_dir {
            Some(cache_dir) if settings.text.cache_entries > 0 => {
                CacheFile::open(text_cache_path(cache_dir, &model_id), dim, &mut cache)
            }
            _ => None,
        };
        let text = Arc::new(Mutex::new(TextState {
            cache,
            in_flight: HashMap::new(),
        }));
        let (requests, queue) = mpsc::channel();
        let counters = Arc::new(TextCounters::default());
        let mut inference = Inference {
            model,
            pool,
            audio_batch: settings.batch_size,
            text_batch: settings.text.batch_size.max(1),
            text_wait: settings.text.batch_wait,
            text: text.clone(),
            counters: counters.clone(),
            cache_file,
        };
        std::thread::Builder::new()
            .name("traum-embed".into())
            .spawn(move || {
                let queue = Queue {
                    receiver: Some(queue),
                    text: inference.text.clone(),
                };
                inference.serve(&queue);
            })?;
        Ok(Self {
            model_id,
            dim,
            audio_logit_scale,
            batch_size: settings.batch_size,
            extractor,
            windowing: Windowing::default(),
            requests,
            text,
            counters,
        })
    }

    /// Identifies the embedding space: a digest of the weights, so vectors
    /// of different checkpoints are never mixed.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// `exp(logit_scale_a)`, what audio-to-text cosines are multiplied by
    /// before a softmax (zero-shot classification).
    pub fn audio_logit_scale(&self) -> f32 {
        self.audio_logit_scale
    }

    /// Length of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How many text queries the text encoder encoded (cache misses not already in flight).
    pub fn text_encoder_runs(&self) -> u64 {
        self.counters.runs.load(Ordering::Relaxed)
    }

    /// How many forward passes those queries took (fewer when batched).
    pub fn text_encoder_passes(&self) -> u64 {
        self.counters.passes.load(Ordering::Relaxed)
    }

    /// How many new text queries were left out because every caller had gone.
    pub fn text_queries_abandoned(&self) -> u64 {
        self.counters.abandoned.load(Ordering::Relaxed)
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
    /// a cache instead of the text encoder, and a query already being encoded
    /// for another caller is waited for, not encoded again.
    pub async fn embed_text(&self, text: &str) -> Result<Arc<Vec<f32>>> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(Error::InvalidArgument("the query text is empty".into()));
        }
        let key = text_key(&text);
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.text_state();
            if let Some(hit) = state.cache.get(&key) {
                metrics::TEXT_CACHE_HITS.increment([], 1);
                return Ok(hit);
            }
            match state.in_flight.entry(key) {
                Entry::Occupied(mut waiting) => waiting.get_mut().push(reply),
                Entry::Vacant(slot) => {
                    self.send(Request::Text {
                        key,
                        text,
                        queued: Instant::now(),
                    })?;
                    slot.insert(vec![reply]);
                }
            }
        }
        answer
            .await
            .map_err(|_| Error::Internal("the inference thread stopped".into()))?
            .map_err(Error::Model)
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

    fn text_state(&self) -> MutexGuard<'_, TextState> {
        lock(&self.text)
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
    let path = traum_clap::weights_file(dir).unwrap_or_else(|| dir.join(traum_clap::WEIGHT_FILES[0]));
    let unreadable = |source| ClapError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(unreadable)?;
    Ok(hex::encode(hasher.finalize())[..16].to_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn text_key(normalised: &str) -> TextKey {
    Sha256::digest(normalised.as_bytes()).into()
}

/// The file that keeps the text cache of model `model_id` across restarts.
pub fn text_cache_path(cache_dir: &Path, model_id: &str) -> PathBuf {
    cache_dir.join(format!("text-vectors-{model_id}.bin"))
}

/// The inference thread's state.
struct Inference {
    model: ClapModel,
    pool: rayon::ThreadPool,
    audio_batch: usize,
    text_batch: usize,
    text_wait: Duration,
    text: Arc<Mutex<TextState>>,
    counters: Arc<TextCounters>,
    cache_file: Option<CacheFile>,
}

/// The inference thread's end of the request channel. Text answers go
/// through [`TextState::in_flight`], not the request, so when the thread ends
/// (a panic in the model included) the waiters are let go here: the channel
/// is closed first, so no query can be sent after the map is emptied, and
/// every waiter then gets "the inference thread stopped" instead of waiting
/// for ever.
struct Queue {
    receiver: Option<mpsc::Receiver<Request>>,
    text: Arc<Mutex<TextState>>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        drop(self.receiver.take());
        lock(&self.text).in_flight.clear();
    }
}

/// What one turn of the inference loop runs.
#[derive(Default)]
struct Batch {
    texts: Vec<(TextKey, String)>,
    /// When the longest-waiting text was queued.
    oldest_text: Option<Instant>,
    audio: Vec<(Vec<Vec<f32>>, AudioReply)>,
    windows: usize,
}

impl Batch {
    fn take(&mut self, request: Request) {
        match request {
            Request::Text { key, text, queued } => {
                self.texts.push((key, text));
                self.oldest_text = Some(self.oldest_text.map_or(queued, |t| t.min(queued)));
            }
            Request::Audio { windows, reply } => {
                self.windows += windows.len();
                self.audio.push((windows, reply));
            }
        }
    }
}

impl Inference {
    /// The inference loop: takes every request already waiting, up to
    /// `audio_batch` windows and `text_batch` texts; if texts are among them,
    /// lets more texts join until the oldest has waited `text_wait`; then runs
    /// the texts as one forward pass and the windows as another.
    fn serve(&mut self, queue: &Queue) {
        let Some(queue) = &queue.receiver else {
            return;
        };
        while let Ok(first) = queue.recv() {
            let mut batch = Batch::default();
            batch.take(first);
            let full =
                |batch: &Batch| batch.texts.len() >= self.text_batch || batch.windows >= self.audio_batch;
            while !full(&batch) {
                match queue.try_recv() {
                    Ok(request) => batch.take(request),
                    Err(_) => break,
                }
            }
            // Under load the next queries are milliseconds apart, and one pass over
            // several costs far less than one pass each; a query that already
            // waited behind the previous pass does not wait again.
            if let Some(oldest) = batch.oldest_text {
                let deadline = oldest + self.text_wait;
                while !full(&batch) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match queue.recv_timeout(left) {
                        Ok(request) => batch.take(request),
                        Err(_) => break,
                    }
                }
            }
            // Text first: a person is waiting for a search.
            let texts = self.drop_abandoned(batch.texts);
            if !texts.is_empty() {
                self.encode_texts(texts);
            }
            if !batch.audio.is_empty() {
                self.project_audio(batch.audio);
            }
        }
    }

    /// Leaves out the queries everyone has stopped waiting for (a cancelled
    /// call or a passed deadline drops its receiver): past saturation the
    /// queue would otherwise keep the encoder busy with answers nobody reads
    /// while the live queries behind them time out too.
    fn drop_abandoned(&self, texts: Vec<(TextKey, String)>) -> Vec<(TextKey, String)> {
        let mut state = lock(&self.text);
        let before = texts.len();
        let live: Vec<(TextKey, String)> = texts
            .into_iter()
            .filter(|(key, _)| {
                let abandoned = state
                    .in_flight
                    .get(key)
                    .is_some_and(|waiters| waiters.iter().all(oneshot::Sender::is_closed));
                if abandoned {
                    state.in_flight.remove(key);
                }
                !abandoned
            })
            .collect();
        let dropped = (before - live.len()) as u64;
        if dropped > 0 {
            metrics::TEXT_QUERIES_ABANDONED.increment([], dropped);
            self.counters.abandoned.fetch_add(dropped, Ordering::Relaxed);
        }
        live
    }

    fn encode_texts(&mut self, texts: Vec<(TextKey, String)>) {
        let n = texts.len() as u64;
        metrics::TEXT_ENCODER_RUNS.increment([], n);
        self.counters.runs.fetch_add(n, Ordering::Relaxed);
        self.counters.passes.fetch_add(1, Ordering::Relaxed);
        metrics::TEXT_ENCODER_PASSES.increment([], 1);
        let inputs: Vec<&str> = texts.iter().map(|(_, text)| text.as_str()).collect();
        let (model, pool) = (&self.model, &self.pool);
        let results: Vec<TextResult> = match pool.install(|| model.embed_texts(&inputs)) {
            Ok(vectors) if vectors.len() == inputs.len() => {
                vectors.into_iter().map(|v| Ok(Arc::new(v))).collect()
            }
            // One query the tokenizer refuses fails the whole pass; alone, each
            // gets its own answer.
            _ => inputs
                .iter()
                .map(|text| {
                    pool.install(|| model.embed_text(text))
                        .map(Arc::new)
                        .map_err(Arc::new)
                })
                .collect(),
        };
        // Written before anyone is answered, so an answered query survives a restart.
        if let Some(file) = &mut self.cache_file {
            let fresh: Vec<(&TextKey, &[f32])> = texts
                .iter()
                .zip(&results)
                .filter_map(|((key, _), result)| result.as_ref().ok().map(|v| (key, v.as_slice())))
                .collect();
            if let Err(err) = file.append(&fresh) {
                tracing::warn!(
                    path = %file.path.display(),
                    "cannot write the text cache, keeping it in memory only: {err}"
                );
                self.cache_file = None;
            }
        }
        let mut state = lock(&self.text);
        for ((key, _), result) in texts.iter().zip(results) {
            if let Ok(vector) = &result {
                state.cache.insert(*key, vector.clone());
            }
            for waiter in state.in_flight.remove(key).unwrap_or_default() {
                let _ = waiter.send(result.clone());
            }
        }
        if let Some(file) = &mut self.cache_file
            && file.records > 2 * state.cache.bound
            && let Err(err) = file.rewrite(&state.cache)
        {
            tracing::warn!(
                path = %file.path.display(),
                "cannot compact the text cache, keeping it in memory only: {err}"
            );
            self.cache_file = None;
        }
    }

    fn project_audio(&self, audio: Vec<(Vec<Vec<f32>>, AudioReply)>) {
        let inputs: Vec<&[f32]> = audio
            .iter()
            .flat_map(|(w, _)| w.iter().map(Vec::as_slice))
            .collect();
        let started = Instant::now();
        let result = self.pool.install(|| self.model.project_audio(&inputs));
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

/// Text vectors by query digest, at most `bound` of them, evicted oldest first.
struct TextCache {
    bound: usize,
    vectors: HashMap<TextKey, Arc<Vec<f32>>>,
    order: VecDeque<TextKey>,
}

impl TextCache {
    fn new(bound: usize) -> Self {
        Self {
            bound,
            vectors: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, key: &TextKey) -> Option<Arc<Vec<f32>>> {
        self.vectors.get(key).cloned()
    }

    fn insert(&mut self, key: TextKey, vector: Arc<Vec<f32>>) {
        if self.bound == 0 {
            return;
        }
        if self.vectors.insert(key, vector).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.bound {
                if let Some(old) = self.order.pop_front() {
                    self.vectors.remove(&old);
                }
            }
        }
    }

    /// Oldest first.
    fn entries(&self) -> impl Iterator<Item = (&TextKey, &Arc<Vec<f32>>)> {
        self.order
            .iter()
            .filter_map(|key| self.vectors.get(key).map(|vector| (key, vector)))
    }
}

/// The text cache on disk, so a restarted server answers its users' usual
/// queries without the encoder from its first search.
///
/// Persisting the vectors was chosen over recomputing the most frequent
/// queries of the usage log at start: reading back even a full cache (4096
/// 512-d vectors, 8.5 MB) takes milliseconds, where re-encoding them would
/// keep both cores busy for minutes (~30 ms a query) in competition with the
/// first searches and uploads, and the vectors read back are the very ones
/// the encoder gave. It is read once at start on the model loader's thread,
/// never on the async runtime.
///
/// One file per model id, so a different checkpoint never sees these
/// vectors. Queries are stored as the sha256 of their normalised text, not
/// the text: the file keeps no readable copy of what people searched for
/// beyond the usage log's retention.
///
/// Layout: `MAGIC`, the dimension (u32 LE), then records of the 32-byte key
/// and `dim` f32 LE, oldest first. New vectors are appended; once the file
/// holds twice the bound it is rewritten from the cache. A torn last record
/// (a crash mid-write) is dropped on reading.
struct CacheFile {
    path: PathBuf,
    file: std::fs::File,
    dim: usize,
    /// Records in the file.
    records: usize,
}

const MAGIC: &[u8; 8] = b"TRAUMTC1";
const HEADER: usize = MAGIC.len() + 4;

impl CacheFile {
    /// Loads `path` into `cache` and opens it for appending; `None` (with a
    /// warning) if it cannot be read or written, as the cache then lives in
    /// memory only.
    fn open(path: PathBuf, dim: usize, cache: &mut TextCache) -> Option<Self> {
        let started = Instant::now();
        match Self::load(&path, dim, cache) {
            Ok(file) => {
                tracing::info!(
                    path = %path.display(),
                    entries = cache.order.len(),
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "text cache loaded"
                );
                Some(file)
            }
            Err(err) => {
                tracing::warn!(
                    path = %path.display(),
                    "cannot use the text cache file, keeping the cache in memory only: {err}"
                );
                None
            }
        }
    }

    fn load(path: &Path, dim: usize, cache: &mut TextCache) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        let record = 32 + 4 * dim;
        let header_ok = bytes.len() >= HEADER
            && &bytes[..MAGIC.len()] == MAGIC
            && bytes[MAGIC.len()..HEADER] == (dim as u32).to_le_bytes();
        let mut records = 0;
        if header_ok {
            for chunk in bytes[HEADER..].chunks_exact(record) {
                let mut key = [0u8; 32];
                key.copy_from_slice(&chunk[..32]);
                let vector = chunk[32..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                cache.insert(key, Arc::new(vector));
                records += 1;
            }
        }
        let clean = header_ok && (bytes.len() - HEADER).is_multiple_of(record);
        let file = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
        let mut this = Self {
            path: path.to_owned(),
            file,
            dim,
            records,
        };
        // Another format, a torn tail or more than the bound: start the file
        // over from what was kept.
        if !clean || records > cache.bound {
            this.rewrite(cache)?;
        }
        Ok(this)
    }

    fn append(&mut self, entries: &[(&TextKey, &[f32])]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(entries.len() * (32 + 4 * self.dim));
        for (key, vector) in entries {
            if vector.len() != self.dim {
                continue;
            }
            bytes.extend_from_slice(&key[..]);
            bytes.extend(vector.iter().flat_map(|v| v.to_le_bytes()));
            self.records += 1;
        }
        self.file.write_all(&bytes)
    }

    /// Replaces the file with the cache's entries (written aside, then renamed).
    fn rewrite(&mut self, cache: &TextCache) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER + cache.order.len() * (32 + 4 * self.dim));
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.dim as u32).to_le_bytes());
        let mut records = 0;
        for (key, vector) in cache.entries() {
            if vector.len() == self.dim {
                bytes.extend_from_slice(&key[..]);
                bytes.extend(vector.iter().flat_map(|v| v.to_le_bytes()));
                records += 1;
            }
        }
        let aside = self.path.with_extension("bin.tmp");
        std::fs::write(&aside, &bytes)?;
        std::fs::rename(&aside, &self.path)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        self.records = records;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(seed: f32, dim: usize) -> Arc<Vec<f32>> {
        Arc::new((0..dim).map(|i| seed + i as f32).collect())
    }

    #[test]
    fn the_cache_keeps_the_newest_entries_up_to_its_bound() {
        let mut cache = TextCache::new(2);
        for (i, text) in ["a", "b", "a", "c"].iter().enumerate() {
            cache.insert(text_key(text), vector(i as f32, 3));
        }
        assert!(cache.get(&text_key("a")).is_none(), "oldest evicted");
        assert!(cache.get(&text_key("b")).is_some());
        assert_eq!(cache.get(&text_key("c")), Some(vector(3.0, 3)));
        let mut off = TextCache::new(0);
        off.insert(text_key("a"), vector(0.0, 3));
        assert!(off.get(&text_key("a")).is_none());
    }

    #[test]
    fn the_cache_file_round_trips_drops_a_torn_tail_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = text_cache_path(dir.path(), "abc");
        let mut cache = TextCache::new(3);
        let mut file = CacheFile::load(&path, 4, &mut cache).unwrap();
        for i in 0..8u8 {
            let key = text_key(&i.to_string());
            let v = vector(f32::from(i), 4);
            file.append(&[(&key, v.as_slice())]).unwrap();
            cache.insert(key, v);
            if file.records > 2 * cache.bound {
                file.rewrite(&cache).unwrap();
            }
        }
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(len <= HEADER + 6 * (32 + 16), "compacted: {len} bytes");
        // A crash mid-append leaves part of a record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[1, 2, 3])
            .unwrap();
        let mut again = TextCache::new(3);
        let file = CacheFile::load(&path, 4, &mut again).unwrap();
        let keys: Vec<TextKey> = again.entries().map(|(k, _)| *k).collect();
        let expected: Vec<TextKey> = ["5", "6", "7"].iter().map(|t| text_key(t)).collect();
        assert_eq!(keys, expected);
        assert_eq!(again.get(&text_key("7")), Some(vector(7.0, 4)));
        assert_eq!(file.records, 3);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            HEADER + 3 * (32 + 16)
        );
        // Another dimension (another format) is not read as vectors.
        let mut other = TextCache::new(3);
        CacheFile::load(&path, 5, &mut other).unwrap();
        assert_eq!(other.entries().count(), 0);
    }
}
