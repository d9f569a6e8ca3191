//! Search end to end with the tiny fixture CLAP model: files are uploaded,
//! embedded by the pipeline and searched through gRPC; scores and order are
//! checked against vectors computed directly with the same model.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use traum_proto::v1 as pb;
use traum_server::audio::decode::{DecodeOptions, decode_to_vec};
use traum_server::embed::{Engine, ModelSettings};
use traum_server::model::FileEmbeddings;

use crate::both_backends;
use crate::support::{
    Backend, TestEnv, TestServer, a_minor_chord, drum_loop, fixture, fixture_model_dir, wav,
    with_fixture_model,
};

const QUERY: &str = "a dog barking in the rain";

async fn search_status(server: &TestServer) -> i32 {
    HealthClient::new(server.channel())
        .check(HealthCheckRequest {
            service: "traum.v1.SearchService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn wait_search_serving(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while search_status(server).await != ServingStatus::Serving as i32 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "search never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fixture_engine() -> Arc<Engine> {
    let settings = ModelSettings {
        source: None,
        hub: Default::default(),
        batch_size: 4,
        threads: 1,
    };
    Arc::new(Engine::start(&fixture_model_dir(), &settings).unwrap())
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

struct Item {
    name: &'static str,
    tags: &'static [&'static str],
    data: Vec<u8>,
}

async fn search_end_to_end(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start_with(with_fixture_model).await;
    wait_search_serving(&server).await;
    let items = vec![
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
    ];
    let mut files = HashMap::new();
    for item in &items {
        let file = server.upload_and_process(item.name, item.tags, &item.data).await;
        files.insert(item.name, file);
    }
    let id = |name: &str| files[name].file_id.clone();
    let name_of: HashMap<String, &str> = files.iter().map(|(n, f)| (f.file_id.clone(), *n)).collect();

    let engine = fixture_engine();
    let mut vectors = HashMap::new();
    for item in &items {
        vectors.insert(item.name, embed_bytes(&engine, &item.data).await);
    }
    let query = engine.embed_text(QUERY).await.unwrap();

    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.model_status,
        pb::ModelStatus::Ready as i32,
        "{}",
        stats.model_message
    );
    let windows: usize = vectors.values().map(|v| v.windows.len() + 1).sum();
    let vector_index = stats.indexes.iter().find(|i| i.name == "vectors").unwrap();
    assert_eq!(vector_index.entries, windows as u64);
    assert!(vector_index.ready);
    // A handful of vectors: scoring them all beats any graph walk.
    assert!(
        vector_index.search_mode.starts_with("exact scan"),
        "{}",
        vector_index.search_mode
    );

    // Text search: every file, ordered by the best cosine over its vectors.
    let response = server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.hits.len(), items.len());
    assert!(response.next_page_token.is_empty());
    let mut expected: Vec<(&str, f64, (f64, f64))> = items
        .iter()
        .map(|item| {
            let (cos, segment) = expected_match(&vectors[item.name], &query);
            (item.name, cos, segment)
        })
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (hit, (name, cos, segment)) in response.hits.iter().zip(&expected) {
        let file = hit.file.as_ref().unwrap();
        assert_eq!(file.filename, *name, "rank of {name}");
        assert!((hit.cosine - cos).abs() < 1e-4, "{name}: {} vs {cos}", hit.cosine);
        assert_eq!(
            hit.score, hit.cosine,
            "no keyword weight: the score is the cosine"
        );
        assert_eq!(
            (hit.segment_start_seconds, hit.segment_end_seconds),
            *segment,
            "{name}"
        );
    }
    let kick = response
        .hits
        .iter()
        .find(|h| h.file.as_ref().unwrap().filename == "KickDrum_Hard-01.wav")
        .unwrap();
    let summary = kick.file.as_ref().unwrap();
    assert_eq!(summary.tags, vec!["drums", "kick"]);
    assert!((summary.duration_seconds - 22.0).abs() < 0.01);

    // Pages: limit 2 walks the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .search()
            .search_by_text(pb::SearchByTextRequest {
                query: QUERY.into(),
                filters: None,
                options: Some(pb::SearchOptions {
                    limit: 2,
                    page_token: token.clone(),
                    keyword_weight: 0.0,
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.hits.len() <= 2);
        paged.extend(page.hits.into_iter().map(|h| h.file.unwrap().filename));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let full: Vec<String> = response
        .hits
        .iter()
        .map(|h| h.file.clone().unwrap().filename)
        .collect();
    assert_eq!(paged, full);

    // Filters are exact: each returns exactly the qualifying files.
    let by_names = |names: &[&str]| names.iter().map(|n| id(n)).collect::<BTreeSet<_>>();
    let tones = by_names(&["sine_440.wav", "sine_1000.wav", "tone.flac"]);
    let filters = pb::SearchFilters {
        tags_all: vec!["tone".into()],
        ..Default::default()
    };
    assert_eq!(ids_for(&server, filters).await, tones);
    let filters = pb::SearchFilters {
        tags_none: vec!["tone".into()],
        ..Default::default()
    };
    assert_eq!(
        ids_for(&server, filters).await,
        by_names(&["KickDrum_Hard-01.wav", "warm_pad.wav"])
    );
    let filters = pb::SearchFilters {
        tags_any: vec!["pad".into(), "flac".into()],
        ..Default::default()
    };
    assert_eq!(
        ids_for(&server, filters).await,
        by_names(&["warm_pad.wav", "tone.flac"])
    );
    let filters = pb::SearchFilters {
        formats: vec![pb::AudioFormat::Flac as i32],
        ..Default::default()
    };
    assert_eq!(ids_for(&server, filters).await, by_names(&["tone.flac"]));
    let filters = pb::SearchFilters {
        min_duration_seconds: Some(5.0),
        ..Default::default()
    };
    assert_eq!(
        ids_for(&server, filters).await,
        by_names(&["KickDrum_Hard-01.wav", "warm_pad.wav"])
    );
    let filters = pb::SearchFilters {
        keywords: "kick".into(),
        ..Default::default()
    };
    assert_eq!(
        ids_for(&server, filters).await,
        by_names(&["KickDrum_Hard-01.wav"])
    );
    let filters = pb::SearchFilters {
        keywords: "sine".into(),
        max_duration_seconds: Some(3.5),
        ..Default::default()
    };
    assert_eq!(ids_for(&server, filters).await, by_names(&["sine_440.wav"]));
    let in_range: BTreeSet<String> = files
        .values()
        .filter(|f| {
            f.descriptors
                .as_ref()
                .and_then(|d| d.bpm)
                .is_some_and(|bpm| (100.0..=140.0).contains(&bpm))
        })
        .map(|f| f.file_id.clone())
        .collect();
    assert!(
        in_range.contains(&id("KickDrum_Hard-01.wav")),
        "the drum loop has a tempo"
    );
    let filters = pb::SearchFilters {
        min_bpm: Some(100.0),
        max_bpm: Some(140.0),
        ..Default::default()
    };
    assert_eq!(ids_for(&server, filters).await, in_range);
    let third = expected[2].1;
    let filters = pb::SearchFilters {
        min_score: Some(third - 1e-6),
        ..Default::default()
    };
    assert_eq!(ids_for(&server, filters).await.len(), 3);

    // Hybrid: the keyword score lifts the file whose name matches.
    let hybrid = server
        .search()
        .search_by_text(pb::SearchByTextRequest {
            query: "kick drum".into(),
            filters: None,
            options: Some(pb::SearchOptions {
                limit: 10,
                page_token: String::new(),
                keyword_weight: 0.9,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let top = &hybrid.hits[0];
    assert_eq!(top.file.as_ref().unwrap().filename, "KickDrum_Hard-01.wav");
    assert!((top.score - (0.1 * top.cosine + 0.9)).abs() < 1e-9, "{top:?}");
    for hit in &hybrid.hits[1..] {
        assert!((hit.score - 0.1 * hit.cosine).abs() < 1e-9, "{hit:?}");
    }

    // Similar to a stored file: the file itself is left out.
    let drum = &vectors["KickDrum_Hard-01.wav"];
    let window = drum.windows.iter().find(|w| w.start_seconds == 10.0).unwrap();
    // The whole file, then a time range of it: the window covering 10–20 s.
    for (range, query) in [
        ((None, None), &drum.file),
        ((Some(10.0), Some(20.0)), &window.vector),
    ] {
        let similar = server
            .search()
            .search_similar(pb::SearchSimilarRequest {
                file_id: id("KickDrum_Hard-01.wav"),
                start_seconds: range.0,
                end_seconds: range.1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(similar.hits.len(), items.len() - 1, "{range:?}");
        for hit in &similar.hits {
            let name = name_of[&hit.file.as_ref().unwrap().file_id];
            let (cos, _) = expected_match(&vectors[name], query);
            assert!(
                (hit.cosine - cos).abs() < 1e-4,
                "{range:?} {name}: {} vs {cos}",
                hit.cosine
            );
        }
    }
    let err = server
        .search()
        .search_similar(pb::SearchSimilarRequest {
            file_id: id("KickDrum_Hard-01.wav"),
            start_seconds: Some(100.0),
            end_seconds: Some(120.0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // An example clip finds its own file first, unary and streamed.
    let clip = items
        .iter()
        .find(|i| i.name == "sine_440.wav")
        .unwrap()
        .data
        .clone();
    let by_clip = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: clip.clone().into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_clip.hits[0].file.as_ref().unwrap().filename, "sine_440.wav");
    assert!(by_clip.hits[0].cosine > 0.9999, "{}", by_clip.hits[0].cosine);
    let mut messages = vec![pb::SearchByAudioRequest {
        payload: Some(pb::search_by_audio_request::Payload::Header(
            pb::SearchByAudioHeader {
                filters: Some(pb::SearchFilters {
                    tags_all: vec!["tone".into()],
                    ..Default::default()
                }),
                options: None,
            },
        )),
    }];
    for chunk in clip.chunks(16 * 1024) {
        messages.push(pb::SearchByAudioRequest {
            payload: Some(pb::search_by_audio_request::Payload::Chunk(chunk.to_vec().into())),
        });
    }
    let streamed = server
        .search()
        .search_by_audio(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let streamed_ids: BTreeSet<String> = streamed
        .hits
        .iter()
        .map(|h| h.file.clone().unwrap().file_id)
        .collect();
    assert_eq!(streamed_ids, tones);
    assert_eq!(streamed.hits[0].file.as_ref().unwrap().filename, "sine_440.wav");
    let err = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: b"definitely not audio".to_vec().into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Suggest completes tags, filename words and past queries.
    let suggestions = server
        .search()
        .suggest(pb::SuggestRequest {
            prefix: "ki".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    let kick = suggestions
        .iter()
        .find(|s| s.text == "kick")
        .expect("kick suggested");
    assert_eq!(kick.source, pb::SuggestionSource::Tag as i32);
    assert_eq!(kick.count, 1);
    let suggestions = server
        .search()
        .suggest(pb::SuggestRequest {
            prefix: "a dog".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    let past = suggestions
        .iter()
        .find(|s| s.text == QUERY)
        .expect("past query suggested");
    assert_eq!(past.source, pb::SuggestionSource::Query as i32);
    assert!(past.count >= 3, "{past:?}");

    // Searches are recorded for GetUsage.
    let usage = server
        .analytics()
        .get_usage(pb::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(usage.search_count >= 10, "{}", usage.search_count);

    // A deleted file is never returned again.
    server
        .audio()
        .delete_file(pb::DeleteFileRequest {
            file_id: id("sine_1000.wav"),
        })
        .await
        .unwrap();
    let after = ids_for(&server, pb::SearchFilters::default()).await;
    assert_eq!(after.len(), items.len() - 1);
    assert!(!after.contains(&id("sine_1000.wav")));
    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let vector_index = stats.indexes.iter().find(|i| i.name == "vectors").unwrap();
    assert_eq!(
        vector_index.entries,
        (windows - vectors["sine_1000.wav"].windows.len() - 1) as u64
    );

    // Bad requests name the problem.
    let bad = [
        text_request("", pb::SearchFilters::default(), 10),
        text_request(
            QUERY,
            pb::SearchFilters {
                min_bpm: Some(140.0),
                max_bpm: Some(100.0),
                ..Default::default()
            },
            10,
        ),
        text_request(QUERY, pb::SearchFilters::default(), 1000),
        pb::SearchByTextRequest {
            query: QUERY.into(),
            filters: None,
            options: Some(pb::SearchOptions {
                keyword_weight: 1.5,
                ..Default::default()
            }),
        },
        text_request(
            QUERY,
            pb::SearchFilters {
                keys: vec![pb::MusicalKey {
                    pitch_class: 12,
                    mode: pb::KeyMode::Major as i32,
                }],
                ..Default::default()
            },
            10,
        ),
    ];
    for request in bad {
        let err = server.search().search_by_text(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{request:?}: {err:?}");
    }
    let err = server
        .search()
        .search_similar(pb::SearchSimilarRequest {
            file_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    server.stop().await;
    env.finish().await;
}
both_backends!(search_end_to_end);

/// Without the model the server still stores and analyses uploads; the
/// embedding waits, says why, and finishes once the model is there.
async fn jobs_wait_for_a_missing_model(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let empty = env.dir.path().join("empty-model-dir");
    std::fs::create_dir_all(&empty).unwrap();
    let server = env.start_with(|c| c.model_dir = Some(empty.clone())).await;
    let uploaded = server
        .upload("waiting.wav", &["later"], &wav(2.0, 48_000, 1, 330.0))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = server
            .audio()
            .get_job(pb::GetJobRequest {
                job_id: uploaded.job_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if job.stage == pb::JobStage::Embed as i32 && job.state == pb::JobState::Queued as i32 {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never parked: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        job.message.contains("waiting for the embedding model"),
        "{}",
        job.message
    );
    assert!(job.message.contains("--model-dir"), "{}", job.message);
    let file = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: uploaded.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(file.state, pb::FileState::Processing as i32);
    assert!(file.descriptors.is_some(), "analysed while waiting");
    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.model_status, pb::ModelStatus::Unavailable as i32);
    assert!(stats.model_message.contains("model.safetensors") || stats.model_message.contains("config.json"));
    assert_eq!(search_status(&server).await, ServingStatus::NotServing as i32);
    let err = server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("not ready"), "{}", err.message());
    server.stop().await;

    let server = env.start_with(with_fixture_model).await;
    let events = server.watch_to_end(&uploaded.job_id).await;
    let last = events.last().and_then(|e| e.job.clone()).unwrap();
    assert_eq!(last.state, pb::JobState::Succeeded as i32, "{}", last.error);
    wait_search_serving(&server).await;
    let hits = ids_for(&server, pb::SearchFilters::default()).await;
    assert_eq!(hits, BTreeSet::from([uploaded.file_id.clone()]));
    server.stop().await;
    env.finish().await;
}
both_backends!(jobs_wait_for_a_missing_model);

/// Files processed while no model was configured are embedded once one is.
async fn a_library_without_vectors_is_backfilled(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let file = server
        .upload_and_process("early.wav", &[], &wav(2.0, 48_000, 1, 550.0))
        .await;
    assert_eq!(file.state, pb::FileState::Ready as i32);
    server.stop().await;
    let server = env.start_with(with_fixture_model).await;
    wait_search_serving(&server).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if ids_for(&server, pb::SearchFilters::default())
            .await
            .contains(&file.file_id)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never embedded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
    env.finish().await;
}
both_backends!(a_library_without_vectors_is_backfilled);

async fn vector_entries(server: &TestServer) -> u64 {
    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    stats
        .indexes
        .iter()
        .find(|i| i.name == "vectors")
        .unwrap()
        .entries
}

/// The saved index gives a fast start, is checked against the database
/// (rows gone since the save are dropped), and a corrupt save is rebuilt.
async fn vector_index_survives_restarts(backend: Backend) {
    use sea_orm::{ConnectionTrait, Database};

    let env = TestEnv::new(backend).await;
    let server = env.start_with(with_fixture_model).await;
    wait_search_serving(&server).await;
    let keep = server
        .upload_and_process("keep.wav", &[], &wav(12.0, 48_000, 1, 220.0))
        .await;
    let lose = server
        .upload_and_process("lose.wav", &[], &wav(3.0, 48_000, 1, 880.0))
        .await;
    let before = server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vector_entries(&server).await, 3 + 2);
    let data_dir = server.data_dir.clone();
    server.stop().await;
    let manifest = data_dir.join("index/vectors/manifest.json");
    assert!(manifest.is_file(), "the index is saved at shutdown");

    let server = env.start_with(with_fixture_model).await;
    wait_search_serving(&server).await;
    let after = server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.hits.len(), before.hits.len());
    for (a, b) in after.hits.iter().zip(&before.hits) {
        assert_eq!(a.file, b.file);
        assert!((a.cosine - b.cosine).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    server.stop().await;

    // Rows removed behind the saved copy's back must not come back.
    let db = Database::connect(&env.db.url).await.unwrap();
    db.execute_unprepared(&format!(
        "DELETE FROM embeddings WHERE file_id = '{}'",
        lose.file_id
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE files SET state = 'failed' WHERE id = '{}'",
        lose.file_id
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let server = env.start_with(with_fixture_model).await;
    wait_search_serving(&server).await;
    assert_eq!(vector_entries(&server).await, 3);
    let ids = ids_for(&server, pb::SearchFilters::default()).await;
    assert_eq!(ids, BTreeSet::from([keep.file_id.clone()]));
    server.stop().await;

    // A corrupt save is rebuilt from the database.
    std::fs::write(&manifest, b"{ not json").unwrap();
    let server = env.start_with(with_fixture_model).await;
    wait_search_serving(&server).await;
    assert_eq!(vector_entries(&server).await, 3);
    assert_eq!(
        ids_for(&server, pb::SearchFilters::default()).await,
        BTreeSet::from([keep.file_id.clone()])
    );
    server.stop().await;
    env.finish().await;
}
both_backends!(vector_index_survives_restarts);
