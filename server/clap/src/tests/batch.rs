//! Batched text encoding equals one query at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use super::max_abs_diff;
use crate::{ClapModel, MAX_TOKENS, cpu_device};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/clap-model")
        .join(name)
}

fn texts() -> Vec<String> {
    vec![
        "kick".to_owned(),
        "a dog barking in the rain".to_owned(),
        "warm analog pad with slow attack and a long shimmering reverb tail".to_owned(),
        "bells and wind ".repeat(100),
        "kick".to_owned(),
        "snare roll".to_owned(),
    ]
}

fn batch_matches_one_at_a_time(family: &str) {
    let model = ClapModel::load(&fixture(family), &cpu_device()).unwrap();
    let texts = texts();
    let lengths: Vec<usize> = texts
        .iter()
        .map(|t| model.tokenizer().encode(t).unwrap().len())
        .collect();
    assert_eq!(
        lengths.iter().max(),
        Some(&MAX_TOKENS),
        "one text hits the truncation"
    );
    assert!(
        lengths.iter().min() < Some(&8),
        "and one is far shorter: {lengths:?}"
    );
    let alone: Vec<Vec<f32>> = texts.iter().map(|t| model.embed_text(t).unwrap()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = model.embed_texts(&refs).unwrap();
    assert_eq!(batched.len(), texts.len());
    for ((text, one), many) in texts.iter().zip(&alone).zip(&batched) {
        let diff = max_abs_diff(one, many);
        println!(
            "{family:>10} {:>2} tokens: max|diff| {diff:.3e}",
            model.tokenizer().encode(text).unwrap().len()
        );
        assert!(diff <= 1e-6, "{family} {text:?}: batched differs by {diff}");
    }
    // Without the truncated one the padding is shorter: still the same vectors.
    let short: Vec<&str> = refs.iter().copied().filter(|t| t.len() < 100).collect();
    for (text, many) in short.iter().zip(model.embed_texts(&short).unwrap()) {
        let one = &alone[refs.iter().position(|t| t == text).unwrap()];
        assert!(max_abs_diff(one, &many) <= 1e-6, "{family} {text:?}");
    }
    // A batch of one takes the unpadded path: bit for bit the single query.
    for (text, one) in refs.iter().zip(&alone) {
        assert_eq!(&model.embed_texts(&[text]).unwrap()[0], one, "{family} {text:?}");
    }
    assert!(model.embed_texts(&[]).unwrap().is_empty());
}

#[test]
fn batched_text_equals_unbatched_htsat_tiny() {
    batch_matches_one_at_a_time("htsat-tiny");
}

#[test]
fn batched_text_equals_unbatched_htsat_base() {
    batch_matches_one_at_a_time("htsat-base");
}

#[test]
fn padding_without_the_mask_would_change_the_vectors() {
    // Guards the test above: if the padded keys leaked into attention, the short query's
    // vector would move by far more than the tolerance, so equality proves the masking.
    let model = ClapModel::load(&fixture("htsat-tiny"), &cpu_device()).unwrap();
    let ids = model.tokenizer().encode("kick").unwrap();
    let mut padded = ids.clone();
    padded.resize(40, model.config().text_config.pad_token_id.unwrap_or(1) as u32);
    let (unmasked, _) = model.text.forward(&padded, &model.device, false).unwrap();
    let (alone, _) = model.text.forward(&ids, &model.device, false).unwrap();
    let (unmasked, alone) = (
        crate::audio::read(unmasked).unwrap(),
        crate::audio::read(alone).unwrap(),
    );
    assert!(max_abs_diff(&unmasked, &alone) > 1e-3);
}
