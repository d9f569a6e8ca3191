//! Near-duplicates end to end: four songs (the same voice, drums, tempo and
//! key; only melody and chords differ), each uploaded as Ogg Vorbis, MP3
//! 128 kbit/s, AAC, AAC with its first 20 % cut, a 22.05 kHz WAV and a WAV
//! 6 dB quieter, next to drum loops. `ListDuplicates` must give exactly one
//! group per song, with every variant at its true offset, and nothing else;
//! groups survive restarts and deletes, and files fingerprinted by nobody
//! (analysed before fingerprints existed) are fingerprinted in the
//! background.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use tonic::Code;
use traum_audio::{DecodeOptions, decode_to_vec};
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::cli::traum;
use crate::support::{
    Backend, TestEnv, TestServer, drum_loop, fixture, wav_from_samples, with_fixture_model,
};

const SONGS: usize = 4;
/// The fixture songs' trimmed variants lack their first 20 % of 12 s.
const TRIM_SECONDS: f64 = 2.4;
const OFFSET_TOLERANCE: f64 = 0.05;
/// −6 dB as a gain.
const MINUS_6_DB: f32 = 0.501_187;

struct Variant {
    name: String,
    data: Vec<u8>,
    /// Where this variant starts on the song's Ogg upload's timeline.
    offset: f64,
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/fingerprint")
        .join(name)
}

/// Low-pass at 10 kHz (127-tap Blackman-windowed sinc), then linear
/// interpolation from 48 kHz to 22.05 kHz.
fn to_22050(samples: &[f32]) -> Vec<f32> {
    let taps = 127usize;
    let half = (taps / 2) as isize;
    let cutoff = 10_000.0 / 48_000.0;
    let kernel: Vec<f64> = (0..taps)
        .map(|i| {
            let n = i as f64 - half as f64;
            let sinc = if n == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * n).sin() / (std::f64::consts::PI * n)
            };
            let phase = 2.0 * std::f64::consts::PI * i as f64 / (taps - 1) as f64;
            sinc * (0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos())
        })
        .collect();
    let len = samples.len() as isize;
    let filtered: Vec<f64> = (0..len)
        .map(|i| {
            kernel
                .iter()
                .enumerate()
                .filter_map(|(j, k)| {
                    let at = i + j as isize - half;
                    (0..len)
                        .contains(&at)
                        .then(|| k * f64::from(samples[at as usize]))
                })
                .sum()
        })
        .collect();
    let out_len = samples.len() * 22_050 / 48_000;
    (0..out_len)
        .map(|m| {
            let t = m as f64 * 48_000.0 / 22_050.0;
            let i = t as usize;
            let frac = t - i as f64;
            let next = filtered.get(i + 1).copied().unwrap_or(0.0);
            (filtered[i] * (1.0 - frac) + next * frac) as f32
        })
        .collect()
}

/// Song `k` in six variants, the Ogg first (it is uploaded first, so it
/// leads its group).
fn variants(k: usize) -> Vec<Variant> {
    let (decoded, _) = decode_to_vec(
        &fixture_path(&format!("song{k}.ogg")),
        &DecodeOptions::default(),
        |_| {},
    )
    .expect("decode the fixture");
    let quiet: Vec<f32> = decoded.iter().map(|s| s * MINUS_6_DB).collect();
    let file = |name: &str| fixture(&format!("fingerprint/{name}"));
    vec![
        Variant {
            name: format!("song{k}.ogg"),
            data: file(&format!("song{k}.ogg")),
            offset: 0.0,
        },
        Variant {
            name: format!("song{k}.mp3"),
            data: file(&format!("song{k}.mp3")),
            offset: 0.0,
        },
        Variant {
            name: format!("song{k}.m4a"),
            data: file(&format!("song{k}.m4a")),
            offset: 0.0,
        },
        Variant {
            name: format!("song{k}_trim.m4a"),
            data: file(&format!("song{k}_trim.m4a")),
            offset: TRIM_SECONDS,
        },
        Variant {
            name: format!("song{k}_22k.wav"),
            data: wav_from_samples(&to_22050(&decoded), 22_050),
            offset: 0.0,
        },
        Variant {
            name: format!("song{k}_quiet.wav"),
            data: wav_from_samples(&quiet, 48_000),
            offset: 0.0,
        },
    ]
}

