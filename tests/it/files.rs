//! Jobs and progress, listing, tags, download and delete.

use futures::StreamExt;
use tonic::Code;
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, files_under, wav};

async fn watchers_see_progress_to_the_end(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let data = wav(3.0, 44_100, 2, 440.0);
    let result = server.upload("watched.wav", &[], &data).await.unwrap();
    let watchers: Vec<_> = (0..4)
        .map(|_| {
            let server_audio = server.audio();
            let job_id = result.job_id.clone();
            tokio::spawn(async move {
                let mut audio = server_audio;
                let mut stream = audio
                    .watch_job(pb::WatchJobRequest { job_id })
                    .await
                    .unwrap()
                    .into_inner();
                let mut events = Vec::new();
                while let Some(event) = stream.next().await {
                    events.push(event.unwrap());
                }
                events
            })
        })
        .collect();
    for watcher in watchers {
        let events = watcher.await.unwrap();
        let last = events.last().unwrap();
        assert!(last.terminal);
        let job = last.job.as_ref().unwrap();
        assert_eq!(job.state, pb::JobState::Succeeded as i32);
        assert_eq!(job.progress, 1.0);
        assert!(job.finished_at.is_some());
        assert_eq!(events.iter().filter(|e| e.terminal).count(), 1);
        let progress: Vec<f64> = events.iter().map(|e| e.job.as_ref().unwrap().progress).collect();
        assert!(
            progress.windows(2).all(|w| w[0] <= w[1]),
            "progress went backwards: {progress:?}"
        );
    }
    // A finished job answers with its final event at once.
    let events = server.watch_to_end(&result.job_id).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].terminal);
    let job = server
        .audio()
        .get_job(pb::GetJobRequest {
            job_id: result.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.stage, pb::JobStage::Embed as i32, "the last stage");
    assert_eq!(job.attempts, 1);
    let jobs = server
        .audio()
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jobs.total_count, 1);
    assert_eq!(jobs.jobs[0].job_id, result.job_id);
    let missing = server
        .audio()
        .watch_job(pb::WatchJobRequest {
            job_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = server
        .audio()
        .get_job(pb::GetJobRequest {
            job_id: "not-a-uuid".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // Reprocessing runs the pipeline again as a new job.
    let rerun = server
        .audio()
        .reprocess_file(pb::ReprocessFileRequest {
            file_id: result.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rerun.job_id, result.job_id);
    let events = server.watch_to_end(&rerun.job_id).await;
    assert_eq!(
        events.last().unwrap().job.as_ref().unwrap().state,
        pb::JobState::Succeeded as i32
    );
    let file = server
        .audio()
        .get_file(pb::GetFileRequest {
            file_id: result.file_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(file.latest_job_id, rerun.job_id);
    server.stop().await;
    env.finish().await;
}
both_backends!(watchers_see_progress_to_the_end);

async fn lists_filters_and_pages(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let specs = [
        ("Kick_01.wav", vec!["drums", "kick"], 0.2),
        ("Snare_01.wav", vec!["drums"], 0.4),
        ("Pad_Warm.wav", vec!["pad", "synth"], 0.6),
        ("Bass_Line.wav", vec!["synth"], 0.8),
        ("kick_02.wav", vec!["drums", "kick"], 1.0),
    ];
    for (i, (name, tags, seconds)) in specs.iter().enumerate() {
        server
            .upload_and_process(name, tags, &wav(*seconds, 22_050, 1, 200.0 + 50.0 * i as f64))
            .await;
    }
    server
        .upload_and_process("tone.flac", &["synth"], &crate::support::fixture("tone.flac"))
        .await;
    let mut audio = server.audio();

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = audio
            .list_files(pb::ListFilesRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_count, 6);
        assert!(page.files.len() <= 2);
        seen.extend(page.files.into_iter().map(|f| f.filename));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0], "tone.flac", "newest first by default");

    let drums = audio
        .list_files(pb::ListFilesRequest {
            tags: vec!["drums".into(), "KICK".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<_> = drums.files.iter().map(|f| f.filename.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Kick_01.wav", "kick_02.wav"]);

    let flac = audio
        .list_files(pb::ListFilesRequest {
            formats: vec![pb::AudioFormat::Flac as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(flac.total_count, 1);

    let by_name = audio
        .list_files(pb::ListFilesRequest {
            order_by: pb::FileOrder::Filename as i32,
            ascending: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = by_name.files.iter().map(|f| f.filename.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let longest = audio
        .list_files(pb::ListFilesRequest {
            order_by: pb::FileOrder::Duration as i32,
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(longest.files[0].filename, "tone.flac");

    let kicks = audio
        .list_files(pb::ListFilesRequest {
            filename_contains: "KICK".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kicks.total_count, 2);

    let ready = audio
        .list_files(pb::ListFilesRequest {
            state: pb::FileState::Ready as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ready.total_count, 6);
    let failed = audio
        .list_files(pb::ListFilesRequest {
            state: pb::FileState::Failed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.total_count, 0);

    let err = audio
        .list_files(pb::ListFilesRequest {
            page_token: "bogus".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = audio
        .list_files(pb::ListFilesRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await;
    env.finish().await;
}
both_backends!(lists_filters_and_pages);

async fn updates_downloads_and_deletes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let data = wav(1.0, 44_100, 1, 610.0);
    let file = server.upload_and_process("loop.wav", &["raw"], &data).await;
    let mut audio = server.audio();

    let updated = audio
        .update_file(pb::UpdateFileRequest {
            file_id: file.file_id.clone(),
            filename: Some("Loop 120bpm.wav".into()),
            add_tags: vec!["Drums".into(), "loop".into()],
            remove_tags: vec!["raw".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.filename, "Loop 120bpm.wav");
    assert_eq!(updated.tags, vec!["drums", "loop"]);
    let replaced = audio
        .update_file(pb::UpdateFileRequest {
            file_id: file.file_id.clone(),
            replace_tags: Some(pb::TagList {
                tags: vec!["final".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.tags, vec!["final"]);
    let err = audio
        .update_file(pb::UpdateFileRequest {
            file_id: file.file_id.clone(),
            filename: Some("a/b.wav".into()),
            add_tags: vec!["never-stored".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let unchanged = audio
        .get_file(pb::GetFileRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.tags, vec!["final"]);
    let err = audio
        .update_file(pb::UpdateFileRequest {
            file_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Download: whole file, then from an offset.
    let mut stream = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: file.file_id.clone(),
            start_offset: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut downloaded = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.offset as usize, downloaded.len());
        assert_eq!(chunk.total_size_bytes, data.len() as u64);
        downloaded.extend_from_slice(&chunk.data);
    }
    assert_eq!(downloaded, data);
    let mut stream = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: file.file_id.clone(),
            start_offset: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    let mut tail = Vec::new();
    while let Some(chunk) = stream.next().await {
        tail.extend_from_slice(&chunk.unwrap().data);
    }
    assert_eq!(tail, data[1000..]);
    let err = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: file.file_id.clone(),
            start_offset: data.len() as u64 + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    // A second file sharing the blob keeps it alive through the first delete.
    let twin = server
        .upload_with(
            pb::UploadHeader {
                filename: "twin.wav".into(),
                always_create_file: true,
                ..Default::default()
            },
            &data,
        )
        .await
        .unwrap();
    server.watch_to_end(&twin.job_id).await;
    let first = audio
        .delete_file(pb::DeleteFileRequest {
            file_id: file.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.blob_deleted);
    assert_eq!(files_under(&server.data_dir.join("blobs")).len(), 1);
    let mut stream = audio
        .download_audio(pb::DownloadAudioRequest {
            file_id: twin.file_id.clone(),
            start_offset: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut again = Vec::new();
    while let Some(chunk) = stream.next().await {
        again.extend_from_slice(&chunk.unwrap().data);
    }
    assert_eq!(again, data);
    let second = audio
        .delete_file(pb::DeleteFileRequest {
            file_id: twin.file_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(second.blob_deleted);
    assert!(files_under(&server.data_dir.join("blobs")).is_empty());
    let err = audio
        .get_file(pb::GetFileRequest {
            file_id: file.file_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = audio
        .delete_file(pb::DeleteFileRequest {
            file_id: twin.file_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The same bytes can be uploaded again after the blob is gone.
    let back = server.upload("back.wav", &[], &data).await.unwrap();
    assert!(!back.duplicate);
    server.stop().await;
    env.finish().await;
}
both_backends!(updates_downloads_and_deletes);
