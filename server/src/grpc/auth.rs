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
use crate::auth::{Auth, CallClass, access_of_rpc};

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
        let class = CallClass::of(request.uri().path());
        let client = client_of(request.extensions());
        let auth = self.auth.clone();
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let admission = auth.admit(access, class, request.headers(), &client).await;
            if let Some(principal) = admission.principal {
                if let Some(slot) = request.extensions().get::<AuditSlot>() {
                    slot.set_principal(principal.clone());
                }
                request.extensions_mut().insert(principal);
            }
            match admission.decision {
                // An upload's slot is held until its call has answered.
                Ok(_slot) => inner.call(request).await,
                Err(err) => Ok(Status::from(err).into_http()),
            }
        })
    }
}

/// The client's address as limits key it: tonic records the TCP peer of
/// native calls, axum that of gRPC-Web and HTTP calls.
pub fn client_of(extensions: &http::Extensions) -> String {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let peer = extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0)
        })
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<crate::tls::TlsPeer>>()
                .map(|info| info.0.0)
        });
    peer.map_or_else(|| "ip unknown".to_owned(), |addr| format!("ip {}", addr.ip()))
}
