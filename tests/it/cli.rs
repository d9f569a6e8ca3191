//! The real binaries: `traum-server` configuration errors and the `traum`
//! CLI against a real server.

use std::process::Command;

use crate::support::workspace_binary;

#[test]
fn server_refuses_bad_config_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(workspace_binary("traum-server"))
        .args([
            "--workers",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("workers must be between 1 and 256"), "{stderr}");
    // Nothing was bound or created: the data dir stays empty.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let output = Command::new(workspace_binary("traum-server"))
        .env("TRAUM_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen `not-an-address`"));

    let config = dir.path().join("traum.toml");
    std::fs::write(&config, "max_upload_bytes = \"lots\"\n").unwrap();
    let output = Command::new(workspace_binary("traum-server"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_upload_bytes"));
}

/// Runs the `traum` CLI against a server and returns (exit code, stdout, stderr).
pub(crate) fn traum(addr: std::net::SocketAddr, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(workspace_binary("traum"))
        .arg("--addr")
        .arg(format!("http://{addr}"))
        .args(args)
        // A key from the developer's shell would change what the server allows.
        .env_remove("TRAUM_API_KEY")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uploads_lists_and_manages_a_library() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env.start().await;
    let addr = server.addr;
    let library = tempfile::tempdir().unwrap();
    std::fs::write(
        library.path().join("kick.wav"),
        crate::support::wav(0.5, 44_100, 2, 60.0),
    )
    .unwrap();
    std::fs::write(
        library.path().join("tone.flac"),
        crate::support::fixture("tone.flac"),
    )
    .unwrap();
    std::fs::create_dir(library.path().join("more")).unwrap();
    std::fs::write(
        library.path().join("more").join("tone.mp3"),
        crate::support::fixture("tone.mp3"),
    )
    .unwrap();
    std::fs::write(
        library.path().join("more").join("tone.ogg"),
        crate::support::fixture("tone.ogg"),
    )
    .unwrap();
    std::fs::write(
        library.path().join("notes.txt"),
        b"not audio, skipped by the directory walk",
    )
    .unwrap();
    let dir = library.path().to_str().unwrap().to_owned();

    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || traum(addr, &["--json", "upload", &dir, "--tag", "demo"]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 4, "{stdout}");
    for result in results {
        assert_eq!(result["state"], "JOB_STATE_SUCCEEDED", "{result}");
        assert_eq!(result["duplicate"], false);
    }

    let (code, stdout, _) = tokio::task::spawn_blocking(move || traum(addr, &["--json", "ls", "--all"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listing["total_count"], 4);
    let files = listing["files"].as_array().unwrap();
    let kick = files
        .iter()
        .find(|f| f["filename"] == "kick.wav")
        .unwrap()
        .clone();
    assert_eq!(kick["tags"], serde_json::json!(["demo"]));
    assert_eq!(kick["properties"]["sample_rate_hz"], 44_100);
    assert_eq!(kick["properties"]["channels"], 2);
    let kick_id = kick["file_id"].as_str().unwrap().to_owned();

    // The human table shows duration, rate and channels.
    let (code, stdout, _) = tokio::task::spawn_blocking(move || traum(addr, &["ls"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("kick.wav") && stdout.contains("44100"),
        "{stdout}"
    );

    let id = kick_id.clone();
    let (code, stdout, _) = tokio::task::spawn_blocking(move || {
        traum(
            addr,
            &["--json", "tag", &id, "--add", "kick", "--rename", "Kick 01.wav"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    let tagged: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(tagged["filename"], "Kick 01.wav");
    assert_eq!(tagged["tags"], serde_json::json!(["demo", "kick"]));

    let out = library.path().join("downloaded.wav");
    let (id, out_arg) = (kick_id.clone(), out.to_str().unwrap().to_owned());
    let (code, _, stderr) =
        tokio::task::spawn_blocking(move || traum(addr, &["download", &id, "-o", &out_arg]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(library.path().join("kick.wav")).unwrap()
    );

    let (code, stdout, _) = tokio::task::spawn_blocking(move || traum(addr, &["--json", "stats"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["file_count"], 4);
    let duration = stats["total_duration_seconds"].as_f64().unwrap();
    assert!((duration - 5.0).abs() < 0.1, "{duration}");

    // Failures give a non-zero exit code and a readable reason.
    let bad = library.path().join("broken.wav");
    std::fs::write(&bad, [0u8; 2048]).unwrap();
    let bad_arg = bad.to_str().unwrap().to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || traum(addr, &["upload", &bad_arg]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(
        format!("{stdout}{stderr}").contains("supported formats"),
        "{stdout}\n{stderr}"
    );
    let (code, _, stderr) = tokio::task::spawn_blocking(move || traum(addr, &["search", "warm analog pad"]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("UNAVAILABLE"), "{stderr}");

    let id = kick_id.clone();
    let (code, _, _) = tokio::task::spawn_blocking(move || traum(addr, &["rm", &id]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let (code, _, stderr) = tokio::task::spawn_blocking(move || traum(addr, &["info", &kick_id]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("NOT_FOUND"), "{stderr}");
    server.stop().await;
    env.finish().await;
}

/// `traum-server embed` reproduces the reference vectors of the fixture
/// checkpoint (recorded with `transformers`' ClapModel), and is
/// deterministic.
#[test]
fn embed_command_reproduces_the_reference() {
    let dir = crate::support::fixture_model_dir();
    let queries: Vec<String> =
        serde_json::from_slice(&std::fs::read(dir.join("queries.json")).unwrap()).unwrap();
    let audio_dir = tempfile::tempdir().unwrap();
    let clip = audio_dir.path().join("clip.wav");
    std::fs::write(&clip, crate::support::wav(12.0, 48_000, 1, 440.0)).unwrap();
    let run = || {
        let output = Command::new(workspace_binary("traum-server"))
            .arg("embed")
            .arg("--model-dir")
            .arg(&dir)
            .args(["--text", &queries[0], "--text", &queries[1]])
            .arg("--audio")
            .arg(&clip)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let result = run();
    let reference_bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&reference_bytes).unwrap();
    for q in 0..2 {
        let tensor = reference.tensor(&format!("text{q}.embeds")).unwrap();
        let expected: Vec<f32> = tensor
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours: Vec<f32> = result["text"][q]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(ours.len(), expected.len());
        let dot: f32 = ours.iter().zip(&expected).map(|(a, b)| a * b).sum();
        let norms: f32 = ours.iter().map(|a| a * a).sum::<f32>().sqrt()
            * expected.iter().map(|b| b * b).sum::<f32>().sqrt();
        let max_abs = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(dot / norms >= 0.99999, "text {q}: cosine {}", dot / norms);
        assert!(max_abs <= 1e-4, "text {q}: max abs difference {max_abs}");
    }
    let audio = &result["audio"][0];
    let windows = audio["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "12 s: windows at 0 and 10 s");
    assert_eq!(windows[1]["start_seconds"], 10.0);
    assert_eq!(windows[1]["end_seconds"], 12.0);
    let pooled: Vec<f64> = audio["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!((pooled.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(run(), result, "same input, same output");

    let output = Command::new(workspace_binary("traum-server"))
        .args(["embed", "--model-dir"])
        .arg(audio_dir.path())
        .args(["--text", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("model.safetensors")
            || String::from_utf8_lossy(&output.stderr).contains("config.json"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_searches_with_filters() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env.start_with(crate::support::with_fixture_model).await;
    let kick = server
        .upload_and_process(
            "KickDrum_01.wav",
            &["drums"],
            &crate::support::drum_loop(100.0, 4.0, 48_000),
        )
        .await;
    let tone = server
        .upload_and_process("tone.wav", &["tone"], &crate::support::wav(2.0, 48_000, 1, 440.0))
        .await;
    let addr = server.addr;
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        traum(addr, &["--json", "search", "punchy drums", "--tag", "drums"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let hits: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let hits = hits["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{stdout}");
    assert_eq!(hits[0]["file"]["file_id"], kick.file_id.as_str());

    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || traum(addr, &["search", "punchy drums", "--keywords", "kick"]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("KickDrum_01.wav") && !stdout.contains("tone.wav"),
        "{stdout}"
    );

    let id = kick.file_id.clone();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || traum(addr, &["similar", &id]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("tone.wav") && !stdout.contains("KickDrum_01.wav"),
        "{stdout}"
    );
    assert!(stdout.contains(&tone.file_id), "{stdout}");

    // A file marked bad is left out; marked good it stays.
    let (kick_id, tone_id) = (kick.file_id.clone(), tone.file_id.clone());
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        traum(
            addr,
            &[
                "--json",
                "search",
                "punchy drums",
                "--bad",
                &kick_id,
                "--good",
                &tone_id,
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let refined: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<&str> = refined["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["file"]["file_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [tone.file_id.as_str()], "{stdout}");

    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || traum(addr, &["suggest", "dru"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("drums"), "{stdout}");

    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        traum(addr, &["search", "x", "--min-bpm", "200", "--max-bpm", "100"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("min_bpm"), "{stderr}");
    server.stop().await;
    env.finish().await;
}

/// A folder larger than the server's upload burst: `traum upload` waits out
/// each `RESOURCE_EXHAUSTED` for the delay the server names instead of
/// losing the files to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_upload_waits_out_the_upload_rate_limit() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env
        .start_with(|c| {
            c.limits.upload = traum_server::auth::Rate {
                per_second: 4.0,
                burst: 1,
            }
        })
        .await;
    let addr = server.addr;
    let library = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let tone = crate::support::wav(0.3, 22_050, 1, 300.0 + 40.0 * f64::from(i));
        std::fs::write(library.path().join(format!("tone{i}.wav")), tone).unwrap();
    }
    let dir = library.path().to_str().unwrap().to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        traum(addr, &["--json", "upload", &dir, "--parallel", "5", "--no-wait"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 5, "{stdout}");
    for result in results {
        assert!(result["error"].is_null(), "{result}");
        assert!(result["file_id"].is_string(), "{result}");
    }
    let (code, stdout, _) = tokio::task::spawn_blocking(move || traum(addr, &["--json", "ls", "--all"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listing["total_count"], 5, "every file was stored");
    server.stop().await;
    env.finish().await;
}

/// Without its model the server cannot finish a job: `traum upload` still
/// sends every file, then ends the wait with the server's reason and exit
/// code 3 instead of waiting for ever; `traum watch` does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_stops_waiting_for_jobs_the_server_cannot_finish() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let empty = env.dir.path().join("no-model-here");
    std::fs::create_dir_all(&empty).unwrap();
    let server = env.start_with(|c| c.model_dir = Some(empty.clone())).await;
    let addr = server.addr;
    let library = tempfile::tempdir().unwrap();
    // More files than `--parallel` uploads at once.
    for i in 0..6 {
        let tone = crate::support::wav(0.5, 22_050, 1, 200.0 + 50.0 * f64::from(i));
        std::fs::write(library.path().join(format!("tone{i}.wav")), tone).unwrap();
    }
    let dir = library.path().to_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || traum(addr, &["--json", "upload", &dir, "--parallel", "2"]))
            .await
            .unwrap();
    assert_eq!(code, Some(3), "{stdout}\n{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6, "{stdout}");
    for result in results {
        assert!(result["error"].is_null(), "{result}");
        let waiting = result["waiting"].as_str().unwrap_or_default();
        assert!(waiting.contains("waiting for the embedding model"), "{result}");
        assert!(
            waiting.contains("--model-dir"),
            "the reason says how to fix it: {result}"
        );
    }
    let (code, stdout, _) = tokio::task::spawn_blocking(move || traum(addr, &["--json", "ls", "--all"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listing["total_count"], 6, "every file was uploaded");

    let job = results[0]["job_id"].as_str().unwrap().to_owned();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || traum(addr, &["watch", &job]))
        .await
        .unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot finish yet: waiting for the embedding model"),
        "{stderr}"
    );
    server.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_builds_a_collection_and_exports_it() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env
        .start_with(|config| config.web_listen = Some(crate::support::free_port()))
        .await;
    let (addr, web) = (server.addr, format!("http://{}", server.web_addr.unwrap()));
    let kick_bytes = crate::support::wav(0.5, 44_100, 1, 60.0);
    let kick = server.upload_and_process("kick.wav", &[], &kick_bytes).await;
    let pad = server
        .upload_and_process("pad.wav", &[], &crate::support::wav(0.8, 44_100, 1, 220.0))
        .await;
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || traum(addr, &args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (code, stdout, stderr) = run(args(&[
        "--json",
        "collection",
        "create",
        "Kit",
        &kick.file_id,
        &pad.file_id,
    ]))
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = created["collection_id"].as_str().unwrap().to_owned();
    assert_eq!(created["file_count"], 2);

    // Move pad to the front, then list and show.
    let (code, stdout, stderr) = run(args(&["collection", "move", &id, &pad.file_id, "--to", "1"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let pad_at = stdout.find("pad.wav").expect("pad listed");
    let kick_at = stdout.find("kick.wav").expect("kick listed");
    assert!(pad_at < kick_at, "{stdout}");
    let (code, stdout, _) = run(args(&["collection", "ls"])).await.unwrap();
    assert_eq!(code, Some(0));
    assert!(stdout.contains("Kit") && stdout.contains(&id), "{stdout}");
    let hat = server
        .upload_and_process("hat.wav", &[], &crate::support::wav(0.3, 44_100, 1, 880.0))
        .await;
    let (code, stdout, _) = run(args(&[
        "--json",
        "ls",
        "--collection",
        &id,
        "--sort",
        "name",
        "--asc",
    ]))
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["kick.wav", "pad.wav"],
        "{} is not in the kit",
        hat.filename
    );

    // Export through the web port: a playlist to stdout, the files as a zip.
    let (code, stdout, stderr) = run(args(&["export", &id, "--format", "m3u8", "--web-addr", &web]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let urls: Vec<&str> = stdout.lines().filter(|l| l.starts_with("http")).collect();
    assert_eq!(
        urls,
        [
            format!("{web}/api/files/{}/audio", pad.file_id),
            format!("{web}/api/files/{}/audio", kick.file_id)
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("kit.zip");
    let zip_arg = zip.to_str().unwrap().to_owned();
    let (code, stdout, stderr) = run(args(&[
        "export",
        &id,
        "--format",
        "zip",
        "-o",
        &zip_arg,
        "--web-addr",
        &web,
    ]))
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let unpacked = dir.path().join("unpacked");
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(unpacked.join("kick.wav")).unwrap(), kick_bytes);

    // Unknown collection: a clear failure, exit 1.
    let (code, _, stderr) = run(args(&[
        "export",
        &uuid::Uuid::new_v4().to_string(),
        "--web-addr",
        &web,
    ]))
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("404") && stderr.contains("not found"), "{stderr}");
    let (code, _, stderr) = run(args(&["collection", "delete", &id])).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    server.stop().await;
    env.finish().await;
}

/// [`traum`] off the async runtime, which the server shares.
async fn traum_async(addr: std::net::SocketAddr, args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || traum(addr, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

/// Waits until the server reports search as SERVING (the model and the
/// vector index are loaded).
async fn wait_for_search(server: &crate::support::TestServer) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel());
    for _ in 0..400 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "traum.v1.SearchService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == ServingStatus::Serving as i32 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("search did not become ready");
}

fn hit_ids(response: &serde_json::Value) -> Vec<String> {
    response["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["file"]["file_id"].as_str().unwrap().to_owned())
        .collect()
}

/// `search --audio` streams a clip and ranks like the unary clip search;
/// the server's error details reach the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_searches_by_an_audio_file_and_shows_error_details() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env.start_with(crate::support::with_fixture_model).await;
    let tone_bytes = crate::support::wav(2.0, 48_000, 1, 440.0);
    let kick = server
        .upload_and_process(
            "KickDrum_01.wav",
            &["drums"],
            &crate::support::drum_loop(100.0, 4.0, 48_000),
        )
        .await;
    let tone = server
        .upload_and_process("tone.wav", &["tone"], &tone_bytes)
        .await;
    wait_for_search(&server).await;
    let addr = server.addr;
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.wav");
    std::fs::write(&clip, &tone_bytes).unwrap();
    let clip_arg = clip.to_str().unwrap().to_owned();

    let (code, stdout, stderr) = traum_async(addr, &["--json", "search", "--audio", &clip_arg]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let streamed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let by_clip = server
        .search()
        .search_by_audio_clip(traum_proto::v1::SearchByAudioClipRequest {
            audio: tone_bytes.clone().into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let clip_ids: Vec<String> = by_clip
        .hits
        .iter()
        .map(|hit| hit.file.as_ref().unwrap().file_id.clone())
        .collect();
    assert_eq!(hit_ids(&streamed), clip_ids, "{stdout}");
    assert_eq!(clip_ids[0], tone.file_id, "the clip finds its own file first");

    // Filters apply as in text search; the table names the hit.
    let (code, stdout, stderr) = traum_async(addr, &["search", "--audio", &clip_arg, "--tag", "drums"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("KickDrum_01.wav") && stdout.contains(&kick.file_id) && !stdout.contains("tone.wav"),
        "{stdout}"
    );

    // Exactly one of text and --audio.
    let (code, _, stderr) = traum_async(addr, &["search", "--tag", "drums"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--audio"), "{stderr}");
    let (code, _, stderr) = traum_async(addr, &["search", "pad", "--audio", &clip_arg]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");

    // A clip that cannot be read names its path.
    let missing = dir.path().join("missing.wav");
    let missing_arg = missing.to_str().unwrap().to_owned();
    let (code, _, stderr) = traum_async(addr, &["search", "--audio", &missing_arg]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&missing_arg) && stderr.contains("No such file"),
        "{stderr}"
    );

    // Rich error details: the field to fix, the resource not found.
    let (code, _, stderr) = traum_async(addr, &["search", "kick", "--keyword-weight", "2"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("INVALID_ARGUMENT") && stderr.contains("\n  field options.keyword_weight: "),
        "{stderr}"
    );
    let (code, _, stderr) = traum_async(addr, &["search", ""]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("\n  field query: "), "{stderr}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let (code, _, stderr) = traum_async(addr, &["info", &unknown]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("NOT_FOUND") && stderr.contains(&format!("\n  resource traum.v1.File {unknown}")),
        "{stderr}"
    );

    // With the model loaded every service serves.
    let (code, stdout, stderr) = traum_async(addr, &["health"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for service in [
        "overall",
        "traum.v1.AudioService",
        "traum.v1.SearchService",
        "traum.v1.AnalyticsService",
        "traum.v1.AdminService",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.split_whitespace().collect::<Vec<_>>() == [service, "SERVING"]),
            "{service}: {stdout}"
        );
    }
    server.stop().await;
    env.finish().await;
}

/// `traum health` answers per service and fails (exit 1, as Docker reads
/// unhealthy) for anything not SERVING, an unknown service, a closed port
/// and a server that does not answer in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_health_reports_each_service_and_fails_clearly() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    // Without a model search does not serve.
    let server = env.start().await;
    let addr = server.addr;
    let (code, stdout, stderr) = traum_async(addr, &["--json", "health"]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let checks: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let statuses: Vec<(&str, &str)> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            (
                check["service"].as_str().unwrap(),
                check["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("", "SERVING"),
            ("traum.v1.AudioService", "SERVING"),
            ("traum.v1.SearchService", "NOT_SERVING"),
            ("traum.v1.AnalyticsService", "SERVING"),
            ("traum.v1.AdminService", "SERVING"),
        ]
    );
    assert!(stderr.contains("unhealthy: traum.v1.SearchService"), "{stderr}");

    // What the container health check asks: the server as a whole.
    let (code, stdout, stderr) =
        traum_async(addr, &["health", "--service", "overall", "--timeout", "2s"]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["overall", "SERVING"]
    );
    let (code, stdout, _) = traum_async(
        addr,
        &["health", "--service", "audio", "--service", "nope.Service"],
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("traum.v1.AudioService") && stdout.contains("SERVICE_UNKNOWN"),
        "{stdout}"
    );
    server.stop().await;
    env.finish().await;

    // Nothing listens: a clear connection error.
    let closed = crate::support::free_port();
    let (code, stdout, stderr) = traum_async(closed, &["health"]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to http://{closed}")) && stderr.contains("refused"),
        "{stderr}"
    );

    // Something accepts the connection but never answers: --timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let (code, _, stderr) = traum_async(silent_addr, &["health", "--timeout", "300ms"]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("did not answer the health checks within 300ms"),
        "{stderr}"
    );
    drop(silent);
}

/// A TCP proxy to `target` that cuts its first connection after forwarding
/// `cut_after` bytes from the client, and forwards later ones whole.
/// Returns its address and how many connections it accepted.
async fn flaky_proxy(
    target: std::net::SocketAddr,
    cut_after: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            tokio::spawn(async move {
                let Ok(upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut upstream_read, mut upstream_write) = upstream.into_split();
                let forward = async {
                    let mut sent = 0;
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        let read = client_read.read(&mut buffer).await?;
                        if read == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        let take = if first { read.min(cut_after - sent) } else { read };
                        upstream_write.write_all(&buffer[..take]).await?;
                        sent += take;
                        if first && sent >= cut_after {
                            return Ok(());
                        }
                    }
                };
                let backward = tokio::io::copy(&mut upstream_read, &mut client_write);
                // Either direction ending drops all four halves, which closes
                // both connections mid-call.
                tokio::select! {
                    _ = forward => {}
                    _ = backward => {}
                }
            });
        }
    });
    (addr, accepted)
}

/// `upload --resumable` stores the file's exact bytes, also when the
/// connection breaks mid-chunk; `events` sees the upload; `waveform`,
/// `reprocess` and `jobs JOB_ID` work on the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_resumes_uploads_follows_events_reprocesses_and_shows_waveforms() {
    use std::io::BufRead as _;
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env.start().await;
    let addr = server.addr;
    let library = tempfile::tempdir().unwrap();
    // 1.5 s of a half-scale sine at 48 kHz mono: 144 044 bytes.
    let tone = crate::support::wav(1.5, 48_000, 1, 330.0);
    let tone_path = library.path().join("tone.wav");
    std::fs::write(&tone_path, &tone).unwrap();
    let tone_arg = tone_path.to_str().unwrap().to_owned();

    // `events` first, so it sees the upload.
    let mut events = Command::new(workspace_binary("traum"))
        .args([
            "--addr",
            &format!("http://{addr}"),
            "--json",
            "events",
            "--count",
            "1",
        ])
        .env_remove("TRAUM_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut events_stderr = std::io::BufReader::new(events.stderr.take().unwrap());
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        events_stderr.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(ready.contains("watching the library"), "{ready}");

    let (code, stdout, stderr) = traum_async(
        addr,
        &[
            "--json",
            "upload",
            "--resumable",
            "--chunk-size",
            "16KiB",
            &tone_arg,
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let uploaded: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let uploaded = &uploaded[0];
    assert_eq!(
        uploaded["sha256"],
        crate::support::sha256_hex(&tone),
        "{uploaded}"
    );
    assert_eq!(uploaded["size_bytes"], tone.len());
    assert_eq!(uploaded["state"], "JOB_STATE_SUCCEEDED");
    let file_id = uploaded["file_id"].as_str().unwrap().to_owned();
    let first_job = uploaded["job_id"].as_str().unwrap().to_owned();

    let output = tokio::task::spawn_blocking(move || events.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let event: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "job", "{stdout}");
    assert_eq!(event["job"]["file_id"], file_id.as_str());
    assert_eq!(event["job"]["job_id"], first_job.as_str());

    // The stored file is the original, byte for byte.
    let (code, stdout, _) = traum_async(addr, &["--json", "info", &file_id]).await;
    assert_eq!(code, Some(0));
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["sha256"], crate::support::sha256_hex(&tone));

    // Cut the connection in the middle of the sixth chunk: the CLI resumes
    // from where the server stands, on a new connection.
    let other = crate::support::wav(1.5, 48_000, 1, 550.0);
    let other_path = library.path().join("other.wav");
    std::fs::write(&other_path, &other).unwrap();
    let other_arg = other_path.to_str().unwrap().to_owned();
    // Without retries the cut is fatal, which shows it happens mid-upload.
    let (proxy, _) = flaky_proxy(addr, 90_000).await;
    let (code, stdout, stderr) = traum_async(
        proxy,
        &[
            "upload",
            "--resumable",
            "--chunk-size",
            "16KiB",
            "--retries",
            "0",
            &other_arg,
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("0 uploaded, 0 duplicates, 1 failed"), "{stdout}");
    let (proxy, connections) = flaky_proxy(addr, 90_000).await;
    let (code, stdout, stderr) = traum_async(
        proxy,
        &[
            "--json",
            "upload",
            "--resumable",
            "--chunk-size",
            "16KiB",
            &other_arg,
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        connections.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the first connection was cut, so the upload needed another"
    );
    let resumed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        resumed[0]["sha256"],
        crate::support::sha256_hex(&other),
        "{stdout}"
    );
    assert_eq!(resumed[0]["state"], "JOB_STATE_SUCCEEDED");

    // The waveform: 48 kHz peaks of a half-scale sine (±127 is full scale).
    let (code, stdout, stderr) = traum_async(addr, &["--json", "waveform", &file_id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let waveform: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(waveform["file_id"], file_id.as_str());
    assert_eq!(waveform["sample_rate_hz"], 48_000);
    assert!(
        (waveform["duration_seconds"].as_f64().unwrap() - 1.5).abs() < 0.01,
        "{waveform}"
    );
    let overview = &waveform["overview"];
    let peaks = overview["peaks"].as_array().unwrap();
    assert_eq!(peaks.len() as u64, overview["pair_count"].as_u64().unwrap());
    assert!(!peaks.is_empty());
    let mut loudest = 0;
    for pair in peaks {
        let (min, max) = (pair[0].as_i64().unwrap(), pair[1].as_i64().unwrap());
        assert!(min <= max, "{pair}");
        loudest = loudest.max(min.abs()).max(max.abs());
    }
    assert!((60..=67).contains(&loudest), "half scale is about 64: {loudest}");
    let (code, stdout, _) = traum_async(addr, &["waveform", &file_id]).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("sample rate: 48000 Hz") && stdout.contains("peak 0.5"),
        "{stdout}"
    );

    // Reprocess: a new job, followed to its end.
    let (code, stdout, stderr) = traum_async(addr, &["--json", "reprocess", &file_id]).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let reprocessed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reprocessed[0]["file_id"], file_id.as_str());
    assert_eq!(reprocessed[0]["state"], "JOB_STATE_SUCCEEDED", "{stdout}");
    let second_job = reprocessed[0]["job_id"].as_str().unwrap().to_owned();
    assert_ne!(second_job, first_job);
    let (code, stdout, _) = traum_async(addr, &["--json", "jobs", "--file", &file_id]).await;
    assert_eq!(code, Some(0));
    let jobs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(jobs["total_count"], 2, "{stdout}");
    let (code, stdout, _) = traum_async(addr, &["--json", "jobs", &second_job]).await;
    assert_eq!(code, Some(0));
    let job: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["job_id"], second_job.as_str());
    assert_eq!(job["state"], "JOB_STATE_SUCCEEDED");

    // An unknown file fails alone: the known one is still reprocessed.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (code, stdout, stderr) = traum_async(addr, &["reprocess", &unknown, &file_id, "--no-wait"]).await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let unknown_row = stdout.lines().find(|line| line.starts_with(&unknown)).unwrap();
    assert!(unknown_row.contains("NOT_FOUND"), "{stdout}");
    let known_row = stdout.lines().find(|line| line.starts_with(&file_id)).unwrap();
    assert!(!known_row.contains("NOT_FOUND"), "{stdout}");
    server.stop().await;
    env.finish().await;
}

/// `traum keys` against a server that requires credentials: the secret is
/// printed once as the last line, works at once, and stops working when
/// revoked. The health check needs no credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_lists_and_revokes_api_keys() {
    let env = crate::support::TestEnv::new(crate::support::Backend::Sqlite).await;
    let server = env
        .start_with(|config| config.auth = traum_server::auth::AuthMode::Required)
        .await;
    let store = traum_server::store::Store::connect(&env.db.url).await.unwrap();
    let (_, admin) = traum_server::auth::create_key(&store, "bootstrap", traum_server::auth::Role::Admin)
        .await
        .unwrap();
    let addr = server.addr;

    let (code, _, stderr) = traum_async(addr, &["keys", "list"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
    let (code, stdout, _) = traum_async(addr, &["health", "--service", "overall"]).await;
    assert_eq!(code, Some(0), "{stdout}");

    let (code, stdout, stderr) = traum_async(
        addr,
        &[
            "--api-key",
            &admin,
            "keys",
            "create",
            "--role",
            "read",
            "--name",
            "ci reader",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("created read key `ci reader` (id "),
        "{stdout}"
    );
    let secret = stdout.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("traum_"), "{stdout}");

    // The new key reads, but cannot manage keys.
    let (code, _, stderr) = traum_async(addr, &["--api-key", &secret, "ls"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = traum_async(addr, &["--api-key", &secret, "keys", "list"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("PERMISSION_DENIED"), "{stderr}");

    let (code, stdout, _) = traum_async(addr, &["--api-key", &admin, "--json", "keys", "list"]).await;
    assert_eq!(code, Some(0));
    let keys: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reader = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "ci reader")
        .unwrap()
        .clone();
    assert_eq!(reader["role"], "read");
    assert!(secret.starts_with(reader["prefix"].as_str().unwrap()), "{reader}");
    assert!(reader["revoked_at"].is_null());
    assert!(!stdout.contains(&secret), "secrets are never listed");
    let key_id = reader["key_id"].as_str().unwrap().to_owned();
    let (code, stdout, _) = traum_async(addr, &["--api-key", &admin, "keys", "list"]).await;
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&key_id) && stdout.contains("ci reader"),
        "{stdout}"
    );

    let (code, stdout, stderr) = traum_async(addr, &["--api-key", &admin, "keys", "revoke", &key_id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), format!("revoked key `ci reader` ({key_id})"));
    let (code, _, stderr) = traum_async(addr, &["--api-key", &secret, "ls"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
    let (code, stdout, _) = traum_async(addr, &["--api-key", &admin, "--json", "keys", "list"]).await;
    assert_eq!(code, Some(0));
    let keys: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let revoked = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["key_id"] == key_id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");

    // An unknown key: NOT_FOUND, with the key it was about.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (code, _, stderr) = traum_async(addr, &["--api-key", &admin, "keys", "revoke", &unknown]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("NOT_FOUND"), "{stderr}");
    server.stop().await;
    env.finish().await;
}
