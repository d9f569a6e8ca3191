//! Label vocabularies for zero-shot tags: the defaults shipped with the
//! server and the TOML file that replaces them (`--tag-vocabulary`).

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::validate;

/// LAION's zero-shot prompt form; `{label}` is replaced by each label.
pub const DEFAULT_TEMPLATE: &str = "This is a sound of {label}.";
/// Smallest probability a stored suggestion has, by default.
pub const DEFAULT_THRESHOLD: f64 = 0.15;
/// Most suggestions stored per file and vocabulary, by default.
pub const DEFAULT_MAX_LABELS: usize = 3;
/// Longest vocabulary name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Most labels one vocabulary may hold; each costs one text-encoder run per model.
const MAX_LABELS: usize = 256;

const GENRES: &[&str] = &[
    "techno",
    "house",
    "drum and bass",
    "dubstep",
    "hip hop",
    "trap",
    "ambient",
    "rock",
    "jazz",
    "classical",
    "orchestral",
    "cinematic",
    "pop",
    "funk",
    "soul",
    "reggae",
    "metal",
    "folk",
    "disco",
    "blues",
];
const INSTRUMENTS: &[&str] = &[
    "kick",
    "snare",
    "hi-hat",
    "cymbal",
    "percussion",
    "drums",
    "bass",
    "synth",
    "pad",
    "piano",
    "organ",
    "guitar",
    "strings",
    "brass",
    "woodwind",
    "vocals",
    "speech",
];
const MOODS: &[&str] = &[
    "dark",
    "bright",
    "warm",
    "aggressive",
    "calm",
    "happy",
    "sad",
    "tense",
    "uplifting",
    "dreamy",
];
const KINDS: &[&str] = &[
    "one-shot",
    "loop",
    "full track",
    "speech",
    "sound effect",
    "ambience",
];

/// One set of mutually exclusive labels: probabilities are a softmax over
/// its labels, so each vocabulary answers one question ("which genre?").
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    pub name: String,
    /// Normalised like tags, so an accepted suggestion is an ordinary tag.
    pub labels: Vec<String>,
    /// Holds `{label}` once.
    pub template: String,
    /// Suggestions below this probability are not stored.
    pub threshold: f64,
    pub max_labels: usize,
}

impl Vocabulary {
    /// The text the encoder sees for `label`.
    pub fn prompt(&self, label: &str) -> String {
        self.template.replace("{label}", label)
    }
}

/// Every vocabulary the server suggests labels from, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabularies(Vec<Vocabulary>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyFile {
    #[serde(default)]
    vocabulary: Vec<VocabularyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyEntry {
    name: String,
    labels: Vec<String>,
    template: Option<String>,
    threshold: Option<f64>,
    max_labels: Option<usize>,
}

impl Default for Vocabularies {
    fn default() -> Self {
        let entry = |name: &str, labels: &[&str]| Vocabulary {
            name: name.to_owned(),
            labels: labels.iter().map(|&label| label.to_owned()).collect(),
            template: DEFAULT_TEMPLATE.to_owned(),
            threshold: DEFAULT_THRESHOLD,
            max_labels: DEFAULT_MAX_LABELS,
        };
        Self(vec![
            entry("genre", GENRES),
            entry("instrument", INSTRUMENTS),
            entry("mood", MOODS),
            entry("kind", KINDS),
        ])
    }
}