/// Uploads everything first (in order, so ids follow it), then waits for
/// every job.
async fn upload_all(server: &TestServer, files: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut uploads = Vec::new();
    for (name, data) in files {
        uploads.push(server.upload(name, &[], data).await.expect("upload accepted"));
    }
    for upload in &uploads {
        let job = server.wait_succeeded(&upload.job_id).await;
        assert!(job.warnings.is_empty(), "warnings: {:?}", job.warnings);
    }
    uploads.into_iter().map(|u| u.file_id).collect()
}

/// Runs the CLI off the runtime the server runs on.
async fn cli(addr: std::net::SocketAddr, args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        traum(addr, &args)
    })
    .await
    .unwrap()
}

async fn list_all(server: &TestServer) -> Vec<pb::DuplicateGroup> {
    server
        .audio()
        .list_duplicates(pb::ListDuplicatesRequest::default())
        .await
        .expect("list duplicates")
        .into_inner()
        .groups
}

fn member_ids(group: &pb::DuplicateGroup) -> BTreeSet<String> {
    group.members.iter().map(|m| m.file_id.clone()).collect()
}

/// Checks the groups against the truth: `songs` maps each expected group's
/// first file id to its members' expected offsets.
fn check_groups(groups: &[pb::DuplicateGroup], songs: &[Vec<(String, f64)>]) {
    let shown: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            g.members
                .iter()
                .map(|m| format!("{} {:.3} {:+.3}", m.filename, m.score, m.offset_seconds))
                .collect()
        })
        .collect();
    assert_eq!(
        groups.len(),
        songs.len(),
        "one group per song and nothing else: {shown:#?}"
    );
    for (group, truth) in groups.iter().zip(songs) {
        let expected: BTreeSet<String> = truth.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(
            member_ids(group),
            expected,
            "the song's variants, all of them, only them"
        );
        let first = &group.members[0];
        assert_eq!(first.file_id, truth[0].0, "the earliest upload leads");
        assert_eq!((first.score, first.offset_seconds), (1.0, 0.0));
        let offsets: HashMap<&str, f64> = truth.iter().map(|(id, offset)| (id.as_str(), *offset)).collect();
        let reference = offsets[first.file_id.as_str()];
        for member in &group.members[1..] {
            let want = offsets[member.file_id.as_str()] - reference;
            assert!(
                (member.offset_seconds - want).abs() <= OFFSET_TOLERANCE,
                "{}: offset {:.3} s, truth {want:.3} s",
                member.filename,
                member.offset_seconds
            );
            assert!(
                member.score > 0.6 && member.score <= 1.0,
                "{}: score {}",
                member.filename,
                member.score
            );
            assert!(member.duration_seconds > 9.0, "{}", member.filename);
        }
    }
}

