//! The service's one error enum. Domain code returns it; `grpc::status` maps
//! every variant to a gRPC status in one exhaustive match.
//!
//! The rule for what a client sees: the message of each variant that is
//! about the request itself (a bad argument, a limit, a missing entity, a
//! conflicting state); for a failure inside the server (database, storage,
//! index, model, a broken invariant) nothing but a request id, under which
//! the server log holds the whole error.

use std::sync::Arc;

use traum_audio::AudioError;
use traum_clap::ClapError;
use traum_index::IndexError;

/// Everything that can go wrong in the domain. Errors of the crates below
/// (audio, indexes, model, database) are kept whole as the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names impossible values.
    #[error("{0}")]
    InvalidArgument(String),
    /// One field of the request holds an impossible value; `field` is its
    /// path in the request as the proto names it (e.g. `options.limit`),
    /// so a client can point at it.
    #[error("{message}")]
    InvalidField { field: String, message: String },
    /// A named entity does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: Entity, id: String },
    /// The content exceeds a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The bytes received (or stored) differ from what was declared.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// The request conflicts with the current state (e.g. a wrong offset).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something with that name exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A position beyond the end of something (e.g. a download offset).
    #[error("{0}")]
    OutOfRange(String),
    /// The client went away or stopped sending mid-way.
    #[error("{0}")]
    Aborted(String),
    /// A part of the server is not ready (yet), or it is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// No credential, or one that is unknown, revoked, expired or forged.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential whose role does not allow the call.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller is over a rate or concurrency limit; retry after the wait.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// An upload stream sent nothing for longer than the idle timeout.
    #[error("{0}")]
    Stalled(String),
    /// Audio that cannot be read: unsupported, corrupt, too long, unreadable.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The vector or keyword index failed.
    #[error("search index error: {0}")]
    Index(#[from] IndexError),
    /// The embedding model failed (shared: one failed batch answers every
    /// request in it).
    #[error("embedding model error: {0}")]
    Model(#[source] Arc<ClapError>),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The blob store or a temp file failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The object store holding the blobs is unreachable or refused a
    /// request after the client's retries; `message` is for the caller.
    #[error("{message}")]
    BlobStore {
        message: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A task on the blocking pool panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// This replica's lease on a job passed and another replica took the
    /// job over; the work in hand must be dropped, not saved.
    #[error("job {job_id} is now run by replica {owner}; this replica's lease on it passed")]
    LeaseLost { job_id: String, owner: String },
    /// A broken invariant inside the server.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kinds of thing a request can name that may not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    File,
    Collection,
    Job,
    UploadSession,
    /// An upload session past its expiry (its parts are gone).
    ExpiredUploadSession,
    ApiKey,
    /// A zero-shot suggestion of one file.
    SuggestedTag,
}

impl Entity {
    /// The proto message the entity would have been, for `ResourceInfo`.
    pub fn proto_type(self) -> &'static str {
        match self {
            Entity::File => "traum.v1.File",
            Entity::Collection => "traum.v1.Collection",
            Entity::Job => "traum.v1.Job",
            Entity::UploadSession | Entity::ExpiredUploadSession => "traum.v1.UploadSession",
            Entity::ApiKey => "traum.v1.ApiKey",
            Entity::SuggestedTag => "traum.v1.SuggestedTag",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::File => "file",
            Entity::Collection => "collection",
            Entity::Job => "job",
            Entity::UploadSession => "upload session",
            Entity::ExpiredUploadSession => "upload session (expired)",
            Entity::ApiKey => "API key",
            Entity::SuggestedTag => "suggested tag",
        })
    }
}

/// The kinds of problem a client is told about; each transport maps them to
/// its own codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    InvalidArgument,
    NotFound,
    TooLarge,
    DataLoss,
    FailedPrecondition,
    AlreadyExists,
    OutOfRange,
    Aborted,
    Unavailable,
    Unauthenticated,
    PermissionDenied,
    RateLimited,
    Stalled,
}

