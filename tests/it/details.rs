//! `google.rpc` error details over the wire: the field to fix for
//! INVALID_ARGUMENT, the missing resource for NOT_FOUND (RetryInfo for rate
//! limits is checked with the limits, in `auth.rs`).

use tonic::Code;
use tonic_types::StatusExt;
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, with_fixture_model};

/// The single field violation of an INVALID_ARGUMENT.
fn violated_field(status: &tonic::Status) -> (String, String) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    assert_eq!(bad.field_violations.len(), 1, "{bad:?}");
    let violation = &bad.field_violations[0];
    assert_eq!(violation.description, status.message());
    (violation.field.clone(), violation.description.clone())
}

async fn invalid_arguments_name_the_field_and_not_found_the_resource(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start_with(with_fixture_model).await;
    let mut search = server.search();
    let text =
        |query: &str, options: pb::SearchOptions, filters: pb::SearchFilters| pb::SearchByTextRequest {
            query: query.into(),
            options: Some(options),
            filters: Some(filters),
        };

    let cases = [
        (text("", Default::default(), Default::default()), "query"),
        (
            text(
                "kick",
                pb::SearchOptions {
                    limit: 500,
                    ..Default::default()
                },
                Default::default(),
            ),
            "options.limit",
        ),
        (
            text(
                "kick",
                pb::SearchOptions {
                    keyword_weight: 2.0,
                    ..Default::default()
                },
                Default::default(),
            ),
            "options.keyword_weight",
        ),
        (
            text(
                "kick",
                Default::default(),
                pb::SearchFilters {
                    min_bpm: Some(140.0),
                    max_bpm: Some(90.0),
                    ..Default::default()
                },
            ),
            "filters.min_bpm",
        ),
        (
            text(
                "kick",
                Default::default(),
                pb::SearchFilters {
                    tags_none: vec!["  ".into()],
                    ..Default::default()
                },
            ),
            "filters.tags_none",
        ),
        (
            text(
                "kick",
                pb::SearchOptions {
                    refine: Some(pb::Refinement {
                        good_file_ids: vec!["not-a-uuid".into()],
                        bad_file_ids: vec![],
                    }),
                    ..Default::default()
                },
                Default::default(),
            ),
            "options.refine.good_file_ids",
        ),
    ];
    for (request, field) in cases {
        let status = search.search_by_text(request).await.unwrap_err();
        let (got, message) = violated_field(&status);
        assert_eq!(got, field, "{message}");
    }

    // Upload headers are named as the request nests them.
    let status = server
        .upload("bad/name.wav", &[], &crate::support::wav(0.5, 8_000, 1, 440.0))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status).0, "header.filename");

    let mut audio = server.audio();
    let status = audio
        .list_files(pb::ListFilesRequest {
            page_size: 5_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status).0, "page_size");
    let status = audio
        .get_file(pb::GetFileRequest {
            file_id: "f00".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status).0, "file_id");

    // NOT_FOUND names the kind of thing and the id that was asked for.
    let missing = "7b0c8f0e-1d1a-4a53-9d2e-3f7d7f6b2a10";
    let status = audio
        .get_file(pb::GetFileRequest {
            file_id: missing.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let resource = status
        .get_error_details()
        .resource_info()
        .cloned()
        .expect("a ResourceInfo");
    assert_eq!(resource.resource_type, "traum.v1.File");
    assert_eq!(resource.resource_name, missing);
    let status = audio
        .get_collection(pb::GetCollectionRequest {
            collection_id: missing.into(),
        })
        .await
        .unwrap_err();
    let resource = status
        .get_error_details()
        .resource_info()
        .cloned()
        .expect("a ResourceInfo");
    assert_eq!(resource.resource_type, "traum.v1.Collection");
    assert_eq!(resource.resource_name, missing);
    let status = audio
        .get_job(pb::GetJobRequest {
            job_id: missing.into(),
        })
        .await
        .unwrap_err();
    let resource = status
        .get_error_details()
        .resource_info()
        .cloned()
        .expect("a ResourceInfo");
    assert_eq!(resource.resource_type, "traum.v1.Job");

    // A problem that is not one field's carries no details.
    let status = server
        .upload("noise.wav", &[], b"this is not audio at all, just text")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.get_error_details().bad_request().is_none(), "{status:?}");
    server.stop().await;
    env.finish().await;
}

both_backends!(invalid_arguments_name_the_field_and_not_found_the_resource);
