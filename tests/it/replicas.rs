//! Several servers on one database: jobs are leased to one replica, a
//! replica killed with SIGKILL in the middle of a job loses it to another
//! once its lease passes, the cluster's chores run on one replica at a time,
//! every replica's indexes follow what any replica wrote, and what must not
//! be shared (a SQLite database, a data directory) is refused.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::net::TcpListener;
use traum_proto::v1 as pb;
use traum_server::blob::BlobLocation;

use crate::s3::{BUCKET, S3Server};
use crate::support::{
    Backend, TestEnv, TestServer, connect, download_through, files_under, fixture_model_dir, free_port,
    postgres_url, sha256_hex, upload_header, upload_through, vector_entries, wait_search_serving, wav,
    with_fixture_model, workspace_binary,
};

/// Replica-a's lease: short, so the test waits seconds for a takeover, not
/// the default 30.
const LEASE: Duration = Duration::from_secs(2);
/// Replica-b's: long, so that a hand-over faster than it can only be its
/// release at shutdown.
const LONG_LEASE: Duration = Duration::from_secs(20);

/// A `traum-server` process, so that it can be killed for real.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    async fn start(env: &TestEnv, replica: &str, blob_dir: &Path) -> Self {
        Self::start_on(env, replica, &format!("file://{}", blob_dir.display()), &[]).await
    }

    /// Starts a replica on the bucket of `s3`, configured as a deployment
    /// would be: by the standard `AWS_*` variables.
    async fn start_on_s3(env: &TestEnv, replica: &str, s3: &S3Server) -> Self {
        let endpoint = s3.endpoint();
        let variables = [
            ("AWS_ENDPOINT", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ALLOW_HTTP", "true"),
        ];
        Self::start_on(env, replica, &format!("s3://{BUCKET}/cluster"), &variables).await
    }

    async fn start_on(env: &TestEnv, replica: &str, blob_store: &str, variables: &[(&str, &str)]) -> Self {
        let addr = free_port();
        let data_dir = env.dir.path().join(format!("data-{replica}"));
        let child = Command::new(workspace_binary("traum-server"))
            .envs(variables.iter().copied())
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--database-url")
            .arg(&env.db.url)
            .args(["--blob-store", blob_store])
            .args(["--replica-id", replica])
            .args(["--job-lease", "2s", "--workers", "1"])
            .args(["--metrics-listen", "off", "--web-listen", "off", "--log", "warn"])
            .arg("--model-dir")
            .arg(fixture_model_dir())
            .stdout(Stdio::null())
            .spawn()
            .expect("start traum-server");
        let process = Self { child, addr };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Ok(channel)) = tokio::time::timeout(
                Duration::from_secs(1),
                tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
                    .expect("endpoint")
                    .connect(),
            )
            .await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                if let Ok(reply) = health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    && reply.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("traum-server on {} did not become ready", self.addr);
    }

    async fn audio(&self) -> pb::audio_service_client::AudioServiceClient<tonic::transport::Channel> {
        pb::audio_service_client::AudioServiceClient::new(connect(self.addr).await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    async fn search_serving(&self) -> bool {
        let mut health = tonic_health::pb::health_client::HealthClient::new(connect(self.addr).await);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: traum_proto::service_names::SEARCH.into(),
            })
            .await
            .is_ok_and(|reply| {
                reply.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            })
    }

    /// SIGKILL: no shutdown, no lease released, nothing flushed.
    fn kill(mut self) {
        self.child.kill().expect("kill traum-server");
        self.child.wait().expect("reap traum-server");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row of `jobs`, as the database has it.
#[derive(Debug, Clone, PartialEq)]
struct JobRow {
    state: String,
    owner: Option<String>,
    attempts: i32,
}

async fn job_row(db: &DatabaseConnection, job_id: &str) -> JobRow {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT state, owner, attempts FROM jobs WHERE id = $1",
            [job_id.into()],
        ))
        .await
        .expect("read the job")
        .expect("the job exists");
    JobRow {
        state: row.try_get("", "state").unwrap(),
        owner: row.try_get("", "owner").unwrap(),
        attempts: row.try_get("", "attempts").unwrap(),
    }
}

async fn chores_holder(db: &DatabaseConnection) -> Option<String> {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT holder FROM cluster_leases WHERE name = 'chores'",
    ))
    .await
    .expect("read the chores lease")
    .map(|row| row.try_get("", "holder").unwrap())
}

