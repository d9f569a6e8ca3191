//! The download path against a local HTTP server speaking the hub's URL layout
//! (`/{repo}/resolve/{revision}/{file}`, ranged GETs, `etag` / `x-repo-commit` headers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::max_abs_diff;
use crate::hub::{HubOptions, ModelSource};
use crate::{ClapError, ClapModel, cpu_device};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/clap-model")
        .join(name)
}

/// Serves `dir` as repository `repo` at revision `main`; returns the base URL and a request
/// counter.
fn serve(dir: PathBuf, repo: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("range")
                {
                    range = Some(v.trim().trim_start_matches("bytes=").to_string());
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let prefix = format!("/{repo}/resolve/main/");
            let body = path
                .strip_prefix(&prefix)
                .filter(|f| !f.contains('/') && !f.contains(".."))
                .and_then(|f| std::fs::read(dir.join(f)).ok());
            let Some(body) = body else {
                let _ = stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                continue;
            };
            let size = body.len();
            let (start, end) = match range.as_deref().and_then(|r| r.split_once('-')) {
                Some((a, b)) => {
                    let a: usize = a.parse().unwrap_or(0);
                    let b: usize = if b.is_empty() {
                        size - 1
                    } else {
                        b.parse().unwrap_or(size - 1)
                    };
                    (a.min(size), b.min(size.saturating_sub(1)))
                }
                None => (0, size.saturating_sub(1)),
            };
            let chunk = if size == 0 || start > end {
                &body[0..0]
            } else {
                &body[start..=end]
            };
            let etag = format!(
                "{:016x}{:08x}",
                body.iter()
                    .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
                size
            );
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {start}-{end}/{size}\r\n\
                 etag: \"{etag}\"\r\nx-repo-commit: {COMMIT}\r\nconnection: close\r\n\r\n",
                chunk.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(chunk);
        }
    });
    (base, count)
}

#[test]
fn hub_download_then_cache_then_offline() {
    let (base, requests) = serve(fixture("htsat-tiny"), "laion/tiny-clap");
    let cache = tempfile::tempdir().unwrap();
    let source = ModelSource::Hub {
        repo: "laion/tiny-clap".into(),
        revision: "main".into(),
        cache_dir: cache.path().to_path_buf(),
    };

    // Offline with an empty cache: a clear error naming the missing file.
    let offline = HubOptions {
        endpoint: Some(base.clone()),
        offline: true,
    };
    let err = source.resolve(&offline).unwrap_err();
    assert!(
        matches!(err, ClapError::Download { ref file, .. } if file == "config.json"),
        "{err}"
    );
    assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        0,
        "offline must not touch the network"
    );

    // Online: downloads into the hub cache layout; the result loads and embeds.
    let online = HubOptions {
        endpoint: Some(base.clone()),
        offline: false,
    };
    let dir = source.resolve(&online).unwrap();
    assert!(dir.starts_with(cache.path()));
    assert!(dir.ends_with(format!("snapshots/{COMMIT}")), "{}", dir.display());
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(fixture("htsat-tiny").join(file)).unwrap(),
            "{file}"
        );
    }
    let model = ClapModel::load(&dir, &cpu_device()).unwrap();
    assert_eq!(model.embed_text("a dog barking").unwrap().len(), model.dim());
    let after_download = requests.load(Ordering::SeqCst);
    assert!(after_download > 0);

    // Cached: neither a second online resolve nor an offline one hits the server.
    assert_eq!(source.resolve(&online).unwrap(), dir);
    assert_eq!(source.resolve(&offline).unwrap(), dir);
    assert_eq!(requests.load(Ordering::SeqCst), after_download);

    // A repository the server does not have: an error naming repo and file.
    let missing = ModelSource::Hub {
        repo: "laion/nope".into(),
        revision: "main".into(),
        cache_dir: cache.path().to_path_buf(),
    };
    let err = missing.resolve(&online).unwrap_err();
    assert!(err.to_string().contains("laion/nope"), "{err}");
}

