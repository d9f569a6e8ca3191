//! Collections: named, ordered sets of files, kept in the database, changed
//! by replace/add/remove, and cleaned when a file goes.

use tonic::Code;
use traum_proto::v1 as pb;

use crate::both_backends;
use crate::support::{Backend, TestEnv, wav};

fn names(collection: &pb::Collection) -> Vec<&str> {
    collection.files.iter().map(|f| f.filename.as_str()).collect()
}

async fn collections_keep_their_order_and_follow_the_library(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut audio = server.audio();
    let mut ids = Vec::new();
    for (i, name) in ["kick.wav", "snare.wav", "hat.wav"].into_iter().enumerate() {
        let file = server
            .upload_and_process(name, &[], &wav(0.5, 44_100, 1, 220.0 * (i + 1) as f64))
            .await;
        ids.push(file.file_id);
    }
    let (kick, snare, hat) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    let kit = audio
        .create_collection(pb::CreateCollectionRequest {
            name: "  Drum kit ".into(),
            file_ids: vec![hat.clone(), kick.clone(), hat.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kit.name, "Drum kit");
    assert_eq!(names(&kit), ["hat.wav", "kick.wav"], "in order, a repeat ignored");
    assert_eq!(kit.file_count, 2);

    let err = audio
        .create_collection(pb::CreateCollectionRequest {
            name: "Drum kit".into(),
            file_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("Drum kit"), "{}", err.message());
    let err = audio
        .create_collection(pb::CreateCollectionRequest {
            name: "Other".into(),
            file_ids: vec![uuid::Uuid::new_v4().to_string()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = audio
        .create_collection(pb::CreateCollectionRequest {
            name: " ".into(),
            file_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Replace reorders, add appends, remove takes out; in that order.
    let id = kit.collection_id.clone();
    let changed = audio
        .update_collection(pb::UpdateCollectionRequest {
            collection_id: id.clone(),
            name: Some("Kit 1".into()),
            replace_file_ids: Some(pb::FileIdList {
                file_ids: vec![kick.clone(), hat.clone()],
            }),
            add_file_ids: vec![snare.clone(), kick.clone()],
            remove_file_ids: vec![hat.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.name, "Kit 1");
    assert_eq!(names(&changed), ["kick.wav", "snare.wav"]);
    let again = audio
        .get_collection(pb::GetCollectionRequest {
            collection_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&again), ["kick.wav", "snare.wav"], "the change persisted");

    // A second collection, listed by name and by the files they hold.
    audio
        .create_collection(pb::CreateCollectionRequest {
            name: "Alpha".into(),
            file_ids: vec![snare.clone()],
        })
        .await
        .unwrap();
    let all = audio
        .list_collections(pb::ListCollectionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .collections;
    let listed: Vec<(&str, u32)> = all.iter().map(|c| (c.name.as_str(), c.file_count)).collect();
    assert_eq!(listed, [("Alpha", 1), ("Kit 1", 2)]);
    assert!(
        all.iter().all(|c| c.files.is_empty()),
        "a listing carries counts, not files"
    );
    let holding_kick = audio
        .list_collections(pb::ListCollectionsRequest {
            file_id: kick.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(
        holding_kick.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Kit 1"]
    );

    // The library listing narrows to a collection, keeping its own order and filters.
    let in_kit = |extra: pb::ListFilesRequest| pb::ListFilesRequest {
        collection_id: id.clone(),
        order_by: pb::FileOrder::Filename as i32,
        ascending: true,
        ..extra
    };
    let page = audio
        .list_files(in_kit(pb::ListFilesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<&str> = page.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!((listed, page.total_count), (vec!["kick.wav", "snare.wav"], 2));
    let page = audio
        .list_files(in_kit(pb::ListFilesRequest {
            filename_contains: "SNA".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.files.iter().map(|f| f.filename.as_str()).collect::<Vec<_>>(),
        ["snare.wav"]
    );
    for (bad, code) in [
        (uuid::Uuid::new_v4().to_string(), Code::NotFound),
        ("not-a-uuid".to_owned(), Code::InvalidArgument),
    ] {
        let err = audio
            .list_files(pb::ListFilesRequest {
                collection_id: bad,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains("collection"), "{}", err.message());
    }

    // Deleting a file takes it out of every collection.
    audio
        .delete_file(pb::DeleteFileRequest {
            file_id: snare.clone(),
        })
        .await
        .unwrap();
    let after = audio
        .get_collection(pb::GetCollectionRequest {
            collection_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((names(&after), after.file_count), (vec!["kick.wav"], 1));
    let counts: Vec<u32> = audio
        .list_collections(pb::ListCollectionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .collections
        .iter()
        .map(|c| c.file_count)
        .collect();
    assert_eq!(counts, [0, 1]);

    // Renaming onto a taken name is refused; deleting a collection keeps its files.
    let err = audio
        .update_collection(pb::UpdateCollectionRequest {
            collection_id: id.clone(),
            name: Some("Alpha".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    audio
        .delete_collection(pb::DeleteCollectionRequest {
            collection_id: id.clone(),
        })
        .await
        .unwrap();
    let err = audio
        .get_collection(pb::GetCollectionRequest { collection_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    audio
        .get_file(pb::GetFileRequest { file_id: kick })
        .await
        .expect("the file stays");
    server.stop().await;
    env.finish().await;
}
both_backends!(collections_keep_their_order_and_follow_the_library);
