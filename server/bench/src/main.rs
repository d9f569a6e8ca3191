//! `traum-bench`: side-by-side benchmarks against the peers named in the
//! issues, on the same machine in one run. Not a test: it reports numbers.
//!
//! `traum-bench audio [FILE...]`: decode + resample to 48 kHz mono +
//! descriptors + CLAP log-mel, single thread, against ffmpeg decoding to
//! 48 kHz mono (`-threads 1`) and librosa (load + beat_track +
//! melspectrogram, single-threaded BLAS/numba). Without files it renders a
//! 3-minute 44.1 kHz stereo MP3 and FLAC with ffmpeg first.
//!
//! `traum-bench ingest`: files per hour through `traum upload` (see `ingest.rs`).
//!
//! `traum-bench text` and `traum-bench text-load`: the text tower one query at
//! a time vs batched, and the engine under a steady load of new queries (see
//! `text.rs`).

mod ingest;
mod precision;
mod propagation;
mod text;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use traum_audio::{DecodeOptions, OUTPUT_SAMPLE_RATE, decode_to_vec};
use traum_clap::mel::{LogMelExtractor, MelConfig, Windowing};

#[derive(Parser)]
#[command(name = "traum-bench", about = "Traum benchmarks against their peers")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Audio front-end: ours vs ffmpeg (decode) and librosa (load + beats + mel).
    Audio {
        /// Files to measure; default: a generated 3-minute 44.1 kHz stereo MP3 and FLAC.
        files: Vec<PathBuf>,
        /// Repetitions per measurement (the best is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Python interpreter with librosa installed.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// CLAP inference: burn on the build's device (CPU, or the GPU of a
    /// `wgpu`/`cuda` build) vs `transformers` in PyTorch on the same kind of
    /// device, same checkpoint, inputs and thread count; plus a 3-minute track
    /// end to end (log-mel + batched windows) through the server's engine.
    Clap {
        /// Checkpoint directory (random weights are fine for timing; see
        /// tests/fixtures/clap-model/bench_fullsize.py for full-size ones).
        model_dir: PathBuf,
        /// Threads for both sides.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Windows per batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Repetitions per measurement, within a round.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Rounds, alternating burn and PyTorch (A B A B …) so that drift of
        /// the machine hits both; min, median and max are over rounds.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Python interpreter with torch and transformers installed.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Precisions of burn's side, each measured in every round
        /// (`f32,bf16` compares both with the same PyTorch f32 runs).
        #[arg(long, value_delimiter = ',', default_value = "f32")]
        precision: Vec<traum_clap::Precision>,
    },
    /// Fidelity of a reduced precision: cosine of its audio and text vectors
    /// to f32's, and the overlap of top-10 results against f32 on a
    /// synthetic library.
    Precision {
        /// Checkpoint directory.
        model_dir: PathBuf,
        /// The precision compared with f32.
        #[arg(long, default_value = "bf16")]
        precision: traum_clap::Precision,
        /// Files in the synthetic library (one 10 s window each).
        #[arg(long, default_value_t = 1000)]
        files: usize,
        /// Text queries, and as many query-by-example files.
        #[arg(long, default_value_t = 100)]
        queries: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Vector search: Traum's index (hora HNSW + exact segment) vs exact
    /// SIMD search and hnswlib, same vectors, same M and ef_construction,
    /// single-threaded queries; QPS, p50/p99 and recall@10 per ef.
    Ann {
        /// Indexed vectors.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        #[arg(long, default_value_t = 512)]
        dim: usize,
        #[arg(long, default_value_t = 500)]
        queries: usize,
        /// `random` (uniform on the sphere) or `clustered`.
        #[arg(long, default_value = "clustered")]
        kind: String,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// Candidate list sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "64,128,256,512,1024")]
        ef: Vec<usize>,
        /// Python interpreter with hnswlib and numpy installed.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Keep Traum's built index here and load it on later runs with the
        /// same inputs instead of building again (for query-side work; the
        /// build time is then the load time).
        #[arg(long)]
        reuse_dir: Option<PathBuf>,
        /// Recall@10 Traum's graph is calibrated to (0: no calibration, the
        /// graph is walked at each ef as measured).
        #[arg(long, default_value_t = 0.95)]
        target_recall: f64,
    },
    /// Text tower throughput of new texts, one at a time vs batched, on a
    /// full-size random-weight RoBERTa-base (written once into --out).
    Text {
        /// Where the generated checkpoint is kept between runs.
        #[arg(long, default_value = "target/bench-models")]
        out: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,32")]
        batches: Vec<usize>,
        /// New texts per repetition.
        #[arg(long, default_value_t = 64)]
        texts: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Steady offered load of new texts per second (plus cached repeats)
    /// against the server's engine; p50/p99 latency, throughput, errors.
    TextLoad {
        #[arg(long, default_value = "target/bench-models")]
        out: PathBuf,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// New texts per second to offer, each for --seconds.
        #[arg(long, value_delimiter = ',', default_value = "10,20,40,60,80")]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Cached repeats sent per new text.
        #[arg(long, default_value_t = 1.0)]
        repeats: f64,
        /// Batching settings to compare, `batch_size:wait_ms` each (1:0 is
        /// unbatched); PyTorch gets the same policy in its own batching thread.
        #[arg(long, value_delimiter = ',', default_value = "1:0,16:5")]
        settings: Vec<String>,
        /// How long a caller waits for its answer before giving up (it is
        /// then counted as a timeout, and the engine skips it if not started).
        #[arg(long, default_value_t = 2000)]
        deadline_ms: u64,
        /// Python interpreter with torch and transformers for the PyTorch
        /// side (`none`: Traum only).
        #[arg(long, default_value = "python3")]
        python: String,
        /// What Traum's text tower computes in (PyTorch stays f32).
        #[arg(long, default_value = "f32")]
        precision: traum_clap::Precision,
    },
    /// Ingest end to end: files per hour through `traum upload` (default
    /// pipeline, release `traum-server` started per worker count), CPU
    /// utilisation, and where the time goes (the server's stage metrics).
    Ingest {
        /// Checkpoint directory the server embeds with.
        model_dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        files: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        workers: Vec<usize>,
        /// Where the generated corpus is kept between runs.
        #[arg(long, default_value = "target/bench-ingest")]
        out: PathBuf,
        /// Directory with the release `traum-server` and `traum` binaries.
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// Replica counts, each replica with each worker count; more than
        /// one needs --database-url.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        replicas: Vec<usize>,
        /// A PostgreSQL server for the runs (each gets a fresh database on
        /// it) [default: SQLite, one replica].
        #[arg(long, env = "TRAUM_BENCH_DATABASE_URL")]
        database_url: Option<String>,
        /// `--precision` of the servers.
        #[arg(long, default_value = "f32")]
        precision: traum_clap::Precision,
    },
    /// End-to-end `SearchByText` through gRPC on a library of random vectors:
    /// every query a new text, so the text encoder runs each time.
    /// Replicas following one PostgreSQL database: time from a file being
    /// ready on one replica to search finding it on the others, and from a
    /// delete to its disappearing there.
    Propagation {
        /// Checkpoint directory (tiny random weights are fine: the figure is
        /// about following the database, not inference).
        model_dir: PathBuf,
        /// A PostgreSQL database the replicas share.
        #[arg(long, env = "TRAUM_BENCH_DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, default_value_t = 100)]
        files: usize,
    },
    Search {
        /// Checkpoint directory (its text encoder runs for every query).
        model_dir: PathBuf,
        /// Window vectors in the library.
        #[arg(long, default_value_t = 100_000)]
        windows: usize,
        /// Windows per file (each file also gets its pooled vector).
        #[arg(long, default_value_t = 10)]
        windows_per_file: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Audio { files, runs, python } => audio(files, runs.max(1), &python),
        Bench::Clap {
            model_dir,
            threads,
            batch,
            reps,
            rounds,
            python,
            precision,
        } => clap_bench(
            &model_dir,
            ClapRuns {
                threads: threads.max(1),
                batch: batch.max(1),
                reps: reps.max(1),
                rounds: rounds.max(1),
            },
            &python,
            &precision,
        ),
        Bench::Precision {
            model_dir,
            precision,
            files,
            queries,
            threads,
        } => precision::run(&precision::Setup {
            model_dir,
            precision,
            files: files.max(11),
            queries: queries.max(1),
            threads: threads.max(1),
        }),
        Bench::Ann {
            n,
            dim,
            queries,
            kind,
            m,
            ef_construction,
            ef,
            python,
            reuse_dir,
            target_recall,
        } => ann_bench_entry(AnnSetup {
            n,
            dim,
            queries,
            kind,
            m,
            ef_construction,
            efs: ef,
            python,
            reuse_dir,
            target_recall,
        }),
        Bench::Text {
            out,
            threads,
            batches,
            texts,
            reps,
        } => text::batch_bench(&out, threads.max(1), &batches, texts.max(1), reps.max(1)),
        Bench::TextLoad {
            out,
            threads,
            rates,
            seconds,
            repeats,
            settings,
            deadline_ms,
            python,
            precision,
        } => {
            let settings = settings
                .iter()
                .map(|s| {
                    let (batch, wait) = s
                        .split_once(':')
                        .with_context(|| format!("--settings takes batch_size:wait_ms, not {s}"))?;
                    Ok((batch.parse()?, wait.parse()?))
                })
                .collect::<anyhow::Result<Vec<(usize, u64)>>>()?;
            if rates.iter().any(|r| r.is_nan() || *r <= 0.0)
                || seconds.is_nan()
                || seconds <= 0.0
                || repeats < 0.0
                || deadline_ms == 0
            {
                bail!("--rates, --seconds and --deadline-ms must be positive and --repeats at least 0");
            }
            text::load_bench(&text::LoadSetup {
                out,
                threads: threads.max(1),
                rates,
                seconds,
                repeats,
                settings,
                deadline: Duration::from_millis(deadline_ms),
                python: (python != "none").then_some(python),
                precision,
            })
        }
        Bench::Ingest {
            model_dir,
            files,
            workers,
            out,
            bin_dir,
            replicas,
            database_url,
            precision,
        } => ingest::ingest_bench(&ingest::IngestSetup {
            model_dir,
            files: files.max(1),
            workers: workers.into_iter().map(|w| w.max(1)).collect(),
            out,
            bin_dir,
            replicas,
            database_url,
            precision,
        }),
        Bench::Propagation {
            model_dir,
            database_url,
            replicas,
            files,
        } => propagation::run(&model_dir, &database_url, replicas, files.max(1)),
        Bench::Search {
            model_dir,
            windows,
            windows_per_file,
            queries,
        } => search_bench(&model_dir, windows, windows_per_file.max(1), queries.max(1)),
    }
}

struct Ours {
    decode: Duration,
    descriptors: Duration,
    mel: Duration,
    bpm: Option<f64>,
    windows: usize,
}

fn audio(files: Vec<PathBuf>, runs: usize, python: &str) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let files = if files.is_empty() {
        render_inputs(scratch.path())?
    } else {
        files
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("librosa_peer.py");
    println!(
        "audio front-end, single thread, best of {runs}; machine: {} logical CPUs",
        num_cpus()
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11} {:>12}",
        "file",
        "decode s",
        "descr s",
        "mel s",
        "total s",
        "ffmpeg s",
        "librosa s",
        "decode/ffm",
        "librosa/ours"
    );
    for file in &files {
        let ours = (0..runs)
            .map(|_| run_ours(file))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let best = ours
            .into_iter()
            .min_by_key(|o| o.decode + o.descriptors + o.mel)
            .context("no runs")?;
        let ffmpeg = (0..runs)
            .map(|_| run_ffmpeg(file))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ffmpeg = ffmpeg.into_iter().min().context("no runs")?;
        let librosa = run_librosa(python, &script, file, runs);
        let total = best.decode + best.descriptors + best.mel;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let (librosa_text, ratio_text) = match &librosa {
            Ok((seconds, _)) => (
                format!("{seconds:.3}"),
                format!("{:.1}x", seconds / total.as_secs_f64()),
            ),
            Err(err) => {
                eprintln!("librosa peer unavailable for {name}: {err:#}");
                ("n/a".to_owned(), "n/a".to_owned())
            }
        };
        println!(
            "{:<16} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10} {:>11.2} {:>12}",
            name,
            best.decode.as_secs_f64(),
            best.descriptors.as_secs_f64(),
            best.mel.as_secs_f64(),
            total.as_secs_f64(),
            ffmpeg.as_secs_f64(),
            librosa_text,
            best.decode.as_secs_f64() / ffmpeg.as_secs_f64(),
            ratio_text,
        );
        let librosa_bpm = librosa
            .as_ref()
            .map(|(_, bpm)| format!("{bpm:.1}"))
            .unwrap_or_else(|_| "n/a".into());
        println!(
            "    {} mel windows; bpm ours {} / librosa {}",
            best.windows,
            best.bpm.map_or_else(|| "-".to_owned(), |b| format!("{b:.1}")),
            librosa_bpm
        );
    }
    Ok(())
}

fn run_ours(file: &Path) -> anyhow::Result<Ours> {
    let started = Instant::now();
    let (samples, report) = decode_to_vec(file, &DecodeOptions::default(), |_| {})?;
    let decode = started.elapsed();
    let started = Instant::now();
    let analysis = traum_audio::analyse(&samples, OUTPUT_SAMPLE_RATE, Some(report.levels), |_| {});
    let descriptors = started.elapsed();
    let started = Instant::now();
    let extractor = LogMelExtractor::new(MelConfig::default())?;
    let windows = extractor.windows(&samples, &Windowing::default())?;
    let mel = started.elapsed();
    Ok(Ours {
        decode,
        descriptors,
        mel,
        bpm: analysis.tempo.map(|t| t.bpm),
        windows: windows.len(),
    })
}

/// ffmpeg, quiet but for errors.
fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    command
}

