//! Domain errors as gRPC statuses: [`Error::public`] decides what a client
//! may see, this maps its kinds of problem to codes.
//!
//! A failure inside the server reaches the client as `INTERNAL` with a
//! request id and nothing else; the log line with that id holds the whole
//! error (see [`crate::error`]).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, Problem};

/// Header carrying the request id of an internal error.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Metadata key with the seconds to wait before retrying a limited call.
pub const RETRY_AFTER_HEADER: &str = "retry-after";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err.public() {
            Some((problem, message)) => {
                let mut status = match details(&err, &message) {
                    Some(details) => Status::with_error_details(code(problem), message, details),
                    None => Status::new(code(problem), message),
                };
                if let Some(wait) = err.retry_after() {
                    // Whole seconds, rounded up, as HTTP's Retry-After.
                    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    if let Ok(value) = seconds.to_string().parse() {
                        status.metadata_mut().insert(RETRY_AFTER_HEADER, value);
                    }
                }
                status
            }
            None => internal(&err),
        }
    }
}

/// `google.rpc` details a client can act on without parsing the message:
/// the field to fix, the resource that is missing, how long to wait.
fn details(err: &Error, message: &str) -> Option<ErrorDetails> {
    match err {
        Error::InvalidField { field, message } => {
            Some(ErrorDetails::with_bad_request_violation(field, message))
        }
        Error::NotFound { kind, id } => Some(ErrorDetails::with_resource_info(
            kind.proto_type(),
            id,
            "",
            message,
        )),
        Error::RateLimited { retry_after, .. } => Some(ErrorDetails::with_retry_info(Some(*retry_after))),
        _ => None,
    }
}

fn code(problem: Problem) -> Code {
    match problem {
        Problem::InvalidArgument => Code::InvalidArgument,
        Problem::NotFound => Code::NotFound,
        Problem::TooLarge => Code::ResourceExhausted,
        Problem::DataLoss => Code::DataLoss,
        Problem::FailedPrecondition => Code::FailedPrecondition,
        Problem::AlreadyExists => Code::AlreadyExists,
        Problem::OutOfRange => Code::OutOfRange,
        Problem::Aborted => Code::Aborted,
        Problem::Unavailable => Code::Unavailable,
        Problem::Unauthenticated => Code::Unauthenticated,
        Problem::PermissionDenied => Code::PermissionDenied,
        Problem::RateLimited => Code::ResourceExhausted,
        Problem::Stalled => Code::DeadlineExceeded,
    }
}

