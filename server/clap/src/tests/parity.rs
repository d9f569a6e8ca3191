//! Parity with `transformers` on the random-weight fixtures of
//! `tests/fixtures/clap-model/make_fixtures.py` (one per checkpoint family).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::{ClapError, ClapModel, cpu_device, default_device};
use safetensors::{Dtype, SafeTensors};

const MIN_COSINE: f64 = 0.99999;
const MAX_ABS: f64 = 1e-4;

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/clap-model")
        .join(name)
}

pub(super) struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    pub(super) fn open(dir: &Path) -> Self {
        Self {
            bytes: std::fs::read(dir.join("reference.safetensors")).unwrap(),
        }
    }

    pub(super) fn get(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let v = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("reference lacks {name}"));
        assert_eq!(v.dtype(), Dtype::F32, "{name}");
        let vals = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (v.shape().to_vec(), vals)
    }

    fn ids(&self, name: &str) -> Vec<u32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let v = st.tensor(name).unwrap();
        assert_eq!(v.dtype(), Dtype::I64);
        v.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect()
    }

    fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes)
            .unwrap()
            .tensor(name)
            .is_ok()
    }
}

/// (cosine, max abs difference) between two flattened tensors.
fn compare(ours: &[f32], reference: &[f32]) -> (f64, f64) {
    assert_eq!(ours.len(), reference.len(), "length");
    let (mut dot, mut na, mut nb, mut max_abs) = (0f64, 0f64, 0f64, 0f64);
    for (&a, &b) in ours.iter().zip(reference) {
        let (a, b) = (f64::from(a), f64::from(b));
        dot += a * b;
        na += a * a;
        nb += b * b;
        max_abs = max_abs.max((a - b).abs());
    }
    (dot / (na.sqrt() * nb.sqrt()).max(1e-30), max_abs)
}

fn report(family: &str, what: &str, ours: &[f32], reference: &[f32], strict: bool) {
    let (cos, max_abs) = compare(ours, reference);
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("{family:>10} {what:<22} cosine {cos:.9}  max|diff| {max_abs:.3e}  (max|ref| {scale:.3})");
    if strict {
        assert!(cos >= MIN_COSINE, "{family} {what}: cosine {cos} < {MIN_COSINE}");
        assert!(
            max_abs <= MAX_ABS,
            "{family} {what}: max abs diff {max_abs} > {MAX_ABS}"
        );
    }
}

/// Runs on the device of the build (`--features wgpu` or `cuda` checks the accelerator path; the
/// default build checks the CPU).
fn check_family(family: &str) {
    let dir = fixture(family);
    let device = default_device().unwrap();
    println!("{family:>10} on {device:?}");
    let model = ClapModel::load(&dir, &device).unwrap();
    let reference = Reference::open(&dir);

    // Audio: a batch of two windows.
    let (shape, input) = reference.get("audio.input_features");
    let per_window = shape[1] * shape[2];
    let windows: Vec<&[f32]> = input.chunks_exact(per_window).collect();
    let (trace, embeds) = model.trace_audio(&windows).unwrap();
    report(
        family,
        "audio.patch_embed",
        &trace.patch_embed,
        &reference.get("audio.patch_embed").1,
        false,
    );
    for (i, stage) in trace.stages.iter().enumerate() {
        let name = format!("audio.stage{}", i + 1);
        report(family, &name, stage, &reference.get(&name).1, false);
    }
    report(
        family,
        "audio.pooled",
        &trace.pooled,
        &reference.get("audio.pooled").1,
        false,
    );
    report(
        family,
        "audio.embeds",
        &embeds.concat(),
        &reference.get("audio.embeds").1,
        true,
    );

    // Batch composition must not change a window's embedding.
    let single = model.embed_audio(&windows[1..]).unwrap();
    let (cos, max_abs) = compare(&single[0], &embeds[1]);
    println!("{family:>10} batch-of-1 vs batch-of-2 cosine {cos:.9} max|diff| {max_abs:.3e}");
    assert!(max_abs <= 1e-5, "batching changed an embedding by {max_abs}");
    // File vector: mean of raw projections, normalised.
    let pooled = crate::pool_windows(&model.project_audio(&windows).unwrap());
    let norm: f32 = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5 && pooled.len() == model.dim());
    // Determinism.
    assert_eq!(model.embed_audio(&windows[1..]).unwrap(), single);

    // Text.
    let queries: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("queries.json")).unwrap()).unwrap();
    for (q, query) in queries.iter().enumerate() {
        let (trace, embedding) = model.trace_text(query).unwrap();
        let ids = reference.ids(&format!("text{q}.input_ids"));
        assert_eq!(trace.ids, ids, "token ids of query {q}");
        assert!(trace.ids.len() <= crate::MAX_TOKENS);
        let mut k = 0;
        while reference.has(&format!("text{q}.hidden{k}")) {
            let name = format!("text{q}.hidden{k}");
            report(family, &name, &trace.hidden[k], &reference.get(&name).1, false);
            k += 1;
        }
        assert_eq!(k, trace.hidden.len());
        report(
            family,
            &format!("text{q}.pooled"),
            &trace.pooled,
            &reference.get(&format!("text{q}.pooled")).1,
            false,
        );
        report(
            family,
            &format!("text{q}.embeds"),
            &embedding,
            &reference.get(&format!("text{q}.embeds")).1,
            true,
        );
        assert_eq!(model.embed_text(query).unwrap(), embedding);
    }
}