fn run_ffmpeg(file: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = ffmpeg()
        .args(["-threads", "1", "-i"])
        .arg(file)
        .args(["-ac", "1", "-ar", "48000", "-f", "f32le", "-y", "/dev/null"])
        .status()
        .context("ffmpeg is needed for the peer measurement (apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg failed on {}", file.display());
    }
    Ok(started.elapsed())
}

/// Runs a Python peer script and reads the JSON it prints; a failure
/// reports the last line the peer wrote to stderr.
fn run_peer(name: &str, command: &mut Command) -> anyhow::Result<serde_json::Value> {
    let output = command.output().context("cannot run python")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{name} peer failed: {}",
            stderr.lines().last().unwrap_or("no message")
        );
    }
    serde_json::from_slice(&output.stdout).context("peer output is not JSON")
}

fn run_librosa(python: &str, script: &Path, file: &Path, runs: usize) -> anyhow::Result<(f64, f64)> {
    let report = run_peer(
        "librosa",
        Command::new(python)
            .arg(script)
            .arg(file)
            .arg("--runs")
            .arg(runs.to_string()),
    )?;
    let total = report["total_s"].as_f64().context("total_s missing")?;
    let bpm = report["bpm"].as_f64().unwrap_or(0.0);
    Ok((total, bpm))
}

