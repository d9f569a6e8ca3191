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
fn traum(addr: std::net::SocketAddr, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(workspace_binary("traum"))
        .arg("--addr")
        .arg(format!("http://{addr}"))
        .args(args)
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
