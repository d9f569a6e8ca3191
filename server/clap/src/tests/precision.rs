//! `--precision bf16` against f32 on the committed fixtures: close enough to
//! ship (cosine ≥ 0.999 per vector) and, on every kernel this CPU has, a
//! different computation (not f32 in disguise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::parity::{Reference, fixture};
use crate::{Bf16Kernel, ClapModel, Precision, cpu_device};

const MIN_COSINE: f64 = 0.999;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-30)
}

fn bf16_stays_within_the_fidelity_bound(family: &str) {
    let dir = fixture(family);
    let f32_model = ClapModel::load(&dir, &cpu_device()).unwrap();
    let bf16_model = ClapModel::load_with(&dir, &cpu_device(), Precision::Bf16).unwrap();
    assert_eq!(bf16_model.precision(), Precision::Bf16);
    println!("{family}: bf16 kernel {}", Bf16Kernel::best().name());

    let reference = Reference::open(&dir);
    let (shape, input) = reference.get("audio.input_features");
    let windows: Vec<&[f32]> = input.chunks_exact(shape[1] * shape[2]).collect();
    let exact = f32_model.embed_audio(&windows).unwrap();
    let reduced = bf16_model.embed_audio(&windows).unwrap();

    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("queries.json")).unwrap()).unwrap();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let exact_texts = f32_model.embed_texts(&texts).unwrap();
    let reduced_texts = bf16_model.embed_texts(&texts).unwrap();

    let mut cosines = Vec::new();
    for (what, exact, reduced) in [
        ("audio", &exact, &reduced),
        ("text", &exact_texts, &reduced_texts),
    ] {
        for (index, (e, r)) in exact.iter().zip(reduced.iter()).enumerate() {
            let cos = cosine(e, r);
            println!("{family:>10} {what} {index}: cosine to f32 {cos:.6}");
            assert!(
                cos >= MIN_COSINE,
                "{family} {what} {index}: cosine {cos} < {MIN_COSINE}"
            );
            cosines.push(cos);
        }
    }
    // Rounding to 8 mantissa bits moves every vector a little: identical
    // output would mean the bf16 path never ran.
    assert!(
        cosines.iter().any(|cos| *cos < 1.0 - 1e-9),
        "{family}: bf16 gave exactly the f32 vectors"
    );
    // Single queries and batches take the same bf16 products.
    let alone = bf16_model.embed_text(texts[0]).unwrap();
    assert!(
        cosine(&alone, &reduced_texts[0]) > 0.999_999,
        "{family}: batch of one"
    );
}

#[test]
fn bf16_tracks_f32_on_htsat_tiny() {
    bf16_stays_within_the_fidelity_bound("htsat-tiny");
}

#[test]
fn bf16_tracks_f32_on_htsat_base() {
    bf16_stays_within_the_fidelity_bound("htsat-base");
}

#[test]
fn precision_names_parse_and_int8_says_it_is_missing() {
    assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
    assert_eq!("F32".parse::<Precision>(), Ok(Precision::F32));
    let int8 = "int8".parse::<Precision>().unwrap_err();
    assert!(int8.contains("not implemented"), "{int8}");
    assert!(
        "f16"
            .parse::<Precision>()
            .unwrap_err()
            .contains("use f32 or bf16")
    );
}