/// Result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// How long a client should wait before retrying, for a limit.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidField`].
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error as one about the request field at `path`: a plain invalid
    /// argument is placed at `path`, an invalid field gets `path` as its
    /// parent (`options` + `limit` = `options.limit`); any other error
    /// stays as it is. Validators name the leaf they check, the layer that
    /// knows the request's nesting adds the rest.
    #[must_use]
    pub fn at(self, path: &str) -> Self {
        match self {
            Error::InvalidArgument(message) => Error::invalid_field(path, message),
            Error::InvalidField { field, message } => {
                Error::invalid_field(format!("{path}.{field}"), message)
            }
            other => other,
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: Entity, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }
}

impl From<ClapError> for Error {
    fn from(err: ClapError) -> Self {
        Error::Model(Arc::new(err))
    }
}

impl From<Arc<ClapError>> for Error {
    fn from(err: Arc<ClapError>) -> Self {
        Error::Model(err)
    }
}

impl Error {
    /// What a client may be told: the kind of problem and the message of an
    /// error about the request itself; `None` for a failure inside the
    /// server, which a client sees only as a request id (see
    /// [`Error::log_internal`]). Exhaustive down to the variants of the
    /// crates below, on purpose: a new variant must choose here.
    pub fn public(&self) -> Option<(Problem, String)> {
        let problem = match self {
            Error::InvalidArgument(_) | Error::InvalidField { .. } => Problem::InvalidArgument,
            Error::NotFound { .. } => Problem::NotFound,
            Error::TooLarge(_) => Problem::TooLarge,
            Error::ChecksumMismatch(_) => Problem::DataLoss,
            Error::FailedPrecondition(_) => Problem::FailedPrecondition,
            Error::AlreadyExists(_) => Problem::AlreadyExists,
            Error::OutOfRange(_) => Problem::OutOfRange,
            Error::Aborted(_) => Problem::Aborted,
            Error::Unavailable(_) | Error::BlobStore { .. } => Problem::Unavailable,
            Error::Unauthenticated(_) => Problem::Unauthenticated,
            Error::PermissionDenied(_) => Problem::PermissionDenied,
            Error::RateLimited { .. } => Problem::RateLimited,
            Error::Stalled(_) => Problem::Stalled,
            Error::Audio(audio) => {
                return match audio {
                    // A crash is the file's doing: it names the stage and
                    // the panic, nothing of the server.
                    AudioError::Unsupported(_) | AudioError::Corrupt(_) | AudioError::Crashed { .. } => {
                        Some((Problem::InvalidArgument, audio.to_string()))
                    }
                    AudioError::TooLong { .. } => Some((Problem::TooLarge, audio.to_string())),
                    AudioError::Io(_) => None,
                };
            }
            Error::Index(index) => {
                return match index {
                    IndexError::Dimension { .. } | IndexError::BadVector(_) => {
                        Some((Problem::InvalidArgument, index.to_string()))
                    }
                    IndexError::Missing(_)
                    | IndexError::Stale { .. }
                    | IndexError::Corrupt { .. }
                    | IndexError::Hnsw(_)
                    | IndexError::Text(_)
                    | IndexError::Io { .. } => None,
                };
            }
            Error::Model(model) => {
                return match &**model {
                    ClapError::EmptyAudio => Some((Problem::InvalidArgument, model.to_string())),
                    ClapError::Io { .. }
                    | ClapError::Config { .. }
                    | ClapError::Unsupported(_)
                    | ClapError::Safetensors { .. }
                    | ClapError::MissingTensor { .. }
                    | ClapError::ShapeMismatch { .. }
                    | ClapError::DType { .. }
                    | ClapError::BadTensor { .. }
                    | ClapError::UnusedTensors { .. }
                    | ClapError::Tokenizer(_)
                    | ClapError::Input(_)
                    | ClapError::Device(_)
                    | ClapError::Backend(_)
                    | ClapError::Preprocessor(_)
                    | ClapError::ClipTooLong { .. }
                    | ClapError::Windowing(_)
                    | ClapError::Download { .. } => None,
                };
            }
            Error::Database(_)
            | Error::Io(_)
            | Error::Task(_)
            | Error::LeaseLost { .. }
            | Error::Internal(_) => {
                return None;
            }
        };
        Some((problem, self.to_string()))
    }

    /// Logs a failure inside the server in full under a fresh request id and
    /// returns the id, which is all the client is shown.
    pub fn log_internal(&self) -> String {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(request_id = %request_id, error = %self, "request failed inside the server");
        request_id
    }
}
