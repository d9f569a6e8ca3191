//! `traum.v1.AudioService` messages ↔ uploads, jobs and library files.

use traum_proto::v1 as pb;

use super::{
    audio_formats, file, file_state_from, job_stage, job_state, job_state_from, page_offset, page_size,
    page_token, timestamp,
};
use crate::domain::{
    CollectionRecord, CollectionUpdate, DuplicateGroup, FileOrder, FileQuery, FileRecord, FileUpdate,
    JobQuery, JobRecord, LibraryEvent, Page, PeakLevel, StoredWaveform, TagVerdict, UploadHeader,
    UploadOutcome, UploadSession,
};
use crate::error::{Error, Result};
use crate::validate;

/// Files or jobs per page unless the client asks otherwise, and the most.
const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1000;

pub fn upload_header(header: pb::UploadHeader) -> UploadHeader {
    let pb::UploadHeader {
        filename,
        tags,
        size_bytes,
        sha256,
        always_create_file,
    } = header;
    UploadHeader {
        filename,
        tags,
        declared_size: size_bytes,
        declared_sha256: sha256,
        always_create_file,
    }
}

pub fn upload_result(outcome: UploadOutcome) -> pb::UploadResult {
    let UploadOutcome {
        file_id,
        job_id,
        duplicate,
        size_bytes,
        sha256,
        format,
    } = outcome;
    pb::UploadResult {
        file_id,
        job_id,
        duplicate,
        size_bytes,
        sha256,
        format: super::audio_format(format).into(),
    }
}

pub fn upload_session(session: UploadSession, max_chunk_bytes: u64) -> pb::UploadSession {
    let UploadSession {
        id,
        filename,
        tags,
        declared_size,
        declared_sha256: _,
        received_bytes,
        expires_at,
    } = session;
    pb::UploadSession {
        upload_id: id,
        filename,
        tags,
        received_bytes,
        size_bytes: declared_size,
        max_chunk_bytes,
        expires_at: Some(timestamp(expires_at)),
    }
}

pub fn job(job: JobRecord) -> pb::Job {
    let JobRecord {
        id,
        file_id,
        state,
        stage,
        progress,
        stage_progress,
        message,
        error,
        attempts,
        warnings,
        created_at,
        updated_at,
        started_at,
        finished_at,
        owner,
    } = job;
    pb::Job {
        job_id: id,
        file_id,
        state: job_state(state).into(),
        stage: job_stage(stage).into(),
        progress,
        stage_progress,
        message,
        error: error.unwrap_or_default(),
        attempts,
        warnings,
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
        started_at: started_at.map(timestamp),
        finished_at: finished_at.map(timestamp),
        replica: owner.unwrap_or_default(),
    }
}

pub fn job_event(record: JobRecord) -> pb::JobEvent {
    let terminal = record.state.is_terminal();
    pb::JobEvent {
        job: Some(job(record)),
        terminal,
    }
}

pub fn job_query(request: pb::ListJobsRequest) -> Result<JobQuery> {
    let pb::ListJobsRequest {
        page_size: size,
        page_token,
        state,
        file_id,
    } = request;
    Ok(JobQuery {
        state: job_state_from(state)?,
        file_id: if file_id.is_empty() {
            None
        } else {
            Some(validate::id("file_id", &file_id)?)
        },
        offset: page_offset(&page_token)?,
        limit: page_size("page_size", size, DEFAULT_PAGE, MAX_PAGE)?,
    })
}

pub fn jobs_page(page: Page<JobRecord>) -> pb::ListJobsResponse {
    let Page {
        items,
        total,
        next_offset,
    } = page;
    pb::ListJobsResponse {
        jobs: items.into_iter().map(job).collect(),
        next_page_token: page_token(next_offset),
        total_count: total,
    }
}

fn file_order(raw: i32) -> Result<FileOrder> {
    match pb::FileOrder::try_from(raw) {
        Ok(pb::FileOrder::Unspecified | pb::FileOrder::CreatedAt) => Ok(FileOrder::CreatedAt),
        Ok(pb::FileOrder::Filename) => Ok(FileOrder::Filename),
        Ok(pb::FileOrder::Size) => Ok(FileOrder::Size),
        Ok(pb::FileOrder::Duration) => Ok(FileOrder::Duration),
        Err(_) => Err(Error::invalid_field(
            "order_by",
            format!("order_by {raw} is not a valid FileOrder"),
        )),
    }
}

