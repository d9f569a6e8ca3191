//! The indexes over a library's life: deleted files never come back,
//! uploads wait for a missing model, a library processed without one is
//! backfilled, and the saved vector index survives restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use traum_proto::v1 as pb;

use super::{Library, QUERY, expected, ids_for, items, text_request};
use crate::both_backends;
use crate::support::{
    Backend, TestEnv, search_status, vector_entries, wait_search_serving, wav, with_fixture_model,
};

async fn a_deleted_file_is_never_returned_again(backend: Backend) {
    let library = Library::open(backend).await;
    let expected = expected().await;
    let server = &library.server;
    let windows: usize = expected.vectors.values().map(|v| v.windows.len() + 1).sum();
    server
        .audio()
        .delete_file(pb::DeleteFileRequest {
            file_id: library.id("sine_1000.wav"),
        })
        .await
        .unwrap();
    let after = ids_for(server, pb::SearchFilters::default()).await;
    assert_eq!(after.len(), items().len() - 1);
    assert!(!after.contains(&library.id("sine_1000.wav")));
    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let vector_index = stats.indexes.iter().find(|i| i.name == "vectors").unwrap();
    assert_eq!(
        vector_index.entries,
        (windows - expected.vectors["sine_1000.wav"].windows.len() - 1) as u64
    );
    library.close().await;
}
both_backends!(a_deleted_file_is_never_returned_again);

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
