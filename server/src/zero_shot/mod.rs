//! Zero-shot tags: labels from configured vocabularies (genre, instrument,
//! mood, kind, ...) suggested for each file by comparing its CLAP vector
//! with the text vectors of prompts such as "This is a sound of techno.".
//!
//! Per vocabulary, a label's probability is the softmax over the
//! vocabulary's labels of `exp(logit_scale_a) · cos(file, prompt)`, the
//! checkpoint's own temperature (what `ClapModel` calls `logits_per_audio`).
//! The best labels above the vocabulary's threshold are stored. They are
//! computed right after a file's embed stage from the vector it just got
//! (no second audio pass), and again in the background for every file whose
//! suggestions were made with another model or vocabulary.

mod vocabulary;

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::try_join_all;

pub use self::vocabulary::{
    DEFAULT_MAX_LABELS, DEFAULT_TEMPLATE, DEFAULT_THRESHOLD, Vocabularies, Vocabulary,
};
use crate::domain::SuggestedTag;
use crate::embed::Engine;
use crate::error::Result;
use crate::store::Store;

/// Files whose suggestions are recomputed per database round trip.
const REFRESH_BATCH: u64 = 256;

/// The text vectors of every vocabulary's prompts under one model.
pub struct LabelVectors {
    pub model_id: String,
    /// [`Vocabularies::suggestions_key`] of these vectors' model.
    pub key: String,
    /// `exp(logit_scale_a)`.
    pub scale: f64,
    /// Per vocabulary, in order, one L2-normalised vector per label.
    pub vectors: Vec<Vec<Arc<Vec<f32>>>>,
}

impl LabelVectors {
    /// Encodes every vocabulary's prompts with `engine`'s text tower, all at
    /// once so they share its batches.
    pub async fn encode(vocabularies: &Vocabularies, engine: &Engine) -> Result<Self> {
        let mut vectors = Vec::new();
        for vocabulary in vocabularies.iter() {
            let prompts: Vec<String> = vocabulary.labels.iter().map(|l| vocabulary.prompt(l)).collect();
            vectors.push(try_join_all(prompts.iter().map(|prompt| engine.embed_text(prompt))).await?);
        }
        Ok(Self {
            model_id: engine.model_id().to_owned(),
            key: vocabularies.suggestions_key(engine.model_id()),
            scale: f64::from(engine.audio_logit_scale()),
            vectors,
        })
    }
}

