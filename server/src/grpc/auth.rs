//! The credential check in front of every gRPC service (native and
//! gRPC-Web): the access table decides what a method needs, [`Auth`]
//! decides the credential, and a refusal is answered here as a gRPC status
//! without reaching the service. The caller goes into the request's
//! extensions for the handlers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::AuditSlot;
use crate::auth::{Auth, access_of_rpc};

/// Tower layer that authenticates and authorizes every gRPC call.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthCheck {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthCheck<S> {
    inner: S,
    auth: Auth,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthCheck<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let access = access_of_rpc(request.uri().path());
        let auth = self.auth.clone();
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (principal, decision) = auth.decide(access, request.headers()).await;
            if let Some(principal) = principal {
                if let Some(slot) = request.extensions().get::<AuditSlot>() {
                    slot.set_principal(principal.clone());
                }
                request.extensions_mut().insert(principal);
            }
            match decision {
                Ok(()) => inner.call(request).await,
                Err(err) => Ok(Status::from(err).into_http()),
            }
        })
    }
}