async fn eventually<T>(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_job_loses_it_to_another_once_its_lease_passes() {
    if postgres_url().is_none() {
        eprintln!("TRAUM_TEST_POSTGRES_URL is not set; replicas need PostgreSQL; not run");
        return;
    }
    let env = TestEnv::new(Backend::Postgres).await;
    let blob_dir = env.dir.path().join("shared-blobs");
    let db = Database::connect(&env.db.url).await.unwrap();

    let a = Process::start(&env, "replica-a", &blob_dir).await;
    eventually(
        "replica-a takes the chores lease",
        Duration::from_secs(10),
        async || (chores_holder(&db).await.as_deref() == Some("replica-a")).then_some(()),
    )
    .await;
    // Long enough that its job runs for several lease periods on a debug
    // build: five minutes of audio to decode, analyse and embed.
    let long = wav(300.0, 16_000, 1, 220.0);
    let (digest, size) = (sha256_hex(&long), long.len());
    let uploaded = upload_through(&mut a.audio().await, upload_header("long.wav", &long), &long)
        .await
        .expect("upload through replica-a");
    let job_id = uploaded.job_id.clone();
    let claimed_by_a = eventually("replica-a runs the job", Duration::from_secs(30), async || {
        let row = job_row(&db, &job_id).await;
        (row.state == "running").then_some(row)
    })
    .await;
    assert_eq!(
        claimed_by_a,
        JobRow {
            state: "running".into(),
            owner: Some("replica-a".into()),
            attempts: 1
        }
    );

    let b = env
        .start_with(|config| {
            config.data_dir = env.dir.path().join("data-replica-b");
            config.blob_store = BlobLocation::Directory(blob_dir.clone());
            config.replica_id = "replica-b".into();
            config.job_lease = LONG_LEASE;
            config.workers = 1;
            with_fixture_model(config);
        })
        .await;
    // Starting beside a live replica re-queues nothing of it, and the live
    // replica's heartbeat keeps its job for longer than one lease.
    let watch_until = Instant::now() + LEASE * 2;
    while Instant::now() < watch_until {
        let row = job_row(&db, &job_id).await;
        assert_eq!(row.owner.as_deref(), Some("replica-a"), "{row:?}");
        assert_eq!(row.attempts, 1, "{row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = job_row(&db, &job_id).await;
    assert_eq!(
        row.state, "running",
        "the job must still run on replica-a to be killed mid-job; make the file longer"
    );
    assert_eq!(chores_holder(&db).await.as_deref(), Some("replica-a"));

    a.kill();
    let killed = Instant::now();
    let done = eventually(
        "replica-b finishes the job",
        Duration::from_secs(180),
        async || {
            let job = b
                .audio()
                .get_job(pb::GetJobRequest {
                    job_id: job_id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            (job.state == pb::JobState::Succeeded as i32).then_some(job)
        },
    )
    .await;
    eprintln!(
        "replicas: replica-b finished the job {:?} after replica-a was killed",
        killed.elapsed()
    );
    assert_eq!(done.replica, "replica-b");
    assert_eq!(done.attempts, 2, "claimed once by each replica");
    eventually("replica-b takes the chores over", LONG_LEASE, async || {
        (chores_holder(&db).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;

    // The stage that ran twice left its rows once: one vector per window
    // and one pooled vector.
    let counts = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT COUNT(*) AS all_rows, COUNT(DISTINCT COALESCE(window_index, -1)) AS distinct_rows \
             FROM embeddings WHERE file_id = $1",
            [uploaded.file_id.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let all_rows: i64 = counts.try_get("", "all_rows").unwrap();
    let distinct_rows: i64 = counts.try_get("", "distinct_rows").unwrap();
    assert!(all_rows > 1, "the file was embedded");
    assert_eq!(all_rows, distinct_rows, "no window is stored twice");

    // The bytes that went in through replica-a come out of replica-b.
    let downloaded = download_through(&mut b.audio(), &uploaded.file_id).await;
    assert_eq!((sha256_hex(&downloaded), downloaded.len()), (digest, size));

    // A restarted replica-a (same id, same data dir: the dead process held
    // its lock) comes back beside replica-b; when replica-b stops
    // gracefully it hands the chores over at once rather than after a lease.
    let a = Process::start(&env, "replica-a", &blob_dir).await;
    b.stop().await;
    let stopped = Instant::now();
    eventually("replica-a takes the released chores", LONG_LEASE, async || {
        (chores_holder(&db).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < LONG_LEASE / 2,
        "released at shutdown, not left to expire ({:?})",
        stopped.elapsed()
    );
    a.kill();
    db.close().await.ok();
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_database_or_data_dir_is_refused() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let first = env.start().await;
    let second_start = async |adjust: &dyn Fn(&mut traum_server::Config)| {
        let mut config = env.config();
        config.metrics_listen = None;
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        traum_server::run(listener, config, async {})
            .await
            .expect_err("a second server must not start")
            .to_string()
    };

    // Another data dir, the same SQLite file.
    let other_dir = env.dir.path().join("other");
    let message = second_start(&|config| config.data_dir = other_dir.clone()).await;
    assert!(
        message.starts_with(&format!(
            "the SQLite database {} is in use by another traum-server",
            env.dir.path().join("traum.db").display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("SQLite serves one server; replicas share a PostgreSQL database"),
        "{message}"
    );

    // The same data dir, another database.
    let other_db = format!("sqlite://{}?mode=rwc", env.dir.path().join("other.db").display());
    let message = second_start(&|config| config.database_url = other_db.clone()).await;
    assert!(
        message.starts_with(&format!(
            "the data directory {} is in use by another traum-server",
            env.dir.path().join("data").display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("give each server its own --data-dir"),
        "{message}"
    );

    // Refusing touched nothing: the first server still works, and once it
    // stops the same data dir and database start again.
    assert!(
        first
            .upload_and_process("a.wav", &[], &wav(0.5, 16_000, 1, 440.0))
            .await
            .file_id
            .len()
            == 36
    );
    first.stop().await;
    let again = env.start().await;
    let files = again
        .audio()
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(files.files.len(), 1);
    again.stop().await;
    env.finish().await;
}

/// The ids of the files search by text finds on `server` among those whose
/// name or tags hold `keyword`.
async fn found(server: &TestServer, keyword: &str) -> Vec<String> {
    found_via(server.channel(), keyword).await
}

async fn found_via(channel: tonic::transport::Channel, keyword: &str) -> Vec<String> {
    let hits = pb::search_service_client::SearchServiceClient::new(channel)
        .search_by_text(pb::SearchByTextRequest {
            query: "a steady tone".into(),
            filters: Some(pb::SearchFilters {
                keywords: keyword.into(),
                ..Default::default()
            }),
            options: Some(pb::SearchOptions {
                limit: 10,
                ..Default::default()
            }),
        })
        .await
        .expect("search")
        .into_inner()
        .hits;
    hits.into_iter()
        .map(|hit| hit.file.expect("hit file").file_id)
        .collect()
}

/// Polls `check` every 5 ms; returns how long it took to hold.
async fn time_until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_searches_what_any_replica_wrote() {
    if postgres_url().is_none() {
        eprintln!("TRAUM_TEST_POSTGRES_URL is not set; replicas need PostgreSQL; not run");
        return;
    }
    let env = TestEnv::new(Backend::Postgres).await;
    let blob_dir = env.dir.path().join("shared-blobs");
    let start = async |replica: &str| {
        let server = env
            .start_with(|config| {
                config.data_dir = env.dir.path().join(format!("data-{replica}"));
                config.blob_store = BlobLocation::Directory(blob_dir.clone());
                config.replica_id = replica.into();
                config.workers = 1;
                with_fixture_model(config);
            })
            .await;
        wait_search_serving(&server).await;
        server
    };
    let mut replicas = vec![
        start("replica-a").await,
        start("replica-b").await,
        start("replica-c").await,
    ];

    // Files written through each replica in turn; after each is ready on
    // its writer, the time until both others find it.
    const FILES: usize = 15;
    let mut ids = Vec::new();
    let mut latencies = Vec::new();
    for n in 0..FILES {
        let writer = &replicas[n % 3];
        let name = format!("feed{n:02}");
        let file = writer
            .upload_and_process(
                &format!("{name}.wav"),
                &[],
                &wav(1.0, 16_000, 1, 180.0 + 41.0 * n as f64),
            )
            .await;
        let others: Vec<&TestServer> = (1..3).map(|k| &replicas[(n + k) % 3]).collect();
        let waits = others.iter().map(|other| {
            let (name, id) = (name.clone(), file.file_id.clone());
            async move {
                time_until("another replica finds the file", async || {
                    found(other, &name).await == [id.clone()]
                })
                .await
            }
        });
        latencies.extend(futures::future::join_all(waits).await);
        assert_eq!(
            found(writer, &name).await,
            std::slice::from_ref(&file.file_id),
            "the writer finds its own file at once"
        );
        ids.push(file.file_id);
    }
    latencies.sort();
    eprintln!(
        "replicas: a file ready on one replica was found on the other two after p50 {:?}, p99 {:?}, max {:?} ({} samples, debug build)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        latencies.len()
    );

    // A rename through one replica changes what the keywords find on all.
    replicas[0]
        .audio()
        .update_file(pb::UpdateFileRequest {
            file_id: ids[0].clone(),
            filename: Some("zebra.wav".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // A delete through another removes the file from every index.
    replicas[1]
        .audio()
        .delete_file(pb::DeleteFileRequest {
            file_id: ids[1].clone(),
        })
        .await
        .unwrap();
    for replica in &replicas {
        time_until("the rename is followed", async || {
            found(replica, "zebra").await == [ids[0].clone()]
        })
        .await;
        time_until("the old name is gone", async || {
            found(replica, "feed00").await.is_empty()
        })
        .await;
        time_until("the deleted file is gone", async || {
            found(replica, "feed01").await.is_empty()
        })
        .await;
    }
    let entries = vector_entries(&replicas[0]).await;
    for replica in &replicas[1..] {
        time_until("every replica holds the same vectors", async || {
            vector_entries(replica).await == entries
        })
        .await;
    }

    // One resumable upload whose calls go to a different replica each, as
    // behind a balancer: started on a, chunks on b then c, finished on a.
    let bytes = wav(2.0, 16_000, 1, 523.0);
    let session = replicas[0]
        .audio()
        .start_upload(pb::StartUploadRequest {
            header: Some(upload_header("roaming.wav", &bytes)),
        })
        .await
        .unwrap()
        .into_inner();
    let mut offset = 0;
    for (n, piece) in bytes.chunks(bytes.len() / 2 + 1).enumerate() {
        let state = replicas[1 + n % 2]
            .audio()
            .put_upload_chunk(pb::PutUploadChunkRequest {
                upload_id: session.upload_id.clone(),
                offset,
                data: bytes::Bytes::copy_from_slice(piece),
            })
            .await
            .unwrap()
            .into_inner();
        offset += piece.len() as u64;
        assert_eq!(state.received_bytes, offset);
    }
    let roaming = replicas[0]
        .audio()
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .expect("a session whose chunks went through other replicas finishes")
        .into_inner();
    replicas[0].wait_succeeded(&roaming.job_id).await;
    let downloaded = download_through(&mut replicas[2].audio(), &roaming.file_id).await;
    assert_eq!(sha256_hex(&downloaded), sha256_hex(&bytes));

    // Replica-c stops (saving its index at its feed position) and misses
    // an upload, a delete and a rename; back, it replays them before it
    // serves, so its first searches already see them.
    let c = replicas.pop().unwrap();
    c.stop().await;
    let saved = env
        .dir
        .path()
        .join("data-replica-c")
        .join("index")
        .join("vectors");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["high_water_mark"].as_u64().unwrap() > 0,
        "the saved index records its feed position: {manifest}"
    );
    assert!(saved.join("owners.bin").exists());
    let late = replicas[0]
        .upload_and_process("late00.wav", &[], &wav(1.0, 16_000, 1, 97.0))
        .await;
    replicas[1]
        .audio()
        .delete_file(pb::DeleteFileRequest {
            file_id: ids[2].clone(),
        })
        .await
        .unwrap();
    replicas[0]
        .audio()
        .update_file(pb::UpdateFileRequest {
            file_id: ids[3].clone(),
            filename: Some("okapi.wav".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = start("replica-c").await;
    assert_eq!(found(&c, "late00").await, std::slice::from_ref(&late.file_id));
    assert!(found(&c, "feed02").await.is_empty());
    assert_eq!(found(&c, "okapi").await, [ids[3].clone()]);
    assert_eq!(vector_entries(&c).await, vector_entries(&replicas[0]).await);

    // A replica that never ran builds from the database and serves caught up.
    let d = start("replica-d").await;
    for (n, id) in ids.iter().enumerate().skip(4) {
        assert_eq!(found(&d, &format!("feed{n:02}")).await, std::slice::from_ref(id));
    }
    assert_eq!(vector_entries(&d).await, vector_entries(&replicas[0]).await);

    for server in [c, d].into_iter().chain(replicas) {
        server.stop().await;
    }
    env.finish().await;
}

/// The scenario of #21's tests: three replicas on one database and one S3
/// bucket take 60 uploads while one of them is killed with SIGKILL and
/// restarted; every job finishes once, every file reads back the same and
/// is found through every replica, deletes reach all of them, and a replica
/// started late serves search only once it has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_uploads_over_three_replicas_survive_a_killed_one() {
    if postgres_url().is_none() {
        eprintln!("TRAUM_TEST_POSTGRES_URL is not set; replicas need PostgreSQL; not run");
        return;
    }
    const UPLOADS: usize = 60;
    let env = TestEnv::new(Backend::Postgres).await;
    let s3 = S3Server::start().await;
    let db = Database::connect(&env.db.url).await.unwrap();
    let mut replicas = vec![
        Some(Process::start_on_s3(&env, "replica-a", &s3).await),
        Some(Process::start_on_s3(&env, "replica-b", &s3).await),
        Some(Process::start_on_s3(&env, "replica-c", &s3).await),
    ];
    let mut uploaded = Vec::new();
    for n in 0..UPLOADS {
        if n == UPLOADS / 3 {
            // Mid-stream, with jobs of its own queued or running.
            replicas[1].take().expect("replica-b").kill();
        }
        if n == 2 * UPLOADS / 3 {
            replicas[1] = Some(Process::start_on_s3(&env, "replica-b", &s3).await);
        }
        let live: Vec<&Process> = replicas.iter().flatten().collect();
        let through = live[n % live.len()];
        let bytes = wav(0.5, 16_000, 1, 150.0 + 23.0 * n as f64);
        let name = format!("multi{n:02}");
        let result = upload_through(
            &mut through.audio().await,
            upload_header(&format!("{name}.wav"), &bytes),
            &bytes,
        )
        .await
        .expect("upload");
        uploaded.push((name, result, sha256_hex(&bytes)));
    }
    let replicas: Vec<Process> = replicas.into_iter().flatten().collect();
    assert_eq!(replicas.len(), 3);

    for (name, result, _) in &uploaded {
        eventually(
            &format!("{name} is processed"),
            Duration::from_secs(180),
            async || {
                let job = replicas[0]
                    .audio()
                    .await
                    .get_job(pb::GetJobRequest {
                        job_id: result.job_id.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_ne!(job.state, pb::JobState::Failed as i32, "{job:?}");
                (job.state == pb::JobState::Succeeded as i32).then_some(())
            },
        )
        .await;
    }
    // Exactly once: one job per file, and each file's vectors once per
    // window, whichever replicas ran (or re-ran) its stages.
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS jobs, COUNT(DISTINCT file_id) AS files, \
             SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END) AS succeeded FROM jobs",
        ))
        .await
        .unwrap()
        .unwrap();
    let count = |column: &str| row.try_get::<i64>("", column).unwrap();
    assert_eq!((count("jobs"), count("files"), count("succeeded")), (60, 60, 60));
    let duplicated = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT file_id FROM embeddings GROUP BY file_id, model_id, COALESCE(window_index, -1) \
             HAVING COUNT(*) > 1",
        ))
        .await
        .unwrap();
    assert!(duplicated.is_empty(), "{} windows stored twice", duplicated.len());
    let taken_over = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM jobs WHERE attempts > 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    eprintln!("replicas: {taken_over} of {UPLOADS} jobs ran on more than one replica");

    // Every file, through every replica: the same bytes, and found.
    for replica in &replicas {
        eventually("search serves", Duration::from_secs(60), async || {
            replica.search_serving().await.then_some(())
        })
        .await;
        let channel = connect(replica.addr).await;
        for (name, result, digest) in &uploaded {
            let bytes = download_through(&mut replica.audio().await, &result.file_id).await;
            assert_eq!(&sha256_hex(&bytes), digest, "{name} through {}", replica.addr);
            eventually(&format!("{name} is found"), Duration::from_secs(10), async || {
                (found_via(channel.clone(), name).await == std::slice::from_ref(&result.file_id))
                    .then_some(())
            })
            .await;
        }
    }

    // Deletes through one replica reach every replica.
    for (_, result, _) in &uploaded[..5] {
        replicas[2]
            .audio()
            .await
            .delete_file(pb::DeleteFileRequest {
                file_id: result.file_id.clone(),
            })
            .await
            .unwrap();
    }
    for replica in &replicas {
        let channel = connect(replica.addr).await;
        for (name, _, _) in &uploaded[..5] {
            eventually(
                &format!("deleted {name} is gone"),
                Duration::from_secs(10),
                async || found_via(channel.clone(), name).await.is_empty().then_some(()),
            )
            .await;
        }
    }

    // A replica started now reports SERVING only once it has caught up, so
    // its first searches already find every file.
    // The bucket holds one object per remaining file, and no replica keeps
    // a copy on its own disk.
    let objects = s3.keys("cluster/").await;
    assert_eq!(objects.len(), UPLOADS - 5, "{objects:?}");
    for (_, _, digest) in &uploaded[5..] {
        assert!(
            objects.iter().any(|key| key.ends_with(digest.as_str())),
            "{digest}"
        );
    }
    let on_disk: Vec<_> = files_under(env.dir.path())
        .into_iter()
        .filter(|path| {
            let held = std::fs::read(path)
                .map(|bytes| sha256_hex(&bytes))
                .unwrap_or_default();
            uploaded.iter().any(|(_, _, digest)| *digest == held)
        })
        .collect();
    assert!(on_disk.is_empty(), "blobs on a replica's disk: {on_disk:?}");

    let late = Process::start_on_s3(&env, "replica-d", &s3).await;
    eventually(
        "the late replica serves search",
        Duration::from_secs(60),
        async || late.search_serving().await.then_some(()),
    )
    .await;
    let channel = connect(late.addr).await;
    for (name, result, _) in &uploaded[5..] {
        assert_eq!(
            found_via(channel.clone(), name).await,
            std::slice::from_ref(&result.file_id)
        );
    }
    for (name, _, _) in &uploaded[..5] {
        assert!(found_via(channel.clone(), name).await.is_empty());
    }
    drop((late, replicas));
    db.close().await.ok();
    env.finish().await;
}

/// `WatchJob` through a replica that is not running the job (as behind
/// Envoy, where the watch and the worker land anywhere): the watcher follows
/// the job's row and ends with the job. `traum upload` against two
/// replicas used to wait forever for the jobs the other one ran.
#[tokio::test]
async fn a_job_run_by_another_replica_is_watched_to_its_end() {
    if postgres_url().is_none() {
        eprintln!("TRAUM_TEST_POSTGRES_URL is not set; replicas need PostgreSQL; not run");
        return;
    }
    let env = TestEnv::new(Backend::Postgres).await;
    let blob_dir = env.dir.path().join("shared-blobs");
    let start = async |replica: &str| {
        env.start_with(|config| {
            config.data_dir = env.dir.path().join(format!("data-{replica}"));
            config.blob_store = BlobLocation::Directory(blob_dir.clone());
            config.replica_id = replica.into();
            config.workers = 1;
            with_fixture_model(config);
        })
        .await
    };
    let replicas = [start("watch-a").await, start("watch-b").await];
    // Long enough that one worker is still busy with the first when the
    // other polls the queue (every 2 s), so both replicas run jobs.
    let mut uploads = Vec::new();
    for n in 0..4 {
        let data = wav(25.0, 22_050, 1, 200.0 + 50.0 * n as f64);
        uploads.push(
            replicas[0]
                .upload(&format!("long{n}.wav"), &[], &data)
                .await
                .expect("upload"),
        );
    }
    let watches = uploads.iter().flat_map(|upload| {
        replicas.iter().map(move |replica| {
            let job_id = upload.job_id.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(90), replica.watch_to_end(&job_id))
                    .await
                    .unwrap_or_else(|_| panic!("the watch of {job_id} through {} did not end", replica.addr))
            }
        })
    });
    let mut runners = std::collections::BTreeSet::new();
    for events in futures::future::join_all(watches).await {
        let last = events
            .last()
            .and_then(|event| event.job.clone())
            .expect("a final event");
        assert_eq!(last.state, pb::JobState::Succeeded as i32, "{last:?}");
        runners.insert(last.replica.clone());
    }
    assert_eq!(
        runners.len(),
        2,
        "both replicas ran jobs, so some watches followed another replica's job: {runners:?}"
    );
    for replica in replicas {
        replica.stop().await;
    }
    env.finish().await;
}