/// Per label of a vocabulary, the softmax of `scale` times its cosine with
/// `file` (both sides L2-normalised).
pub fn probabilities(scale: f64, labels: &[Arc<Vec<f32>>], file: &[f32]) -> Vec<f64> {
    let logits: Vec<f64> = labels
        .iter()
        .map(|label| {
            let cosine: f64 = label
                .iter()
                .zip(file)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            scale * cosine
        })
        .collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|logit| (logit - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Every label of every vocabulary with its probability for a file vector.
pub fn all_probabilities<'a>(
    vocabularies: &'a Vocabularies,
    labels: &LabelVectors,
    file: &[f32],
) -> Vec<(&'a Vocabulary, Vec<f64>)> {
    vocabularies
        .iter()
        .zip(&labels.vectors)
        .map(|(vocabulary, vectors)| (vocabulary, probabilities(labels.scale, vectors, file)))
        .collect()
}

/// What is stored for a file: per vocabulary, its best labels (at most
/// `max_labels`) whose probability reaches the threshold, best first,
/// leaving out the (vocabulary, label) pairs the user already decided on.
pub fn suggestions(
    vocabularies: &Vocabularies,
    labels: &LabelVectors,
    file: &[f32],
    reviewed: &[(String, String)],
) -> Vec<SuggestedTag> {
    let mut out = Vec::new();
    for (vocabulary, probabilities) in all_probabilities(vocabularies, labels, file) {
        let mut ranked: Vec<(usize, f64)> = probabilities
            .into_iter()
            .enumerate()
            .filter(|&(index, _)| {
                !reviewed
                    .iter()
                    .any(|(v, l)| *v == vocabulary.name && *l == vocabulary.labels[index])
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.extend(
            ranked
                .into_iter()
                .take(vocabulary.max_labels)
                .filter(|&(_, probability)| probability >= vocabulary.threshold)
                .map(|(index, probability)| SuggestedTag {
                    vocabulary: vocabulary.name.clone(),
                    label: vocabulary.labels[index].clone(),
                    probability,
                    model_id: labels.model_id.clone(),
                }),
        );
    }
    out
}

/// The zero-shot tagger; cheap to clone.
#[derive(Clone)]
pub struct ZeroShot {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    vocabularies: Vocabularies,
    /// The label vectors of the model last used; a new model replaces them.
    labels: Mutex<Option<Arc<LabelVectors>>>,
}

impl ZeroShot {
    pub fn new(store: Store, vocabularies: Vocabularies) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                vocabularies,
                labels: Mutex::new(None),
            }),
        }
    }

    pub fn vocabularies(&self) -> &Vocabularies {
        &self.inner.vocabularies
    }

    /// The prompts' vectors under `engine`'s model, encoded once per model
    /// (all prompts at once, so they share the text encoder's batches).
    pub async fn label_vectors(&self, engine: &Engine) -> Result<Arc<LabelVectors>> {
        let cached = self
            .inner
            .labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(labels) = cached.filter(|labels| labels.model_id == engine.model_id()) {
            return Ok(labels);
        }
        let labels = Arc::new(LabelVectors::encode(&self.inner.vocabularies, engine).await?);
        *self.inner.labels.lock().unwrap_or_else(PoisonError::into_inner) = Some(labels.clone());
        Ok(labels)
    }

    /// Computes and stores a file's suggestions from its pooled vector.
    pub async fn suggest(&self, engine: &Engine, file_id: &str, file_vector: &[f32]) -> Result<()> {
        if self.inner.vocabularies.is_empty() {
            return Ok(());
        }
        let labels = self.label_vectors(engine).await?;
        let reviewed = self.inner.store.reviewed_suggestions(file_id).await?;
        let all = all_probabilities(&self.inner.vocabularies, &labels, file_vector);
        let stored = suggestions(&self.inner.vocabularies, &labels, file_vector, &reviewed);
        let reviewed_updates: Vec<SuggestedTag> = all
            .iter()
            .flat_map(|(vocabulary, probabilities)| {
                vocabulary
                    .labels
                    .iter()
                    .zip(probabilities)
                    .map(|(label, &probability)| SuggestedTag {
                        vocabulary: vocabulary.name.clone(),
                        label: label.clone(),
                        probability,
                        model_id: labels.model_id.clone(),
                    })
            })
            .collect();
        self.inner
            .store
            .put_suggested_tags(file_id, &labels.key, &stored, &reviewed_updates)
            .await
    }

    /// Recomputes the suggestions of every file embedded by `engine`'s model
    /// whose suggestions were made with another model or vocabulary (or
    /// never). Returns how many files it updated.
    pub async fn refresh_stale(&self, engine: &Engine) -> Result<usize> {
        if self.inner.vocabularies.is_empty() {
            return Ok(0);
        }
        let labels = self.label_vectors(engine).await?;
        let mut after = String::new();
        let mut updated = 0;
        loop {
            let batch = self
                .inner
                .store
                .files_with_stale_suggestions(&labels.model_id, &labels.key, &after, REFRESH_BATCH)
                .await?;
            let Some((last, _)) = batch.last() else {
                return Ok(updated);
            };
            after = last.clone();
            for (file_id, vector) in batch {
                self.suggest(engine, &file_id, &vector).await?;
                updated += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Arc<Vec<f32>> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Arc::new(v.iter().map(|x| x / norm).collect())
    }

    #[test]
    fn probabilities_are_the_softmax_of_scaled_cosines() {
        let labels = [unit(&[1.0, 0.0]), unit(&[0.0, 1.0]), unit(&[1.0, 1.0])];
        let file = [1.0, 0.0];
        let got = probabilities(10.0, &labels, &file);
        let logits = [10.0, 0.0, 10.0 / 2f64.sqrt()];
        let sum: f64 = logits.iter().map(|l: &f64| l.exp()).sum();
        // The label vectors are f32, so the cosines agree to about 1e-7.
        for (p, l) in got.iter().zip(logits) {
            assert!((p - l.exp() / sum).abs() < 1e-6, "{got:?}");
        }
        assert!((got.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // A large scale must not overflow.
        let peaked = probabilities(1e6, &labels, &file);
        assert!((peaked[0] - 1.0).abs() < 1e-9, "{peaked:?}");
    }

    #[test]
    fn only_the_best_labels_above_the_threshold_are_kept() {
        let vocabularies = Vocabularies::from_toml(
            "[[vocabulary]]\nname = \"a\"\nlabels = [\"x\", \"y\", \"z\"]\nthreshold = 0.3\nmax_labels = 2\n\
             [[vocabulary]]\nname = \"b\"\nlabels = [\"p\", \"q\"]\nthreshold = 0.99",
        )
        .expect("valid");
        let labels = LabelVectors {
            model_id: "m".into(),
            key: vocabularies.suggestions_key("m"),
            scale: 5.0,
            vectors: vec![
                vec![unit(&[1.0, 0.0]), unit(&[0.9, 0.1]), unit(&[0.0, 1.0])],
                vec![unit(&[1.0, 0.0]), unit(&[0.0, 1.0])],
            ],
        };
        let got = suggestions(&vocabularies, &labels, &[1.0, 0.0], &[]);
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|s| (s.vocabulary.as_str(), s.label.as_str()))
            .collect();
        // x and y are close and both above 0.3; z is far below; b's best,
        // p (≈ 0.993), passes 0.99.
        assert_eq!(names, [("a", "x"), ("a", "y"), ("b", "p")], "{got:?}");
        assert!(got[0].probability > got[1].probability);
        assert!(got.iter().all(|s| s.model_id == "m"));
        // A label the user decided on leaves room for the next best.
        let reviewed = [("a".to_owned(), "x".to_owned())];
        let got = suggestions(&vocabularies, &labels, &[1.0, 0.0], &reviewed);
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|s| (s.vocabulary.as_str(), s.label.as_str()))
            .collect();
        assert_eq!(names, [("a", "y"), ("b", "p")], "{got:?}");
    }
}