async fn near_duplicates_group_transcodes_trims_and_gain_changes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start_with(with_fixture_model).await;

    let mut files = Vec::new();
    let mut offsets = Vec::new();
    for k in 0..SONGS {
        for variant in variants(k) {
            files.push((variant.name, variant.data));
            offsets.push(variant.offset);
        }
    }
    let loops = [90.0, 120.0, 150.0];
    for bpm in loops {
        files.push((format!("loop_{bpm}.wav"), drum_loop(bpm, 12.0, 48_000)));
    }
    let ids = upload_all(&server, &files).await;
    let per_song = files.len() - loops.len();
    let mut songs: Vec<Vec<(String, f64)>> = (0..per_song)
        .map(|i| (ids[i].clone(), offsets[i]))
        .collect::<Vec<_>>()
        .chunks(per_song / SONGS)
        .map(<[_]>::to_vec)
        .collect();

    let groups = list_all(&server).await;
    check_groups(&groups, &songs);
    let metrics = server.metrics_text().await;
    let fingerprinted = metrics
        .lines()
        .find_map(|line| line.strip_prefix("traum_fingerprint_seconds_count "))
        .and_then(|count| count.trim().parse::<u64>().ok());
    // The recorder is process-wide: other tests' servers count too.
    assert!(
        fingerprinted.is_some_and(|count| count >= files.len() as u64),
        "one fingerprint timing per file: {fingerprinted:?}"
    );
    let loop_ids: Vec<&String> = ids[per_song..].iter().collect();
    for group in &groups {
        assert!(loop_ids.iter().all(|id| !member_ids(group).contains(*id)));
    }

    // Pages.
    let first = server
        .audio()
        .list_duplicates(pb::ListDuplicatesRequest {
            page_size: 3,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.groups.len(), first.total_count), (3, 4));
    let rest = server
        .audio()
        .list_duplicates(pb::ListDuplicatesRequest {
            page_size: 3,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.groups.len(), 1);
    assert!(rest.next_page_token.is_empty());
    assert_eq!(member_ids(&rest.groups[0]), member_ids(&groups[3]));
    for (request, field) in [
        (
            pb::ListDuplicatesRequest {
                page_size: 1001,
                page_token: String::new(),
            },
            "page_size",
        ),
        (
            pb::ListDuplicatesRequest {
                page_size: 0,
                page_token: "garbage".into(),
            },
            "page_token",
        ),
    ] {
        let status = server.audio().list_duplicates(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{}", status.message());
    }

    // GetFile names the group; a file in none has none.
    let file = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: songs[1][1].0.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(file.duplicate_group.as_ref(), Some(&groups[1]));
    let lone = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: loop_ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lone.duplicate_group, None);

    // The CLI shows the same.
    let (code, stdout, stderr) = cli(server.addr, &["--json", "duplicates"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["total_count"], 4);
    let listed: Vec<BTreeSet<String>> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            group["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["file_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(listed, groups.iter().map(member_ids).collect::<Vec<_>>());
    let (code, stdout, stderr) = cli(server.addr, &["duplicates"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("group 4 of 4, 6 files:"), "{stdout}");
    assert!(stdout.contains("song3_trim.m4a"), "{stdout}");
    let (code, stdout, stderr) = cli(server.addr, &["info", &songs[0][3].0]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("5 other files are the same recording"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("* {}", songs[0][3].0)), "{stdout}");

    // Identical bytes uploaded as a new file join with `same_bytes`.
    let copy = server
        .upload_with(
            pb::UploadHeader {
                filename: "song0 copy.ogg".into(),
                tags: Vec::new(),
                size_bytes: Some(files[0].1.len() as u64),
                sha256: Some(crate::support::sha256_hex(&files[0].1)),
                always_create_file: true,
            },
            &files[0].1,
        )
        .await
        .unwrap();
    server.watch_to_end(&copy.job_id).await;
    let groups = list_all(&server).await;
    let copied = groups[0]
        .members
        .iter()
        .find(|m| m.file_id == copy.file_id)
        .expect("the byte copy is in its song's group");
    assert!(copied.same_bytes);
    assert!(
        copied.offset_seconds.abs() < 1e-9 && copied.score > 0.99,
        "{copied:?}"
    );
    assert!(groups[0].members[1..].iter().filter(|m| m.same_bytes).count() == 1);
    songs[0].push((copy.file_id.clone(), 0.0));
    check_groups(&groups, &songs);

    // Deleting a group's first file hands the lead to the next upload.
    server
        .audio()
        .delete_file(pb::DeleteFileRequest {
            file_id: songs[2][0].0.clone(),
        })
        .await
        .unwrap();
    songs[2].remove(0);
    check_groups(&list_all(&server).await, &songs);

    // Links are stored: the same groups after a restart.
    server.stop().await;
    let server = env.start_with(with_fixture_model).await;
    check_groups(&list_all(&server).await, &songs);
    server.stop().await;

    // Files analysed before fingerprints existed get one in the background.
    env.execute_sql("DELETE FROM file_duplicate_links").await;
    env.execute_sql("DELETE FROM file_fingerprints").await;
    let server = env.start_with(with_fixture_model).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let groups = list_all(&server).await;
        let members: usize = groups.iter().map(|g| g.members.len()).sum();
        if members == songs.iter().map(Vec::len).sum::<usize>() {
            check_groups(&groups, &songs);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backfill did not fingerprint every file in time: {} groups",
            groups.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
    env.finish().await;
}

both_backends!(near_duplicates_group_transcodes_trims_and_gain_changes);

/// Two replicas fingerprinting two copies of one recording at the same
/// moment: neither has seen the other's fingerprint through the feed yet
/// (here: never, as neither follows it), and the second still links to the
/// first because fingerprint writes take turns across the cluster and each
/// reads what the others stored lately.
#[tokio::test]
async fn copies_fingerprinted_at_once_on_two_replicas_are_linked() {
    if crate::support::postgres_url().is_none() {
        eprintln!("skipped: TRAUM_TEST_POSTGRES_URL is not set");
        return;
    }
    let env = TestEnv::new(Backend::Postgres).await;
    let server = env.start().await;
    let copies: Vec<(String, Vec<u8>)> = variants(0)
        .into_iter()
        .take(2)
        .map(|variant| (variant.name, variant.data))
        .collect();
    let ids = upload_all(&server, &copies).await;
    server.stop().await;

    // The fingerprints as the pipeline stored them; then the database as
    // it was before either file was looked up.
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(&env.db.url).await.expect("connect");
    let mut fingerprints = Vec::new();
    for id in &ids {
        let row = db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT fingerprint FROM file_fingerprints WHERE file_id = $1",
                [id.clone().into()],
            ))
            .await
            .expect("query")
            .expect("a stored fingerprint");
        let bytes: Vec<u8> = row.try_get("", "fingerprint").expect("bytes");
        fingerprints.push(traum_audio::fingerprint::Fingerprint::from_bytes(&bytes).expect("fingerprint"));
    }
    env.execute_sql("DELETE FROM file_duplicate_links; DELETE FROM file_fingerprints;")
        .await;
    db.close().await.ok();

    let store = traum_server::store::Store::connect(&env.db.url)
        .await
        .expect("store");
    let data_dir = env.dir.path().join("data");
    let blobs = traum_server::blob::BlobStore::open(
        &data_dir,
        &traum_server::blob::BlobLocation::Directory(data_dir.join("blobs")),
    )
    .await
    .expect("blobs");
    let replica =
        || traum_server::duplicates::Duplicates::new(store.clone(), blobs.clone(), Duration::from_secs(600));
    let (first, second) = (replica(), replica());
    first.start().await.expect("load");
    second.start().await.expect("load");
    let mut fingerprints = fingerprints.into_iter();
    let found_first = first
        .fingerprinted(&ids[0], fingerprints.next().expect("first"))
        .await
        .expect("first lookup");
    assert!(found_first.is_empty());
    let found_second = second
        .fingerprinted(&ids[1], fingerprints.next().expect("second"))
        .await
        .expect("second lookup");
    assert_eq!(
        found_second.len(),
        1,
        "the second copy found the first: {found_second:?}"
    );
    let link = &found_second[0];
    let mut pair = [link.file_id.clone(), link.other_id.clone()];
    pair.sort();
    let mut expected = [ids[0].clone(), ids[1].clone()];
    expected.sort();
    assert_eq!(pair, expected);
    assert!(link.score > 0.6, "{link:?}");
    // Stored, so every replica's ListDuplicates shows the group.
    let group = second.group_of(&ids[0]).await.expect("group").expect("a group");
    assert_eq!(group.members.len(), 2);
    env.finish().await;
}
