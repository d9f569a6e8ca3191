//! The blob store on S3: a real S3-compatible server (moto) on loopback
//! holds the bytes, with nothing of them in the data directory; uploads of
//! both kinds, ranged reads, dedup and deletes go through it; an outage of
//! the store gets UNAVAILABLE, leaves no half-written record and heals when
//! the store returns.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use traum_proto::v1 as pb;
use traum_server::blob::{BlobLocation, S3Location};

use crate::support::{
    Backend, TestEnv, download_through, files_under, free_port, resumable_upload, sha256_hex, wav,
};

/// The bucket every scenario writes to; each moto process is private to one
/// test, so one name serves them all.
pub const BUCKET: &str = "traum-test";

/// A moto S3 server on a loopback port, killed when dropped.
pub struct S3Server {
    child: Child,
    pub addr: SocketAddr,
}

impl S3Server {
    /// Starts moto and creates [`BUCKET`].
    pub async fn start() -> Self {
        let addr = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start moto_server ({err}); install it with `python3 -m pip install 'moto[server]'`")
            });
        let server = Self { child, addr };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            match http.put(format!("{}/{BUCKET}", server.endpoint())).send().await {
                Ok(response) if response.status().is_success() => return server,
                Ok(response) => panic!("moto refused to create the bucket: {}", response.status()),
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("moto_server did not come up on {addr}: {err}"),
            }
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The keys under `prefix`, as the store lists them.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let body = reqwest::get(format!(
            "{}/{BUCKET}?list-type=2&max-keys=1000&prefix={prefix}",
            self.endpoint()
        ))
        .await
        .expect("list the bucket")
        .text()
        .await
        .expect("listing body");
        body.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The location for a server (in this process) that reaches the store at
/// `endpoint`, with the credentials moto accepts.
pub fn s3_location(endpoint: &str, prefix: &str) -> BlobLocation {
    BlobLocation::S3(S3Location {
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        allow_http: Some(true),
    })
}

/// A TCP relay in front of the store that can be cut: while down it drops
/// every open connection and every new one, as a store that went away does,
/// and keeps what the store holds for when it comes back.
struct Relay {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let (up, watching) = watch::channel(true);
        let watching = Arc::new(watching);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = (*watching).clone();
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Finds whether any file under the data directory holds `data`.
fn data_dir_holds(dir: &std::path::Path, data: &[u8]) -> bool {
    files_under(dir)
        .iter()
        .any(|path| std::fs::read(path).is_ok_and(|bytes| bytes == data))
}

async fn blobs_live_in_the_bucket(backend: Backend) {
    let s3 = S3Server::start().await;
    let env = TestEnv::new(backend).await;
    let server = env
        .start_with(|config| {
            config.blob_store = s3_location(&s3.endpoint(), "library/main");
            config.web_listen = Some(free_port());
        })
        .await;

    // Streamed: one object under the prefix, named by its digest.
    let tone = wav(1.0, 22_050, 1, 440.0);
    let file = server.upload_and_process("tone.wav", &["s3"], &tone).await;
    let digest = sha256_hex(&tone);
    let keys = s3.keys("library/main/").await;
    assert_eq!(
        keys,
        vec![format!(
            "library/main/{}/{}/{digest}",
            &digest[..2],
            &digest[2..4]
        )],
        "one content-addressed object"
    );
    assert!(
        !data_dir_holds(&server.data_dir, &tone),
        "no copy left in the data directory"
    );
    assert_eq!(download_through(&mut server.audio(), &file.file_id).await, tone);

    // The same bytes again: a duplicate, no second object.
    let again = server.upload("again.wav", &[], &tone).await.expect("upload");
    assert!(again.duplicate);
    assert_eq!(s3.keys("library/main/").await.len(), 1);

    // Resumable: each chunk an object of its own until the finish, which
    // leaves one blob and no chunks.
    let chord = wav(2.0, 44_100, 2, 220.0);
    let mut audio = server.audio();
    let (session, chunks, result) = resumable_upload(&mut audio, "chord.wav", &[], &chord, 100_000).await;
    assert!(chunks > 3);
    assert!(!result.duplicate);
    assert!(
        s3.keys(&format!("library/main/.uploads/{}/", session.upload_id))
            .await
            .is_empty(),
        "the session's chunks are gone"
    );
    assert_eq!(download_through(&mut audio, &result.file_id).await, chord);
    server.wait_succeeded(&result.job_id).await;

    // Larger than one part: a multipart upload, read back whole and in
    // ranges across the part boundary.
    let long = wav(100.0, 44_100, 1, 110.0);
    assert!(long.len() > 8 << 20);
    let big = server
        .upload("long.wav", &[], &long)
        .await
        .expect("upload the long file");
    assert_eq!(download_through(&mut audio, &big.file_id).await, long);
    let url = format!(
        "http://{}/api/files/{}/audio",
        server.web_addr.unwrap(),
        big.file_id
    );
    let http = reqwest::Client::new();
    let boundary = 8 << 20;
    let part = http
        .get(&url)
        .header("range", format!("bytes={}-{}", boundary - 1000, boundary + 999))
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &long[boundary - 1000..boundary + 1000]
    );
    let from = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: big.file_id.clone(),
            start_offset: 5_000_000,
        })
        .await
        .expect("ranged download");
    let mut tail = Vec::new();
    let mut stream = from.into_inner();
    while let Some(piece) = stream.message().await.expect("piece") {
        tail.extend_from_slice(&piece.data);
    }
    assert_eq!(tail, long[5_000_000..]);
    server.wait_succeeded(&big.job_id).await;

    // The pipeline read every file from the bucket.
    let listed = audio
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.files.len(), 3);
    assert!(
        listed
            .files
            .iter()
            .all(|f| f.state == pb::FileState::Ready as i32),
        "{listed:?}"
    );

    // Deleting removes the object.
    audio
        .delete_file(pb::DeleteFileRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .expect("delete");
    assert_eq!(
        s3.keys("library/main/").await.len(),
        2,
        "the deleted file's object is gone"
    );
    assert!(
        !s3.keys("library/main/")
            .await
            .iter()
            .any(|key| key.ends_with(&digest))
    );

    server.stop().await;
    // A restart finds the same library in the bucket.
    let server = env
        .start_with(|config| config.blob_store = s3_location(&s3.endpoint(), "library/main"))
        .await;
    assert_eq!(
        download_through(&mut server.audio(), &result.file_id).await,
        chord
    );
    server.stop().await;
    env.finish().await;
}
crate::both_backends!(blobs_live_in_the_bucket);

