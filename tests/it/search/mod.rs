//! Search end to end with the tiny fixture CLAP model: files are uploaded,
//! embedded by the pipeline and searched through gRPC; scores and order are
//! checked against vectors computed directly with the same model. One file
//! per behaviour; each scenario builds its own library of five files.

mod batching;
mod examples;
mod filters;
mod lifecycle;
mod ranking;
mod requests;
mod suggest;
mod tags;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use traum_audio::{DecodeOptions, decode_to_vec};
use traum_proto::v1 as pb;
use traum_server::domain::FileEmbeddings;
use traum_server::embed::{Engine, ModelSettings};

use crate::support::{
    Backend, TestEnv, TestServer, a_minor_chord, drum_loop, fixture, fixture_model_dir, wait_search_serving,
    wav, with_fixture_model,
};

const QUERY: &str = "a dog barking in the rain";

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// The best cosine over a file's vectors, and the best window's range.
fn expected_match(file: &FileEmbeddings, query: &[f32]) -> (f64, (f64, f64)) {
    let mut best = dot(&file.file, query);
    let mut segment = (0.0, 0.0);
    let mut best_window = f64::NEG_INFINITY;
    for window in &file.windows {
        let cos = dot(&window.vector, query);
        best = best.max(cos);
        if cos > best_window {
            best_window = cos;
            segment = (window.start_seconds, window.end_seconds);
        }
    }
    (best, segment)
}

fn text_request(query: &str, filters: pb::SearchFilters, limit: u32) -> pb::SearchByTextRequest {
    pb::SearchByTextRequest {
        query: query.into(),
        filters: Some(filters),
        options: Some(pb::SearchOptions {
            limit,
            ..Default::default()
        }),
    }
}

async fn ids_for(server: &TestServer, filters: pb::SearchFilters) -> BTreeSet<String> {
    let hits = server
        .search()
        .search_by_text(text_request(QUERY, filters, 50))
        .await
        .unwrap()
        .into_inner()
        .hits;
    hits.into_iter().map(|h| h.file.unwrap().file_id).collect()
}

/// One file of the test library.
struct Item {
    name: &'static str,
    tags: &'static [&'static str],
    data: Vec<u8>,
}

fn items() -> Vec<Item> {
    vec![
        Item {
            name: "KickDrum_Hard-01.wav",
            tags: &["drums", "kick"],
            data: drum_loop(120.0, 22.0, 48_000),
        },
        Item {
            name: "warm_pad.wav",
            tags: &["pad"],
            data: a_minor_chord(6.0, 48_000),
        },
        Item {
            name: "sine_440.wav",
            tags: &["tone"],
            data: wav(3.0, 48_000, 1, 440.0),
        },
        Item {
            name: "sine_1000.wav",
            tags: &["tone"],
            data: wav(4.0, 44_100, 2, 1000.0),
        },
        Item {
            name: "tone.flac",
            tags: &["tone", "flac"],
            data: fixture("tone.flac"),
        },
    ]
}

/// What the fixture model computes directly for the library and the query.
struct Expected {
    vectors: HashMap<&'static str, FileEmbeddings>,
    query: Arc<Vec<f32>>,
}

/// Computed once per test binary: the model is deterministic.
async fn expected() -> &'static Expected {
    static EXPECTED: OnceCell<Expected> = OnceCell::const_new();
    EXPECTED
        .get_or_init(|| async {
            let settings = ModelSettings {
                source: None,
                hub: Default::default(),
                batch_size: 4,
                threads: 1,
                precision: Default::default(),
                text: Default::default(),
            };
            let engine = Arc::new(Engine::start(&fixture_model_dir(), &settings).unwrap());
            let mut vectors = HashMap::new();
            for item in items() {
                vectors.insert(item.name, embed_bytes(&engine, &item.data).await);
            }
            let query = engine.embed_text(QUERY).await.unwrap();
            Expected { vectors, query }
        })
        .await
}

async fn embed_bytes(engine: &Arc<Engine>, data: &[u8]) -> FileEmbeddings {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip");
    std::fs::write(&path, data).unwrap();
    let options = DecodeOptions {
        max_duration: Duration::from_secs(600),
        format_hint: None,
    };
    let (samples, _) = decode_to_vec(&path, &options, |_| {}).unwrap();
    engine.embed_audio(Arc::new(samples), |_| {}).await.unwrap()
}

/// A server with the fixture model and the five files of [`items`],
/// uploaded and processed.
struct Library {
    env: TestEnv,
    server: TestServer,
    files: HashMap<&'static str, pb::File>,
}

impl Library {
    async fn open(backend: Backend) -> Self {
        Self::open_with(backend, |_| {}).await
    }

    /// [`Library::open`] on a server whose config `adjust` changes further.
    async fn open_with(backend: Backend, adjust: impl FnOnce(&mut traum_server::Config)) -> Self {
        let env = TestEnv::new(backend).await;
        let server = env
            .start_with(|config| {
                with_fixture_model(config);
                adjust(config);
            })
            .await;
        wait_search_serving(&server).await;
        let mut files = HashMap::new();
        for item in items() {
            let file = server.upload_and_process(item.name, item.tags, &item.data).await;
            files.insert(item.name, file);
        }
        Self { env, server, files }
    }

    fn id(&self, name: &str) -> String {
        self.files[name].file_id.clone()
    }

    fn ids(&self, names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| self.id(name)).collect()
    }

    fn name_of(&self, file_id: &str) -> &'static str {
        self.files
            .iter()
            .find(|(_, file)| file.file_id == file_id)
            .map(|(name, _)| *name)
            .unwrap()
    }

    async fn close(self) {
        self.server.stop().await;
        self.env.finish().await;
    }
}
