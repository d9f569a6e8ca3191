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
    let elsewhere = http.get(format!("{base}/nothing/here.js")).send().await.unwrap();
    assert_eq!(elsewhere.status(), reqwest::StatusCode::NOT_FOUND);
    server.stop().await;
    env.finish().await;
}
both_backends!(audio_is_served_with_byte_ranges);

async fn the_app_is_served_with_its_routes_and_cached_bundles(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = start(&env).await;
    let base = format!("http://{}", server.web_addr.unwrap());
    let http = reqwest::Client::new();
    let index = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(index.status(), reqwest::StatusCode::OK);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    let etag = header(&index, "etag");
    let html = index.text().await.unwrap();
    // Client-side routes get the same page, so a reload on them works.
    for route in ["/system", "/files/0d3f6c1e-6c55-4f0b-9a1e-2b8f1d0c4e5a"] {
        let page = http.get(format!("{base}{route}")).send().await.unwrap();
        assert_eq!(page.status(), reqwest::StatusCode::OK, "{route}");
        assert_eq!(page.text().await.unwrap(), html, "{route}");
    }
    let revalidated = http
        .get(format!("{base}/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), reqwest::StatusCode::NOT_MODIFIED);

    // Every script the page loads is there, cached for good, and gzipped
    // for a browser that accepts it.
    let scripts: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|src| src.ends_with(".js"))
        .collect();
    assert!(!scripts.is_empty(), "index.html loads a script: {html}");
    for script in scripts {
        let plain = http.get(format!("{base}{script}")).send().await.unwrap();
        assert_eq!(plain.status(), reqwest::StatusCode::OK, "{script}");
        assert_eq!(header(&plain, "content-type"), "text/javascript; charset=utf-8");
        assert_eq!(
            header(&plain, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let plain_len = plain.bytes().await.unwrap().len();
        let gzipped = http
            .get(format!("{base}{script}"))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&gzipped, "content-encoding"), "gzip", "{script}");
        let compressed = gzipped.bytes().await.unwrap();
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut decoded).unwrap();
        assert_eq!(decoded.len(), plain_len);
        assert!(compressed.len() < plain_len);
    }
    let post = http.post(format!("{base}/")).send().await.unwrap();
    assert_eq!(post.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
    env.finish().await;
}
both_backends!(the_app_is_served_with_its_routes_and_cached_bundles);

async fn one_library_stream_sees_uploads_renames_and_deletions(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = start(&env).await;
    let mut audio = AudioServiceClient::with_origin(web_channel(), origin(server.web_addr.unwrap()));
    let mut events = audio
        .watch_library(pb::WatchLibraryRequest {})
        .await
        .expect("WatchLibrary via gRPC-Web")
        .into_inner();
    let data = wav(1.0, 44_100, 1, 440.0);
    let (_, _, result) = resumable_upload(&mut audio, "live.wav", &[], &data, 64 * 1024).await;
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("an event in time")
            .expect("the stream stays open")
            .expect("an event, not an error")
            .change
            .expect("a change")
    };
    use pb::library_event::Change;
    // The job, from queued to succeeded, all for the uploaded file.
    let mut states = Vec::new();
    loop {
        match next().await {
            Change::Job(job) => {
                assert_eq!(job.file_id, result.file_id);
                states.push(job.state);
                if job.state == pb::JobState::Succeeded as i32 {
                    break;
                }
                assert_ne!(job.state, pb::JobState::Failed as i32, "{job:?}");
            }
            other => panic!("only job events before the job ends, got {other:?}"),
        }
    }
    assert_eq!(states.first(), Some(&(pb::JobState::Queued as i32)));
    audio
        .update_file(pb::UpdateFileRequest {
            file_id: result.file_id.clone(),
            filename: Some("renamed.wav".into()),
            add_tags: vec!["pad".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    match next().await {
        Change::File(file) => {
            assert_eq!(
                (file.filename.as_str(), file.tags.as_slice()),
                ("renamed.wav", &["pad".to_owned()][..])
            )
        }
        other => panic!("expected the renamed file, got {other:?}"),
    }
    audio
        .delete_file(pb::DeleteFileRequest {
            file_id: result.file_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(next().await, Change::DeletedFileId(result.file_id.clone()));
    server.stop().await;
    env.finish().await;
}
both_backends!(one_library_stream_sees_uploads_renames_and_deletions);

async fn waveforms_come_from_the_analyse_stage_or_on_demand(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut audio = server.audio();
    // 30 s: long enough for a detail level finer than the overview.
    let file = server
        .upload_and_process("tone.wav", &[], &wav(30.0, 44_100, 2, 220.0))
        .await;
    let waveform = audio
        .get_waveform(pb::GetWaveformRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waveform.sample_rate_hz, 48_000);
    assert!(
        (waveform.duration_seconds - 30.0).abs() < 0.01,
        "{}",
        waveform.duration_seconds
    );
    let overview = waveform.overview.expect("an overview");
    assert!(
        overview.pair_count <= 2048 && overview.pair_count > 2000,
        "{}",
        overview.pair_count
    );
    assert_eq!(overview.peaks.len(), 2 * overview.pair_count as usize);
    // `wav` writes a 0.5-amplitude sine: every pair spans about ±64.
    for pair in overview.peaks.chunks(2) {
        let (low, high) = (pair[0] as i8, pair[1] as i8);
        assert!(
            (-66..=-60).contains(&low) && (60..=66).contains(&high),
            "{low} {high}"
        );
    }
    let detail = waveform.detail.expect("a detail level for 30 s");
    assert_eq!(detail.samples_per_pair, 480);
    assert_eq!(detail.pair_count, 3000);

    // A file analysed before waveforms existed gets one on first request.
    env.execute_sql(&format!(
        "DELETE FROM waveforms WHERE file_id = '{}'",
        file.file_id
    ))
    .await;
    let again = audio
        .get_waveform(pb::GetWaveformRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.overview.unwrap().peaks, overview.peaks);

    let err = audio
        .get_waveform(pb::GetWaveformRequest {
            file_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    server.stop().await;
    env.finish().await;
}
both_backends!(waveforms_come_from_the_analyse_stage_or_on_demand);

async fn collections_export_as_csv_json_m3u8_and_a_streamed_zip(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = start(&env).await;
    let base = format!("http://{}", server.web_addr.unwrap());
    let first = wav(0.5, 44_100, 1, 330.0);
    let second = wav(0.7, 44_100, 2, 550.0);
    let a = server
        .upload_and_process("loop, \"one\".wav", &["drums"], &first)
        .await;
    let b = server.upload_and_process("loop, \"one\".wav", &[], &second).await;
    let kit = server
        .audio()
        .create_collection(pb::CreateCollectionRequest {
            name: "My kit/1".into(),
            file_ids: vec![b.file_id.clone(), a.file_id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let http = reqwest::Client::new();
    let export = |format: &str| {
        http.get(format!(
            "{base}/api/collections/{}/export?format={format}",
            kit.collection_id
        ))
        .send()
    };

    let csv = export("csv").await.unwrap();
    assert_eq!(csv.status(), reqwest::StatusCode::OK);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = csv.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"My kit_1.csv\""),
        "{disposition}"
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with(&format!("1,{},\"loop, \"\"one\"\".wav\",0.700,", b.file_id)),
        "{csv}"
    );
    assert!(
        lines[2].starts_with(&format!("2,{},", a.file_id)) && lines[2].contains(",drums,wav,"),
        "{csv}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&export("json").await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(json["name"], "My kit/1");
    let ids: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.file_id.as_str(), a.file_id.as_str()]);

    let playlist = export("m3u8").await.unwrap().text().await.unwrap();
    let expected = format!(
        "#EXTM3U\n#PLAYLIST:My kit/1\n#EXTINF:1,loop, \"one\".wav\n{base}/api/files/{}/audio\n#EXTINF:1,loop, \"one\".wav\n{base}/api/files/{}/audio\n",
        b.file_id, a.file_id
    );
    assert_eq!(playlist, expected);
    // Every entry plays: the audio endpoint serves it.
    for url in playlist.lines().filter(|l| l.starts_with("http")) {
        assert_eq!(
            http.get(url).send().await.unwrap().status(),
            reqwest::StatusCode::OK
        );
    }

    let zip = export("zip").await.unwrap();
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let announced: u64 = zip.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let archive = zip.bytes().await.unwrap();
    assert_eq!(
        announced,
        archive.len() as u64,
        "Content-Length is the archive's length"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kit.zip");
    std::fs::write(&path, &archive).unwrap();
    // Python's zipfile checks every CRC and lists the entries.
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, json, sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
             assert z.testzip() is None; \
             print(json.dumps([[i.filename, hashlib.sha256(z.read(i)).hexdigest()] for i in z.infolist()]))",
        ])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let entries: Vec<(String, String)> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        entries,
        [
            ("loop, \"one\".wav".to_owned(), sha256_hex(&second)),
            ("loop, \"one\" (2).wav".to_owned(), sha256_hex(&first)),
        ]
    );

    let bad = export("rar").await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("csv, json, m3u8 or zip"));
    let missing = http
        .get(format!("{base}/api/collections/{}/export", uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    server.stop().await;
    env.finish().await;
}
both_backends!(collections_export_as_csv_json_m3u8_and_a_streamed_zip);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_origins_are_granted_cross_origin_access() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env
        .start_with(|config| {
            config.web_listen = Some(free_port());
            config.cors_origins = vec!["https://app.example.com".into()];
        })
        .await;
    let web = format!("http://{}", server.web_addr.unwrap());
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{web}/traum.v1.AudioService/ListFiles"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, x-grpc-web, authorization",
        )
        .send()
    };
    let granted = preflight("https://app.example.com").await.unwrap();
    assert_eq!(granted.status(), 204);
    let headers = granted.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example.com");
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(
        headers.get("access-control-allow-credentials").is_none(),
        "no cookies cross-origin"
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    assert!(refused.text().await.unwrap().contains("--cors-origin"));
    // An origin that only looks alike is another origin.
    assert_eq!(
        preflight("https://app.example.com.evil.net")
            .await
            .unwrap()
            .status(),
        403
    );

    // A real call from the allowed origin can read its outcome.
    let mut audio = AudioServiceClient::with_origin(web_channel(), origin(server.web_addr.unwrap()));
    audio.list_files(pb::ListFilesRequest::default()).await.unwrap();
    let page = http
        .get(format!("{web}/"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        page.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("grpc-status")
    );
    let other = http
        .get(format!("{web}/"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
    env.finish().await;
}
