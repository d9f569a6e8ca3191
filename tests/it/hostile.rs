//! Hostile audio: files crafted to exhaust memory or time, or to crash a
//! decoder, fail their own upload or job with a clear message and leave
//! the server serving.

use std::time::{Duration, Instant};

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, TestServer, fixture, with_fixture_model};

fn hostile(name: &str) -> Vec<u8> {
    fixture(&format!("hostile/{name}"))
}

/// The server still takes and processes an ordinary file.
async fn still_serving(server: &TestServer) {
    let file = server
        .upload_and_process("after.flac", &[], &fixture("tone.flac"))
        .await;
    assert_eq!(file.state, pb::FileState::Ready as i32);
}

async fn file_count(server: &TestServer) -> usize {
    server
        .audio()
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .files
        .len()
}

async fn a_file_that_decodes_to_hours_is_refused_at_upload(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    // 28 KB of constant FLAC frames: 4.55 hours of audio, with no length in
    // its header. The probe walks the frames (it decodes one) and finds it.
    let started = Instant::now();
    let err = server
        .upload("hours.flac", &[], &hostile("constant-frames.flac"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("audio lasts 16383.8 s; the server accepts at most 1800 s"),
        "{}",
        err.message()
    );
    eprintln!(
        "4.55 h of constant FLAC refused at upload after {:?}",
        started.elapsed()
    );
    assert_eq!(file_count(&server).await, 0);
    still_serving(&server).await;
    server.stop().await;
    env.finish().await;
}
both_backends!(a_file_that_decodes_to_hours_is_refused_at_upload);

async fn metadata_declaring_more_than_the_file_holds_is_refused_unread(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    for (name, wanted) in [
        (
            "picture-bomb.flac",
            "its PICTURE block declares 4294967295 bytes of image data but holds only 16",
        ),
        (
            "comment-bomb.ogg",
            "its Vorbis comment header declares 4294967280 bytes of comment",
        ),
        (
            "codebook-bomb.ogg",
            "Vorbis codebook 0 declares 16777215 entries of 65535 dimensions",
        ),
        (
            "stts-bomb.m4a",
            "its `stts` table declares 4294967295 entries but holds only",
        ),
        ("id3-bomb.mp3", "ID3 tag of 268435465 bytes"),
    ] {
        let err = server.upload(name, &[], &hostile(name)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert!(err.message().contains(wanted), "{name}: {}", err.message());
    }
    assert_eq!(file_count(&server).await, 0);
    still_serving(&server).await;
    server.stop().await;
    env.finish().await;
}
both_backends!(metadata_declaring_more_than_the_file_holds_is_refused_unread);

async fn placeholder_lengths_and_big_tags_are_no_reason_to_refuse(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    // A WAV streamed by ffmpeg: RIFF and data lengths 0xFFFFFFFF.
    let streamed = server
        .upload_and_process("streamed.wav", &[], &hostile("streamed.wav"))
        .await;
    assert!(
        (streamed.properties.as_ref().unwrap().duration_seconds - 1.0).abs() < 1e-6,
        "{streamed:?}"
    );
    // An MP3 behind a 300 KB cover picture, beyond the sniffer's 64 KiB
    // head: the tag is skipped, never read.
    let covered = [id3_with_picture(300_000), fixture("tone.mp3")].concat();
    let file = server.upload_and_process("covered.mp3", &[], &covered).await;
    assert_eq!(file.format, pb::AudioFormat::Mp3 as i32);
    assert!((file.properties.as_ref().unwrap().duration_seconds - 1.5).abs() < 0.05);
    server.stop().await;
    env.finish().await;
}
both_backends!(placeholder_lengths_and_big_tags_are_no_reason_to_refuse);

/// An ID3v2.3 tag holding one APIC frame of `picture` bytes.
fn id3_with_picture(picture: usize) -> Vec<u8> {
    let mut frame = b"\0image/jpeg\0\x03\0".to_vec();
    frame.extend(std::iter::repeat_n(0x42, picture));
    let mut body = b"APIC".to_vec();
    body.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&frame);
    let size = body.len() as u32;
    let mut tag = b"ID3\x03\x00\x00".to_vec();
    tag.extend((0..4).rev().map(|i| ((size >> (7 * i)) & 0x7F) as u8));
    tag.extend_from_slice(&body);
    tag
}

async fn example_clips_meet_the_same_budget_checks_and_guard(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start_with(with_fixture_model).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = HealthClient::new(server.channel())
            .check(HealthCheckRequest {
                service: "traum.v1.SearchService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == ServingStatus::Serving as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "search never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A clip is decoded without a probe in front: the decoder's own budget
    // stops it at the clip limit (10 minutes) instead of decoding 4.55
    // hours, and the walk past it reports the true length.
    let started = Instant::now();
    let err = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: hostile("constant-frames.flac").into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message() == "audio lasts 4:33:04 but at most 10:00 is accepted",
        "{}",
        err.message()
    );
    eprintln!("hours of audio in a clip refused after {:?}", started.elapsed());
    // And a clip is sniffed like an upload: what an upload may not be, a
    // clip may not be either.
    let err = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: hostile("stts-bomb.m4a").into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("`stts` table declares"),
        "{}",
        err.message()
    );
    // A clip that crashes the decoder fails that search alone.
    let err = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: hostile("aac-section-overflow.m4a").into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "the decoder crashed on this file: index out of bounds: the len is 64 but the index is 64"
    );
    server.stop().await;
    env.finish().await;
}
both_backends!(example_clips_meet_the_same_budget_checks_and_guard);

