//! The one mapping from domain errors to gRPC statuses. Exhaustive on
//! purpose: a new error variant must choose its code here.

use tonic::Status;

use crate::error::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(message) => Status::invalid_argument(message),
            Error::UnsupportedFormat(message) => Status::invalid_argument(message),
            Error::NotFound { kind, id } => Status::not_found(format!("{kind} {id} not found")),
            Error::TooLarge(message) => Status::resource_exhausted(message),
            Error::ChecksumMismatch(message) => Status::data_loss(message),
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Aborted(message) => Status::aborted(message),
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Database(db) => {
                tracing::error!(error = %db, "database error");
                Status::internal("database error; see the server log")
            }
            Error::Io(io) => {
                tracing::error!(error = %io, "storage error");
                Status::internal("storage error; see the server log")
            }
            Error::Model(message) => {
                tracing::error!(error = %message, "embedding model error");
                Status::internal(format!("embedding model error: {message}"))
            }
            Error::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                Status::internal(message)
            }
        }
    }
}
