//! The web port, as a browser uses it: gRPC-Web straight to traum-server
//! (no proxy) for uploads, job progress and reads, and a file's audio over
//! HTTP with the byte ranges an `<audio>` element sends while seeking.

use std::time::Duration;

use futures::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use traum_proto::v1 as pb;
use traum_proto::v1::analytics_service_client::AnalyticsServiceClient;
use traum_proto::v1::audio_service_client::AudioServiceClient;

use crate::both_backends;
use crate::support::{
    Backend, TestEnv, TestServer, free_port, origin, resumable_upload, sha256_hex, wav, web_channel,
};

async fn start(env: &TestEnv) -> TestServer {
    env.start_with(|config| config.web_listen = Some(free_port()))
        .await
}

async fn grpc_web_reaches_every_service_without_a_proxy(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = start(&env).await;
    let web = origin(server.web_addr.unwrap());
    let mut audio = AudioServiceClient::with_origin(web_channel(), web.clone());
    let data = wav(1.0, 44_100, 1, 440.0);
    let (_, _, result) = resumable_upload(&mut audio, "browser.wav", &["Web"], &data, 30_000).await;
    assert_eq!(result.sha256, sha256_hex(&data));

    // Server streaming: every event, the terminal one last.
    let mut events = audio
        .watch_job(pb::WatchJobRequest {
            job_id: result.job_id.clone(),
        })
        .await
        .expect("WatchJob via gRPC-Web")
        .into_inner();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(event) = tokio::time::timeout_at(deadline, events.next())
        .await
        .expect("the job finishes in time")
    {
        last = Some(event.expect("a WatchJob event"));
    }
    let last = last.expect("at least one event");
    assert!(last.terminal);
    assert_eq!(last.job.unwrap().state, pb::JobState::Succeeded as i32);

    let file = audio
        .get_file(pb::GetFileRequest {
            file_id: result.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (file.filename.as_str(), file.tags.as_slice()),
        ("browser.wav", &["web".to_owned()][..])
    );
    // Errors keep their code and message through gRPC-Web.
    let err = audio
        .get_file(pb::GetFileRequest {
            file_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = audio
        .get_file(pb::GetFileRequest {
            file_id: "not-an-id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("not a valid id"), "{}", err.message());

    let health = HealthClient::with_origin(web_channel(), web.clone())
        .check(HealthCheckRequest {
            service: "traum.v1.AudioService".into(),
        })
        .await
        .expect("health via gRPC-Web")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Calls through the web port count like any other.
    let usage = AnalyticsServiceClient::with_origin(web_channel(), web)
        .get_usage(pb::GetUsageRequest::default())
        .await
        .expect("GetUsage via gRPC-Web")
        .into_inner();
    let calls = |method: &str| {
        usage
            .rpcs
            .iter()
            .find(|r| r.method == format!("/traum.v1.AudioService/{method}"))
            .map_or(0, |r| r.calls)
    };
    assert_eq!(calls("StartUpload"), 1);
    assert_eq!(calls("FinishUpload"), 1);
    assert!(calls("PutUploadChunk") >= 3, "{usage:?}");
    server.stop().await;
    env.finish().await;
}
both_backends!(grpc_web_reaches_every_service_without_a_proxy);

async fn audio_is_served_with_byte_ranges(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = start(&env).await;
    let data = wav(1.0, 22_050, 2, 330.0);
    let file = server.upload_and_process("tone.wav", &[], &data).await;
    let base = format!("http://{}", server.web_addr.unwrap());
    let url = format!("{base}/api/files/{}/audio", file.file_id);
    let http = reqwest::Client::new();
    let size = data.len();
    let etag = format!("\"{}\"", file.sha256);

    let whole = http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), reqwest::StatusCode::OK);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header(&whole, "content-type"), "audio/wav");
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    assert_eq!(header(&whole, "etag"), etag);
    assert_eq!(header(&whole, "content-length"), size.to_string());
    assert_eq!(
        whole.bytes().await.unwrap().as_ref(),
        &data[..],
        "the original bytes"
    );

    let part = http
        .get(&url)
        .header("range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&part, "content-range"), format!("bytes 100-1099/{size}"));
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[100..1100]);
    let tail = http.get(&url).header("range", "bytes=-64").send().await.unwrap();
    assert_eq!(tail.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &data[size - 64..]);
    let open_ended = http
        .get(&url)
        .header("range", format!("bytes={}-", size - 10))
        .send()
        .await
        .unwrap();
    assert_eq!(open_ended.bytes().await.unwrap().as_ref(), &data[size - 10..]);

    let beyond = http
        .get(&url)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), reqwest::StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&beyond, "content-range"), format!("bytes */{size}"));
    // A range for another version of the bytes gets the whole current file.
    let stale = http
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), reqwest::StatusCode::OK);
    let cached = http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), reqwest::StatusCode::NOT_MODIFIED);
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), reqwest::StatusCode::OK);
    assert_eq!(header(&head, "content-length"), size.to_string());

    let missing = http
        .get(format!("{base}/api/files/{}/audio", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("not found"));
    let malformed = http
        .get(format!("{base}/api/files/nope/audio"))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(malformed.text().await.unwrap().contains("not a valid id"));
    let elsewhere = http.get(format!("{base}/nothing/here")).send().await.unwrap();
    assert_eq!(elsewhere.status(), reqwest::StatusCode::NOT_FOUND);
    server.stop().await;
    env.finish().await;
}
both_backends!(audio_is_served_with_byte_ranges);
