//! Health, reflection, metrics, search without a model, restart
//! recovery and graceful shutdown.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, files_under, wav};

async fn health_reports_each_service(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut health = HealthClient::new(server.channel());
    for (service, expected) in [
        ("", ServingStatus::Serving),
        ("traum.v1.AudioService", ServingStatus::Serving),
        ("traum.v1.AnalyticsService", ServingStatus::Serving),
        ("traum.v1.SearchService", ServingStatus::NotServing),
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, expected as i32, "health of `{service}`");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let err = server
        .search()
        .search_by_text(pb::SearchByTextRequest {
            query: "warm pad".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("search is not ready"), "{}", err.message());
    // Completion needs no model: it serves from the keyword index.
    let suggestions = server
        .search()
        .suggest(pb::SuggestRequest {
            prefix: "dr".into(),
            limit: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(suggestions.suggestions.is_empty());
    server.stop().await;
    env.finish().await;
}
both_backends!(health_reports_each_service);

async fn reflection_lists_exactly_our_services(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let expected: BTreeSet<String> = [
        "grpc.health.v1.Health",
        "traum.v1.AdminService",
        "traum.v1.AnalyticsService",
        "traum.v1.AudioService",
        "traum.v1.SearchService",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();

    use tonic_reflection::pb::v1 as r1;
    let mut client = r1::server_reflection_client::ServerReflectionClient::new(server.channel());
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection response");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(names, expected);

    use tonic_reflection::pb::v1alpha as ra;
    let mut client = ra::server_reflection_client::ServerReflectionClient::new(server.channel());
    let request = ra::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(ra::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(ra::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection response");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(names, expected);
    server.stop().await;
    env.finish().await;
}
both_backends!(reflection_lists_exactly_our_services);

async fn metrics_expose_rpc_figures(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let file = server
        .upload_and_process("m.wav", &[], &wav(0.5, 22_050, 1, 123.0))
        .await;
    let mut audio = server.audio();
    audio
        .get_file(pb::GetFileRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .unwrap();
    audio
        .get_file(pb::GetFileRequest {
            file_id: "bad".into(),
        })
        .await
        .unwrap_err();
    let text = server.metrics_text().await;
    let has = |needle: &str| text.lines().any(|line| line.contains(needle));
    assert!(
        has(r#"traum_grpc_requests_total{method="/traum.v1.AudioService/GetFile",code="0"}"#),
        "{text}"
    );
    assert!(
        has(r#"traum_grpc_requests_total{method="/traum.v1.AudioService/GetFile",code="3"}"#),
        "{text}"
    );
    assert!(
        has(r#"traum_grpc_request_duration_seconds_bucket{method="/traum.v1.AudioService/UploadAudio""#),
        "{text}"
    );
    assert!(
        has(r#"traum_grpc_requests_total{method="/traum.v1.AudioService/WatchJob",code="0"}"#),
        "{text}"
    );
    assert!(has("traum_upload_bytes_total"), "{text}");
    assert!(
        has(r#"traum_job_stage_duration_seconds_bucket{stage="probe""#),
        "{text}"
    );
    assert!(has("traum_job_queue_depth"), "{text}");
    assert!(has("traum_uploads_in_flight"), "{text}");
    server.stop().await;
    env.finish().await;
}
both_backends!(metrics_expose_rpc_figures);

async fn interrupted_job_resumes_after_restart(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let data = wav(1.0, 48_000, 2, 345.0);
    let file = server.upload_and_process("crash.wav", &[], &data).await;
    server.stop().await;

    // Put the database and data dir in the state a kill -9 during the probe
    // stage leaves behind: the job `running`, the file unprobed, a torn temp
    // file from an upload in flight.
    let db = Database::connect(&env.db.url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE jobs SET state = 'running', stage = 'probe', progress = 0.5, finished_at = NULL WHERE id = '{}'",
        file.latest_job_id
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE files SET state = 'processing', duration_seconds = NULL, sample_rate_hz = NULL, channels = NULL \
         WHERE id = '{}'",
        file.file_id
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    std::fs::write(env.config().data_dir.join("tmp").join("torn.part"), b"partial").unwrap();

    let server = env.start().await;
    let events = server.watch_to_end(&file.latest_job_id).await;
    let job = events.last().unwrap().job.clone().unwrap();
    assert_eq!(job.state, pb::JobState::Succeeded as i32, "{}", job.error);
    assert_eq!(job.attempts, 2, "the job ran a second time");
    let again = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: file.file_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state, pb::FileState::Ready as i32);
    assert_eq!(again.properties.unwrap().channels, 2);
    assert!(files_under(&server.data_dir.join("tmp")).is_empty());
    server.stop().await;
    env.finish().await;
}
both_backends!(interrupted_job_resumes_after_restart);

async fn shutdown_ends_streams_and_returns(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env
        .start_with(|config| config.shutdown_grace = Duration::from_secs(5))
        .await;
    // A resumable session survives the restart.
    let session = server
        .audio()
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "later.wav".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let data = wav(0.5, 22_050, 1, 432.0);
    server
        .audio()
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id.clone(),
            offset: 0,
            data: data[..1000].to_vec().into(),
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );

    let server = env.start().await;
    let mut audio = server.audio();
    let state = audio
        .get_upload(pb::GetUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.received_bytes, 1000);
    audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id.clone(),
            offset: 1000,
            data: data[1000..].to_vec().into(),
        })
        .await
        .unwrap();
    let result = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result.sha256, crate::support::sha256_hex(&data));
    server.stop().await;
    env.finish().await;
}
both_backends!(shutdown_ends_streams_and_returns);

async fn migrations_roll_back_and_forward(backend: Backend) {
    use traum_migration::{Migrator, MigratorTrait};
    let env = TestEnv::new(backend).await;
    // SQLite keeps its file in the data dir, which the server would create.
    std::fs::create_dir_all(env.config().data_dir).unwrap();
    let db = Database::connect(&env.db.url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let applied = Migrator::get_applied_migrations(&db).await.unwrap().len();
    assert_eq!(applied, Migrator::migrations().len());
    // Every migration's `down` undoes its `up`: all the way down and up again.
    Migrator::down(&db, None).await.unwrap();
    assert!(Migrator::get_applied_migrations(&db).await.unwrap().is_empty());
    let tables = [
        "files",
        "jobs",
        "blobs",
        "uploads",
        "usage_events",
        "file_tags",
        "embeddings",
        "waveforms",
        "collections",
        "collection_files",
    ];
    for table in tables {
        let probe = db.execute_unprepared(&format!("SELECT 1 FROM {table}")).await;
        assert!(probe.is_err(), "table {table} survived the down migration");
    }
    Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
    // The server starts on the re-created schema.
    let server = env.start().await;
    server
        .upload_and_process("after.wav", &[], &wav(0.3, 22_050, 1, 222.0))
        .await;
    server.stop().await;
    env.finish().await;
}
both_backends!(migrations_roll_back_and_forward);

async fn expired_upload_sessions_are_cleaned_up(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut audio = server.audio();
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "abandoned.wav".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id.clone(),
            offset: 0,
            data: wav(0.2, 22_050, 1, 510.0).into(),
        })
        .await
        .unwrap();
    assert_eq!(
        files_under(&server.data_dir.join("blobs").join(".uploads")).len(),
        1
    );
    server.stop().await;

    // The session's time runs out while the server is down: its expiry moves
    // back to its creation, a moment ago (one statement for both databases).
    let db = Database::connect(&env.db.url).await.unwrap();
    db.execute_unprepared(&format!(
        "UPDATE uploads SET expires_at = created_at WHERE id = '{}'",
        session.upload_id
    ))
    .await
    .unwrap();
    db.close().await.unwrap();

    let server = env.start().await;
    let err = server
        .audio()
        .get_upload(pb::GetUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The janitor runs at start: the row and the partial file are gone.
    let mut clean = false;
    for _ in 0..100 {
        if files_under(&server.data_dir.join("blobs").join(".uploads")).is_empty() {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(clean, "expired session file left behind");
    let err = server
        .audio()
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id,
            offset: 0,
            data: vec![1u8; 10].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    server.stop().await;
    env.finish().await;
}
both_backends!(expired_upload_sessions_are_cleaned_up);
