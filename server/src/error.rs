//! The server's one error enum. Domain code returns it; `grpc::status` maps
//! each variant to a gRPC status in one exhaustive match.

/// Everything that can go wrong in the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names impossible values.
    #[error("{0}")]
    InvalidArgument(String),
    /// The content is not audio Traum can read.
    #[error("{0}")]
    UnsupportedFormat(String),
    /// A named entity does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The content exceeds a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The bytes received differ from what the client declared.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// The request conflicts with the current state (e.g. a wrong offset).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The client went away or stopped sending mid-way.
    #[error("{0}")]
    Aborted(String),
    /// A part of the server is not ready (yet), e.g. search before its
    /// issue lands or while shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The blob store or a temp file failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The embedding model failed on an input.
    #[error("embedding model error: {0}")]
    Model(String),
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

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {err}"))
    }
}