/// `INTERNAL` with a fresh request id; the error itself goes to the log
/// under that id, never to the client.
fn internal(err: &Error) -> Status {
    let request_id = err.log_internal();
    let mut status = Status::internal(format!(
        "internal error; the server log has the details under request id {request_id}"
    ));
    if let Ok(value) = request_id.parse() {
        status.metadata_mut().insert(REQUEST_ID_HEADER, value);
    }
    status
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use crate::error::Entity;

    use traum_audio::AudioError;
    use traum_clap::ClapError;
    use traum_index::IndexError;

    use super::*;

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The status for `err` and what was logged while mapping it.
    fn map(err: Error) -> (Status, String) {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let status = tracing::subscriber::with_default(subscriber, || Status::from(err));
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        (status, text)
    }

    fn clap(err: ClapError) -> Error {
        Error::from(err)
    }

    #[test]
    fn actionable_errors_carry_rich_details() {
        let status = Status::from(Error::invalid_field(
            "options.limit",
            "options.limit 500 exceeds the maximum of 200",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violations = &details.bad_request().expect("a BadRequest").field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "options.limit");
        assert_eq!(
            violations[0].description,
            "options.limit 500 exceeds the maximum of 200"
        );

        let status = Status::from(Error::not_found(Entity::Collection, "c1"));
        let resource = status
            .get_error_details()
            .resource_info()
            .cloned()
            .expect("a ResourceInfo");
        assert_eq!(resource.resource_type, "traum.v1.Collection");
        assert_eq!(resource.resource_name, "c1");
        assert_eq!(resource.description, "collection c1 not found");

        let status = Status::from(Error::RateLimited {
            message: "slow down".into(),
            retry_after: std::time::Duration::from_millis(1500),
        });
        let retry = status
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("a RetryInfo");
        assert_eq!(retry.retry_delay, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(status.metadata().get(RETRY_AFTER_HEADER).unwrap(), "2");

        // Without a field there is nothing to point at: no details at all.
        let status = Status::from(Error::InvalidArgument("bad".into()));
        assert!(status.details().is_empty());
        assert!(status.get_error_details().bad_request().is_none());
    }

    #[test]
    fn a_field_error_gains_its_parents_path() {
        let leaf = Error::InvalidArgument("tag `` must not be empty".into()).at("tags_all");
        let nested = leaf.at("filters");
        assert!(matches!(&nested, Error::InvalidField { field, .. } if field == "filters.tags_all"));
        // Errors that are not about a field stay as they are.
        assert!(matches!(
            Error::not_found(Entity::File, "f").at("file_id"),
            Error::NotFound { .. }
        ));
    }

    #[test]
    fn errors_about_the_request_keep_their_code_and_message() {
        let cases = [
            (Error::InvalidArgument("bad".into()), Code::InvalidArgument, "bad"),
            (
                Error::not_found(Entity::File, "f1"),
                Code::NotFound,
                "file f1 not found",
            ),
            (Error::TooLarge("big".into()), Code::ResourceExhausted, "big"),
            (Error::ChecksumMismatch("sum".into()), Code::DataLoss, "sum"),
            (
                Error::FailedPrecondition("state".into()),
                Code::FailedPrecondition,
                "state",
            ),
            (Error::AlreadyExists("taken".into()), Code::AlreadyExists, "taken"),
            (Error::OutOfRange("offset".into()), Code::OutOfRange, "offset"),
            (Error::Aborted("gone".into()), Code::Aborted, "gone"),
            (Error::Unavailable("later".into()), Code::Unavailable, "later"),
            (
                // The message is the caller's; the cause (hosts, keys) is not.
                Error::BlobStore {
                    message: "the blob store is down".into(),
                    source: Box::new(object_store::Error::Generic {
                        store: "S3",
                        source: "connect to http://10.0.0.7:9000/bucket/ab/cd failed".into(),
                    }),
                },
                Code::Unavailable,
                "the blob store is down",
            ),
            (
                Error::Unauthenticated("send a key".into()),
                Code::Unauthenticated,
                "send a key",
            ),
            (
                Error::PermissionDenied("needs write".into()),
                Code::PermissionDenied,
                "needs write",
            ),
            (
                Error::RateLimited {
                    message: "slow down".into(),
                    retry_after: std::time::Duration::from_millis(1500),
                },
                Code::ResourceExhausted,
                "slow down",
            ),
            (Error::Stalled("idle".into()), Code::DeadlineExceeded, "idle"),
            (
                Error::Audio(AudioError::Unsupported("Ogg Opus audio is not supported".into())),
                Code::InvalidArgument,
                "Ogg Opus audio is not supported",
            ),
            (
                Error::Audio(AudioError::Corrupt("truncated".into())),
                Code::InvalidArgument,
                "truncated",
            ),
            (
                Error::Audio(AudioError::TooLong {
                    duration_seconds: 3723.0,
                    limit_seconds: 1800.0,
                }),
                Code::ResourceExhausted,
                "audio lasts 1:02:03 but at most 30:00 is accepted",
            ),
            (
                Error::Index(IndexError::Dimension {
                    expected: 512,
                    got: 3,
                }),
                Code::InvalidArgument,
                "vector has 3 dimensions but the index holds 512-dimensional vectors",
            ),
            (
                Error::Index(IndexError::BadVector("NaN".into())),
                Code::InvalidArgument,
                "NaN",
            ),
            (
                clap(ClapError::EmptyAudio),
                Code::InvalidArgument,
                "no audio samples to compute features from",
            ),
        ];
        for (err, code, message) in cases {
            let (status, log) = map(err);
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.message(), message);
            assert!(status.metadata().get(REQUEST_ID_HEADER).is_none());
            assert!(
                log.is_empty(),
                "nothing to log for the client's own mistake: {log}"
            );
        }
    }

    #[test]
    fn failures_inside_the_server_show_only_a_request_id_that_the_log_explains() {
        let secret = "password=hunter2 at 10.0.0.7";
        let cases = [
            Error::Database(sea_orm::DbErr::Custom(secret.into())),
            Error::Io(io::Error::other(secret)),
            Error::Audio(AudioError::Io(io::Error::other(secret))),
            Error::Internal(secret.into()),
            Error::Index(IndexError::Hnsw(secret.into())),
            Error::Index(IndexError::Missing(secret.into())),
            Error::Index(IndexError::Stale {
                path: "/x".into(),
                reason: secret.into(),
            }),
            Error::Index(IndexError::Corrupt {
                path: "/x".into(),
                reason: secret.into(),
            }),
            Error::Index(IndexError::Io {
                path: secret.into(),
                source: io::Error::other("disk"),
            }),
            Error::Index(IndexError::Text(tantivy_error(secret))),
            clap(ClapError::Backend(secret.into())),
            clap(ClapError::Tokenizer(secret.into())),
            clap(ClapError::Device(secret.into())),
            clap(ClapError::Input(secret.into())),
            clap(ClapError::Unsupported(secret.into())),
            clap(ClapError::Preprocessor(secret.into())),
            clap(ClapError::Windowing(secret.into())),
            clap(ClapError::ClipTooLong { samples: 1, limit: 0 }),
            clap(ClapError::MissingTensor { name: secret.into() }),
            clap(ClapError::UnusedTensors {
                names: vec![secret.into()],
            }),
            clap(ClapError::ShapeMismatch {
                name: secret.into(),
                expected: vec![1],
                found: vec![2],
            }),
            clap(ClapError::DType {
                name: secret.into(),
                dtype: "I8".into(),
            }),
            clap(ClapError::BadTensor {
                name: secret.into(),
                message: String::new(),
            }),
            clap(ClapError::Config {
                path: "/x".into(),
                message: secret.into(),
            }),
            clap(ClapError::Safetensors {
                path: "/x".into(),
                message: secret.into(),
            }),
            clap(ClapError::Io {
                path: secret.into(),
                source: io::Error::other("disk"),
            }),
            clap(ClapError::Download {
                repo: "r".into(),
                file: "f".into(),
                message: secret.into(),
            }),
        ];
        for err in cases {
            let detail = err.to_string();
            let (status, log) = map(err);
            assert_eq!(status.code(), Code::Internal, "{status:?}");
            assert!(!status.message().contains("hunter2"), "{}", status.message());
            assert!(!status.message().contains(&detail), "{}", status.message());
            let id = status
                .metadata()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .expect("a request id")
                .to_owned();
            assert_eq!(id.len(), 32);
            assert!(status.message().contains(&id), "{}", status.message());
            assert!(
                log.contains(&id) && log.contains(&detail),
                "the log has it all: {log}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_background_task_is_internal() {
        let join = tokio::spawn(async { panic!("worker blew up") })
            .await
            .unwrap_err();
        let (status, log) = map(Error::Task(join));
        assert_eq!(status.code(), Code::Internal);
        assert!(log.contains("panic"), "{log}");
    }

    fn tantivy_error(message: &str) -> tantivy::TantivyError {
        tantivy::TantivyError::InvalidArgument(message.into())
    }
}