impl Vocabularies {
    /// Reads and checks a vocabulary file; it replaces the defaults entirely.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read tag vocabulary file {}: {err}", path.display()))?;
        Self::from_toml(&text).map_err(|err| format!("tag vocabulary file {}: {err}", path.display()))
    }

    /// Parses and checks vocabularies written as TOML `[[vocabulary]]` tables.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: VocabularyFile = toml::from_str(text).map_err(|err| err.to_string())?;
        let mut names = HashSet::new();
        let mut vocabularies = Vec::with_capacity(file.vocabulary.len());
        for entry in file.vocabulary {
            let vocabulary = checked(entry)?;
            if !names.insert(vocabulary.name.clone()) {
                return Err(format!("vocabulary `{}` is defined twice", vocabulary.name));
            }
            vocabularies.push(vocabulary);
        }
        Ok(Self(vocabularies))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Vocabulary> {
        self.0.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Vocabulary> {
        self.0.iter().find(|v| v.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Refuses a vocabulary name the server does not have, listing those it has.
    pub fn check_known(&self, field: &str, name: &str) -> crate::error::Result<()> {
        if self.get(name).is_some() {
            return Ok(());
        }
        let known: Vec<&str> = self.0.iter().map(|v| v.name.as_str()).collect();
        Err(crate::error::Error::invalid_field(
            field,
            if known.is_empty() {
                format!("unknown vocabulary `{name}`: this server has no tag vocabularies")
            } else {
                format!(
                    "unknown vocabulary `{name}`; this server has {}",
                    known.join(", ")
                )
            },
        ))
    }

    /// Identifies what suggestions computed with `model_id` depend on: a
    /// file whose stored key differs is computed again.
    pub fn suggestions_key(&self, model_id: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(model_id.as_bytes());
        for vocabulary in &self.0 {
            // Lengths before contents keep ("ab","c") and ("a","bc") apart.
            for part in [&vocabulary.name, &vocabulary.template] {
                digest.update((part.len() as u64).to_le_bytes());
                digest.update(part.as_bytes());
            }
            digest.update(vocabulary.threshold.to_le_bytes());
            digest.update((vocabulary.max_labels as u64).to_le_bytes());
            digest.update((vocabulary.labels.len() as u64).to_le_bytes());
            for label in &vocabulary.labels {
                digest.update((label.len() as u64).to_le_bytes());
                digest.update(label.as_bytes());
            }
        }
        hex::encode(digest.finalize())
    }
}

fn checked(entry: VocabularyEntry) -> Result<Vocabulary, String> {
    let name = entry.name.trim().to_lowercase();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "a vocabulary name must be 1 to {MAX_NAME_CHARS} characters (got {:?})",
            entry.name
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(format!(
            "vocabulary name `{name}` may hold only letters, digits, `_` and `-`"
        ));
    }
    if entry.labels.len() < 2 || entry.labels.len() > MAX_LABELS {
        return Err(format!(
            "vocabulary `{name}` has {} labels; it needs 2 to {MAX_LABELS}, since probabilities are shared among them",
            entry.labels.len()
        ));
    }
    let mut labels = Vec::with_capacity(entry.labels.len());
    for raw in &entry.labels {
        let label = validate::tag(raw).map_err(|err| format!("vocabulary `{name}`: {err}"))?;
        if labels.contains(&label) {
            return Err(format!("vocabulary `{name}` lists `{label}` twice"));
        }
        labels.push(label);
    }
    let template = entry.template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
    if template.matches("{label}").count() != 1 {
        return Err(format!(
            "vocabulary `{name}`: the template must hold `{{label}}` exactly once (got {template:?})"
        ));
    }
    let threshold = entry.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(format!(
            "vocabulary `{name}`: threshold must be above 0 and at most 1 (got {threshold})"
        ));
    }
    let max_labels = entry.max_labels.unwrap_or(DEFAULT_MAX_LABELS);
    if max_labels == 0 {
        return Err(format!("vocabulary `{name}`: max_labels must be at least 1"));
    }
    Ok(Vocabulary {
        name,
        labels,
        template,
        threshold,
        max_labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_replaces_the_defaults_and_fills_gaps_with_default_settings() {
        let vocabularies = Vocabularies::from_toml(
            r#"
            [[vocabulary]]
            name = "Texture"
            labels = ["Grainy", "smooth"]
            [[vocabulary]]
            name = "era"
            labels = ["70s", "80s", "90s"]
            template = "Music from the {label}."
            threshold = 0.4
            max_labels = 1
            "#,
        )
        .expect("valid vocabulary file");
        let names: Vec<&str> = vocabularies.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["texture", "era"]);
        let texture = vocabularies.get("texture").expect("texture");
        assert_eq!(texture.labels, ["grainy", "smooth"]);
        assert_eq!(texture.prompt("grainy"), "This is a sound of grainy.");
        assert_eq!(
            (texture.threshold, texture.max_labels),
            (DEFAULT_THRESHOLD, DEFAULT_MAX_LABELS)
        );
        let era = vocabularies.get("era").expect("era");
        assert_eq!(era.prompt("80s"), "Music from the 80s.");
        assert_eq!((era.threshold, era.max_labels), (0.4, 1));
    }

    #[test]
    fn bad_vocabularies_are_refused_with_the_rule_broken() {
        let cases = [
            ("[[vocabulary]]\nname = \"a\"\nlabels = [\"x\"]", "needs 2 to 256"),
            (
                "[[vocabulary]]\nname = \"a\"\nlabels = [\"x\", \"X\"]",
                "lists `x` twice",
            ),
            (
                "[[vocabulary]]\nname = \"a b\"\nlabels = [\"x\", \"y\"]",
                "only letters",
            ),
            (
                "[[vocabulary]]\nname = \"a\"\nlabels = [\"x\", \"y\"]\ntemplate = \"no slot\"",
                "exactly once",
            ),
            (
                "[[vocabulary]]\nname = \"a\"\nlabels = [\"x\", \"y\"]\nthreshold = 0",
                "threshold must be above 0",
            ),
            (
                "[[vocabulary]]\nname = \"a\"\nlabels = [\"x\", \"y\"]\n[[vocabulary]]\nname = \"A\"\nlabels = [\"x\", \"y\"]",
                "defined twice",
            ),
            (
                "[[vocabulary]]\nname = \"a\"\nlabels = [\"x\", \"\"]",
                "must not be empty",
            ),
            ("[[vocab]]\nname = \"a\"", "unknown field"),
        ];
        for (text, expected) in cases {
            let err = Vocabularies::from_toml(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn the_key_changes_with_the_model_and_every_setting() {
        let defaults = Vocabularies::default();
        let key = defaults.suggestions_key("m1");
        assert_eq!(key, Vocabularies::default().suggestions_key("m1"));
        assert_ne!(key, defaults.suggestions_key("m2"));
        let mut changed = defaults.clone();
        changed.0[0].threshold = 0.5;
        assert_ne!(key, changed.suggestions_key("m1"));
        let mut relabelled = defaults.clone();
        relabelled.0[1].labels.push("theremin".into());
        assert_ne!(key, relabelled.suggestions_key("m1"));
        for vocabulary in defaults.iter() {
            for label in &vocabulary.labels {
                assert_eq!(&validate::tag(label).expect("default labels are tags"), label);
            }
        }
    }
}
