//! `GetStats` and `GetUsage` figures match what the test did.

use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, wav};

async fn stats_and_usage_match_activity(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let first = wav(1.0, 22_050, 1, 300.0);
    let second = wav(2.0, 22_050, 1, 400.0);
    let a = server.upload_and_process("a.wav", &[], &first).await;
    server
        .upload_and_process("b.flac", &[], &crate::support::fixture("tone.flac"))
        .await;
    server.upload_and_process("c.wav", &[], &second).await;
    let duplicate = server.upload("a-again.wav", &[], &first).await.unwrap();
    assert!(duplicate.duplicate);
    let mut audio = server.audio();
    for _ in 0..3 {
        audio
            .get_file(pb::GetFileRequest {
                file_id: a.file_id.clone(),
            })
            .await
            .unwrap();
    }
    audio
        .get_file(pb::GetFileRequest {
            file_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();

    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.file_count, 3);
    assert_eq!(stats.blob_count, 3);
    let flac_len = crate::support::fixture("tone.flac").len() as u64;
    assert_eq!(
        stats.stored_bytes,
        first.len() as u64 + second.len() as u64 + flac_len
    );
    assert!(
        (stats.total_duration_seconds - 4.5).abs() < 0.01,
        "{}",
        stats.total_duration_seconds
    );
    let count =
        |list: &[pb::NamedCount], name: &str| list.iter().find(|c| c.name == name).map_or(0, |c| c.count);
    assert_eq!(count(&stats.files_by_format, "AUDIO_FORMAT_WAV"), 2);
    assert_eq!(count(&stats.files_by_format, "AUDIO_FORMAT_FLAC"), 1);
    assert_eq!(count(&stats.jobs_by_state, "JOB_STATE_SUCCEEDED"), 3);
    assert_eq!(count(&stats.jobs_by_state, "JOB_STATE_FAILED"), 0);
    assert_eq!(stats.model_status, pb::ModelStatus::NotConfigured as i32);
    assert_eq!(stats.version, env!("CARGO_PKG_VERSION"));
    assert!(stats.uptime.is_some());

    let usage = server
        .analytics()
        .get_usage(pb::GetUsageRequest {
            window: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            bucket: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let rpc = |method: &str| {
        usage
            .rpcs
            .iter()
            .find(|r| r.method == format!("/traum.v1.AudioService/{method}"))
            .cloned()
    };
    let get_file = rpc("GetFile").expect("GetFile recorded");
    // 3 from upload_and_process, 3 direct, 1 not found.
    assert_eq!(get_file.calls, 7);
    assert_eq!(get_file.errors, 1);
    assert_eq!(rpc("UploadAudio").unwrap().calls, 4);
    assert_eq!(rpc("WatchJob").unwrap().calls, 3);
    assert_eq!(usage.uploads, 4);
    assert_eq!(usage.buckets.len(), 60);
    let bucket_calls: u64 = usage.buckets.iter().map(|b| b.calls).sum();
    let rpc_calls: u64 = usage.rpcs.iter().map(|r| r.calls).sum();
    assert_eq!(bucket_calls, rpc_calls);
    let bucket_bytes: u64 = usage.buckets.iter().map(|b| b.uploaded_bytes).sum();
    assert_eq!(
        bucket_bytes,
        2 * first.len() as u64 + second.len() as u64 + flac_len
    );
    assert_eq!(usage.search_count, 0);
    // GetStats was recorded too, GetUsage itself is still in flight.
    assert_eq!(
        usage
            .rpcs
            .iter()
            .find(|r| r.method.ends_with("/GetStats"))
            .unwrap()
            .calls,
        1
    );

    let err = server
        .analytics()
        .get_usage(pb::GetUsageRequest {
            window: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            bucket: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1000,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    server.stop().await;
    env.finish().await;
}
both_backends!(stats_and_usage_match_activity);
