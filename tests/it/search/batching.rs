//! Text queries under concurrency: new queries arriving together share one
//! forward pass of the text encoder, identical ones in flight share one run,
//! the answers equal one-at-a-time encoding, and the text cache outlives a
//! restart.

use std::sync::Arc;
use std::time::Duration;

use traum_proto::v1 as pb;
use traum_server::embed::{Engine, ModelSettings, TextSettings, text_cache_path, weights_id};

use super::{Library, text_request};
use crate::support::{Backend, fixture_model_dir, with_fixture_model};

/// Lengths from one word to past the 77-token truncation.
fn texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "kick",
        "snare roll",
        "a dog barking in the rain",
        "warm analog pad with a slow attack",
        "distorted 808 bass line at 140 bpm with sidechain pumping",
        "field recording of a busy train station, announcements and footsteps",
        "bright plucked synth arpeggio",
        "vinyl crackle",
    ]
    .map(str::to_owned)
    .into();
    texts.push("bells and wind ".repeat(60));
    texts
}

fn engine(text: TextSettings) -> Arc<Engine> {
    let settings = ModelSettings {
        source: None,
        hub: Default::default(),
        batch_size: 4,
        threads: 1,
        precision: Default::default(),
        text,
    };
    Arc::new(Engine::start(&fixture_model_dir(), &settings).unwrap())
}

/// No batching, no cache: each query alone through the encoder.
fn one_at_a_time() -> TextSettings {
    TextSettings {
        batch_size: 1,
        batch_wait: Duration::ZERO,
        cache_entries: 0,
        cache_dir: None,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_text_queries_equal_sequential_ones_and_share_runs() {
    let texts = texts();
    let sequential = engine(one_at_a_time());
    let mut expected = Vec::new();
    for text in &texts {
        expected.push(sequential.embed_text(text).await.unwrap());
    }
    assert_eq!(sequential.text_encoder_runs(), texts.len() as u64);
    assert_eq!(sequential.text_encoder_passes(), texts.len() as u64);

    let batched = engine(TextSettings {
        batch_size: 8,
        batch_wait: Duration::from_millis(20),
        cache_entries: 4096,
        cache_dir: None,
    });
    // Every text three times, interleaved, all at once; the duplicates also
    // differ in white space, which the cache key ignores.
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..3 {
        for (i, text) in texts.iter().enumerate() {
            let engine = batched.clone();
            let text = if round == 1 {
                format!("  {}  ", text.replace(' ', "   "))
            } else {
                text.clone()
            };
            tasks.spawn(async move { (i, engine.embed_text(&text).await) });
        }
    }
    let mut answers = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, vector) = joined.unwrap();
        let vector = vector.unwrap();
        let diff = max_abs_diff(&vector, &expected[i]);
        assert!(
            diff <= 1e-6,
            "{:?}: batched differs from alone by {diff}",
            texts[i]
        );
        answers += 1;
    }
    assert_eq!(answers, 3 * texts.len());
    // A query is encoded only when it is neither cached nor in flight, and a
    // finished run moves into the cache under the same lock that ends its
    // flight: each distinct text ran exactly once, however the 27 calls
    // interleaved. How many passes they took depends on timing.
    assert_eq!(batched.text_encoder_runs(), texts.len() as u64);
    assert!(batched.text_encoder_passes() <= batched.text_encoder_runs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_answers_cached_queries_without_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let settings = TextSettings {
        cache_dir: Some(dir.path().to_owned()),
        ..TextSettings::default()
    };
    let first = engine(settings.clone());
    let mut vectors = Vec::new();
    for text in texts() {
        vectors.push(first.embed_text(&text).await.unwrap());
    }
    assert_eq!(first.text_encoder_runs(), texts().len() as u64);
    drop(first);

    let path = text_cache_path(dir.path(), &weights_id(&fixture_model_dir()).unwrap());
    assert!(path.is_file(), "{} was not written", path.display());
    let again = engine(settings.clone());
    for (text, vector) in texts().iter().zip(&vectors) {
        assert_eq!(&again.embed_text(text).await.unwrap(), vector, "{text:?}");
    }
    assert_eq!(again.text_encoder_runs(), 0, "every query came from the file");
    again.embed_text("a query never seen before").await.unwrap();
    assert_eq!(again.text_encoder_runs(), 1);
    drop(again);

    // The bound holds across restarts too: with room for two, only the two
    // newest survive.
    let small = engine(TextSettings {
        cache_entries: 2,
        ..settings
    });
    small.embed_text("a query never seen before").await.unwrap();
    small.embed_text(&texts()[texts().len() - 1]).await.unwrap();
    assert_eq!(small.text_encoder_runs(), 0);
    small.embed_text(&texts()[0]).await.unwrap();
    assert_eq!(small.text_encoder_runs(), 1, "the oldest entries were dropped");
}

async fn hits(library: &Library, text: &str) -> Vec<(String, f64)> {
    library
        .server
        .search()
        .search_by_text(text_request(text, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner()
        .hits
        .into_iter()
        .map(|hit| (hit.file.unwrap().file_id, hit.score))
        .collect()
}

fn assert_same_hits(text: &str, got: &[(String, f64)], expected: &[(String, f64)]) {
    let ids = |hits: &[(String, f64)]| hits.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(expected), "{text:?}");
    for ((_, a), (_, b)) in got.iter().zip(expected) {
        assert!((a - b).abs() <= 1e-5, "{text:?}: score {a} vs {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_searches_rank_as_sequential_ones_and_the_cache_survives_a_restart() {
    let mut library = Library::open(Backend::Sqlite).await;
    let texts = texts();
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..2 {
        for (i, text) in texts.iter().enumerate() {
            let mut client = library.server.search();
            let text = text.clone();
            tasks.spawn(async move {
                let response = client
                    .search_by_text(text_request(&text, pb::SearchFilters::default(), 10))
                    .await
                    .unwrap()
                    .into_inner();
                let hits: Vec<(String, f64)> = response
                    .hits
                    .into_iter()
                    .map(|hit| (hit.file.unwrap().file_id, hit.score))
                    .collect();
                (round, i, hits)
            });
        }
    }
    let mut concurrent = vec![Vec::new(); texts.len()];
    while let Some(joined) = tasks.join_next().await {
        let (_, i, hits) = joined.unwrap();
        concurrent[i].push(hits);
    }
    let model_id = weights_id(&fixture_model_dir()).unwrap();
    let cache_file = text_cache_path(&library.server.data_dir.join("cache"), &model_id);
    library.server.stop().await;
    assert!(cache_file.is_file(), "{} was not written", cache_file.display());

    // The same library served one query at a time without any cache.
    library.server = library
        .env
        .start_with(|config| {
            with_fixture_model(config);
            config.text_batch_size = 1;
            config.text_batch_wait = Duration::ZERO;
            config.text_cache_entries = 0;
        })
        .await;
    super::wait_search_serving(&library.server).await;
    let mut sequential = Vec::new();
    for (text, runs) in texts.iter().zip(&concurrent) {
        let expected = hits(&library, text).await;
        assert!(!expected.is_empty());
        for got in runs {
            assert_same_hits(text, got, &expected);
        }
        sequential.push(expected);
    }
    library.server.stop().await;

    // With the cache back on, the restarted server reads the file the first
    // one wrote and ranks the same.
    library.server = library.env.start_with(with_fixture_model).await;
    super::wait_search_serving(&library.server).await;
    for (text, expected) in texts.iter().zip(&sequential) {
        assert_same_hits(text, &hits(&library, text).await, expected);
    }
    library.close().await;
}