/// Renders 3 minutes of a music-like signal (chords, a bass line and drums
/// at 124 BPM) as 44.1 kHz stereo MP3 and FLAC.
fn render_inputs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let expr = "0.12*sin(2*PI*220*t)+0.1*sin(2*PI*277.18*t)+0.1*sin(2*PI*329.63*t)\
                +0.2*sin(2*PI*55*t)*(1+sin(2*PI*124/60*t))/2\
                +0.5*sin(2*PI*60*t)*exp(-25*mod(t,60/124))\
                +0.1*(random(0)-0.5)*exp(-60*mod(t+30/124,60/124))";
    let mut files = Vec::new();
    for (name, codec) in [("bench.mp3", "libmp3lame"), ("bench.flac", "flac")] {
        let path = dir.join(name);
        let status = ffmpeg()
            .args(["-f", "lavfi", "-i"])
            .arg(format!("aevalsrc='{expr}|{expr}':s=44100:d=180"))
            .args(["-c:a", codec, "-y"])
            .arg(&path)
            .status()
            .context("ffmpeg is needed to render the benchmark inputs")?;
        if !status.success() {
            bail!("ffmpeg could not render {name}");
        }
        files.push(path);
    }
    Ok(files)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

const CLAP_QUERY: &str = "upbeat electronic music with heavy bass";

