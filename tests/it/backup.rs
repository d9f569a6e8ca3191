//! `traum-server backup` and `restore` through the real binary: a backup
//! taken while uploads run restores into a fresh SQLite + directory store
//! and into a fresh PostgreSQL + S3 store with the same files, bytes,
//! descriptors, tags and search results; a second backup copies only new
//! blobs and carries the saved index; damage and a non-empty target are
//! refused with messages.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use traum_proto::v1 as pb;

use crate::s3::{BUCKET, S3Server, s3_location};
use crate::support::{
    Backend, TestEnv, TestServer, download_through, postgres_url, wait_search_serving, wav,
    with_fixture_model, workspace_binary,
};

const QUERY: &str = "a warm low hum";

/// Runs `traum-server ARGS` off the async runtime; returns (success, stdout, stderr).
async fn traum_server(args: Vec<String>, variables: Vec<(String, String)>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(workspace_binary("traum-server"))
            .args(&args)
            .envs(variables)
            .env_remove("TRAUM_BLOB_STORE")
            .output()
            .expect("run traum-server");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("command thread")
}

fn database_args(data_dir: &Path, url: &str) -> Vec<String> {
    vec![
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--database-url".into(),
        url.into(),
    ]
}

fn s3_variables(s3: &S3Server) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT", s3.endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

fn tone(index: usize) -> (String, Vec<u8>) {
    let freq = 110.0 * (1.0 + index as f64 * 0.37);
    (
        format!("tone-{index:02}.wav"),
        wav(1.5 + index as f64 * 0.1, 22_050, 1, freq),
    )
}