pub fn file_query(request: pb::ListFilesRequest) -> Result<FileQuery> {
    let pb::ListFilesRequest {
        page_size: size,
        page_token,
        tags,
        state,
        formats,
        order_by,
        ascending,
        filename_contains,
        collection_id,
        suggested,
    } = request;
    let collection_id = match collection_id.trim() {
        "" => None,
        raw => Some(validate::id("collection_id", raw)?),
    };
    Ok(FileQuery {
        tags_all: validate::tags(&tags).map_err(|e| e.at("tags"))?,
        state: file_state_from(state).map_err(|e| e.at("state"))?,
        formats: audio_formats(&formats).map_err(|e| e.at("formats"))?,
        filename_contains: Some(filename_contains.trim().to_owned()).filter(|s| !s.is_empty()),
        collection_id,
        suggested: super::suggested_filters(suggested).map_err(|e| e.at("suggested"))?,
        order: file_order(order_by)?,
        ascending,
        offset: page_offset(&page_token)?,
        limit: page_size("page_size", size, DEFAULT_PAGE, MAX_PAGE)?,
    })
}

pub fn files_page(page: Page<FileRecord>) -> pb::ListFilesResponse {
    let Page {
        items,
        total,
        next_offset,
    } = page;
    pb::ListFilesResponse {
        files: items.into_iter().map(file).collect(),
        next_page_token: page_token(next_offset),
        total_count: total,
    }
}

/// The offset and limit of a `ListDuplicates` page.
pub fn duplicates_query(request: &pb::ListDuplicatesRequest) -> Result<(u64, u64)> {
    Ok((
        page_offset(&request.page_token)?,
        page_size("page_size", request.page_size, DEFAULT_PAGE, MAX_PAGE)?,
    ))
}

pub fn duplicate_group(group: DuplicateGroup) -> pb::DuplicateGroup {
    pb::DuplicateGroup {
        members: group
            .members
            .into_iter()
            .map(|member| pb::DuplicateMember {
                duration_seconds: member
                    .file
                    .properties
                    .as_ref()
                    .map_or(0.0, |properties| properties.duration_seconds),
                file_id: member.file.id,
                filename: member.file.filename,
                format: super::audio_format(member.file.format).into(),
                score: member.score,
                offset_seconds: member.offset_seconds,
                same_bytes: member.same_bytes,
            })
            .collect(),
    }
}

pub fn duplicates_page(page: Page<DuplicateGroup>) -> pb::ListDuplicatesResponse {
    pb::ListDuplicatesResponse {
        groups: page.items.into_iter().map(duplicate_group).collect(),
        next_page_token: page_token(page.next_offset),
        total_count: page.total,
    }
}

/// The suggestion a `ReviewSuggestedTag` decides on: file id, vocabulary,
/// label and verdict.
pub fn suggestion_review(
    request: pb::ReviewSuggestedTagRequest,
) -> Result<(String, String, String, TagVerdict)> {
    let pb::ReviewSuggestedTagRequest {
        file_id,
        vocabulary,
        label,
        verdict,
    } = request;
    let file_id = validate::id("file_id", &file_id)?;
    let vocabulary = vocabulary.trim().to_lowercase();
    if vocabulary.is_empty() {
        return Err(Error::invalid_field(
            "vocabulary",
            "vocabulary must not be empty, e.g. `genre`",
        ));
    }
    let label = validate::tag(&label).map_err(|e| e.at("label"))?;
    let verdict = match pb::TagVerdict::try_from(verdict) {
        Ok(pb::TagVerdict::Accept) => TagVerdict::Accept,
        Ok(pb::TagVerdict::Reject) => TagVerdict::Reject,
        Ok(pb::TagVerdict::Unspecified) | Err(_) => {
            return Err(Error::invalid_field(
                "verdict",
                format!("verdict {verdict} is not TAG_VERDICT_ACCEPT or TAG_VERDICT_REJECT"),
            ));
        }
    };
    Ok((file_id, vocabulary, label, verdict))
}