/// How `traum-bench clap` repeats its measurements.
struct ClapRuns {
    threads: usize,
    batch: usize,
    reps: usize,
    rounds: usize,
}

/// One round of burn's side: audio windows/s at batch 1 and `batch`, and
/// ms per text query.
fn clap_round(model: &traum_clap::ClapModel, window: &[f32], runs: &ClapRuns) -> anyhow::Result<Vec<f64>> {
    let mut figures = Vec::new();
    for b in [1, runs.batch] {
        let windows: Vec<&[f32]> = (0..b).map(|_| window).collect();
        let started = Instant::now();
        for _ in 0..runs.reps {
            model.embed_audio(&windows)?;
        }
        figures.push((runs.reps * b) as f64 / started.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    for _ in 0..20 {
        model.embed_text(CLAP_QUERY)?;
    }
    figures.push(started.elapsed().as_secs_f64() * 1000.0 / 20.0);
    Ok(figures)
}

fn clap_bench(
    dir: &Path,
    runs: ClapRuns,
    python: &str,
    precisions: &[traum_clap::Precision],
) -> anyhow::Result<()> {
    use std::sync::Arc;

    use traum_clap::{Bf16Kernel, ClapModel, Precision, cpu_device, default_device};
    use traum_server::embed::{Engine, ModelSettings};

    let ClapRuns {
        threads,
        batch,
        reps,
        rounds,
    } = runs;
    let mut precisions = precisions.to_vec();
    precisions.dedup();
    if precisions.is_empty() {
        precisions.push(Precision::F32);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("cannot size the rayon pool")?;
    println!("machine: {}", text::machine());
    if precisions.contains(&Precision::Bf16) {
        println!("bf16 kernel: {}", Bf16Kernel::best().name());
    }
    let device = default_device()?;
    // The engine runs on the build's device, so the peer does too: a GPU build is compared with
    // PyTorch on the GPU, the CPU build with PyTorch on the CPU.
    let peer_device = if device == cpu_device() { "cpu" } else { "cuda" };
    let models = precisions
        .iter()
        .map(|&precision| ClapModel::load_with(dir, &device, precision).context("cannot load the checkpoint"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bins = models[0].mel_bins();
    let window: Vec<f32> = (0..1001 * bins)
        .map(|i| -40.0 + 10.0 * ((i as f32) * 0.013).sin())
        .collect();
    // Warm-up: every shape once (GPU backends autotune their kernels on the
    // first call of each shape; CPU caches and allocators settle).
    for model in &models {
        clap_round(model, &window, &ClapRuns { reps: 1, ..runs })?;
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clap_peer.py");
    // ours[precision][round][figure]
    let mut ours: Vec<Vec<Vec<f64>>> = vec![Vec::new(); models.len()];
    let mut theirs: Vec<Vec<f64>> = Vec::new();
    let mut torch = String::new();
    let mut peer_on = String::new();
    for round in 0..rounds {
        for (figures, model) in ours.iter_mut().zip(&models) {
            figures.push(clap_round(model, &window, &runs)?);
        }
        // The peer warms up inside its own process before it times.
        let peer = run_peer(
            "PyTorch",
            Command::new(python)
                .arg(&script)
                .arg(dir)
                .args([threads.to_string(), batch.to_string(), reps.to_string()])
                .arg(peer_device),
        )?;
        torch = peer["torch"].as_str().unwrap_or("?").to_owned();
        peer_on = peer.get("gpu").unwrap_or(&peer["device"]).to_string();
        theirs.push(vec![
            peer["audio_windows_per_s_batch1"].as_f64().unwrap_or(f64::NAN),
            peer[format!("audio_windows_per_s_batch{batch}")]
                .as_f64()
                .unwrap_or(f64::NAN),
            peer["text_ms_per_query"].as_f64().unwrap_or(f64::NAN),
        ]);
        eprintln!("round {} of {rounds} done", round + 1);
    }
    drop(models);

    // A 3-minute track through the server's engine: log-mel + batched windows,
    // once to warm up, then once per round, the precisions taking turns.
    let engines = precisions
        .iter()
        .map(|&precision| {
            let settings = ModelSettings {
                source: None,
                hub: Default::default(),
                batch_size: batch,
                threads,
                precision,
                text: Default::default(),
            };
            Ok(Arc::new(Engine::start(dir, &settings)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rate = f64::from(OUTPUT_SAMPLE_RATE);
    let track: Arc<Vec<f32>> = Arc::new(
        (0..(180.0 * rate) as usize)
            .map(|i| {
                let t = i as f64 / rate;
                (0.3 * (2.0 * std::f64::consts::PI * 220.0 * t).sin() + 0.2 * (t * 7.0).sin()) as f32
            })
            .collect(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut track_seconds = vec![Vec::new(); engines.len()];
    let mut windows = 0;
    for round in 0..=rounds {
        for (seconds, engine) in track_seconds.iter_mut().zip(&engines) {
            let started = Instant::now();
            let embedded = runtime
                .block_on(engine.embed_audio(track.clone(), |_| {}))
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            windows = embedded.windows.len();
            if round > 0 {
                seconds.push(started.elapsed().as_secs_f64());
            }
        }
    }

    println!(
        "CLAP on {} with {threads} threads; burn on {device:?}, PyTorch {torch} (f32) on {peer_on}; \
         {rounds} rounds alternating burn and PyTorch, {reps} repetitions each, after a warm-up:",
        dir.display()
    );
    println!(
        "{:<33} {:>24} {:>24} {:>22}",
        "", "burn min / median / max", "pytorch min / median / max", "time ratio med (range)"
    );
    let labels = [
        "audio windows/s, batch 1".to_owned(),
        format!("audio windows/s, batch {batch}"),
        "text ms/query".to_owned(),
    ];
    for (i, label) in labels.iter().enumerate() {
        for (precision, figures) in precisions.iter().zip(&ours) {
            let a: Vec<f64> = figures.iter().map(|r| r[i]).collect();
            let b: Vec<f64> = theirs.iter().map(|r| r[i]).collect();
            // Time ours / time theirs, per round (rates invert, times divide).
            let ratios: Vec<f64> = a
                .iter()
                .zip(&b)
                .map(|(x, y)| if i < 2 { y / x } else { x / y })
                .collect();
            let (a0, a1, a2) = text::spread(a);
            let (b0, b1, b2) = text::spread(b);
            let (r0, r1, r2) = text::spread(ratios);
            let label = format!("{label} [{precision}]");
            println!(
                "{label:<33} {a0:>8.2} {a1:>7.2} {a2:>7.2} {b0:>8.2} {b1:>7.2} {b2:>7.2} {r1:>8.2} ({r0:.2}–{r2:.2})"
            );
        }
    }
    println!("(time ratio = time ours / time theirs, per round: below 1.0 means burn is faster)");
    for (precision, seconds) in precisions.iter().zip(track_seconds) {
        let (t0, t1, t2) = text::spread(seconds);
        println!(
            "3-minute track end to end [{precision}] (log-mel + {windows} windows, batch {batch}): {t1:.2} s median ({t0:.2}–{t2:.2}) over {rounds} runs after a warm-up"
        );
    }
    Ok(())
}

struct AnnSetup {
    n: usize,
    dim: usize,
    queries: usize,
    kind: String,
    m: usize,
    ef_construction: usize,
    efs: Vec<usize>,
    python: String,
    reuse_dir: Option<PathBuf>,
    target_recall: f64,
}

/// splitmix64: reproducible inputs without another dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn gaussian(&mut self) -> f32 {
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| self.gaussian()).collect();
        normalise(v)
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Base vectors then queries, as the peer reads them.
fn ann_inputs(setup: &AnnSetup) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut rng = SplitMix(42);
    let total = setup.n + setup.queries;
    match setup.kind.as_str() {
        "random" => Ok((0..total).map(|_| rng.unit(setup.dim)).collect()),
        "clustered" => {
            let centres: Vec<Vec<f32>> = (0..1000).map(|_| rng.unit(setup.dim)).collect();
            let spread = 0.6 / (setup.dim as f32).sqrt();
            Ok((0..total)
                .map(|_| {
                    let centre = &centres[(rng.next() % centres.len() as u64) as usize];
                    normalise(centre.iter().map(|c| c + spread * rng.gaussian()).collect())
                })
                .collect())
        }
        other => bail!("--kind must be random or clustered, not {other}"),
    }
}

fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn ann_bench_entry(setup: AnnSetup) -> anyhow::Result<()> {
    ann_bench(&setup)
}

fn ann_bench(setup: &AnnSetup) -> anyhow::Result<()> {
    use std::collections::HashSet;
    use std::io::Write;

    use traum_index::vector::{HnswParams, VectorIndex, VectorIndexConfig};

    let vectors = ann_inputs(setup)?;
    let (base, queries) = vectors.split_at(setup.n);
    let scratch = tempfile::tempdir()?;
    let raw = scratch.path().join("vectors.f32");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&raw)?);
        for v in &vectors {
            for x in v {
                file.write_all(&x.to_le_bytes())?;
            }
        }
    }
    let config = VectorIndexConfig {
        hnsw: HnswParams {
            m: setup.m,
            m0: 2 * setup.m,
            ef_construction: setup.ef_construction,
            // Calibration starts from the smallest ef measured.
            ef_search: setup.efs.iter().copied().min().unwrap_or(64),
            target_recall: setup.target_recall,
        },
        background_rebuild: false,
        persist_dir: setup.reuse_dir.clone(),
        ..VectorIndexConfig::default()
    };
    let items: Vec<(u64, Vec<f32>)> = base
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    // The model id records the inputs, so a reused index built from other
    // vectors is stale and rebuilt.
    let model_id = format!(
        "bench-{}-{}-{}-{}-{}",
        setup.kind, setup.n, setup.dim, setup.m, setup.ef_construction
    );
    let started = Instant::now();
    let reused = setup
        .reuse_dir
        .as_deref()
        .and_then(|dir| VectorIndex::load(dir, &model_id, setup.dim, config.clone()).ok())
        .map(|(index, _)| index);
    let index = match reused {
        Some(index) => index,
        None => {
            let index = VectorIndex::build(&model_id, setup.dim, config, items)?;
            if let Some(dir) = &setup.reuse_dir {
                index.save(dir)?;
            }
            index
        }
    };
    let build = started.elapsed();
    eprintln!("traum graph calibration: {:?}", index.stats().route);

    let started = Instant::now();
    let truth: Vec<HashSet<u64>> = queries
        .iter()
        .map(|q| Ok(index.search_exact(q, 10)?.into_iter().map(|h| h.id).collect()))
        .collect::<anyhow::Result<_>>()?;
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();

    // One untimed pass at the largest ef first: a freshly loaded index
    // otherwise charges its page faults to whichever ef is timed first.
    let warm_ef = setup.efs.iter().copied().max().unwrap_or(64);
    for q in queries {
        index.search_with_ef(q, 10, warm_ef)?;
    }
    let mut ours = Vec::new();
    for &ef in &setup.efs {
        let mut latencies = Vec::with_capacity(queries.len());
        let mut found = 0;
        for (q, truth) in queries.iter().zip(&truth) {
            let started = Instant::now();
            let hits = index.search_with_ef(q, 10, ef)?;
            latencies.push(started.elapsed());
            found += hits.iter().filter(|h| truth.contains(&h.id)).count();
        }
        let total: Duration = latencies.iter().sum();
        latencies.sort();
        ours.push((
            ef,
            queries.len() as f64 / total.as_secs_f64(),
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99),
            found as f64 / (10 * queries.len()) as f64,
        ));
        // Printed as it comes: the peer's build takes a while.
        eprintln!("traum ef {ef}: {:?}", ours.last());
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ann_peer.py");
    let peer = run_peer(
        "hnswlib",
        Command::new(&setup.python).arg(&script).arg(&raw).args(
            [
                setup.n,
                setup.dim,
                queries.len(),
                num_cpus(),
                setup.m,
                setup.ef_construction,
            ]
            .iter()
            .chain(&setup.efs)
            .map(ToString::to_string),
        ),
    )?;

    println!(
        "{} {}-d vectors ({}), {} queries, M={} ef_construction={}, queries on 1 thread",
        setup.n,
        setup.dim,
        setup.kind,
        queries.len(),
        setup.m,
        setup.ef_construction
    );
    println!(
        "build: traum (hora) {:.1} s, hnswlib {:.1} s ({} threads)",
        build.as_secs_f64(),
        peer["build_s"].as_f64().unwrap_or(f64::NAN),
        num_cpus()
    );
    println!("exact search (SimSIMD): {exact_qps:.1} QPS");
    println!(
        "{:>6} | {:>9} {:>8} {:>8} {:>7} | {:>9} {:>8} {:>8} {:>7}",
        "ef", "traum QPS", "p50 ms", "p99 ms", "recall", "hnsw QPS", "p50 ms", "p99 ms", "recall"
    );
    let runs = peer["runs"].as_array().cloned().unwrap_or_default();
    for ((ef, qps, p50, p99, recall), theirs) in ours.iter().zip(&runs) {
        println!(
            "{ef:>6} | {qps:>9.1} {p50:>8.2} {p99:>8.2} {recall:>7.4} | {:>9.1} {:>8.2} {:>8.2} {:>7.4}",
            theirs["qps"].as_f64().unwrap_or(f64::NAN),
            theirs["p50_ms"].as_f64().unwrap_or(f64::NAN),
            theirs["p99_ms"].as_f64().unwrap_or(f64::NAN),
            theirs["recall"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let ours_at = ours.iter().find(|r| r.4 >= 0.95).map(|r| r.1);
    let theirs_at = runs
        .iter()
        .find(|r| r["recall"].as_f64().unwrap_or(0.0) >= 0.95)
        .and_then(|r| r["qps"].as_f64());
    match (ours_at, theirs_at) {
        (Some(ours), Some(theirs)) => println!(
            "at recall@10 >= 0.95: traum {ours:.1} QPS, hnswlib {theirs:.1} QPS, ratio {:.2}x, exact {:.2}x",
            ours / theirs,
            exact_qps / theirs
        ),
        _ => println!("recall@10 >= 0.95 not reached by both at the measured ef values"),
    }
    Ok(())
}

fn search_bench(model_dir: &Path, windows: usize, per_file: usize, queries: usize) -> anyhow::Result<()> {
    use traum_proto::v1 as pb;
    use traum_server::domain::{
        AudioFormat, AudioProperties, FileEmbeddings, FileState, JobState, UploadHeader, WindowEmbedding,
    };
    use traum_server::store::{Claimed, JobClaim, NewBlob, Store};

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scratch = tempfile::tempdir()?;
    let mut config = traum_server::Config::with_data_dir(scratch.path().join("data"));
    config.model_dir = Some(model_dir.to_path_buf());
    config.metrics_listen = None;
    config.web_listen = None;
    config.log = "warn".into();
    config.workers = 1;
    let model_id = traum_server::embed::weights_id(model_dir)?;
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("config.json")).context("config.json")?)?;
    let dim = checkpoint["projection_dim"].as_u64().unwrap_or(512) as usize;
    let files = windows.div_ceil(per_file);
    runtime.block_on(async {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Store::connect(&config.database_url).await?;
        let started = Instant::now();
        let mut rng = SplitMix(7);
        for f in 0..files {
            let blob = NewBlob {
                sha256: format!("{f:064x}"),
                size_bytes: 1,
                format: AudioFormat::Wav,
            };
            let header = UploadHeader {
                filename: format!("file_{f}.wav"),
                tags: vec![format!("group{}", f % 10)],
                declared_size: None,
                declared_sha256: None,
                always_create_file: false,
            };
            let (outcome, job) = store.create_file(&blob, &header).await?;
            if job.is_some() {
                // Saves go through a claim, as a worker's do.
                let claim = JobClaim {
                    holder: "traum-bench".into(),
                    lease: Duration::from_secs(60),
                };
                if let Some(Claimed { mut job, .. }) = store.claim_next_job(None, &claim).await? {
                    job.state = JobState::Succeeded;
                    store.save_job(&job, &claim.holder).await?;
                }
            }
            let seconds = (per_file * 10) as f64;
            store
                .set_file_properties(
                    &outcome.file_id,
                    &AudioProperties {
                        duration_seconds: seconds,
                        sample_rate_hz: 48_000,
                        channels: 1,
                        bits_per_sample: 16,
                        codec: "pcm_s16le".into(),
                        bitrate_bps: 768_000,
                        frames: (seconds * 48_000.0) as u64,
                    },
                )
                .await?;
            store
                .set_file_state(&outcome.file_id, FileState::Ready, None)
                .await?;
            let window_vectors: Vec<WindowEmbedding> = (0..per_file)
                .map(|w| WindowEmbedding {
                    index: w as u32,
                    start_seconds: w as f64 * 10.0,
                    end_seconds: (w + 1) as f64 * 10.0,
                    vector: rng.unit(dim),
                })
                .collect();
            let embeddings = FileEmbeddings {
                model_id: model_id.clone(),
                file: rng.unit(dim),
                file_start: 0.0,
                file_end: seconds,
                windows: window_vectors,
            };
            store.replace_embeddings(&outcome.file_id, &embeddings).await?;
        }
        println!(
            "library: {files} files, {} window + {files} file vectors ({dim}-d), written in {:.1} s",
            files * per_file,
            started.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    })?;

    runtime.block_on(async {
        let started = Instant::now();
        let propagation::Replica {
            channel,
            stop,
            server,
        } = propagation::serve_until_search_ready(config, Duration::MAX).await?;
        println!(
            "server ready to search (model loaded, vector index built) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut search = pb::search_service_client::SearchServiceClient::new(channel);
        let words = [
            "warm", "analog", "pad", "dusty", "vinyl", "drum", "loop", "bright", "bass", "vocal",
        ];
        let measure = |cached: bool| {
            let mut search = search.clone();
            async move {
                let mut latencies = Vec::with_capacity(queries);
                for i in 0..queries {
                    let query = if cached {
                        "warm analog pad at 120 bpm".to_owned()
                    } else {
                        format!(
                            "{} {} {} {i}",
                            words[i % 10],
                            words[(i / 10) % 10],
                            words[(i / 100) % 10]
                        )
                    };
                    let started = Instant::now();
                    let response = search
                        .search_by_text(pb::SearchByTextRequest {
                            query,
                            filters: None,
                            options: Some(pb::SearchOptions {
                                limit: 20,
                                ..Default::default()
                            }),
                        })
                        .await?;
                    latencies.push(started.elapsed());
                    anyhow::ensure!(
                        response.into_inner().hits.len() == 20,
                        "a search returned too few hits"
                    );
                }
                latencies.sort();
                anyhow::Ok(latencies)
            }
        };
        let fresh = measure(false).await?;
        let cached = measure(true).await?;
        let filtered = {
            let mut latencies = Vec::with_capacity(queries);
            for i in 0..queries {
                let started = Instant::now();
                search
                    .search_by_text(pb::SearchByTextRequest {
                        query: format!("filtered query {i}"),
                        filters: Some(pb::SearchFilters {
                            tags_all: vec![format!("group{}", i % 10)],
                            ..Default::default()
                        }),
                        options: None,
                    })
                    .await?;
                latencies.push(started.elapsed());
            }
            latencies.sort();
            latencies
        };
        for (name, latencies) in [
            ("SearchByText, new text each time", &fresh),
            ("SearchByText, cached text", &cached),
            ("SearchByText + tag filter (10% of files)", &filtered),
        ] {
            println!(
                "{name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  ({queries} queries)",
                percentile_ms(latencies, 0.5),
                percentile_ms(latencies, 0.99)
            );
        }
        let _ = stop.send(());
        server.await??;
        anyhow::Ok(())
    })
}
