//! Zero-shot tags end to end: the stored probabilities are the softmax of
//! the checkpoint's logit scale times the cosines between each file's vector
//! and the label prompts' vectors, computed here directly with the fixture
//! model; the threshold, filters, facets, the user's verdicts and the
//! recomputation after a vocabulary change all follow from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use traum_proto::v1 as pb;
use traum_server::commands::{EvalTagsArgs, eval_tags};
use traum_server::embed::{Engine, ModelSettings};

use super::{embed_bytes, items};
use crate::both_backends;
use crate::support::{
    Backend, TestEnv, TestServer, fixture_model_dir, wait_search_serving, with_fixture_model,
};

const GENRES: [&str; 4] = ["techno", "ambient", "jazz", "drum and bass"];
const KINDS: [&str; 2] = ["loop", "one-shot"];

/// `exp(logit_scale_a)` read from the checkpoint itself.
fn checkpoint_scale() -> f64 {
    let bytes = std::fs::read(fixture_model_dir().join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor("logit_scale_a").unwrap();
    let raw: [u8; 4] = view.data().try_into().unwrap();
    f64::from(f32::from_le_bytes(raw)).exp()
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// A label and its prompt's vector.
type LabelVector = (String, Arc<Vec<f32>>);

/// Per file name, per vocabulary, each label's expected probability.
type Expected = HashMap<&'static str, BTreeMap<&'static str, Vec<(String, f64)>>>;

async fn expected_probabilities(genre_template: &str, genres: &[&str]) -> Expected {
    let settings = ModelSettings {
        source: None,
        hub: Default::default(),
        batch_size: 4,
        threads: 1,
        precision: Default::default(),
        text: Default::default(),
    };
    let engine = Arc::new(Engine::start(&fixture_model_dir(), &settings).unwrap());
    let scale = checkpoint_scale();
    let mut prompts: BTreeMap<&'static str, Vec<LabelVector>> = BTreeMap::new();
    for (vocabulary, template, labels) in [
        ("genre", genre_template, genres),
        ("kind", "This is a sound of {label}.", &KINDS[..]),
    ] {
        let mut vectors = Vec::new();
        for label in labels {
            let text = template.replace("{label}", label);
            vectors.push((label.to_string(), engine.embed_text(&text).await.unwrap()));
        }
        prompts.insert(vocabulary, vectors);
    }
    let mut expected = HashMap::new();
    for item in items() {
        let file = embed_bytes(&engine, &item.data).await.file;
        let mut per_vocabulary = BTreeMap::new();
        for (vocabulary, labels) in &prompts {
            let logits: Vec<f64> = labels
                .iter()
                .map(|(_, v)| {
                    scale
                        * v.iter()
                            .zip(&file)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum::<f64>()
                })
                .collect();
            let probabilities = softmax(&logits);
            per_vocabulary.insert(
                *vocabulary,
                labels.iter().map(|(l, _)| l.clone()).zip(probabilities).collect(),
            );
        }
        expected.insert(item.name, per_vocabulary);
    }
    expected
}

/// What the server should store for one file and vocabulary: the best
/// `max_labels` reaching `threshold`, best first.
fn stored(probabilities: &[(String, f64)], threshold: f64, max_labels: usize) -> Vec<(String, f64)> {
    let mut ranked = probabilities.to_vec();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .take(max_labels)
        .filter(|(_, p)| *p >= threshold)
        .collect()
}

fn vocabulary_file(
    dir: &Path,
    genre_template: &str,
    genres: &[&str],
    kind_threshold: f64,
) -> std::path::PathBuf {
    let quoted = |labels: &[&str]| {
        labels
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[[vocabulary]]\nname = \"genre\"\nlabels = [{}]\ntemplate = {genre_template:?}\nthreshold = 0.01\nmax_labels = 4\n\n\
         [[vocabulary]]\nname = \"kind\"\nlabels = [{}]\nthreshold = {kind_threshold}\nmax_labels = 1\n",
        quoted(genres),
        quoted(&KINDS),
    );
    let path = dir.join("vocabulary.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A threshold between the files' best `kind` probabilities, so some
/// files pass it and some do not.
fn splitting_threshold(expected: &Expected) -> f64 {
    let mut best: Vec<f64> = expected
        .values()
        .map(|v| v["kind"].iter().map(|(_, p)| *p).fold(0.0, f64::max))
        .collect();
    best.sort_by(f64::total_cmp);
    let (low, high) = (best[1], best[best.len() - 2]);
    assert!(
        high - low > 1e-4,
        "the fixture's kind probabilities are too close to split: {best:?}"
    );
    (low + high) / 2.0
}

async fn open(env: &TestEnv, vocabulary: &Path) -> TestServer {
    let vocabularies = traum_server::zero_shot::Vocabularies::from_file(vocabulary).unwrap();
    let server = env
        .start_with(|config| {
            with_fixture_model(config);
            config.tag_vocabularies = vocabularies;
        })
        .await;
    wait_search_serving(&server).await;
    server
}

fn check_stored(file: &pb::File, expected: &BTreeMap<&str, Vec<(String, f64)>>, kind_threshold: f64) {
    let mut want: Vec<(String, String, f64)> = Vec::new();
    for (vocabulary, (threshold, max_labels)) in [("genre", (0.01, 4)), ("kind", (kind_threshold, 1))] {
        for (label, p) in stored(&expected[vocabulary], threshold, max_labels) {
            want.push((vocabulary.to_owned(), label, p));
        }
    }
    let got: Vec<(String, String, f64)> = file
        .suggested_tags
        .iter()
        .map(|s| (s.vocabulary.clone(), s.label.clone(), s.probability))
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{}: got {got:?}, want {want:?}",
        file.filename
    );
    for ((gv, gl, gp), (wv, wl, wp)) in got.iter().zip(&want) {
        assert_eq!(
            (gv, gl),
            (wv, wl),
            "{}: got {got:?}, want {want:?}",
            file.filename
        );
        assert!((gp - wp).abs() <= 1e-5, "{}: {gl} {gp} vs {wp}", file.filename);
    }
    let model_id = traum_server::embed::weights_id(&fixture_model_dir()).unwrap();
    assert!(
        file.suggested_tags.iter().all(|s| s.model_id == model_id),
        "{file:?}"
    );
}

async fn suggestions_filters_facets_and_verdicts(backend: Backend) {
    let template = "This is a sound of {label}.";
    let expected = expected_probabilities(template, &GENRES).await;
    let kind_threshold = splitting_threshold(&expected);
    let env = TestEnv::new(backend).await;
    let vocabulary = vocabulary_file(env.dir.path(), template, &GENRES, kind_threshold);
    let server = open(&env, &vocabulary).await;
    let mut names = HashMap::new();
    for item in items() {
        let file = server.upload_and_process(item.name, item.tags, &item.data).await;
        names.insert(file.file_id.clone(), item.name);
    }
    let mut audio = server.audio();
    let mut by_name = HashMap::new();
    for (id, name) in &names {
        let file = audio
            .get_file(pb::GetFileRequest { file_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        check_stored(&file, &expected[name], kind_threshold);
        by_name.insert(*name, file);
    }

    // Filters admit exactly the files whose stored suggestions hold a label.
    let top_genre = |name: &str| stored(&expected[name]["genre"], 0.01, 1)[0].0.clone();
    let genre = top_genre("warm_pad.wav");
    let carrying = |vocabulary: &str, label: &str| -> BTreeSet<String> {
        by_name
            .values()
            .filter(|f| {
                f.suggested_tags
                    .iter()
                    .any(|s| s.vocabulary == vocabulary && s.label == label)
            })
            .map(|f| f.file_id.clone())
            .collect()
    };
    let condition = |vocabulary: &str, labels: &[&str]| pb::SuggestedTagFilter {
        vocabulary: vocabulary.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    let listed: BTreeSet<String> = audio
        .list_files(pb::ListFilesRequest {
            suggested: vec![condition("genre", &[&genre])],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .files
        .into_iter()
        .map(|f| f.file_id)
        .collect();
    assert_eq!(listed, carrying("genre", &genre));
    let loops = carrying("kind", "loop");
    let one_shots = carrying("kind", "one-shot");
    assert!(
        loops.len() + one_shots.len() < names.len(),
        "the threshold keeps some files unsuggested"
    );
    assert!(
        !(loops.is_empty() && one_shots.is_empty()),
        "the threshold lets some files through"
    );
    let search = |filters: pb::SearchFilters, facets: &[&str]| pb::SearchByTextRequest {
        query: "a steady groove".into(),
        filters: Some(filters),
        options: Some(pb::SearchOptions {
            limit: 50,
            facet_vocabularies: facets.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        }),
    };
    let response = server
        .search()
        .search_by_text(search(
            pb::SearchFilters {
                suggested: vec![condition("kind", &["loop", "one-shot"])],
                ..Default::default()
            },
            &["kind", "genre"],
        ))
        .await
        .unwrap()
        .into_inner();
    let hits: BTreeSet<String> = response
        .hits
        .iter()
        .map(|h| h.file.clone().unwrap().file_id)
        .collect();
    let kinded: BTreeSet<String> = loops.union(&one_shots).cloned().collect();
    assert_eq!(hits, kinded);
    for hit in &response.hits {
        let summary = hit.file.as_ref().unwrap();
        assert_eq!(
            summary.suggested_tags,
            by_name[names[&summary.file_id]].suggested_tags
        );
    }
    // Facets count the filtered files per label, in the server's vocabulary order.
    let facet_names: Vec<&str> = response.facets.iter().map(|f| f.vocabulary.as_str()).collect();
    assert_eq!(facet_names, ["genre", "kind"]);
    for facet in &response.facets {
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for id in &kinded {
            for s in &by_name[names[id]].suggested_tags {
                if s.vocabulary == facet.vocabulary {
                    *want.entry(s.label.clone()).or_default() += 1;
                }
            }
        }
        let got: BTreeMap<String, u64> = facet.counts.iter().map(|c| (c.label.clone(), c.files)).collect();
        assert_eq!(got, want, "facet {}", facet.vocabulary);
        let counts: Vec<u64> = facet.counts.iter().map(|c| c.files).collect();
        assert!(
            counts.windows(2).all(|w| w[0] >= w[1]),
            "most files first: {counts:?}"
        );
    }

    // Unknown vocabularies and empty conditions name the field.
    let status = server
        .search()
        .search_by_text(search(
            pb::SearchFilters {
                suggested: vec![condition("colour", &["red"])],
                ..Default::default()
            },
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("genre, kind"), "{status:?}");
    let field = status.get_error_details().bad_request().unwrap().field_violations[0]
        .field
        .clone();
    assert_eq!(field, "filters.suggested.0.vocabulary");
    let status = server
        .search()
        .search_by_text(search(Default::default(), &["colour"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = audio
        .list_files(pb::ListFilesRequest {
            suggested: vec![condition("genre", &[])],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.get_error_details().bad_request().unwrap().field_violations[0].field,
        "suggested.0.labels"
    );

    // Accepting makes the label an ordinary tag; rejecting hides it for good.
    let pad = &by_name["warm_pad.wav"];
    let review = |label: &str, verdict: pb::TagVerdict| pb::ReviewSuggestedTagRequest {
        file_id: pad.file_id.clone(),
        vocabulary: "genre".into(),
        label: label.into(),
        verdict: verdict as i32,
    };
    let genres: Vec<String> = pad
        .suggested_tags
        .iter()
        .filter(|s| s.vocabulary == "genre")
        .map(|s| s.label.clone())
        .collect();
    assert!(genres.len() >= 2, "{genres:?}");
    let (accepted, rejected) = (&genres[0], &genres[1]);
    let after = audio
        .review_suggested_tag(review(accepted, pb::TagVerdict::Accept))
        .await
        .unwrap()
        .into_inner();
    assert!(after.tags.contains(accepted), "{after:?}");
    assert!(!after.suggested_tags.iter().any(|s| &s.label == accepted));
    let after = audio
        .review_suggested_tag(review(rejected, pb::TagVerdict::Reject))
        .await
        .unwrap()
        .into_inner();
    assert!(!after.suggested_tags.iter().any(|s| &s.label == rejected));
    assert!(!after.tags.contains(rejected));
    let matching = |label: &str| pb::ListFilesRequest {
        suggested: vec![condition("genre", &[label])],
        ..Default::default()
    };
    let ids = |files: Vec<pb::File>| files.into_iter().map(|f| f.file_id).collect::<BTreeSet<_>>();
    let accepted_files = ids(audio
        .list_files(matching(accepted))
        .await
        .unwrap()
        .into_inner()
        .files);
    assert!(
        accepted_files.contains(&pad.file_id),
        "an accepted suggestion still counts"
    );
    let rejected_files = ids(audio
        .list_files(matching(rejected))
        .await
        .unwrap()
        .into_inner()
        .files);
    assert!(
        !rejected_files.contains(&pad.file_id),
        "a rejected suggestion never counts"
    );
    let tagged = ids(audio
        .list_files(pb::ListFilesRequest {
            tags: vec![accepted.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .files);
    assert!(tagged.contains(&pad.file_id));
    let status = audio
        .review_suggested_tag(review("polka", pb::TagVerdict::Accept))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = audio
        .review_suggested_tag(review(accepted, pb::TagVerdict::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    server.stop().await;

    // A new vocabulary is recomputed at the next start; the verdicts hold.
    let template = "The music genre is {label}.";
    let genres: Vec<&str> = GENRES.iter().copied().chain(["reggae"]).collect();
    let expected = expected_probabilities(template, &genres).await;
    let kind_threshold = splitting_threshold(&expected);
    let vocabulary = vocabulary_file(env.dir.path(), template, &genres, kind_threshold);
    let server = open(&env, &vocabulary).await;
    let mut audio = server.audio();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (id, name) in &names {
        loop {
            let file = audio
                .get_file(pb::GetFileRequest { file_id: id.clone() })
                .await
                .unwrap()
                .into_inner();
            let mut want = expected[name].clone();
            if id == &pad.file_id {
                want.get_mut("genre")
                    .unwrap()
                    .retain(|(l, _)| l != accepted && l != rejected);
            }
            let recomputed = file
                .suggested_tags
                .iter()
                .filter(|s| s.vocabulary == "genre")
                .count()
                == stored(&want["genre"], 0.01, 4).len()
                && file.suggested_tags.iter().all(|s| {
                    want[s.vocabulary.as_str()]
                        .iter()
                        .any(|(l, p)| l == &s.label && (p - s.probability).abs() <= 1e-5)
                });
            if recomputed {
                check_stored(&file, &want, kind_threshold);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} was not recomputed: {:?}",
                file.suggested_tags
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    server.stop().await;
    env.finish().await;
}
both_backends!(suggestions_filters_facets_and_verdicts);

/// `traum-server eval-tags` ranks each file's true label as the vectors do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_tags_reports_accuracy_per_vocabulary() {
    let template = "This is a sound of {label}.";
    let expected = expected_probabilities(template, &GENRES).await;
    let dir = tempfile::tempdir().unwrap();
    let vocabulary = vocabulary_file(dir.path(), template, &GENRES, 0.5);
    let root = dir.path().join("labelled");
    let labelled = [
        ("genre", "techno", "KickDrum_Hard-01.wav"),
        ("genre", "ambient", "warm_pad.wav"),
        ("genre", "jazz", "sine_440.wav"),
        ("kind", "loop", "KickDrum_Hard-01.wav"),
        ("kind", "one-shot", "tone.flac"),
    ];
    for (vocabulary, label, name) in labelled {
        let folder = root.join(vocabulary).join(label);
        std::fs::create_dir_all(&folder).unwrap();
        let item = items().into_iter().find(|i| i.name == name).unwrap();
        std::fs::write(folder.join(name), &item.data).unwrap();
    }
    let args = EvalTagsArgs {
        dir: root.clone(),
        model_dir: Some(fixture_model_dir()),
        model: String::new(),
        model_cache_dir: dir.path().join("models"),
        tag_vocabulary: Some(vocabulary.clone()),
        json: true,
    };
    let report = tokio::task::spawn_blocking(move || eval_tags(&args))
        .await
        .unwrap()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let mut top1: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (vocabulary, label, name) in labelled {
        let mut ranked = expected[name][vocabulary].clone();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let entry = top1.entry(vocabulary).or_default();
        entry.0 += 1;
        entry.1 += usize::from(ranked[0].0 == label);
        let file = report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["vocabulary"] == vocabulary
                    && f["path"].as_str().unwrap().ends_with(&format!("{label}/{name}"))
            })
            .unwrap();
        let rank = ranked.iter().position(|(l, _)| l == label).unwrap() + 1;
        assert_eq!(file["rank"], rank, "{vocabulary}/{label}/{name}");
    }
    for summary in report["vocabularies"].as_array().unwrap() {
        let (files, hits) = top1[summary["vocabulary"].as_str().unwrap()];
        assert_eq!(summary["files"], files);
        let accuracy = summary["top1_accuracy"].as_f64().unwrap();
        assert!((accuracy - hits as f64 / files as f64).abs() < 1e-12, "{summary}");
    }

    // A folder that is not a vocabulary is refused with what exists.
    std::fs::create_dir_all(root.join("colour").join("red")).unwrap();
    let args = EvalTagsArgs {
        dir: root,
        model_dir: Some(fixture_model_dir()),
        model: String::new(),
        model_cache_dir: dir.path().join("models"),
        tag_vocabulary: Some(vocabulary),
        json: false,
    };
    let err = eval_tags(&args).unwrap_err();
    assert!(err.contains("colour") && err.contains("genre, kind"), "{err}");
}

/// The pipeline's suggestions and the background recomputation may write
/// one file's suggestions at the same moment; on PostgreSQL both used to
/// find no pending row and insert the same labels, and one failed on the
/// primary key. Many writers at once must all succeed and leave one set.
async fn concurrent_suggestion_writers_leave_one_set(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let file = server
        .upload_and_process("pad.wav", &[], &crate::support::wav(1.0, 22_050, 1, 220.0))
        .await;
    let store = traum_server::store::Store::connect(&env.db.url)
        .await
        .expect("store");
    let tag = |label: &str, probability: f64| traum_server::domain::SuggestedTag {
        vocabulary: "genre".into(),
        label: label.into(),
        probability,
        model_id: "m".into(),
    };
    let suggested = vec![tag("ambient", 0.6), tag("techno", 0.3)];
    // Rounds, so later ones meet on connections the pool already holds.
    for round in 0..10 {
        let writers = (0..8).map(|n| {
            let (store, file_id, suggested) = (store.clone(), file.file_id.clone(), suggested.clone());
            tokio::spawn(async move {
                store
                    .put_suggested_tags(&file_id, &format!("key-{round}-{n}"), &suggested, &suggested)
                    .await
            })
        });
        for written in futures::future::join_all(writers).await {
            written.expect("writer task").expect("every writer succeeds");
        }
    }
    let stored = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .expect("get file")
        .into_inner()
        .suggested_tags;
    let labels: Vec<&str> = stored.iter().map(|tag| tag.label.as_str()).collect();
    assert_eq!(labels, ["ambient", "techno"]);
    server.stop().await;
    env.finish().await;
}

both_backends!(concurrent_suggestion_writers_leave_one_set);