async fn an_outage_of_the_store_is_unavailable_and_heals(backend: Backend) {
    let s3 = S3Server::start().await;
    let relay = Relay::start(s3.addr).await;
    let env = TestEnv::new(backend).await;
    let server = env
        .start_with(|config| config.blob_store = s3_location(&relay.endpoint(), ""))
        .await;
    let mut audio = server.audio();
    let stored = wav(1.0, 22_050, 1, 440.0);
    let first = server.upload_and_process("first.wav", &[], &stored).await;

    // A resumable upload half done when the store goes away.
    let pending = wav(1.5, 22_050, 1, 660.0);
    let half = pending.len() / 2;
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "pending.wav".into(),
                size_bytes: Some(pending.len() as u64),
                sha256: Some(sha256_hex(&pending)),
                ..Default::default()
            }),
        })
        .await
        .expect("start an upload")
        .into_inner();
    let put = |offset: usize, end: usize| pb::PutUploadChunkRequest {
        upload_id: session.upload_id.clone(),
        offset: offset as u64,
        data: bytes::Bytes::copy_from_slice(&pending[offset..end]),
    };
    audio.put_upload_chunk(put(0, half)).await.expect("first half");

    relay.set_up(false);
    let unavailable = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("blob store"), "{status:?}");
        assert!(status.message().contains("retry"), "{status:?}");
    };

    // A streamed upload cannot be stored: no file for it.
    let refused = wav(0.5, 22_050, 1, 880.0);
    unavailable(
        server
            .upload("refused.wav", &[], &refused)
            .await
            .expect_err("no store, no upload"),
    );
    let listed = audio
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.files.len(),
        1,
        "no record of the refused upload: {listed:?}"
    );

    // The session's second half is refused and not counted.
    unavailable(
        audio
            .put_upload_chunk(put(half, pending.len()))
            .await
            .expect_err("no store, no chunk"),
    );
    let state = audio
        .get_upload(pb::GetUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .expect("the session lives")
        .into_inner();
    assert_eq!(state.received_bytes, half as u64);

    // Reading is refused too.
    let read = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: first.file_id.clone(),
            start_offset: 0,
        })
        .await;
    let status = match read {
        Err(status) => status,
        Ok(stream) => stream
            .into_inner()
            .message()
            .await
            .expect_err("no store, no bytes"),
    };
    unavailable(status);

    // A job that needs the bytes waits for the store instead of failing.
    let job = audio
        .reprocess_file(pb::ReprocessFileRequest {
            file_id: first.file_id.clone(),
        })
        .await
        .expect("reprocess")
        .into_inner();
    let started = Instant::now();
    loop {
        let now = audio
            .get_job(pb::GetJobRequest {
                job_id: job.job_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_ne!(now.state, pb::JobState::Failed as i32, "{now:?}");
        if now.message.contains("waiting for the blob store") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never waited: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The store returns: the session resumes where it was, the job
    // finishes, new uploads are stored.
    relay.set_up(true);
    audio
        .put_upload_chunk(put(half, pending.len()))
        .await
        .expect("second half once the store is back");
    let finished = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .expect("finish")
        .into_inner();
    assert_eq!(download_through(&mut audio, &finished.file_id).await, pending);
    server.wait_succeeded(&job.job_id).await;
    let later = server
        .upload("refused.wav", &[], &refused)
        .await
        .expect("stored now");
    assert_eq!(download_through(&mut audio, &later.file_id).await, refused);
    let metrics = server.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("traum_jobs_waiting_for_blob_store_total") && !line.ends_with(" 0")),
        "{metrics}"
    );
    assert_eq!(
        s3.keys("")
            .await
            .iter()
            .filter(|key| !key.starts_with(".uploads/"))
            .count(),
        3
    );
    server.stop().await;
    env.finish().await;
}
crate::both_backends!(an_outage_of_the_store_is_unavailable_and_heals);

