//! TLS on the server's own listeners (rustls with ring), with optional
//! client certificates. Certificates are read again on SIGHUP: new
//! connections get the new ones, open connections keep theirs. Handshakes
//! run on their own tasks so that a slow or silent client never holds up
//! the accept loop.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake that has not finished in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// Where the certificate, its key and (for mutual TLS) the client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate signed by one of these.
    pub client_ca: Option<PathBuf>,
}

/// An acceptor that can be swapped for one with fresh certificates.
pub struct Reloadable {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: RwLock<TlsAcceptor>,
}

impl Reloadable {
    /// Reads the files; `alpn` is what the listener speaks (`h2` for gRPC,
    /// `http/1.1` for the web port).
    pub fn load(files: TlsFiles, alpn: &[&[u8]]) -> Result<Arc<Self>, String> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = acceptor(&files, &alpn)?;
        Ok(Arc::new(Self {
            files,
            alpn,
            current: RwLock::new(acceptor),
        }))
    }

    /// Reads the files again; on an error the old certificates stay.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = acceptor(&self.files, &self.alpn)?;
        match self.current.write() {
            Ok(mut current) => {
                *current = fresh;
                Ok(())
            }
            Err(_) => Err("the TLS acceptor lock is poisoned".into()),
        }
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().ok().map(|acceptor| acceptor.clone())
    }
}

fn acceptor(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|err| format!("{}: no usable private key in PEM ({err})", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|err| format!("{}: not a usable CA certificate ({err})", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| format!("{}: {err}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|err| {
        format!(
            "{} and {} do not make a usable identity: {err}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = alpn.to_vec();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|err| format!("{}: not PEM certificates ({err})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Accepts TCP connections and hands over those whose TLS handshake
/// succeeded, until `stop` turns true.
pub fn accept(
    listener: TcpListener,
    tls: Arc<Reloadable>,
    mut stop: watch::Receiver<bool>,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // E.g. too many open files: wait rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let Some(acceptor) = tls.acceptor() else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// The web port's listener over TLS, for `axum::serve`.
pub struct TlsListener {
    pub incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (shutdown): the graceful shutdown ends
            // the server before this would be polled again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer of a TLS connection on the web port, as `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub struct TlsPeer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}
