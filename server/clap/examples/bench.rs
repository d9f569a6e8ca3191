//! Throughput of the CPU backend on a checkpoint directory (random weights are fine):
//! `cargo run --release -p traum-clap --example bench -- DIR [batch]`.

use std::path::PathBuf;
use std::time::Instant;

use traum_clap::{ClapModel, Result, cpu_device};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "tests/fixtures/clap-model/htsat-tiny".into()),
    );
    let batch: usize = args.next().and_then(|b| b.parse().ok()).unwrap_or(4);
    let t0 = Instant::now();
    let model = ClapModel::load(&dir, &cpu_device())?;
    println!("load: {:.2} s", t0.elapsed().as_secs_f64());
    let bins = model.mel_bins();
    // Deterministic dB-like input.
    let window: Vec<f32> = (0..1001 * bins)
        .map(|i| -40.0 + 10.0 * ((i as f32) * 0.013).sin())
        .collect();
    let windows: Vec<&[f32]> = (0..batch).map(|_| window.as_slice()).collect();
    model.embed_audio(&windows[..1])?;
    for b in [1, batch] {
        let t0 = Instant::now();
        let reps = 2;
        for _ in 0..reps {
            model.embed_audio(&windows[..b])?;
        }
        let dt = t0.elapsed().as_secs_f64();
        println!("burn audio batch={b}: {:.2} windows/s", (reps * b) as f64 / dt);
    }
    let query = "upbeat electronic music with heavy bass";
    model.embed_text(query)?;
    let t0 = Instant::now();
    for _ in 0..10 {
        model.embed_text(query)?;
    }
    println!("burn text: {:.1} ms/query", t0.elapsed().as_secs_f64() * 100.0);
    Ok(())
}
