//! TLS on the server's listeners, with certificates made by the test
//! (rcgen): who gets in (a client trusting the CA, with a certificate under
//! mutual TLS, the CLI) and who does not (plaintext, another CA, mTLS
//! without a certificate), the web port over HTTPS, and certificates read
//! again on SIGHUP without dropping open connections.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use traum_proto::v1 as pb;
use traum_proto::v1::audio_service_client::AudioServiceClient;
use traum_server::tls::TlsFiles;

use crate::support::Backend;
use crate::support::{TestEnv, TestServer, free_port, workspace_binary};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A certificate and its key, in PEM, for `names` and `usage`.
    fn issue(&self, names: &[&str], common_name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn endpoint(addr: std::net::SocketAddr, tls: ClientTlsConfig) -> Endpoint {
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
}

fn trusting(ca: &Ca) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.issuer.pem()))
}

async fn list(channel: tonic::transport::Channel) -> Result<pb::ListFilesResponse, tonic::Status> {
    AudioServiceClient::new(channel)
        .list_files(pb::ListFilesRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

/// The first certificate a server at `addr` presents, in DER.
async fn presented_certificate(addr: std::net::SocketAddr, ca: &Ca, alpn: &[u8]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn traum(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(workspace_binary("traum"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_lets_in_who_trusts_the_certificate_and_reloads_on_sighup() {
    // Our own SIGHUP handler first: the signal must never meet the default
    // disposition, which would end the test process.
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let env = TestEnv::new(Backend::Sqlite).await;
    let ca = Ca::new("Traum test CA");
    let other = Ca::new("Someone else's CA");
    let dir = env.dir.path();
    let (cert, key) = ca.issue(
        &["localhost", "127.0.0.1"],
        "traum first",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let cert_path = write(dir, "server.pem", &cert);
    let key_path = write(dir, "server.key", &key);
    let ca_path = write(dir, "ca.pem", &ca.issuer.pem());
    let mut config = env.config();
    config.tls = Some(TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
        client_ca: None,
    });
    config.web_listen = Some(free_port());
    let tls = trusting(&ca);
    let server = TestServer::start_reached_by(config, |addr| endpoint(addr, tls.clone())).await;
    let addr = server.addr;
    let web = server.web_addr.expect("a web port");

    list(server.channel())
        .await
        .expect("a client trusting the CA gets in");
    let plaintext = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let refused = match plaintext.connect().await {
        Ok(channel) => list(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a plaintext client is refused");
    assert!(
        endpoint(addr, trusting(&other)).connect().await.is_err(),
        "a client trusting another CA is refused"
    );
    let addr_arg = format!("https://{addr}");
    let ca_arg = ca_path.to_str().unwrap().to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let (addr_arg, ca_arg) = (addr_arg.clone(), ca_arg.clone());
        move || traum(&["--addr", &addr_arg, "--ca-cert", &ca_arg, "ls"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, _, stderr) = tokio::task::spawn_blocking(move || traum(&["--addr", &addr_arg, "ls"]))
        .await
        .unwrap();
    assert_ne!(
        code,
        Some(0),
        "the system roots do not know the test CA: {stderr}"
    );

    // The web port speaks HTTPS with the same certificate.
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.issuer.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let page = https.get(format!("https://{web}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        reqwest::get(format!("http://{web}/")).await.is_err(),
        "no plaintext on the web port"
    );
    let kit = AudioServiceClient::new(server.channel())
        .create_collection(pb::CreateCollectionRequest {
            name: "Kit".into(),
            file_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let web_arg = format!("https://{web}");
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let ca_arg = ca_arg.clone();
        move || {
            traum(&[
                "--ca-cert",
                &ca_arg,
                "export",
                &kit.collection_id,
                "--format",
                "csv",
                "--web-addr",
                &web_arg,
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "traum export over HTTPS: {stderr}");
    assert!(stdout.starts_with("position,"), "{stdout}");

    // Renewal: new files, SIGHUP; new connections see the new certificate,
    // the open one keeps working.
    let first = presented_certificate(addr, &ca, b"h2").await;
    let (renewed, renewed_key) = ca.issue(
        &["localhost", "127.0.0.1"],
        "traum renewed",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(&cert_path, &renewed).unwrap();
    std::fs::write(&key_path, &renewed_key).unwrap();
    let open = server.channel();
    Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    hangups.recv().await;
    let mut reloaded = None;
    for _ in 0..100 {
        let now = presented_certificate(addr, &ca, b"h2").await;
        if now != first {
            reloaded = Some(now);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reloaded = reloaded.expect("the renewed certificate is presented after SIGHUP");
    let renewed_der = rustls::pki_types::CertificateDer::from_pem_slice(renewed.as_bytes()).unwrap();
    assert_eq!(reloaded, renewed_der.to_vec());
    assert_eq!(
        presented_certificate(web, &ca, b"http/1.1").await,
        renewed_der.to_vec()
    );
    list(open)
        .await
        .expect("the connection opened before the reload still works");
    server.stop().await;
    env.finish().await;
}

use rustls::pki_types::pem::PemObject;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let ca = Ca::new("Traum test CA");
    let dir = env.dir.path();
    let (cert, key) = ca.issue(
        &["localhost", "127.0.0.1"],
        "traum",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = ca.issue(&[], "ci uploader", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = Ca::new("Someone else's CA");
    let (stranger_cert, stranger_key) = stranger.issue(&[], "stranger", ExtendedKeyUsagePurpose::ClientAuth);
    let mut config = env.config();
    config.tls = Some(TlsFiles {
        cert: write(dir, "server.pem", &cert),
        key: write(dir, "server.key", &key),
        client_ca: Some(write(dir, "ca.pem", &ca.issuer.pem())),
    });
    let identity = Identity::from_pem(&client_cert, &client_key);
    let tls = trusting(&ca).identity(identity);
    let server = TestServer::start_reached_by(config, |addr| endpoint(addr, tls.clone())).await;
    let addr = server.addr;
    list(server.channel())
        .await
        .expect("a client certificate from the CA gets in");
    let without = match endpoint(addr, trusting(&ca)).connect().await {
        Ok(channel) => list(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(without, "no client certificate, no entry");
    let foreign = match endpoint(
        addr,
        trusting(&ca).identity(Identity::from_pem(&stranger_cert, &stranger_key)),
    )
    .connect()
    .await
    {
        Ok(channel) => list(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(foreign, "a client certificate from another CA is refused");
    let paths = [
        format!("https://{addr}"),
        dir.join("ca.pem").to_str().unwrap().to_owned(),
        write(dir, "client.pem", &client_cert)
            .to_str()
            .unwrap()
            .to_owned(),
        write(dir, "client.key", &client_key).to_str().unwrap().to_owned(),
    ];
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        traum(&[
            "--addr",
            &paths[0],
            "--ca-cert",
            &paths[1],
            "--client-cert",
            &paths[2],
            "--client-key",
            &paths[3],
            "stats",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    server.stop().await;
    env.finish().await;
}
