//! The service's one error enum. Domain code returns it; `grpc::status` maps
//! every variant to a gRPC status in one exhaustive match.
//!
//! The rule for what a client sees: the message of each variant that is
//! about the request itself (a bad argument, a limit, a missing entity, a
//! conflicting state); for a failure inside the server (database, storage,
//! index, model, a broken invariant) nothing but a request id, under which
//! the server log holds the whole error.

use std::sync::Arc;

/// Everything that can go wrong in the domain. Errors of the crates below
/// (audio, indexes, model, database) are kept whole as the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names impossible values.
    #[error("{0}")]
    InvalidArgument(String),
    /// A named entity does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The content exceeds a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The bytes received (or stored) differ from what was declared.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// The request conflicts with the current state (e.g. a wrong offset).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A position beyond the end of something (e.g. a download offset).
    #[error("{0}")]
    OutOfRange(String),
    /// The client went away or stopped sending mid-way.
    #[error("{0}")]
    Aborted(String),
    /// A part of the server is not ready (yet), or it is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Audio that cannot be read: unsupported, corrupt, too long, unreadable.
    #[error(transparent)]
    Audio(#[from] traum_audio::AudioError),
    /// The vector or keyword index failed.
    #[error("search index error: {0}")]
    Index(#[from] traum_index::IndexError),
    /// The embedding model failed (shared: one failed batch answers every
    /// request in it).
    #[error("embedding model error: {0}")]
    Model(#[source] Arc<traum_clap::ClapError>),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The blob store or a temp file failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// A task on the blocking pool panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A broken invariant inside the server.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }
}

impl From<traum_clap::ClapError> for Error {
    fn from(err: traum_clap::ClapError) -> Self {
        Error::Model(Arc::new(err))
    }
}

impl From<Arc<traum_clap::ClapError>> for Error {
    fn from(err: Arc<traum_clap::ClapError>) -> Self {
        Error::Model(err)
    }
}
