//! Several servers on one database: jobs are leased to one replica, a
//! replica killed with SIGKILL in the middle of a job loses it to another
//! once its lease passes, the cluster's chores run on one replica at a time,
//! and what must not be shared (a SQLite database, a data directory) is
//! refused.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::net::TcpListener;
use traum_proto::v1 as pb;

use crate::support::{
    Backend, TestEnv, connect, download_through, fixture_model_dir, free_port, postgres_url, sha256_hex,
    upload_header, upload_through, wav, with_fixture_model, workspace_binary,
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
        let addr = free_port();
        let data_dir = env.dir.path().join(format!("data-{replica}"));
        let child = Command::new(workspace_binary("traum-server"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--database-url")
            .arg(&env.db.url)
            .arg("--blob-store")
            .arg(format!("file://{}", blob_dir.display()))
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
            config.blob_dir = blob_dir.clone();
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
