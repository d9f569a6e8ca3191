//! `traum.v1.SearchService`. The contract is final; the indexes behind it
//! are not built by this version, so every method answers UNAVAILABLE and
//! the service's health is NOT_SERVING.

use tonic::{Request, Response, Status, Streaming};
use traum_proto::v1 as pb;

use crate::error::Error;

/// Why search answers UNAVAILABLE.
pub const SEARCH_NOT_READY: &str = "search is not ready: this server does not build the vector and text indexes yet \
     (the CLAP model and indexes arrive in a later release); uploads, jobs and file metadata work";

/// The SearchService implementation.
#[derive(Default)]
pub struct SearchApi;

fn not_ready() -> Status {
    Status::from(Error::Unavailable(SEARCH_NOT_READY.to_owned()))
}

#[tonic::async_trait]
impl pb::search_service_server::SearchService for SearchApi {
    async fn search_by_text(
        &self,
        _request: Request<pb::SearchByTextRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        Err(not_ready())
    }

    async fn search_by_audio(
        &self,
        _request: Request<Streaming<pb::SearchByAudioRequest>>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        Err(not_ready())
    }

    async fn search_by_audio_clip(
        &self,
        _request: Request<pb::SearchByAudioClipRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        Err(not_ready())
    }

    async fn search_similar(
        &self,
        _request: Request<pb::SearchSimilarRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        Err(not_ready())
    }

    async fn suggest(
        &self,
        _request: Request<pb::SuggestRequest>,
    ) -> Result<Response<pb::SuggestResponse>, Status> {
        Err(not_ready())
    }
}
