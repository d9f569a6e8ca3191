//! Replicas following one database: after a file is ready on the replica
//! that processed it, how long until search on every other replica finds
//! it; after a delete returns, how long until none finds it any more.
//! Replicas are in-process servers on loopback ports sharing one PostgreSQL
//! database and one blob directory; each file is a 0.5 s tone uploaded
//! through the resumable API, round-robin over the replicas. The Python
//! stacks Traum replaces have no replicas to compare with, so there is no
//! peer: the figures are absolute.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::Channel;
use traum_proto::v1 as pb;

/// How often the other replicas are asked.
const POLL: Duration = Duration::from_millis(2);
/// A replica that has not followed after this long fails the run.
const GIVE_UP: Duration = Duration::from_secs(30);

/// An in-process server: its channel, and how to stop it and wait for it.
pub struct Replica {
    pub channel: Channel,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub server: tokio::task::JoinHandle<Result<(), traum_server::StartError>>,
}

fn tone_wav(seconds: f64, rate: u32, freq: f64) -> Vec<u8> {
    let frames = (seconds * f64::from(rate)) as u32;
    let mut out = Vec::with_capacity(44 + frames as usize * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + frames * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(frames * 2).to_le_bytes());
    for n in 0..frames {
        let t = f64::from(n) / f64::from(rate);
        let value = (0.5 * (2.0 * std::f64::consts::PI * freq * t).sin() * 32767.0) as i16;
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

async fn found(channel: &Channel, keyword: &str) -> anyhow::Result<Vec<String>> {
    let hits = pb::search_service_client::SearchServiceClient::new(channel.clone())
        .search_by_text(pb::SearchByTextRequest {
            query: "a steady tone".into(),
            filters: Some(pb::SearchFilters {
                keywords: keyword.into(),
                ..Default::default()
            }),
            options: Some(pb::SearchOptions {
                limit: 5,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .hits;
    Ok(hits
        .into_iter()
        .filter_map(|hit| hit.file)
        .map(|file| file.file_id)
        .collect())
}

/// Time until `holds` is true on `channel`, polled every [`POLL`].
async fn until(
    channel: &Channel,
    keyword: &str,
    holds: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let hits = found(channel, keyword).await?;
        if holds(&hits) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < GIVE_UP,
            "{keyword}: a replica did not follow within {GIVE_UP:?} (it finds {hits:?})"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn start(
    index: usize,
    scratch: &Path,
    model_dir: &Path,
    database_url: &str,
) -> anyhow::Result<Replica> {
    let mut config = traum_server::Config::with_data_dir(scratch.join(format!("data-{index}")));
    config.database_url = database_url.to_owned();
    config.blob_store = traum_server::blob::BlobLocation::Directory(scratch.join("blobs"));
    config.replica_id = format!("bench-{index}");
    config.model_dir = Some(model_dir.to_path_buf());
    config.metrics_listen = None;
    config.web_listen = None;
    config.log = "warn".into();
    config.workers = 1;
    // The bench asks every 2 ms, far above the per-caller search limit.
    config.limits.search = traum_server::auth::Rate {
        per_second: 0.0,
        burst: 1,
    };
    serve_until_search_ready(config, Duration::from_secs(120))
        .await
        .with_context(|| format!("replica {index}"))
}

/// Runs `config` in-process on a loopback port and returns once its
/// `SearchService` reports `SERVING` (model loaded, indexes caught up), or
/// fails after `give_up`.
pub async fn serve_until_search_ready(
    config: traum_server::Config,
    give_up: Duration,
) -> anyhow::Result<Replica> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(traum_server::run(listener, config, async {
        let _ = stopped.await;
    }));
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let started = Instant::now();
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "traum.v1.SearchService".into(),
            })
            .await
            .map(|reply| reply.into_inner().status)
            .unwrap_or_default();
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < give_up,
            "the server did not serve search within {give_up:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Replica {
        channel,
        stop,
        server,
    })
}

/// Uploads one file through `channel` and returns its id once its job has
/// succeeded there.
async fn upload_ready(channel: &Channel, filename: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let mut audio = pb::audio_service_client::AudioServiceClient::new(channel.clone());
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: filename.into(),
                size_bytes: Some(bytes.len() as u64),
                // The same tone from an earlier run would otherwise be that
                // run's file, under its name.
                always_create_file: true,
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id.clone(),
            offset: 0,
            data: bytes.to_vec().into(),
        })
        .await?;
    let result = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id,
        })
        .await?
        .into_inner();
    let started = Instant::now();
    loop {
        let job = audio
            .get_job(pb::GetJobRequest {
                job_id: result.job_id.clone(),
            })
            .await?
            .into_inner();
        if job.state == pb::JobState::Succeeded as i32 {
            return Ok(result.file_id);
        }
        anyhow::ensure!(
            job.state != pb::JobState::Failed as i32,
            "{filename} failed: {}",
            job.error
        );
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "{filename} was not processed"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `n` in letters (a word the keyword index keeps whole: it splits words
/// where letters and digits meet).
fn letters(mut n: u128) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

fn summary(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms ({} samples)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        samples.len()
    );
}

pub fn run(model_dir: &Path, database_url: &str, replicas: usize, files: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        database_url.starts_with("postgres"),
        "replicas share a PostgreSQL database: pass --database-url postgres://..."
    );
    anyhow::ensure!(replicas >= 2, "propagation needs at least 2 replicas");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scratch = tempfile::tempdir()?;
    // File names unique to this run, so a database used before still works.
    let run_tag = letters(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    );
    runtime.block_on(async {
        let mut servers = Vec::with_capacity(replicas);
        for index in 0..replicas {
            servers.push(
                start(index, scratch.path(), model_dir, database_url)
                    .await
                    .with_context(|| format!("starting replica {index}"))?,
            );
        }
        println!(
            "{replicas} replicas on one PostgreSQL database, {} build, {} cores",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        let mut ready_to_found = Vec::with_capacity(files * (replicas - 1));
        let mut ids = Vec::with_capacity(files);
        for n in 0..files {
            let writer = n % replicas;
            let keyword = format!("prop{run_tag}x{}", letters(n as u128));
            let bytes = tone_wav(0.5, 16_000, 110.0 + 7.0 * n as f64);
            let id = upload_ready(&servers[writer].channel, &format!("{keyword}.wav"), &bytes).await?;
            let waits = (1..replicas).map(|k| {
                let channel = servers[(writer + k) % replicas].channel.clone();
                let (keyword, id) = (keyword.clone(), id.clone());
                async move { until(&channel, &keyword, |hits| hits.contains(&id)).await }
            });
            for waited in futures::future::join_all(waits).await {
                ready_to_found.push(waited?);
            }
            ids.push((writer, keyword, id));
        }
        let mut deleted_to_gone = Vec::new();
        for (writer, keyword, id) in ids.iter().take(files.div_ceil(2)) {
            pb::audio_service_client::AudioServiceClient::new(servers[*writer].channel.clone())
                .delete_file(pb::DeleteFileRequest { file_id: id.clone() })
                .await?;
            let waits = (1..replicas).map(|k| {
                let channel = servers[(writer + k) % replicas].channel.clone();
                let keyword = keyword.clone();
                async move { until(&channel, &keyword, <[String]>::is_empty).await }
            });
            for waited in futures::future::join_all(waits).await {
                deleted_to_gone.push(waited?);
            }
        }
        summary("ready on its replica -> found on another", ready_to_found);
        summary("delete returned -> gone from another", deleted_to_gone);
        println!(
            "(each other replica polled every {} ms; a sample includes up to one poll interval)",
            POLL.as_millis()
        );
        for server in servers {
            let _ = server.stop.send(());
            server.server.await??;
        }
        anyhow::Ok(())
    })
}
