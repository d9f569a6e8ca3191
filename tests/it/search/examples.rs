//! Searching by example: a stored file (or a time range of it) and a clip.

use std::collections::BTreeSet;

use tonic::Code;
use traum_proto::v1 as pb;

use super::{Library, expected, expected_match, items};
use crate::both_backends;
use crate::support::Backend;

async fn similar_files_leave_the_file_itself_out(backend: Backend) {
    let library = Library::open(backend).await;
    let expected = expected().await;
    let drum = &expected.vectors["KickDrum_Hard-01.wav"];
    let window = drum.windows.iter().find(|w| w.start_seconds == 10.0).unwrap();
    // The whole file, then a time range of it: the window covering 10–20 s.
    for (range, query) in [
        ((None, None), &drum.file),
        ((Some(10.0), Some(20.0)), &window.vector),
    ] {
        let similar = library
            .server
            .search()
            .search_similar(pb::SearchSimilarRequest {
                file_id: library.id("KickDrum_Hard-01.wav"),
                start_seconds: range.0,
                end_seconds: range.1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(similar.hits.len(), items().len() - 1, "{range:?}");
        for hit in &similar.hits {
            let name = library.name_of(&hit.file.as_ref().unwrap().file_id);
            let (cos, _) = expected_match(&expected.vectors[name], query);
            assert!(
                (hit.cosine - cos).abs() < 1e-4,
                "{range:?} {name}: {} vs {cos}",
                hit.cosine
            );
        }
    }
    let err = library
        .server
        .search()
        .search_similar(pb::SearchSimilarRequest {
            file_id: library.id("KickDrum_Hard-01.wav"),
            start_seconds: Some(100.0),
            end_seconds: Some(120.0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    library.close().await;
}
both_backends!(similar_files_leave_the_file_itself_out);

async fn an_example_clip_finds_its_own_file_unary_and_streamed(backend: Backend) {
    let library = Library::open(backend).await;
    let server = &library.server;
    let clip = items()
        .into_iter()
        .find(|i| i.name == "sine_440.wav")
        .unwrap()
        .data;
    let by_clip = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: clip.clone().into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_clip.hits[0].file.as_ref().unwrap().filename, "sine_440.wav");
    assert!(by_clip.hits[0].cosine > 0.9999, "{}", by_clip.hits[0].cosine);
    let mut messages = vec![pb::SearchByAudioRequest {
        payload: Some(pb::search_by_audio_request::Payload::Header(
            pb::SearchByAudioHeader {
                filters: Some(pb::SearchFilters {
                    tags_all: vec!["tone".into()],
                    ..Default::default()
                }),
                options: None,
            },
        )),
    }];
    for chunk in clip.chunks(16 * 1024) {
        messages.push(pb::SearchByAudioRequest {
            payload: Some(pb::search_by_audio_request::Payload::Chunk(chunk.to_vec().into())),
        });
    }
    let streamed = server
        .search()
        .search_by_audio(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let streamed_ids: BTreeSet<String> = streamed
        .hits
        .iter()
        .map(|h| h.file.clone().unwrap().file_id)
        .collect();
    assert_eq!(
        streamed_ids,
        library.ids(&["sine_440.wav", "sine_1000.wav", "tone.flac"])
    );
    assert_eq!(streamed.hits[0].file.as_ref().unwrap().filename, "sine_440.wav");
    let err = server
        .search()
        .search_by_audio_clip(pb::SearchByAudioClipRequest {
            audio: b"definitely not audio".to_vec().into(),
            filters: None,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    library.close().await;
}
both_backends!(an_example_clip_finds_its_own_file_unary_and_streamed);
