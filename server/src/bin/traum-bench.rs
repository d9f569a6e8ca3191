//! `traum-bench`: side-by-side benchmarks against the peers named in the
//! issues, on the same machine in one run. Not a test: it reports numbers.
//!
//! `traum-bench audio [FILE...]`: decode + resample to 48 kHz mono +
//! descriptors + CLAP log-mel, single thread, against ffmpeg decoding to
//! 48 kHz mono (`-threads 1`) and librosa (load + beat_track +
//! melspectrogram, single-threaded BLAS/numba). Without files it renders a
//! 3-minute 44.1 kHz stereo MP3 and FLAC with ffmpeg first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use traum_server::audio::decode::{DecodeOptions, OUTPUT_SAMPLE_RATE, decode_to_vec};
use traum_server::audio::descriptors;
use traum_server::audio::mel::{LogMelExtractor, MelConfig, Windowing};

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Audio { files, runs, python } => audio(files, runs.max(1), &python),
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join("librosa_peer.py");
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
    let (samples, _) = decode_to_vec(file, &DecodeOptions::default(), |_| {})?;
    let decode = started.elapsed();
    let started = Instant::now();
    let analysis = descriptors::analyse(&samples, OUTPUT_SAMPLE_RATE, |_| {});
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

fn run_ffmpeg(file: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-threads",
            "1",
            "-i",
        ])
        .arg(file)
        .args(["-ac", "1", "-ar", "48000", "-f", "f32le", "-y", "/dev/null"])
        .status()
        .context("ffmpeg is needed for the peer measurement (apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg failed on {}", file.display());
    }
    Ok(started.elapsed())
}

fn run_librosa(python: &str, script: &Path, file: &Path, runs: usize) -> anyhow::Result<(f64, f64)> {
    let output = Command::new(python)
        .arg(script)
        .arg(file)
        .arg("--runs")
        .arg(runs.to_string())
        .output()
        .context("cannot run python")?;
    if !output.status.success() {
        bail!(
            "{}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("librosa failed")
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
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
        let status = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
            ])
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
