//! Both upload paths, every supported format, duplicates and rejections.

use tonic::Code;
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, files_under, fixture, sha256_hex, wav};

async fn streams_every_format(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    type Case = (
        &'static str,
        Vec<u8>,
        pb::AudioFormat,
        u32,
        u32,
        &'static str,
        f64,
    );
    let cases: Vec<Case> = vec![
        (
            "tone.wav",
            wav(1.0, 44_100, 2, 440.0),
            pb::AudioFormat::Wav,
            44_100,
            2,
            "pcm_s16le",
            1.0,
        ),
        (
            "tone.flac",
            fixture("tone.flac"),
            pb::AudioFormat::Flac,
            22_050,
            2,
            "flac",
            1.5,
        ),
        (
            "tone.mp3",
            fixture("tone.mp3"),
            pb::AudioFormat::Mp3,
            22_050,
            1,
            "mp3",
            1.5,
        ),
        (
            "tone.ogg",
            fixture("tone.ogg"),
            pb::AudioFormat::Ogg,
            22_050,
            1,
            "vorbis",
            1.5,
        ),
        (
            "tone.m4a",
            fixture("tone.m4a"),
            pb::AudioFormat::M4a,
            22_050,
            1,
            "aac",
            1.5,
        ),
        (
            "tone.aiff",
            fixture("tone.aiff"),
            pb::AudioFormat::Aiff,
            22_050,
            1,
            "pcm_s16be",
            0.3,
        ),
    ];
    for (name, bytes, format, rate, channels, codec, seconds) in cases {
        let file = server.upload_and_process(name, &["Fixture"], &bytes).await;
        assert_eq!(file.filename, name);
        assert_eq!(file.format, format as i32, "{name}");
        assert_eq!(file.state, pb::FileState::Ready as i32, "{name}");
        assert_eq!(file.tags, vec!["fixture"]);
        assert_eq!(file.size_bytes, bytes.len() as u64);
        assert_eq!(file.sha256, sha256_hex(&bytes));
        let props = file.properties.expect("probed properties");
        assert_eq!(props.sample_rate_hz, rate, "{name}");
        assert_eq!(props.channels, channels, "{name}");
        assert_eq!(props.codec, codec, "{name}");
        // Priming and padding are trimmed for every codec (AAC too).
        assert!(
            (props.duration_seconds - seconds).abs() < 0.005,
            "{name}: {} s",
            props.duration_seconds
        );
        assert!(props.bitrate_bps > 0);
        if name == "tone.flac" {
            // Both channels count (pyloudnorm: -24.77 LUFS), not the mono
            // downmix, which reads 3 LU lower.
            let loudness = file
                .descriptors
                .as_ref()
                .and_then(|d| d.loudness_lufs)
                .expect("loudness");
            assert!((loudness + 24.77).abs() < 0.1, "{name}: {loudness} LUFS");
        }
        if codec.starts_with("pcm") || codec == "flac" {
            assert_eq!(props.bits_per_sample, 16, "{name}");
        }
    }
    server.stop().await;
    env.finish().await;
}
both_backends!(streams_every_format);