#[test]
fn local_dir_source_checks_required_files() {
    let ok = ModelSource::Dir(fixture("htsat-tiny"));
    assert_eq!(ok.resolve(&HubOptions::default()).unwrap(), fixture("htsat-tiny"));
    let empty = tempfile::tempdir().unwrap();
    let err = ModelSource::Dir(empty.path().to_path_buf())
        .resolve(&HubOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

/// The fixture's files with `pytorch_model.bin` in place of `model.safetensors`.
fn pytorch_only() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
    ] {
        std::fs::copy(fixture("htsat-tiny").join(file), dir.path().join(file)).unwrap();
    }
    dir
}

#[test]
fn pytorch_model_bin_gives_the_same_vectors_as_safetensors() {
    let dir = pytorch_only();
    assert_eq!(
        ModelSource::Dir(dir.path().to_path_buf())
            .resolve(&HubOptions::default())
            .unwrap(),
        dir.path()
    );
    // The .bin also carries position and token type id buffers, accepted unused.
    let from_bin = ClapModel::load(dir.path(), &cpu_device()).unwrap();
    let from_safetensors = ClapModel::load(&fixture("htsat-tiny"), &cpu_device()).unwrap();
    for text in ["a dog barking", "warm analog pad with a long reverb tail"] {
        let diff = max_abs_diff(
            &from_bin.embed_text(text).unwrap(),
            &from_safetensors.embed_text(text).unwrap(),
        );
        assert!(diff <= 1e-7, "{text}: {diff}");
    }
    let window: Vec<f32> = (0..1001 * from_bin.mel_bins())
        .map(|i| -40.0 + 10.0 * (i as f32 * 0.013).sin())
        .collect();
    let diff = max_abs_diff(
        &from_bin.embed_audio(&[&window]).unwrap()[0],
        &from_safetensors.embed_audio(&[&window]).unwrap()[0],
    );
    assert!(diff <= 1e-7, "audio: {diff}");
}

#[test]
fn a_directory_without_weights_names_both_weight_files() {
    let dir = pytorch_only();
    std::fs::remove_file(dir.path().join("pytorch_model.bin")).unwrap();
    let err = ModelSource::Dir(dir.path().to_path_buf())
        .resolve(&HubOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("pytorch_model.bin"),
        "{err}"
    );
    let Err(err) = ClapModel::load(dir.path(), &cpu_device()) else {
        panic!("a directory without weights loaded");
    };
    assert!(err.to_string().contains("pytorch_model.bin"), "{err}");
}

#[test]
fn hub_download_falls_back_to_pytorch_model_bin() {
    let dir = pytorch_only();
    let (base, _) = serve(dir.path().to_path_buf(), "laion/bin-only");
    let cache = tempfile::tempdir().unwrap();
    let source = ModelSource::Hub {
        repo: "laion/bin-only".into(),
        revision: "main".into(),
        cache_dir: cache.path().to_path_buf(),
    };
    let online = HubOptions {
        endpoint: Some(base),
        offline: false,
    };
    let resolved = source.resolve(&online).unwrap();
    assert!(resolved.join("pytorch_model.bin").is_file());
    assert!(!resolved.join("model.safetensors").exists());
    let model = ClapModel::load(&resolved, &cpu_device()).unwrap();
    assert_eq!(model.embed_text("a dog barking").unwrap().len(), model.dim());
    // Cached: offline finds the .bin without asking for model.safetensors again.
    let offline = HubOptions {
        endpoint: None,
        offline: true,
    };
    assert_eq!(source.resolve(&offline).unwrap(), resolved);

    // A repository with neither weight file names both.
    let empty = pytorch_only();
    std::fs::remove_file(empty.path().join("pytorch_model.bin")).unwrap();
    let (base, _) = serve(empty.path().to_path_buf(), "laion/no-weights");
    let source = ModelSource::Hub {
        repo: "laion/no-weights".into(),
        revision: "main".into(),
        cache_dir: cache.path().to_path_buf(),
    };
    let err = source
        .resolve(&HubOptions {
            endpoint: Some(base),
            offline: false,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors or pytorch_model.bin"), "{err}");
}
