//! Bad search requests name the problem.

use tonic::Code;
use traum_proto::v1 as pb;

use super::{Library, QUERY, text_request};
use crate::both_backends;
use crate::support::Backend;

async fn bad_requests_get_invalid_argument_or_not_found(backend: Backend) {
    let library = Library::open(backend).await;
    let server = &library.server;
    let bad = [
        text_request("", pb::SearchFilters::default(), 10),
        text_request(
            QUERY,
            pb::SearchFilters {
                min_bpm: Some(140.0),
                max_bpm: Some(100.0),
                ..Default::default()
            },
            10,
        ),
        text_request(QUERY, pb::SearchFilters::default(), 1000),
        pb::SearchByTextRequest {
            query: QUERY.into(),
            filters: None,
            options: Some(pb::SearchOptions {
                keyword_weight: 1.5,
                ..Default::default()
            }),
        },
        text_request(
            QUERY,
            pb::SearchFilters {
                keys: vec![pb::MusicalKey {
                    pitch_class: 12,
                    mode: pb::KeyMode::Major as i32,
                }],
                ..Default::default()
            },
            10,
        ),
    ];
    for request in bad {
        let err = server.search().search_by_text(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{request:?}: {err:?}");
    }
    let err = server
        .search()
        .search_similar(pb::SearchSimilarRequest {
            file_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    library.close().await;
}
both_backends!(bad_requests_get_invalid_argument_or_not_found);
