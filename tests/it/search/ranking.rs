//! Text search ranks files by the best cosine over their vectors, pages walk
//! that order, and the hybrid score lifts keyword matches.

use traum_proto::v1 as pb;

use super::{Library, QUERY, expected, expected_match, items, text_request};
use crate::both_backends;
use crate::support::Backend;

/// `--precision bf16` moves each cosine a little (bf16 keeps 8 mantissa
/// bits) but not the order of files whose scores are further apart than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bf16_server_ranks_as_the_f32_model_does() {
    let library = Library::open_with(Backend::Sqlite, |config| {
        config.precision = traum_clap::Precision::Bf16;
    })
    .await;
    let expected = expected().await;
    let response = library
        .server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner();
    let mut ranking: Vec<(&str, f64)> = items()
        .iter()
        .map(|item| {
            (
                item.name,
                expected_match(&expected.vectors[item.name], &expected.query).0,
            )
        })
        .collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(response.hits.len(), ranking.len());
    let mut largest_shift = 0f64;
    for (hit, (name, cos)) in response.hits.iter().zip(&ranking) {
        assert_eq!(hit.file.as_ref().unwrap().filename, *name, "rank of {name}");
        let shift = (hit.cosine - cos).abs();
        assert!(shift < 2e-3, "{name}: bf16 cosine {} vs f32 {cos}", hit.cosine);
        largest_shift = largest_shift.max(shift);
    }
    assert!(
        largest_shift > 0.0,
        "the bf16 server gave exactly the f32 cosines"
    );
    library.close().await;
}

async fn text_search_ranks_every_file_by_its_best_vector(backend: Backend) {
    let library = Library::open(backend).await;
    let expected = expected().await;
    let server = &library.server;

    let stats = server
        .analytics()
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stats.model_status,
        pb::ModelStatus::Ready as i32,
        "{}",
        stats.model_message
    );
    let windows: usize = expected.vectors.values().map(|v| v.windows.len() + 1).sum();
    let vector_index = stats.indexes.iter().find(|i| i.name == "vectors").unwrap();
    assert_eq!(vector_index.entries, windows as u64);
    assert!(vector_index.ready);
    // A handful of vectors: scoring them all beats any graph walk.
    assert!(
        vector_index.search_mode.starts_with("exact scan"),
        "{}",
        vector_index.search_mode
    );

    // Every file, ordered by the best cosine over its vectors.
    let response = server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.hits.len(), items().len());
    assert!(response.next_page_token.is_empty());
    let mut ranking: Vec<(&str, f64, (f64, f64))> = items()
        .iter()
        .map(|item| {
            let (cos, segment) = expected_match(&expected.vectors[item.name], &expected.query);
            (item.name, cos, segment)
        })
        .collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (hit, (name, cos, segment)) in response.hits.iter().zip(&ranking) {
        let file = hit.file.as_ref().unwrap();
        assert_eq!(file.filename, *name, "rank of {name}");
        assert!((hit.cosine - cos).abs() < 1e-4, "{name}: {} vs {cos}", hit.cosine);
        assert_eq!(
            hit.score, hit.cosine,
            "no keyword weight: the score is the cosine"
        );
        assert_eq!(
            (hit.segment_start_seconds, hit.segment_end_seconds),
            *segment,
            "{name}"
        );
        // Every window's cosine, in time order: where else the file matches.
        let windows = &expected.vectors[name].windows;
        assert_eq!(hit.window_scores.len(), windows.len(), "{name}");
        for ((score, start), window) in hit
            .window_scores
            .iter()
            .zip(&hit.window_start_seconds)
            .zip(windows)
        {
            assert!(
                (f64::from(*score) - super::dot(&window.vector, &expected.query)).abs() < 1e-4,
                "{name}"
            );
            assert!((f64::from(*start) - window.start_seconds).abs() < 1e-3, "{name}");
        }
    }
    let long = response
        .hits
        .iter()
        .find(|h| h.file.as_ref().unwrap().filename == "KickDrum_Hard-01.wav")
        .unwrap();
    assert!(
        long.window_scores.len() >= 2,
        "a 22 s file has several windows: {:?}",
        long.window_scores
    );
    let kick = response
        .hits
        .iter()
        .find(|h| h.file.as_ref().unwrap().filename == "KickDrum_Hard-01.wav")
        .unwrap();
    let summary = kick.file.as_ref().unwrap();
    assert_eq!(summary.tags, vec!["drums", "kick"]);
    assert!((summary.duration_seconds - 22.0).abs() < 0.01);
    library.close().await;
}
both_backends!(text_search_ranks_every_file_by_its_best_vector);

