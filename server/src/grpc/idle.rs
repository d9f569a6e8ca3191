//! Ends upload calls whose body stalls: the request body of `UploadAudio`
//! and `PutUploadChunk` fails with DEADLINE_EXCEEDED when no bytes arrive
//! for the idle timeout. A trickling client would otherwise hold a
//! connection, an upload slot and a temp file forever. A resumable
//! session keeps what it had acknowledged, so the client resumes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const STALLING_PATHS: [&str; 2] = [
    "/traum.v1.AudioService/UploadAudio",
    "/traum.v1.AudioService/PutUploadChunk",
];

/// Tower layer that times out idle upload bodies.
#[derive(Clone)]
pub struct UploadIdleLayer {
    idle: Duration,
}

impl UploadIdleLayer {
    pub fn new(idle: Duration) -> Self {
        Self { idle }
    }
}

impl<S> Layer<S> for UploadIdleLayer {
    type Service = UploadIdle<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UploadIdle {
            inner,
            idle: self.idle,
        }
    }
}

/// The service produced by [`UploadIdleLayer`].
#[derive(Clone)]
pub struct UploadIdle<S> {
    inner: S,
    idle: Duration,
}

impl<S> Service<Request<tonic::body::Body>> for UploadIdle<S>
where
    S: Service<Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        if !STALLING_PATHS.contains(&request.uri().path()) {
            return self.inner.call(request);
        }
        let idle = self.idle;
        self.inner.call(request.map(|body| {
            tonic::body::Body::new(IdleBody {
                inner: body,
                idle,
                deadline: Box::pin(tokio::time::sleep(idle)),
            })
        }))
    }
}

pin_project_lite::pin_project! {
    struct IdleBody<B> {
        #[pin]
        inner: B,
        idle: Duration,
        deadline: Pin<Box<Sleep>>,
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline.as_mut().reset(Instant::now() + *this.idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                // tonic finds a Status in a body error and answers with it.
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Status::deadline_exceeded(format!(
                    "the upload sent nothing for {} s (--upload-idle-timeout); resumable uploads keep \
                     what was acknowledged: ask GetUpload for the offset and continue",
                    this.idle.as_secs_f64()
                )))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
