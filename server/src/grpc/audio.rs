//! `traum.v1.AudioService`: uploads (ingest), jobs and the library.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use traum_proto::v1 as pb;
use traum_proto::v1::upload_audio_request::Payload;

use super::convert::{self, audio as convert_audio};
use crate::error::Error;
use crate::state::App;
use crate::validate;

type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The AudioService implementation.
pub struct AudioApi {
    app: Arc<App>,
}

impl AudioApi {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::audio_service_server::AudioService for AudioApi {
    async fn upload_audio(
        &self,
        request: Request<Streaming<pb::UploadAudioRequest>>,
    ) -> Result<Response<pb::UploadResult>, Status> {
        let audit = super::audit_slot(&request);
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::UploadAudioRequest {
                payload: Some(Payload::Header(header)),
            }) => header,
            Some(_) => return Err(invalid("the first UploadAudio message must carry the header")),
            None => return Err(invalid("the UploadAudio stream ended before its header")),
        };
        let header = convert_audio::upload_header(header);
        audit.set_target(format!("upload of {:?}", header.filename));
        let chunks = stream.map(|message| match message {
            Ok(pb::UploadAudioRequest {
                payload: Some(Payload::Chunk(chunk)),
            }) => Ok(chunk),
            Ok(pb::UploadAudioRequest {
                payload: Some(Payload::Header(_)),
            }) => Err(Error::InvalidArgument(
                "the header may only be sent once, as the first message".into(),
            )),
            Ok(pb::UploadAudioRequest { payload: None }) => Ok(Bytes::new()),
            Err(status) => Err(broken_stream(&status)),
        });
        let outcome = self.app.ingest.upload_stream(header, chunks).await?;
        let result = convert_audio::upload_result(outcome);
        audit.set_target(format!("file {}", result.file_id));
        Ok(Response::new(result))
    }

    async fn start_upload(
        &self,
        request: Request<pb::StartUploadRequest>,
    ) -> Result<Response<pb::UploadSession>, Status> {
        let audit = super::audit_slot(&request);
        let header = request
            .into_inner()
            .header
            .ok_or_else(|| invalid("header is required"))?;
        let session = self
            .app
            .ingest
            .start_upload(convert_audio::upload_header(header))
            .await?;
        let session = self.session(session);
        audit.set_target(format!("upload {}", session.upload_id));
        Ok(Response::new(session))
    }

    async fn put_upload_chunk(
        &self,
        request: Request<pb::PutUploadChunkRequest>,
    ) -> Result<Response<pb::UploadSession>, Status> {
        let pb::PutUploadChunkRequest {
            upload_id,
            offset,
            data,
        } = request.into_inner();
        let upload_id = validate::id("upload_id", &upload_id)?;
        let session = self.app.ingest.put_chunk(&upload_id, offset, data).await?;
        Ok(Response::new(self.session(session)))
    }

    async fn get_upload(
        &self,
        request: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::UploadSession>, Status> {
        let upload_id = validate::id("upload_id", &request.into_inner().upload_id)?;
        let session = self.app.ingest.get_upload(&upload_id).await?;
        Ok(Response::new(self.session(session)))
    }

    async fn finish_upload(
        &self,
        request: Request<pb::FinishUploadRequest>,
    ) -> Result<Response<pb::UploadResult>, Status> {
        let audit = super::audit_slot(&request);
        let upload_id = validate::id("upload_id", &request.into_inner().upload_id)?;
        audit.set_target(format!("upload {upload_id}"));
        let outcome = self.app.ingest.finish_upload(&upload_id).await?;
        let result = convert_audio::upload_result(outcome);
        audit.set_target(format!("file {} (upload {upload_id})", result.file_id));
        Ok(Response::new(result))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        let job_id = validate::id("job_id", &request.into_inner().job_id)?;
        let job = self.app.jobs.get(&job_id).await?;
        Ok(Response::new(convert_audio::job(job)))
    }

    type WatchJobStream = GrpcStream<pb::JobEvent>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let job_id = validate::id("job_id", &request.into_inner().job_id)?;
        let events = self
            .app
            .jobs
            .watch(job_id)
            .await?
            .map(|item| item.map(convert_audio::job_event).map_err(Status::from));
        Ok(Response::new(Box::pin(events)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let query = convert_audio::job_query(request.into_inner())?;
        let page = self.app.jobs.list(&query).await?;
        Ok(Response::new(convert_audio::jobs_page(page)))
    }

    async fn list_files(
        &self,
        request: Request<pb::ListFilesRequest>,
    ) -> Result<Response<pb::ListFilesResponse>, Status> {
        let query = convert_audio::file_query(request.into_inner())?;
        let page = self.app.library.list(&query).await?;
        Ok(Response::new(convert_audio::files_page(page)))
    }

    async fn get_file(&self, request: Request<pb::GetFileRequest>) -> Result<Response<pb::File>, Status> {
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        let (file, group) = self.app.library.get_with_duplicates(&file_id).await?;
        let mut file = convert::file(file);
        file.duplicate_group = group.map(convert_audio::duplicate_group);
        Ok(Response::new(file))
    }

    async fn list_duplicates(
        &self,
        request: Request<pb::ListDuplicatesRequest>,
    ) -> Result<Response<pb::ListDuplicatesResponse>, Status> {
        let (offset, limit) = convert_audio::duplicates_query(request.get_ref())?;
        let page = self.app.library.duplicates(offset, limit).await?;
        Ok(Response::new(convert_audio::duplicates_page(page)))
    }

    async fn update_file(
        &self,
        request: Request<pb::UpdateFileRequest>,
    ) -> Result<Response<pb::File>, Status> {
        let audit = super::audit_slot(&request);
        let (file_id, update) = convert_audio::file_update(request.into_inner())?;
        audit.set_target(format!("file {file_id}"));
        let file = self.app.library.update(&file_id, &update).await?;
        Ok(Response::new(convert::file(file)))
    }

    async fn review_suggested_tag(
        &self,
        request: Request<pb::ReviewSuggestedTagRequest>,
    ) -> Result<Response<pb::File>, Status> {
        let audit = super::audit_slot(&request);
        let (file_id, vocabulary, label, verdict) = convert_audio::suggestion_review(request.into_inner())?;
        audit.set_target(format!("file {file_id} {vocabulary}/{label}"));
        let file = self
            .app
            .library
            .review_suggested_tag(&file_id, &vocabulary, &label, verdict)
            .await?;
        Ok(Response::new(convert::file(file)))
    }

    async fn delete_file(
        &self,
        request: Request<pb::DeleteFileRequest>,
    ) -> Result<Response<pb::DeleteFileResponse>, Status> {
        let audit = super::audit_slot(&request);
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        audit.set_target(format!("file {file_id}"));
        let deleted = self.app.library.delete(&file_id).await?;
        Ok(Response::new(pb::DeleteFileResponse {
            blob_deleted: deleted.blob_orphaned,
        }))
    }

    type DownloadAudioStream = GrpcStream<pb::DownloadAudioResponse>;

    async fn download_audio(
        &self,
        request: Request<pb::DownloadAudioRequest>,
    ) -> Result<Response<Self::DownloadAudioStream>, Status> {
        let pb::DownloadAudioRequest {
            file_id,
            start_offset,
        } = request.into_inner();
        let file_id = validate::id("file_id", &file_id)?;
        let download = self.app.library.download(&file_id, start_offset).await?;
        let total = download.total;
        let chunks = download.chunks.map(move |chunk| {
            chunk
                .map(|chunk| pb::DownloadAudioResponse {
                    offset: chunk.offset,
                    data: chunk.data,
                    total_size_bytes: total,
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn get_waveform(
        &self,
        request: Request<pb::GetWaveformRequest>,
    ) -> Result<Response<pb::Waveform>, Status> {
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        let waveform = self.app.library.waveform(&file_id).await?;
        Ok(Response::new(convert_audio::waveform(file_id, waveform)))
    }

    type WatchLibraryStream = GrpcStream<pb::LibraryEvent>;

    async fn watch_library(
        &self,
        _request: Request<pb::WatchLibraryRequest>,
    ) -> Result<Response<Self::WatchLibraryStream>, Status> {
        let events = self
            .app
            .library
            .watch()
            .map(|item| item.map(convert_audio::library_event).map_err(Status::from));
        Ok(Response::new(Box::pin(events)))
    }

    async fn create_collection(
        &self,
        request: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let audit = super::audit_slot(&request);
        let (name, file_ids) = convert_audio::new_collection(request.into_inner())?;
        audit.set_target(format!("collection {name:?}"));
        let created = self.app.library.create_collection(&name, &file_ids).await?;
        audit.set_target(format!(
            "collection {} ({:?})",
            created.record.id, created.record.name
        ));
        Ok(Response::new(convert_audio::collection(
            created.record,
            created.files,
        )))
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let raw = request.into_inner().file_id;
        let file_id = (!raw.is_empty())
            .then(|| validate::id("file_id", &raw))
            .transpose()?;
        let collections = self.app.library.list_collections(file_id.as_deref()).await?;
        Ok(Response::new(pb::ListCollectionsResponse {
            collections: collections
                .into_iter()
                .map(|record| convert_audio::collection(record, Vec::new()))
                .collect(),
        }))
    }

    async fn get_collection(
        &self,
        request: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let id = validate::id("collection_id", &request.into_inner().collection_id)?;
        let found = self.app.library.collection(&id).await?;
        Ok(Response::new(convert_audio::collection(
            found.record,
            found.files,
        )))
    }

    async fn update_collection(
        &self,
        request: Request<pb::UpdateCollectionRequest>,
    ) -> Result<Response<pb::Collection>, Status> {
        let audit = super::audit_slot(&request);
        let (id, update) = convert_audio::collection_update(request.into_inner())?;
        audit.set_target(format!("collection {id}"));
        let updated = self.app.library.update_collection(&id, &update).await?;
        Ok(Response::new(convert_audio::collection(
            updated.record,
            updated.files,
        )))
    }

    async fn delete_collection(
        &self,
        request: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        let audit = super::audit_slot(&request);
        let id = validate::id("collection_id", &request.into_inner().collection_id)?;
        audit.set_target(format!("collection {id}"));
        self.app.library.delete_collection(&id).await?;
        Ok(Response::new(pb::DeleteCollectionResponse {}))
    }

    async fn reprocess_file(
        &self,
        request: Request<pb::ReprocessFileRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let audit = super::audit_slot(&request);
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        audit.set_target(format!("file {file_id}"));
        let job = self.app.library.reprocess(&file_id).await?;
        Ok(Response::new(convert_audio::job(job)))
    }
}

impl AudioApi {
    fn session(&self, session: crate::domain::UploadSession) -> pb::UploadSession {
        convert_audio::upload_session(session, self.app.ingest.limits().max_chunk_bytes)
    }
}

fn invalid(message: &str) -> Status {
    Status::invalid_argument(message)
}

/// A client stream that broke off: the client went away mid-way, or it
/// stalled past the idle timeout.
pub(super) fn broken_stream(status: &Status) -> Error {
    if status.code() == tonic::Code::DeadlineExceeded {
        return Error::Stalled(status.message().to_owned());
    }
    Error::Aborted(format!("upload stream broke off: {}", status.message()))
}