async fn pages_walk_the_same_order(backend: Backend) {
    let library = Library::open(backend).await;
    let server = &library.server;
    let full: Vec<String> = server
        .search()
        .search_by_text(text_request(QUERY, pb::SearchFilters::default(), 10))
        .await
        .unwrap()
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.file.unwrap().filename)
        .collect();
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .search()
            .search_by_text(pb::SearchByTextRequest {
                query: QUERY.into(),
                filters: None,
                options: Some(pb::SearchOptions {
                    limit: 2,
                    page_token: token.clone(),
                    keyword_weight: 0.0,
                    refine: None,
                    facet_vocabularies: Vec::new(),
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.hits.len() <= 2);
        paged.extend(page.hits.into_iter().map(|h| h.file.unwrap().filename));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, full);
    library.close().await;
}
both_backends!(pages_walk_the_same_order);

async fn the_keyword_score_lifts_the_file_whose_name_matches(backend: Backend) {
    let library = Library::open(backend).await;
    let hybrid = library
        .server
        .search()
        .search_by_text(pb::SearchByTextRequest {
            query: "kick drum".into(),
            filters: None,
            options: Some(pb::SearchOptions {
                limit: 10,
                page_token: String::new(),
                keyword_weight: 0.9,
                refine: None,
                facet_vocabularies: Vec::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let top = &hybrid.hits[0];
    assert_eq!(top.file.as_ref().unwrap().filename, "KickDrum_Hard-01.wav");
    assert!((top.score - (0.1 * top.cosine + 0.9)).abs() < 1e-9, "{top:?}");
    for hit in &hybrid.hits[1..] {
        assert!((hit.score - 0.1 * hit.cosine).abs() < 1e-9, "{hit:?}");
    }
    library.close().await;
}
both_backends!(the_keyword_score_lifts_the_file_whose_name_matches);

/// Relevance feedback, computed here straight from the reference vectors:
/// q' = normalise(q + 0.75 · mean(good) − 0.25 · mean(bad)), then every file
/// ranked by its best cosine with q'; the file marked bad is left out.
async fn refining_moves_the_query_by_rocchios_formula(backend: Backend) {
    let library = Library::open(backend).await;
    let expected = expected().await;
    let (good, bad) = ("warm_pad.wav", "sine_440.wav");
    let unit = |v: &[f32]| {
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        v.iter()
            .map(|x| (f64::from(*x) / norm) as f32)
            .collect::<Vec<f32>>()
    };
    let (q, g, b) = (
        unit(&expected.query),
        unit(&expected.vectors[good].file),
        unit(&expected.vectors[bad].file),
    );
    let moved: Vec<f32> = (0..q.len()).map(|i| q[i] + 0.75 * g[i] - 0.25 * b[i]).collect();
    let refined = unit(&moved);
    let mut ranking: Vec<(&str, f64)> = items()
        .iter()
        .filter(|item| item.name != bad)
        .map(|item| {
            (
                item.name,
                expected_match(&expected.vectors[item.name], &refined).0,
            )
        })
        .collect();
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1));

    let mut request = text_request(QUERY, pb::SearchFilters::default(), 10);
    request.options.as_mut().unwrap().refine = Some(pb::Refinement {
        good_file_ids: vec![library.id(good)],
        bad_file_ids: vec![library.id(bad)],
    });
    let hits = library
        .server
        .search()
        .search_by_text(request.clone())
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits.len(), ranking.len(), "every file but the bad one");
    for (hit, (name, cos)) in hits.iter().zip(&ranking) {
        assert_eq!(hit.file.as_ref().unwrap().filename, *name);
        assert!((hit.cosine - cos).abs() < 1e-4, "{name}: {} vs {cos}", hit.cosine);
    }

    // The same file good and bad, an unknown file, a malformed id.
    let mut both = request.clone();
    both.options.as_mut().unwrap().refine = Some(pb::Refinement {
        good_file_ids: vec![library.id(good)],
        bad_file_ids: vec![library.id(good)],
    });
    let err = library.server.search().search_by_text(both).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("both good and bad"), "{}", err.message());
    let mut unknown = request.clone();
    unknown.options.as_mut().unwrap().refine = Some(pb::Refinement {
        good_file_ids: vec![uuid::Uuid::new_v4().to_string()],
        bad_file_ids: vec![],
    });
    let err = library.server.search().search_by_text(unknown).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let mut malformed = request;
    malformed.options.as_mut().unwrap().refine = Some(pb::Refinement {
        good_file_ids: vec!["nope".into()],
        bad_file_ids: vec![],
    });
    let err = library
        .server
        .search()
        .search_by_text(malformed)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    library.close().await;
}
both_backends!(refining_moves_the_query_by_rocchios_formula);
