//! `traum.v1.SearchService`: searches by text, by example and by
//! similarity, and suggestions.

use std::sync::Arc;

use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use traum_proto::v1 as pb;
use traum_proto::v1::search_by_audio_request::Payload;

use super::audio::broken_stream;
use super::convert::search as convert_search;
use crate::error::Error;
use crate::state::App;
use crate::validate;

/// The SearchService implementation.
pub struct SearchApi {
    app: Arc<App>,
}

impl SearchApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::search_service_server::SearchService for SearchApi {
    async fn search_by_text(
        &self,
        request: Request<pb::SearchByTextRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let pb::SearchByTextRequest {
            query,
            filters,
            options,
        } = request.into_inner();
        let request = convert_search::request(filters, options)?;
        let page = self.app.search.by_text(&query, &request).await?;
        Ok(Response::new(convert_search::response(page)))
    }

    async fn search_by_audio(
        &self,
        request: Request<Streaming<pb::SearchByAudioRequest>>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::SearchByAudioRequest {
                payload: Some(Payload::Header(header)),
            }) => header,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message must be a header (filters and options), then the clip's bytes",
                ));
            }
            None => return Err(Status::invalid_argument("the stream ended before the header")),
        };
        let request = convert_search::request(header.filters, header.options)?;
        let chunks = stream.map(|message| match message {
            Ok(pb::SearchByAudioRequest {
                payload: Some(Payload::Chunk(chunk)),
            }) => Ok(chunk),
            Ok(pb::SearchByAudioRequest {
                payload: Some(Payload::Header(_)),
            }) => Err(Error::InvalidArgument(
                "only the first message may be a header".into(),
            )),
            Ok(pb::SearchByAudioRequest { payload: None }) => Err(Error::InvalidArgument(
                "a message carries neither header nor chunk".into(),
            )),
            Err(status) => Err(broken_stream(&status)),
        });
        let page = self.app.search.by_audio_stream(chunks, &request).await?;
        Ok(Response::new(convert_search::response(page)))
    }

    async fn search_by_audio_clip(
        &self,
        request: Request<pb::SearchByAudioClipRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let pb::SearchByAudioClipRequest {
            audio,
            filters,
            options,
        } = request.into_inner();
        let request = convert_search::request(filters, options)?;
        let page = self.app.search.by_audio(audio.to_vec(), &request).await?;
        Ok(Response::new(convert_search::response(page)))
    }

    async fn search_similar(
        &self,
        request: Request<pb::SearchSimilarRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let pb::SearchSimilarRequest {
            file_id,
            start_seconds,
            end_seconds,
            filters,
            options,
        } = request.into_inner();
        let file_id = validate::id("file_id", &file_id)?;
        let range = convert_search::similar_range(start_seconds, end_seconds);
        let request = convert_search::request(filters, options)?;
        let page = self.app.search.similar(&file_id, range, &request).await?;
        Ok(Response::new(convert_search::response(page)))
    }

    async fn suggest(
        &self,
        request: Request<pb::SuggestRequest>,
    ) -> Result<Response<pb::SuggestResponse>, Status> {
        let pb::SuggestRequest { prefix, limit } = request.into_inner();
        let limit = convert_search::suggestion_limit(limit)?;
        let suggestions = self.app.search.suggest(&prefix, limit).await?;
        Ok(Response::new(convert_search::suggestions(suggestions)))
    }
}
