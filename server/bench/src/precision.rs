//! `traum-bench precision`: how far a reduced precision moves CLAP's vectors
//! from f32, and whether search still returns the same files.
//!
//! A synthetic library (one 10 s clip per file: tones, chords, noise bursts
//! and pulses of random pitch, rate and envelope) is embedded with f32 and
//! with the reduced precision; text queries likewise. Reported: the cosine
//! of each reduced vector to its f32 twin (min / median), and the overlap of
//! the top 10 results of every query (text → audio, and audio → audio with
//! the query file left out) against the f32 top 10.

use std::time::Instant;

use anyhow::Context;
use traum_clap::mel::{LogMelExtractor, MelConfig};
use traum_clap::{Bf16Kernel, ClapModel, Precision, cpu_device};

use crate::text;

pub struct Setup {
    pub model_dir: std::path::PathBuf,
    pub precision: Precision,
    pub files: usize,
    pub queries: usize,
    pub threads: usize,
}

/// A small deterministic generator: the same library on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() * items.len() as f64) as usize % items.len()]
    }
}

/// One 10 s clip at `rate`: a few partials over a random fundamental, gated
/// by a pulse of random rate, plus filtered noise, under an envelope.
fn clip(rng: &mut Rng, rate: f64) -> Vec<f32> {
    let fundamental = 40.0 * 2f64.powf(rng.next() * 6.0);
    let partials = 1 + (rng.next() * 6.0) as usize;
    let pulse_hz = 0.5 + rng.next() * 8.0;
    let duty = 0.1 + rng.next() * 0.8;
    let noise_share = rng.next().powi(2);
    let attack = 0.001 + rng.next() * 0.3;
    let detune = rng.next() * 0.02;
    let mut noise_state = 0.0f64;
    let smoothing = rng.next();
    let mut noise = Rng(rng.0 ^ 0x9e37_79b9);
    (0..(10.0 * rate) as usize)
        .map(|i| {
            let t = i as f64 / rate;
            let tone: f64 = (1..=partials)
                .map(|k| {
                    let k = k as f64;
                    (2.0 * std::f64::consts::PI * fundamental * k * (1.0 + detune * k) * t).sin() / k
                })
                .sum();
            noise_state = smoothing * noise_state + (1.0 - smoothing) * (noise.next() * 2.0 - 1.0);
            let phase = (t * pulse_hz).fract();
            let gate = if phase < duty {
                (phase / attack).min(1.0)
            } else {
                0.0
            };
            (0.3 * gate * ((1.0 - noise_share) * tone / partials as f64 + noise_share * noise_state * 3.0))
                as f32
        })
        .collect()
}

fn queries(rng: &mut Rng, count: usize) -> Vec<String> {
    let moods = [
        "dark",
        "bright",
        "warm",
        "aggressive",
        "calm",
        "distorted",
        "airy",
        "punchy",
    ];
    let things = [
        "kick drum",
        "snare",
        "hi-hat loop",
        "analog pad",
        "sub bass",
        "piano chords",
        "string ensemble",
        "vocal chop",
        "rain ambience",
        "sine tone",
        "noise sweep",
        "brass stab",
    ];
    (0..count)
        .map(|_| {
            let bpm = 60 + (rng.next() * 120.0) as u32;
            format!("{} {} at {bpm} bpm", rng.pick(&moods), rng.pick(&things))
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-30)
}

/// Indexes of the 10 library vectors closest to `query` (exact search), leaving out `skip`.
fn top10(library: &[Vec<f32>], query: &[f32], skip: Option<usize>) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = library
        .iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != skip)
        .map(|(index, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), index))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(10).map(|(_, index)| index).collect()
}

fn overlap(a: &[usize], b: &[usize]) -> f64 {
    a.iter().filter(|x| b.contains(x)).count() as f64 / a.len().max(1) as f64
}

fn summary(name: &str, mut values: Vec<f64>, digits: usize) {
    values.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    println!(
        "{name:<44} min {:.digits$}  median {:.digits$}  mean {mean:.digits$}  (n = {})",
        values[0],
        values[values.len() / 2],
        values.len()
    );
}

fn embed_library(model: &ClapModel, mels: &[Vec<f32>]) -> anyhow::Result<(Vec<Vec<f32>>, f64)> {
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(mels.len());
    for pair in mels.chunks(2) {
        let windows: Vec<&[f32]> = pair.iter().map(Vec::as_slice).collect();
        vectors.extend(model.embed_audio(&windows)?);
    }
    Ok((vectors, started.elapsed().as_secs_f64()))
}

pub fn run(setup: &Setup) -> anyhow::Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(setup.threads)
        .build_global()
        .context("cannot size the rayon pool")?;
    println!("machine: {}", text::machine());
    println!("bf16 kernel: {}", Bf16Kernel::best().name());
    let dir = &setup.model_dir;
    let exact = ClapModel::load(dir, &cpu_device()).context("cannot load the checkpoint")?;
    let reduced =
        ClapModel::load_with(dir, &cpu_device(), setup.precision).context("cannot load the checkpoint")?;

    let extractor = LogMelExtractor::new(MelConfig::default())?;
    let rate = f64::from(MelConfig::default().sampling_rate);
    let mut rng = Rng(0x7a0e_2026);
    let mels = (0..setup.files)
        .map(|_| extractor.clip(&clip(&mut rng, rate)))
        .collect::<Result<Vec<_>, _>>()?;
    let texts = queries(&mut rng, setup.queries);
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    let (library_f32, f32_seconds) = embed_library(&exact, &mels)?;
    let (library_reduced, reduced_seconds) = embed_library(&reduced, &mels)?;
    let texts_f32 = exact.embed_texts(&text_refs)?;
    let texts_reduced = reduced.embed_texts(&text_refs)?;

    println!(
        "{} on {}: {} files (one 10 s window each), {} text queries, {} threads; \
         embedding the library took {f32_seconds:.1} s in f32, {reduced_seconds:.1} s in {}",
        setup.precision,
        dir.display(),
        setup.files,
        setup.queries,
        setup.threads,
        setup.precision,
    );
    let audio_cos: Vec<f64> = library_f32
        .iter()
        .zip(&library_reduced)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let text_cos: Vec<f64> = texts_f32
        .iter()
        .zip(&texts_reduced)
        .map(|(a, b)| cosine(a, b))
        .collect();
    summary("cosine to f32, audio vectors", audio_cos, 6);
    summary("cosine to f32, text vectors", text_cos, 6);

    let text_overlap: Vec<f64> = texts_f32
        .iter()
        .zip(&texts_reduced)
        .map(|(qa, qb)| overlap(&top10(&library_f32, qa, None), &top10(&library_reduced, qb, None)))
        .collect();
    summary("top-10 overlap with f32, text → audio", text_overlap, 3);
    let examples = setup.queries.min(setup.files);
    let audio_overlap: Vec<f64> = (0..examples)
        .map(|i| {
            overlap(
                &top10(&library_f32, &library_f32[i], Some(i)),
                &top10(&library_reduced, &library_reduced[i], Some(i)),
            )
        })
        .collect();
    summary("top-10 overlap with f32, audio → audio", audio_overlap, 3);
    // How distinct the library is: near-identical vectors make any ranking
    // fragile, whatever the precision.
    let spread: Vec<f64> = (0..examples)
        .map(|i| cosine(&library_f32[i], &library_f32[(i + 1) % library_f32.len()]))
        .collect();
    summary("cosine between neighbouring files (f32)", spread, 4);
    Ok(())
}
