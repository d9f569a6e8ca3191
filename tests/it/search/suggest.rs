//! Suggestions complete tags, filename words and past queries; every search
//! is recorded for `GetUsage`.

use traum_proto::v1 as pb;

use super::{Library, QUERY, text_request};
use crate::both_backends;
use crate::support::Backend;

async fn suggestions_complete_tags_names_and_past_queries(backend: Backend) {
    let library = Library::open(backend).await;
    let server = &library.server;
    let searches = 10;
    for _ in 0..searches {
        server
            .search()
            .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 5))
            .await
            .unwrap();
    }
    let suggestions = server
        .search()
        .suggest(pb::SuggestRequest {
            prefix: "ki".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    let kick = suggestions
        .iter()
        .find(|s| s.text == "kick")
        .expect("kick suggested");
    assert_eq!(kick.source, pb::SuggestionSource::Tag as i32);
    assert_eq!(kick.count, 1);
    let suggestions = server
        .search()
        .suggest(pb::SuggestRequest {
            prefix: "a dog".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    let past = suggestions
        .iter()
        .find(|s| s.text == QUERY)
        .expect("past query suggested");
    assert_eq!(past.source, pb::SuggestionSource::Query as i32);
    assert!(past.count >= 3, "{past:?}");

    let usage = server
        .analytics()
        .get_usage(pb::GetUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(usage.search_count >= searches, "{}", usage.search_count);
    library.close().await;
}
both_backends!(suggestions_complete_tags_names_and_past_queries);