/// Every file the server lists, by id, once all of them are ready.
async fn ready_files(server: &TestServer) -> BTreeMap<String, pb::File> {
    let started = Instant::now();
    loop {
        let listed = server
            .audio()
            .list_files(pb::ListFilesRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .expect("list files")
            .into_inner();
        if listed
            .files
            .iter()
            .all(|file| file.state == pb::FileState::Ready as i32)
        {
            let mut files = BTreeMap::new();
            for summary in listed.files {
                let file = server
                    .audio()
                    .get_file(pb::GetFileRequest {
                        file_id: summary.file_id.clone(),
                    })
                    .await
                    .expect("get file")
                    .into_inner();
                files.insert(summary.file_id, file);
            }
            return files;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "files did not all become ready: {:?}",
            listed
                .files
                .iter()
                .map(|f| (&f.filename, f.state))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every file ranked for [`QUERY`] by its vectors alone (no keyword part,
/// whose weights depend on the whole library).
async fn ranking(server: &TestServer) -> Vec<(String, f64)> {
    wait_search_serving(server).await;
    server
        .search()
        .search_by_text(pb::SearchByTextRequest {
            query: QUERY.into(),
            filters: None,
            options: Some(pb::SearchOptions {
                limit: 100,
                keyword_weight: 0.0,
                ..Default::default()
            }),
        })
        .await
        .expect("search")
        .into_inner()
        .hits
        .into_iter()
        .map(|hit| (hit.file.expect("hit file").file_id, hit.score))
        .collect()
}

/// What is the same in a source and its restored copy: everything except
/// when processing last touched the row (a restore reruns the jobs that
/// were running) and what the database's clock resolution cannot hold.
fn comparable(mut file: pb::File) -> pb::File {
    file.updated_at = None;
    // PostgreSQL keeps timestamps to the microsecond, SQLite to the
    // nanosecond.
    if let Some(created) = &mut file.created_at {
        created.nanos -= created.nanos % 1000;
    }
    file
}

/// Checks that `restored` serves exactly the source's files named in it,
/// with the same rows, bytes and ranking among them.
async fn assert_restored(
    what: &str,
    restored: &TestServer,
    source_files: &BTreeMap<String, pb::File>,
    source_ranking: &[(String, f64)],
    source_bytes: &BTreeMap<String, Vec<u8>>,
) -> usize {
    let files = ready_files(restored).await;
    for (id, file) in &files {
        let source = source_files
            .get(id)
            .unwrap_or_else(|| panic!("{what}: restored file {id} was never in the source"));
        assert_eq!(
            comparable(file.clone()),
            comparable(source.clone()),
            "{what}: file {id}"
        );
        let bytes = download_through(&mut restored.audio(), id).await;
        assert!(bytes == source_bytes[id], "{what}: the bytes of {id} differ");
    }
    let expected: Vec<(String, f64)> = source_ranking
        .iter()
        .filter(|(id, _)| files.contains_key(id))
        .cloned()
        .collect();
    let got = ranking(restored).await;
    assert_eq!(
        got.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        expected.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        "{what}: ranking"
    );
    for ((_, got), (id, want)) in got.iter().zip(&expected) {
        assert!(
            (got - want).abs() <= 1e-6,
            "{what}: score of {id}: {got} vs {want}"
        );
    }
    files.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_during_uploads_restores_into_sqlite_and_into_postgres_on_s3() {
    let source = TestEnv::new(Backend::Sqlite).await;
    let server = source.start_with(with_fixture_model).await;
    for index in 0..6 {
        let (name, data) = tone(index);
        let tags = if index % 2 == 0 {
            vec!["even", "pad"]
        } else {
            vec!["odd"]
        };
        server.upload_and_process(&name, &tags, &data).await;
    }
    // More uploads while the backup runs; it sees some of them, in
    // whatever stage they are.
    let uploader = {
        let audio = server.audio();
        tokio::spawn(async move {
            let mut audio = audio;
            let mut jobs = Vec::new();
            for index in 6..14 {
                let (name, data) = tone(index);
                let header = crate::support::upload_header(&name, &data);
                jobs.push(
                    crate::support::upload_through(&mut audio, header, &data)
                        .await
                        .expect("upload during the backup")
                        .job_id,
                );
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            jobs
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let backups = source.dir.path().join("backups");
    let source_data = source.dir.path().join("data");
    let mut args = vec!["backup".to_owned(), "--to".into(), backups.display().to_string()];
    args.extend(database_args(&source_data, &source.db.url));
    let (ok, out, err) = traum_server(args.clone(), Vec::new()).await;
    assert!(ok, "backup failed: {err}");
    assert!(out.contains("backup written to"), "{out}");
    let first_snapshot = out
        .split("backup written to ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("snapshot path")
        .to_owned();
    for job in uploader.await.expect("uploader") {
        server.wait_succeeded(&job).await;
    }
    let source_files = ready_files(&server).await;
    assert_eq!(source_files.len(), 14);
    let source_ranking = ranking(&server).await;
    assert_eq!(source_ranking.len(), 14);
    let mut source_bytes = BTreeMap::new();
    for id in source_files.keys() {
        source_bytes.insert(id.clone(), download_through(&mut server.audio(), id).await);
    }

    let (ok, out, err) = traum_server(
        vec!["backup".into(), "--verify".into(), first_snapshot.clone()],
        Vec::new(),
    )
    .await;
    assert!(ok, "verify failed: {err}");
    assert!(out.contains("is intact"), "{out}");

    // Into a fresh SQLite database and directory store.
    let sqlite = TestEnv::new(Backend::Sqlite).await;
    let mut args = vec!["restore".to_owned(), "--from".into(), first_snapshot.clone()];
    args.extend(database_args(&sqlite.dir.path().join("data"), &sqlite.db.url));
    let (ok, out, err) = traum_server(args.clone(), Vec::new()).await;
    assert!(ok, "restore into SQLite failed: {err}");
    assert!(out.contains("restored"), "{out}");
    // A second restore into the now full database is refused and changes nothing.
    let (ok, _, err) = traum_server(args, Vec::new()).await;
    assert!(!ok);
    assert!(err.contains("the database is not empty"), "{err}");
    let restored = sqlite.start_with(with_fixture_model).await;
    let in_backup = assert_restored("SQLite", &restored, &source_files, &source_ranking, &source_bytes).await;
    assert!((6..14).contains(&in_backup), "the backup holds {in_backup} files");
    restored.stop().await;
    sqlite.finish().await;

    // Into a fresh PostgreSQL database and S3 bucket.
    if postgres_url().is_some() {
        let s3 = S3Server::start().await;
        let postgres = TestEnv::new(Backend::Postgres).await;
        let mut args = vec![
            "restore".to_owned(),
            "--from".into(),
            first_snapshot.clone(),
            "--blob-store".into(),
            format!("s3://{BUCKET}/restored"),
        ];
        args.extend(database_args(&postgres.dir.path().join("data"), &postgres.db.url));
        let (ok, out, err) = traum_server(args, s3_variables(&s3)).await;
        assert!(ok, "restore into PostgreSQL + S3 failed: {err}");
        assert!(out.contains("s3://traum-test/restored"), "{out}");
        let restored = postgres
            .start_with(|config| {
                with_fixture_model(config);
                config.blob_store = s3_location(&s3.endpoint(), "restored");
            })
            .await;
        let count = assert_restored(
            "PostgreSQL + S3",
            &restored,
            &source_files,
            &source_ranking,
            &source_bytes,
        )
        .await;
        assert_eq!(count, in_backup);
        assert_eq!(s3.keys("restored/").await.len(), in_backup);

        // And back: the cluster's backup, taken while it serves, restores
        // into the embedded default.
        let cluster_backups = postgres.dir.path().join("backups");
        let mut args = vec![
            "backup".to_owned(),
            "--to".into(),
            cluster_backups.display().to_string(),
            "--blob-store".into(),
            format!("s3://{BUCKET}/restored"),
        ];
        args.extend(database_args(&postgres.dir.path().join("data"), &postgres.db.url));
        let (ok, out, err) = traum_server(args, s3_variables(&s3)).await;
        assert!(ok, "backup of PostgreSQL + S3 failed: {err}");
        assert!(out.contains(&format!("; {in_backup} blobs (")), "{out}");
        let back = TestEnv::new(Backend::Sqlite).await;
        let mut args = vec![
            "restore".to_owned(),
            "--from".into(),
            cluster_backups.display().to_string(),
        ];
        args.extend(database_args(&back.dir.path().join("data"), &back.db.url));
        let (ok, _, err) = traum_server(args, Vec::new()).await;
        assert!(ok, "restore from PostgreSQL + S3 into SQLite failed: {err}");
        let embedded = back.start_with(with_fixture_model).await;
        let count = assert_restored(
            "back to SQLite",
            &embedded,
            &source_files,
            &source_ranking,
            &source_bytes,
        )
        .await;
        assert_eq!(count, in_backup);
        embedded.stop().await;
        back.finish().await;
        restored.stop().await;
        postgres.finish().await;
    }

    // A second backup after the server stopped: only the new blobs are
    // copied, and the index the server saved goes with it.
    server.stop().await;
    let mut args = vec!["backup".to_owned(), "--to".into(), backups.display().to_string()];
    args.extend(database_args(&source_data, &source.db.url));
    let (ok, out, err) = traum_server(args, Vec::new()).await;
    assert!(ok, "second backup failed: {err}");
    let copied = format!("{} blobs", 14 - in_backup);
    assert!(
        out.contains(&format!("; {copied} (")),
        "expected {copied} copied: {out}"
    );
    assert!(
        !out.contains("index files: 0"),
        "the saved index is missing: {out}"
    );
    let again = TestEnv::new(Backend::Sqlite).await;
    let mut args = vec![
        "restore".to_owned(),
        "--from".into(),
        backups.display().to_string(),
    ];
    args.extend(database_args(&again.dir.path().join("data"), &again.db.url));
    let (ok, out, err) = traum_server(args, Vec::new()).await;
    assert!(ok, "restore of the latest backup failed: {err}");
    assert!(out.contains("the saved vector index was installed"), "{out}");
    let restored = again.start_with(with_fixture_model).await;
    let count = assert_restored("latest", &restored, &source_files, &source_ranking, &source_bytes).await;
    assert_eq!(count, 14);
    restored.stop().await;
    again.finish().await;
    source.finish().await;
}

#[tokio::test]
async fn damaged_backups_are_refused_by_verify_and_restore() {
    let source = TestEnv::new(Backend::Sqlite).await;
    let server = source.start().await;
    let (name, data) = tone(0);
    server.upload_and_process(&name, &["kept"], &data).await;
    server.stop().await;
    let backups = source.dir.path().join("backups");
    let mut args = vec!["backup".to_owned(), "--to".into(), backups.display().to_string()];
    args.extend(database_args(&source.dir.path().join("data"), &source.db.url));
    let (ok, _, err) = traum_server(args, Vec::new()).await;
    assert!(ok, "backup failed: {err}");

    let verify = || {
        traum_server(
            vec!["backup".into(), "--verify".into(), backups.display().to_string()],
            Vec::new(),
        )
    };
    let (ok, out, _) = verify().await;
    assert!(ok && out.contains("1 blobs checked"), "{out}");

    // A flipped byte in a blob.
    let blob = crate::support::files_under(&backups.join("blobs"))
        .into_iter()
        .find(|path| !path.starts_with(backups.join("blobs").join(".tmp")))
        .expect("a blob in the backup");
    let original = std::fs::read(&blob).expect("read blob");
    let mut damaged = original.clone();
    damaged[100] ^= 0xff;
    std::fs::write(&blob, &damaged).expect("damage blob");
    let (ok, _, err) = verify().await;
    assert!(!ok);
    assert!(err.contains("is damaged"), "{err}");

    // A restore of it stops before writing anything.
    let target = TestEnv::new(Backend::Sqlite).await;
    let mut args = vec![
        "restore".to_owned(),
        "--from".into(),
        backups.display().to_string(),
    ];
    args.extend(database_args(&target.dir.path().join("data"), &target.db.url));
    let (ok, _, err) = traum_server(args.clone(), Vec::new()).await;
    assert!(!ok);
    assert!(err.contains("is damaged"), "{err}");
    std::fs::write(&blob, &original).expect("repair blob");

    // A table row changed by hand.
    let tags = std::fs::read_dir(backups.join("snapshots"))
        .expect("snapshots")
        .next()
        .expect("one snapshot")
        .expect("entry")
        .path()
        .join("tables/file_tags.jsonl");
    let text = std::fs::read_to_string(&tags).expect("read tags");
    std::fs::write(&tags, text.replace("kept", "kEpt")).expect("edit tags");
    let (ok, _, err) = verify().await;
    assert!(!ok);
    assert!(err.contains("file_tags.jsonl is damaged"), "{err}");
    std::fs::write(&tags, text).expect("repair tags");

    // Repaired, it restores; the restored server has the file and its tag.
    let (ok, _, err) = traum_server(args, Vec::new()).await;
    assert!(ok, "restore failed: {err}");
    let restored = target.start().await;
    let files = ready_files(&restored).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files.values().next().expect("file").tags, vec!["kept".to_owned()]);
    restored.stop().await;

    // Not a backup at all.
    let (ok, _, err) = traum_server(
        vec![
            "backup".into(),
            "--verify".into(),
            source.dir.path().display().to_string(),
        ],
        Vec::new(),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("is not a backup"), "{err}");
    target.finish().await;
    source.finish().await;
}