/// Blobs no file references (a delete during an outage leaves them) are
/// removed by the chores once older than the grace; referenced ones and
/// upload sessions stay. In a directory store and in a bucket.
#[tokio::test]
async fn unreferenced_blobs_are_swept_after_the_grace() {
    let s3 = S3Server::start().await;
    let orphan = wav(0.7, 22_050, 1, 330.0);
    let orphan_sha = sha256_hex(&orphan);
    let mut swept_so_far = 0;
    for in_bucket in [false, true] {
        let env = TestEnv::new(Backend::Sqlite).await;
        let prefix = "sweep";
        let configure = |config: &mut traum_server::Config, grace: Duration| {
            if in_bucket {
                config.blob_store = s3_location(&s3.endpoint(), prefix);
            }
            config.orphan_blob_grace = grace;
        };
        let server = env
            .start_with(|config| configure(config, Duration::from_secs(3600)))
            .await;
        let kept = wav(1.0, 22_050, 1, 440.0);
        let file = server.upload_and_process("kept.wav", &[], &kept).await;
        let mut audio = server.audio();
        // An open session's chunk is not a blob and is not swept.
        let session = audio
            .start_upload(pb::StartUploadRequest {
                header: Some(crate::support::upload_header("open.wav", &kept)),
            })
            .await
            .expect("start session")
            .into_inner();
        audio
            .put_upload_chunk(pb::PutUploadChunkRequest {
                upload_id: session.upload_id.clone(),
                offset: 0,
                data: bytes::Bytes::copy_from_slice(&kept[..1000]),
            })
            .await
            .expect("one chunk");
        server.stop().await;

        // Bytes that no file references, as a failed delete leaves them.
        let orphan_path = |root: &std::path::Path| {
            root.join(&orphan_sha[..2])
                .join(&orphan_sha[2..4])
                .join(&orphan_sha)
        };
        let blob_dir = env.dir.path().join("data").join("blobs");
        let key = format!("{prefix}/{}/{}/{orphan_sha}", &orphan_sha[..2], &orphan_sha[2..4]);
        if in_bucket {
            let response = reqwest::Client::new()
                .put(format!("{}/{BUCKET}/{key}", s3.endpoint()))
                .body(orphan.clone())
                .send()
                .await
                .expect("put the orphan");
            assert!(response.status().is_success());
        } else {
            let path = orphan_path(&blob_dir);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &orphan).expect("write the orphan");
        }
        let orphan_present = async || {
            if in_bucket {
                s3.keys(&format!("{prefix}/")).await.contains(&key)
            } else {
                orphan_path(&blob_dir).exists()
            }
        };

        // Younger than the grace: kept.
        let server = env
            .start_with(|config| configure(config, Duration::from_secs(3600)))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(orphan_present().await, "swept before its grace ({in_bucket})");
        server.stop().await;

        // Past it: the first chores term removes it and counts it.
        let server = env.start_with(|config| configure(config, Duration::ZERO)).await;
        let started = Instant::now();
        while orphan_present().await {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the orphan was not swept ({in_bucket})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The recorder is the process's: the count goes on across servers.
        let metrics = server.metrics_text().await;
        let swept: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("traum_blobs_swept_total"))
            .collect();
        swept_so_far += 1;
        assert_eq!(
            swept,
            [format!("traum_blobs_swept_total {swept_so_far}")],
            "{in_bucket}"
        );
        assert_eq!(download_through(&mut server.audio(), &file.file_id).await, kept);
        let mut audio = server.audio();
        let status = audio
            .get_upload(pb::GetUploadRequest {
                upload_id: session.upload_id.clone(),
            })
            .await
            .expect("the session survives")
            .into_inner();
        assert_eq!(status.received_bytes, 1000);
        server.stop().await;
        env.finish().await;
    }
}
