//! `traum.v1.AudioService`: thin adapter from gRPC to the ingestion, job
//! and library domain.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::{Request, Response, Status, Streaming};
use traum_proto::v1 as pb;
use traum_proto::v1::upload_audio_request::Payload;

use super::convert;
use crate::error::Error;
use crate::model::{FileQuery, FileUpdate, JobQuery};
use crate::state::App;
use crate::validate;

/// Bytes per `DownloadAudio` message.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1000;

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
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::UploadAudioRequest {
                payload: Some(Payload::Header(header)),
            }) => header,
            Some(_) => return Err(invalid("the first UploadAudio message must carry the header")),
            None => return Err(invalid("the UploadAudio stream ended before its header")),
        };
        let header = self.app.ingest.validate_header(convert::upload_header(header))?;
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
            Err(status) => Err(Error::Aborted(format!(
                "upload stream broke off: {}",
                status.message()
            ))),
        });
        let outcome = self.app.ingest.upload_stream(header, chunks).await?;
        Ok(Response::new(convert::upload_result(outcome)))
    }

    async fn start_upload(
        &self,
        request: Request<pb::StartUploadRequest>,
    ) -> Result<Response<pb::UploadSession>, Status> {
        let header = request
            .into_inner()
            .header
            .ok_or_else(|| invalid("header is required"))?;
        let header = self.app.ingest.validate_header(convert::upload_header(header))?;
        let session = self.app.ingest.start_upload(header).await?;
        Ok(Response::new(convert::upload_session(
            session,
            self.app.ingest.limits().max_chunk_bytes,
        )))
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
        Ok(Response::new(convert::upload_session(
            session,
            self.app.ingest.limits().max_chunk_bytes,
        )))
    }

    async fn get_upload(
        &self,
        request: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::UploadSession>, Status> {
        let upload_id = validate::id("upload_id", &request.into_inner().upload_id)?;
        let session = self.app.ingest.get_upload(&upload_id).await?;
        Ok(Response::new(convert::upload_session(
            session,
            self.app.ingest.limits().max_chunk_bytes,
        )))
    }

    async fn finish_upload(
        &self,
        request: Request<pb::FinishUploadRequest>,
    ) -> Result<Response<pb::UploadResult>, Status> {
        let upload_id = validate::id("upload_id", &request.into_inner().upload_id)?;
        let outcome = self.app.ingest.finish_upload(&upload_id).await?;
        Ok(Response::new(convert::upload_result(outcome)))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        let job_id = validate::id("job_id", &request.into_inner().job_id)?;
        let job = self.app.jobs.get(&job_id).await?;
        Ok(Response::new(convert::job(job)))
    }

    type WatchJobStream = GrpcStream<pb::JobEvent>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let job_id = validate::id("job_id", &request.into_inner().job_id)?;
        // Fail fast with NOT_FOUND instead of an empty stream.
        self.app.jobs.get(&job_id).await?;
        let events = self
            .app
            .jobs
            .watch(job_id)
            .map(|item| item.map(convert::job_event).map_err(Status::from));
        Ok(Response::new(Box::pin(events)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let pb::ListJobsRequest {
            page_size,
            page_token,
            state,
            file_id,
        } = request.into_inner();
        let query = JobQuery {
            state: convert::job_state_filter(state)?,
            file_id: if file_id.is_empty() {
                None
            } else {
                Some(validate::id("file_id", &file_id)?)
            },
            offset: convert::page_offset(&page_token)?,
            limit: convert::page_size(page_size, DEFAULT_PAGE, MAX_PAGE)?,
        };
        let page = self.app.store.list_jobs(&query).await.map_err(Status::from)?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: page.items.into_iter().map(convert::job).collect(),
            next_page_token: convert::page_token(page.next_offset),
            total_count: page.total,
        }))
    }

    async fn list_files(
        &self,
        request: Request<pb::ListFilesRequest>,
    ) -> Result<Response<pb::ListFilesResponse>, Status> {
        let pb::ListFilesRequest {
            page_size,
            page_token,
            tags,
            state,
            formats,
            order_by,
            ascending,
            filename_contains,
        } = request.into_inner();
        let query = FileQuery {
            tags_all: validate::tags(&tags)?,
            state: convert::file_state_filter(state)?,
            formats: formats
                .into_iter()
                .map(convert::audio_format_from)
                .collect::<Result<_, _>>()?,
            filename_contains: Some(filename_contains.trim().to_owned()).filter(|s| !s.is_empty()),
            order: convert::file_order(order_by)?,
            ascending,
            offset: convert::page_offset(&page_token)?,
            limit: convert::page_size(page_size, DEFAULT_PAGE, MAX_PAGE)?,
        };
        let page = self.app.store.list_files(&query).await?;
        Ok(Response::new(pb::ListFilesResponse {
            files: page.items.into_iter().map(convert::file).collect(),
            next_page_token: convert::page_token(page.next_offset),
            total_count: page.total,
        }))
    }

    async fn get_file(&self, request: Request<pb::GetFileRequest>) -> Result<Response<pb::File>, Status> {
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        let file = self.app.store.get_file(&file_id).await?;
        Ok(Response::new(convert::file(file)))
    }

    async fn update_file(
        &self,
        request: Request<pb::UpdateFileRequest>,
    ) -> Result<Response<pb::File>, Status> {
        let pb::UpdateFileRequest {
            file_id,
            filename,
            replace_tags,
            add_tags,
            remove_tags,
        } = request.into_inner();
        let file_id = validate::id("file_id", &file_id)?;
        let update = FileUpdate {
            filename: filename.as_deref().map(validate::filename).transpose()?,
            replace_tags: replace_tags.map(|list| validate::tags(&list.tags)).transpose()?,
            add_tags: validate::tags(&add_tags)?,
            remove_tags: validate::tags(&remove_tags)?,
        };
        let file = self.app.store.update_file(&file_id, &update).await?;
        self.app.ingest.index_file(&file).await;
        Ok(Response::new(convert::file(file)))
    }

    async fn delete_file(
        &self,
        request: Request<pb::DeleteFileRequest>,
    ) -> Result<Response<pb::DeleteFileResponse>, Status> {
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        let deleted = self.app.ingest.delete_file(&file_id).await?;
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
        let file = self.app.store.get_file(&file_id).await?;
        if start_offset > file.size_bytes {
            return Err(Status::out_of_range(format!(
                "start_offset {start_offset} is beyond the end of the file ({} bytes)",
                file.size_bytes
            )));
        }
        let mut blob = tokio::fs::File::open(self.app.blobs.blob_path(&file.sha256))
            .await
            .map_err(Error::from)?;
        blob.seek(std::io::SeekFrom::Start(start_offset))
            .await
            .map_err(Error::from)?;
        let total = file.size_bytes;
        let chunks = async_stream::try_stream! {
            let mut offset = start_offset;
            while offset < total {
                let mut buffer = vec![0u8; DOWNLOAD_CHUNK.min(usize::try_from(total - offset).unwrap_or(DOWNLOAD_CHUNK))];
                blob.read_exact(&mut buffer).await.map_err(|err| Status::from(Error::from(err)))?;
                let length = buffer.len() as u64;
                yield pb::DownloadAudioResponse { offset, data: Bytes::from(buffer), total_size_bytes: total };
                offset += length;
            }
        };
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn reprocess_file(
        &self,
        request: Request<pb::ReprocessFileRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let file_id = validate::id("file_id", &request.into_inner().file_id)?;
        let job = self.app.store.create_job_for_file(&file_id).await?;
        self.app.jobs.enqueued(&job).await;
        Ok(Response::new(convert::job(job)))
    }
}

fn invalid(message: &str) -> Status {
    Status::invalid_argument(message)
}