/// The file id and the change an `UpdateFile` asks for.
pub fn file_update(request: pb::UpdateFileRequest) -> Result<(String, FileUpdate)> {
    let pb::UpdateFileRequest {
        file_id,
        filename,
        replace_tags,
        add_tags,
        remove_tags,
    } = request;
    let file_id = validate::id("file_id", &file_id)?;
    let update = FileUpdate {
        filename: filename
            .as_deref()
            .map(validate::filename)
            .transpose()
            .map_err(|e| e.at("filename"))?,
        replace_tags: replace_tags
            .map(|list| validate::tags(&list.tags))
            .transpose()
            .map_err(|e| e.at("replace_tags.tags"))?,
        add_tags: validate::tags(&add_tags).map_err(|e| e.at("add_tags"))?,
        remove_tags: validate::tags(&remove_tags).map_err(|e| e.at("remove_tags"))?,
    };
    Ok((file_id, update))
}

pub fn waveform(file_id: String, stored: StoredWaveform) -> pb::Waveform {
    let level = |level: PeakLevel| pb::WaveformLevel {
        samples_per_pair: level.samples_per_pair,
        pair_count: u32::try_from(level.pair_count()).unwrap_or(u32::MAX),
        peaks: level.peaks.into_iter().map(|p| p as u8).collect(),
    };
    let duration_seconds = if stored.sample_rate_hz == 0 {
        0.0
    } else {
        stored.frames as f64 / f64::from(stored.sample_rate_hz)
    };
    pb::Waveform {
        file_id,
        sample_rate_hz: stored.sample_rate_hz,
        duration_seconds,
        overview: Some(level(stored.peaks.overview)),
        detail: stored.peaks.detail.map(level),
    }
}

pub fn library_event(event: LibraryEvent) -> pb::LibraryEvent {
    use pb::library_event::Change;
    let change = match event {
        LibraryEvent::Job(record) => Change::Job(job(record)),
        LibraryEvent::File(record) => Change::File(file(*record)),
        LibraryEvent::Deleted(id) => Change::DeletedFileId(id),
        LibraryEvent::Resync => Change::Resync(true),
    };
    pb::LibraryEvent { change: Some(change) }
}

pub fn collection(record: CollectionRecord, files: Vec<FileRecord>) -> pb::Collection {
    pb::Collection {
        collection_id: record.id,
        name: record.name,
        file_count: u32::try_from(record.file_count).unwrap_or(u32::MAX),
        files: files.into_iter().map(file).collect(),
        created_at: Some(timestamp(record.created_at)),
        updated_at: Some(timestamp(record.updated_at)),
    }
}

fn file_ids(kind: &str, raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > validate::MAX_COLLECTION_FILES {
        return Err(Error::invalid_field(
            kind,
            format!(
                "{kind} lists {} files; a collection holds at most {}",
                raw.len(),
                validate::MAX_COLLECTION_FILES
            ),
        ));
    }
    raw.iter().map(|id| validate::id(kind, id)).collect()
}

/// The name and files of a `CreateCollection`.
pub fn new_collection(request: pb::CreateCollectionRequest) -> Result<(String, Vec<String>)> {
    Ok((
        validate::collection_name(&request.name).map_err(|e| e.at("name"))?,
        file_ids("file_ids", &request.file_ids)?,
    ))
}

/// The collection id and the change an `UpdateCollection` asks for.
pub fn collection_update(request: pb::UpdateCollectionRequest) -> Result<(String, CollectionUpdate)> {
    let pb::UpdateCollectionRequest {
        collection_id,
        name,
        replace_file_ids,
        add_file_ids,
        remove_file_ids,
    } = request;
    Ok((
        validate::id("collection_id", &collection_id)?,
        CollectionUpdate {
            name: name
                .as_deref()
                .map(validate::collection_name)
                .transpose()
                .map_err(|e| e.at("name"))?,
            replace: replace_file_ids
                .map(|list| file_ids("replace_file_ids", &list.file_ids))
                .transpose()?,
            add: file_ids("add_file_ids", &add_file_ids)?,
            remove: file_ids("remove_file_ids", &remove_file_ids)?,
        },
    ))
}