async fn resumable_upload_survives_interruption(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let data = wav(2.0, 48_000, 1, 330.0);
    let mut audio = server.audio();
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "resumed.wav".into(),
                tags: vec!["browser".into()],
                size_bytes: Some(data.len() as u64),
                sha256: Some(sha256_hex(&data)),
                always_create_file: false,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.received_bytes, 0);
    assert!(session.max_chunk_bytes >= 64 * 1024);
    let id = session.upload_id.clone();
    let chunk = 50_000;
    audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: id.clone(),
            offset: 0,
            data: data[..chunk].to_vec().into(),
        })
        .await
        .unwrap();
    // The link drops and the client resends from a stale offset.
    let stale = audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: id.clone(),
            offset: 0,
            data: data[..chunk].to_vec().into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert!(
        stale.message().contains("resume at offset 50000"),
        "{}",
        stale.message()
    );
    // Finishing early is refused and keeps the session.
    let early = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    let resumed_at = audio
        .get_upload(pb::GetUploadRequest {
            upload_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed_at.received_bytes, chunk as u64);
    let mut offset = resumed_at.received_bytes as usize;
    while offset < data.len() {
        let end = (offset + 70_000).min(data.len());
        let state = audio
            .put_upload_chunk(pb::PutUploadChunkRequest {
                upload_id: id.clone(),
                offset: offset as u64,
                data: data[offset..end].to_vec().into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(state.received_bytes, end as u64);
        offset = end;
    }
    let result = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!result.duplicate);
    assert_eq!(result.sha256, sha256_hex(&data));
    let events = server.watch_to_end(&result.job_id).await;
    assert_eq!(
        events.last().unwrap().job.as_ref().unwrap().state,
        pb::JobState::Succeeded as i32
    );
    // The session is gone once finished.
    let gone = audio
        .get_upload(pb::GetUploadRequest { upload_id: id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert!(files_under(&server.data_dir.join("blobs").join(".uploads")).is_empty());
    server.stop().await;
    env.finish().await;
}
both_backends!(resumable_upload_survives_interruption);

async fn duplicates_share_one_blob(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let data = wav(0.5, 22_050, 1, 500.0);
    let first = server.upload("a.wav", &[], &data).await.unwrap();
    assert!(!first.duplicate);
    let second = server.upload("b.wav", &[], &data).await.unwrap();
    assert!(second.duplicate);
    assert_eq!(second.file_id, first.file_id);
    assert_eq!(second.job_id, first.job_id);
    let mut header = pb::UploadHeader {
        filename: "c.wav".into(),
        always_create_file: true,
        ..Default::default()
    };
    header.size_bytes = Some(data.len() as u64);
    let third = server.upload_with(header, &data).await.unwrap();
    assert!(third.duplicate);
    assert_ne!(third.file_id, first.file_id);
    let blobs = files_under(&server.data_dir.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    server.stop().await;
    env.finish().await;
}
both_backends!(duplicates_share_one_blob);

async fn bad_uploads_are_refused_and_leave_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start_with(|config| config.max_upload_bytes = 200_000).await;
    let supported = "supported formats: WAV";

    // Declared too large: refused before any byte is stored.
    let big = wav(3.0, 44_100, 1, 200.0);
    let err = server.upload("big.wav", &[], &big).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("at most 200000 bytes"),
        "{}",
        err.message()
    );
    // Undeclared and too large: refused while streaming.
    let header = pb::UploadHeader {
        filename: "big.wav".into(),
        ..Default::default()
    };
    let err = server.upload_with(header, &big).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    let err = server
        .upload_with(
            pb::UploadHeader {
                filename: "empty.wav".into(),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("empty"), "{}", err.message());

    let data = wav(0.5, 22_050, 1, 700.0);
    let header = pb::UploadHeader {
        filename: "x.wav".into(),
        sha256: Some(sha256_hex(b"something else")),
        ..Default::default()
    };
    let err = server.upload_with(header, &data).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert!(err.message().contains("checksum mismatch"), "{}", err.message());

    let mut truncated = wav(1.0, 22_050, 1, 800.0);
    truncated.truncate(truncated.len() / 2);
    let err = server.upload("cut.wav", &[], &truncated).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("truncated"), "{}", err.message());

    let err = server.upload("noise.wav", &[], &[7u8; 4096]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains(supported), "{}", err.message());

    let err = server
        .upload("song.mp3", &[], &fixture("opus.ogg"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("Opus") && err.message().contains(supported),
        "{}",
        err.message()
    );

    // A corrupt body behind a valid WAV header.
    let mut corrupt = wav(0.5, 22_050, 1, 900.0);
    corrupt[20] = 0x55; // audio format code: neither PCM nor float
    let err = server.upload("corrupt.wav", &[], &corrupt).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    let err = server.upload("../escape.wav", &[], &data).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let files = server
        .audio()
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(files.total_count, 0);
    assert!(files_under(&server.data_dir.join("blobs")).is_empty());
    assert!(files_under(&server.data_dir.join("tmp")).is_empty());
    server.stop().await;
    env.finish().await;
}
both_backends!(bad_uploads_are_refused_and_leave_nothing);

async fn interrupted_stream_leaves_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let data = wav(2.0, 44_100, 1, 250.0);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut audio = server.audio();
    let call = tokio::spawn(async move {
        audio
            .upload_audio(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
            filename: "partial.wav".into(),
            size_bytes: Some(data.len() as u64),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    tx.send(pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Chunk(
            data[..65_536].to_vec().into(),
        )),
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The client dies mid-upload.
    call.abort();
    drop(tx);
    let mut clean = false;
    for _ in 0..100 {
        if files_under(&server.data_dir.join("tmp")).is_empty() {
            clean = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(clean, "temp file left behind");
    let files = server
        .audio()
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(files.total_count, 0);
    server.stop().await;
    env.finish().await;
}
both_backends!(interrupted_stream_leaves_nothing);

async fn analysis_descriptors_reach_get_file(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let drums = server
        .upload_and_process(
            "loop_120.wav",
            &[],
            &crate::support::drum_loop(120.0, 8.0, 44_100),
        )
        .await;
    let d = drums.descriptors.expect("descriptors after the analyse stage");
    let bpm = d.bpm.expect("a steady beat");
    assert!((bpm - 120.0).abs() <= 1.0, "bpm {bpm}");
    assert!(d.bpm_confidence > 0.0 && d.bpm_confidence <= 1.0);
    let peak = d.peak_dbfs.unwrap();
    assert!(peak < 0.5 && peak > -6.0, "peak {peak}");
    assert!(d.loudness_lufs.is_some());
    assert!(
        (0.0..0.5).contains(&d.silence_ratio),
        "silence {}",
        d.silence_ratio
    );

    let chord = server
        .upload_and_process("am.wav", &[], &crate::support::a_minor_chord(6.0, 48_000))
        .await;
    let d = chord.descriptors.unwrap();
    let key = d.key.expect("a key");
    assert_eq!(
        (key.pitch_class, key.mode),
        (9, pb::KeyMode::Minor as i32),
        "{key:?}"
    );
    assert!(d.silence_ratio < 0.01);
    assert!(d.spectral_centroid_hz.unwrap() > 100.0);

    // Every compressed fixture decodes and is analysed.
    for name in ["tone.flac", "tone.mp3", "tone.ogg", "tone.m4a", "tone.aiff"] {
        let file = server.upload_and_process(name, &[], &fixture(name)).await;
        let d = file
            .descriptors
            .unwrap_or_else(|| panic!("{name} has no descriptors"));
        // The fixtures are a 440 Hz tone peaking at about −22.4 dBFS (ffmpeg's
        // volumedetect; AAC at 32 kb/s overshoots to −19.0) plus quiet noise.
        let peak = d.peak_dbfs.unwrap();
        assert!(peak > -26.0 && peak < -18.0, "{name}: peak {peak}");
        let centroid = d.spectral_centroid_hz.unwrap();
        assert!(
            centroid > 300.0 && centroid < 4000.0,
            "{name}: centroid {centroid}"
        );
        let zcr = d.zero_crossing_rate_hz;
        assert!(zcr > 800.0 && zcr < 3000.0, "{name}: zero-crossing rate {zcr}");
    }
    server.stop().await;
    env.finish().await;
}
both_backends!(analysis_descriptors_reach_get_file);

async fn overlong_audio_is_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env
        .start_with(|config| config.max_duration = std::time::Duration::from_secs(1))
        .await;
    let err = server
        .upload("long.wav", &[], &wav(2.0, 22_050, 1, 300.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("at most 1 s"), "{}", err.message());
    assert!(files_under(&server.data_dir.join("blobs")).is_empty());
    server.stop().await;
    env.finish().await;
}
both_backends!(overlong_audio_is_refused);

async fn resumable_path_takes_every_format(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut audio = server.audio();
    for (name, format) in [
        ("tone.flac", pb::AudioFormat::Flac),
        ("tone.mp3", pb::AudioFormat::Mp3),
        ("tone.ogg", pb::AudioFormat::Ogg),
        ("tone.m4a", pb::AudioFormat::M4a),
        ("tone.aiff", pb::AudioFormat::Aiff),
    ] {
        let data = fixture(name);
        let session = audio
            .start_upload(pb::StartUploadRequest {
                header: Some(pb::UploadHeader {
                    filename: name.into(),
                    size_bytes: Some(data.len() as u64),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        for (i, chunk) in data.chunks(4096).enumerate() {
            audio
                .put_upload_chunk(pb::PutUploadChunkRequest {
                    upload_id: session.upload_id.clone(),
                    offset: (i * 4096) as u64,
                    data: chunk.to_vec().into(),
                })
                .await
                .unwrap();
        }
        let result = audio
            .finish_upload(pb::FinishUploadRequest {
                upload_id: session.upload_id,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(result.format, format as i32, "{name}");
        let events = server.watch_to_end(&result.job_id).await;
        let job = events.last().unwrap().job.clone().unwrap();
        assert_eq!(job.state, pb::JobState::Succeeded as i32, "{name}: {}", job.error);
    }
    server.stop().await;
    env.finish().await;
}
both_backends!(resumable_path_takes_every_format);

/// A request body that sends what the test pushes and stalls in between.
struct PushedBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for PushedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|d| Ok(http_body::Frame::data(d))))
    }
}

async fn stalled_uploads_end_and_resumable_sessions_survive(backend: Backend) {
    use http_body_util::BodyExt;
    use prost::Message;
    use tower::ServiceExt;

    let env = TestEnv::new(backend).await;
    let server = env
        .start_with(|config| config.upload_idle_timeout = std::time::Duration::from_millis(300))
        .await;
    let data = wav(0.5, 22_050, 1, 440.0);

    // A stream that sends its header, then nothing.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
            filename: "stalled.wav".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let stalled = server
        .audio()
        .upload_audio(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(stalled.code(), Code::DeadlineExceeded, "{stalled:?}");
    assert!(
        stalled.message().contains("--upload-idle-timeout"),
        "{}",
        stalled.message()
    );
    drop(tx);

    // A resumable chunk whose bytes stop half way.
    let mut audio = server.audio();
    let session = audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "resumed.wav".into(),
                size_bytes: Some(data.len() as u64),
                sha256: Some(sha256_hex(&data)),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let first = pb::PutUploadChunkRequest {
        upload_id: session.upload_id.clone(),
        offset: 0,
        data: bytes::Bytes::copy_from_slice(&data[..4096]),
    };
    audio.put_upload_chunk(first).await.unwrap();
    let second = pb::PutUploadChunkRequest {
        upload_id: session.upload_id.clone(),
        offset: 4096,
        data: bytes::Bytes::copy_from_slice(&data[4096..]),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(second.len() as u32).to_be_bytes());
    framed.extend_from_slice(&second);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(bytes::Bytes::copy_from_slice(&framed[..framed.len() / 2]))
        .await
        .unwrap();
    let request = http::Request::post(format!(
        "http://{}/traum.v1.AudioService/PutUploadChunk",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(tonic::body::Body::new(PushedBody(rx)))
    .unwrap();
    let response = server.channel().oneshot(request).await.unwrap();
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = headers
        .get("grpc-status")
        .or_else(|| trailers.get("grpc-status"))
        .expect("a grpc-status")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(status, (Code::DeadlineExceeded as i32).to_string());
    drop(tx);

    // The session kept the first chunk; the client resumes from there.
    let kept = audio
        .get_upload(pb::GetUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.received_bytes, 4096);
    audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id.clone(),
            offset: 4096,
            data: bytes::Bytes::copy_from_slice(&data[4096..]),
        })
        .await
        .unwrap();
    let done = audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!done.file_id.is_empty());
    server.stop().await;
    env.finish().await;
}
both_backends!(stalled_uploads_end_and_resumable_sessions_survive);