/// The value of `traum_audio_crashes_total` for `stage` (0 before any);
/// the recorder is one per process, so other tests' crashes count too.
async fn crashes(server: &TestServer, stage: &str) -> u64 {
    let text = server.metrics_text().await;
    let wanted = format!("traum_audio_crashes_total{{stage=\"{stage}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |value| value.trim().parse().unwrap())
}

async fn a_panic_in_the_aac_decoder_fails_that_job_alone(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // One worker: it has to survive the crash to process the next file.
    let server = env.start_with(|config| config.workers = 1).await;
    let before = crashes(&server, "decode").await;
    // Found by fuzzing: AAC section data that indexes past symphonia's
    // table of 64 sections, a panic in any build. Its first packet
    // decodes, so the upload's probe accepts it; the job's decode crashes.
    let upload = server
        .upload("sections.m4a", &[], &hostile("aac-section-overflow.m4a"))
        .await
        .unwrap();
    let events = server.watch_to_end(&upload.job_id).await;
    let job = events.last().and_then(|event| event.job.clone()).unwrap();
    let message = "the decoder crashed on this file: index out of bounds: the len is 64 but the index is 64";
    assert_eq!(job.state, pb::JobState::Failed as i32, "{job:?}");
    assert_eq!(job.error, message);
    let file = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: upload.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(file.state, pb::FileState::Failed as i32);
    assert_eq!(file.error, message);
    assert!(crashes(&server, "decode").await > before);
    still_serving(&server).await;
    server.stop().await;
    env.finish().await;
}
both_backends!(a_panic_in_the_aac_decoder_fails_that_job_alone);

// The two files below overflow inside symphonia: with overflow checks on,
// as in this (test) build, that is a panic; without (release), the value
// wraps and the file fails as damaged instead. The guard is the same for
// any panic, so the crash is what is tested where it happens.

async fn a_crash_while_probing_refuses_that_upload_alone(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let before = crashes(&server, "probe").await;
    let err = server
        .upload("info.mp3", &[], &hostile("info-underflow.mp3"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    if cfg!(debug_assertions) {
        assert_eq!(
            err.message(),
            "the probe crashed on this file: attempt to subtract with overflow"
        );
        assert!(crashes(&server, "probe").await > before);
    }
    assert_eq!(file_count(&server).await, 0);
    still_serving(&server).await;
    server.stop().await;
    env.finish().await;
}
both_backends!(a_crash_while_probing_refuses_that_upload_alone);

async fn a_crash_while_decoding_fails_that_job_alone(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // One worker: it has to survive the crash to process the next file.
    let server = env.start_with(|config| config.workers = 1).await;
    let before = crashes(&server, "decode").await;
    // Its first frame decodes, so the probe accepts it; the fifth does not.
    let upload = server
        .upload("wasted.flac", &[], &hostile("wasted-bits.flac"))
        .await
        .unwrap();
    let events = server.watch_to_end(&upload.job_id).await;
    let job = events.last().and_then(|event| event.job.clone()).unwrap();
    let file = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: upload.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    if cfg!(debug_assertions) {
        let message = "the decoder crashed on this file: attempt to subtract with overflow";
        assert_eq!(job.state, pb::JobState::Failed as i32, "{job:?}");
        assert_eq!(job.error, message);
        assert_eq!(file.state, pb::FileState::Failed as i32);
        assert_eq!(file.error, message);
        assert!(crashes(&server, "decode").await > before);
    } else {
        assert_ne!(job.state, pb::JobState::Running as i32, "{job:?}");
    }
    // The same worker goes on.
    still_serving(&server).await;
    server.stop().await;
    env.finish().await;
}
both_backends!(a_crash_while_decoding_fails_that_job_alone);