#[test]
fn htsat_tiny_matches_transformers() {
    check_family("htsat-tiny");
}

#[test]
fn htsat_base_matches_transformers() {
    check_family("htsat-base");
}

#[test]
fn long_query_is_truncated_at_77_tokens() {
    let model = ClapModel::load(&fixture("htsat-tiny"), &cpu_device()).unwrap();
    let ids = model.tokenizer().encode(&"bells and wind ".repeat(100)).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], 0, "<s> first");
    assert_eq!(ids[76], 2, "</s> last");
}

/// Copies a fixture into a temp dir so tests can corrupt it.
fn scratch_copy(family: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(family)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

#[test]
fn fused_checkpoints_are_refused_naming_the_option() {
    let tmp = scratch_copy("htsat-tiny");
    let path = tmp.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["audio_config"]["enable_fusion"] = true.into();
    config["audio_config"]["fusion_type"] = "aff_2d".into();
    std::fs::write(&path, config.to_string()).unwrap();
    let err = ClapModel::load(tmp.path(), &cpu_device())
        .err()
        .expect("must fail");
    assert!(matches!(err, ClapError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("enable_fusion"), "{err}");
}

/// Rewrites the fixture's weights through `edit` (name → optional new (shape, f32 data)).
fn rewrite_weights(dir: &Path, edit: impl Fn(&str, &[usize], &[u8]) -> Option<(Vec<usize>, Vec<u8>)>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if let Some((shape, data)) = edit(&name, view.shape(), view.data()) {
            owned.push((name, view.dtype(), shape, data));
        }
    }
    let extra = edit("__extra__", &[], &[]);
    if let Some((shape, data)) = extra {
        owned.push((
            "audio_model.audio_encoder.head.weight".into(),
            Dtype::F32,
            shape,
            data,
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

#[test]
fn missing_extra_or_misshaped_tensors_are_named() {
    let victim = "audio_model.audio_encoder.layers.2.blocks.3.attention.self.query.weight";

    let tmp = scratch_copy("htsat-tiny");
    rewrite_weights(tmp.path(), |n, s, d| {
        (n != victim && n != "__extra__").then(|| (s.to_vec(), d.to_vec()))
    });
    let err = ClapModel::load(tmp.path(), &cpu_device())
        .err()
        .expect("missing must fail");
    assert!(
        matches!(&err, ClapError::MissingTensor { name } if name == victim),
        "{err}"
    );

    let tmp = scratch_copy("htsat-tiny");
    rewrite_weights(tmp.path(), |n, s, d| {
        if n == "__extra__" {
            Some((vec![2], vec![0; 8]))
        } else {
            Some((s.to_vec(), d.to_vec()))
        }
    });
    let err = ClapModel::load(tmp.path(), &cpu_device())
        .err()
        .expect("extra must fail");
    assert!(
        err.to_string().contains("audio_model.audio_encoder.head.weight"),
        "{err}"
    );

    let tmp = scratch_copy("htsat-tiny");
    rewrite_weights(tmp.path(), |n, s, d| match n {
        "__extra__" => None,
        _ if n == victim => Some((vec![s[0] * s[1]], d.to_vec())),
        _ => Some((s.to_vec(), d.to_vec())),
    });
    let err = ClapModel::load(tmp.path(), &cpu_device())
        .err()
        .expect("misshaped must fail");
    assert!(
        matches!(&err, ClapError::ShapeMismatch { name, .. } if name == victim),
        "{err}"
    );
}

#[test]
fn model_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ClapModel>();
}
