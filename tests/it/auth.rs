//! Authentication and authorization: every method in the access table, a
//! matrix of credentials against representative calls, keys stored only as
//! hashes, revocation, tokens, the HTTP routes and gRPC-Web, and the rule
//! that refuses to start an open server beyond loopback.

use std::collections::BTreeSet;
use std::process::Command;

use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use traum_proto::v1 as pb;
use traum_proto::v1::admin_service_client::AdminServiceClient;
use traum_proto::v1::audio_service_client::AudioServiceClient;
use traum_server::auth::{AuthMode, HTTP_ROUTES, RPC_ACCESS, Role, create_key};
use traum_server::store::Store;

use crate::both_backends;
use crate::support::{Backend, TestEnv, TestServer, free_port, sha256_hex, wav, workspace_binary};

const HS256_SECRET: &str = "a shared secret of more than thirty-two bytes";

/// Sends `authorization: Bearer <credential>` on every call, if given.
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(credential) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {credential}").parse().expect("ASCII credential");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type Audio = AudioServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;
type Admin = AdminServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

fn audio(server: &TestServer, credential: Option<&str>) -> Audio {
    AudioServiceClient::with_interceptor(server.channel(), Bearer(credential.map(str::to_owned)))
}

fn admin(server: &TestServer, credential: Option<&str>) -> Admin {
    AdminServiceClient::with_interceptor(server.channel(), Bearer(credential.map(str::to_owned)))
}

fn token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HS256_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A server that requires credentials and accepts HS256 tokens, with an
/// admin key made on its database as `traum-server keys create` makes one.
async fn secured(env: &TestEnv) -> (TestServer, String) {
    let secret = env.dir.path().join("jwt-secret");
    std::fs::write(&secret, HS256_SECRET).unwrap();
    let server = env
        .start_with(|config| {
            config.auth = AuthMode::Required;
            config.jwt_hs256_secret_file = Some(secret);
            config.web_listen = Some(free_port());
        })
        .await;
    let store = Store::connect(&env.db.url).await.unwrap();
    let (_, admin_key) = create_key(&store, "bootstrap", Role::Admin).await.unwrap();
    (server, admin_key)
}

async fn new_key(server: &TestServer, admin_key: &str, name: &str, role: pb::Role) -> (String, String) {
    let created = admin(server, Some(admin_key))
        .create_api_key(pb::CreateApiKeyRequest {
            name: name.into(),
            role: role as i32,
        })
        .await
        .unwrap()
        .into_inner();
    (created.key.unwrap().key_id, created.secret)
}

async fn every_method_has_an_access_rule(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let (server, admin_key) = secured(&env).await;
    let (_, read_key) = new_key(&server, &admin_key, "reader", pb::Role::Read).await;

    use tonic_reflection::pb::v1 as r1;
    let mut reflection = r1::server_reflection_client::ServerReflectionClient::with_interceptor(
        server.channel(),
        Bearer(None),
    );
    let ask = |request| {
        futures::stream::iter([r1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };
    let refused = reflection
        .server_reflection_info(ask(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "reflection needs read");

    let reflection = r1::server_reflection_client::ServerReflectionClient::with_interceptor(
        server.channel(),
        Bearer(Some(read_key.clone())),
    );
    let reply = |request| {
        let mut reflection = reflection.clone();
        async move {
            let mut responses = reflection
                .server_reflection_info(ask(request))
                .await
                .unwrap()
                .into_inner();
            responses.next().await.unwrap().unwrap().message_response.unwrap()
        }
    };
    let r1::server_reflection_response::MessageResponse::ListServicesResponse(list) = reply(
        r1::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await
    else {
        panic!("unexpected reflection response");
    };
    let mut methods = BTreeSet::new();
    for service in list.service {
        let r1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) =
            reply(r1::server_reflection_request::MessageRequest::FileContainingSymbol(service.name.clone()))
                .await
        else {
            panic!("no descriptor for {}", service.name);
        };
        for bytes in files.file_descriptor_proto {
            let file =
                <prost_types::FileDescriptorProto as prost::Message>::decode(bytes.as_slice()).unwrap();
            for described in &file.service {
                let full = format!("{}.{}", file.package(), described.name());
                if full != service.name {
                    continue;
                }
                for method in &described.method {
                    methods.insert(format!("/{full}/{}", method.name()));
                }
            }
        }
    }
    assert!(methods.len() > 30, "{methods:?}");
    let table: BTreeSet<String> = RPC_ACCESS.iter().map(|(path, _)| (*path).to_owned()).collect();
    let missing: Vec<&String> = methods.difference(&table).collect();
    assert!(missing.is_empty(), "methods without an access rule: {missing:?}");
    // Reflection hides itself; everything else in the table is a real method.
    let stale: Vec<&String> = table
        .difference(&methods)
        .filter(|path| !path.starts_with("/grpc.reflection."))
        .collect();
    assert!(stale.is_empty(), "rules for methods that do not exist: {stale:?}");

    // Every HTTP route refuses a request without a credential and lets a
    // read key through (to a 404: the ids are made up).
    let web = format!("http://{}", server.web_addr.unwrap());
    let http = reqwest::Client::new();
    for (route, access) in HTTP_ROUTES {
        if *access == traum_server::auth::Access::Open {
            // The sign-in endpoint checks what it is given itself.
            continue;
        }
        let url = format!(
            "{web}{}",
            route.replace("{id}", &uuid::Uuid::new_v4().to_string())
        );
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401, "{route}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"traum\"");
        let response = http
            .get(&url)
            .header("x-api-key", &read_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{route}");
    }
    // The app itself loads without a credential: it is where one signs in.
    let page = http.get(format!("{web}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    server.stop().await;
    env.finish().await;
}
both_backends!(every_method_has_an_access_rule);

async fn credentials_and_roles_decide_every_call(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let (server, admin_key) = secured(&env).await;
    let (_, read_key) = new_key(&server, &admin_key, "reader", pb::Role::Read).await;
    let (_, write_key) = new_key(&server, &admin_key, "writer", pb::Role::Write).await;
    let (revoked_id, revoked_key) = new_key(&server, &admin_key, "gone", pb::Role::Admin).await;
    let revoked = admin(&server, Some(&admin_key))
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: revoked_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());

    let read_token = token(json!({"sub": "dashboard", "exp": now() + 600, "role": "read"}));
    let admin_token = token(json!({"sub": "ops", "exp": now() + 600, "role": "admin"}));
    let expired = token(json!({"sub": "ops", "exp": now() - 600, "role": "admin"}));
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "ops", "exp": now() + 600, "role": "admin"}),
        &EncodingKey::from_secret(b"not the server's secret, but long enough").unwrap(),
    )
    .unwrap();
    let unsigned = {
        let mut parts: Vec<&str> = admin_token.split('.').collect();
        // {"alg":"none","typ":"JWT"}, base64url.
        parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[2] = "";
        parts.join(".")
    };

    use Code::{Ok as Allowed, PermissionDenied as Denied, Unauthenticated as Unknown};
    // Codes of: ListFiles (read), CreateCollection (write), ListApiKeys (admin).
    let matrix: Vec<(&str, Option<String>, [Code; 3])> = vec![
        ("no credential", None, [Unknown; 3]),
        (
            "unknown key",
            Some(format!("traum_{}", "0".repeat(64))),
            [Unknown; 3],
        ),
        ("not a key", Some("hunter2".into()), [Unknown; 3]),
        ("revoked key", Some(revoked_key.clone()), [Unknown; 3]),
        ("read key", Some(read_key.clone()), [Allowed, Denied, Denied]),
        ("write key", Some(write_key.clone()), [Allowed, Allowed, Denied]),
        ("admin key", Some(admin_key.clone()), [Allowed; 3]),
        ("read token", Some(read_token), [Allowed, Denied, Denied]),
        ("admin token", Some(admin_token), [Allowed; 3]),
        ("expired token", Some(expired), [Unknown; 3]),
        ("forged token", Some(forged), [Unknown; 3]),
        ("alg none", Some(unsigned), [Unknown; 3]),
    ];
    for (i, (case, credential, expected)) in matrix.into_iter().enumerate() {
        let credential = credential.as_deref();
        let listed = audio(&server, credential)
            .list_files(pb::ListFilesRequest::default())
            .await;
        let created = audio(&server, credential)
            .create_collection(pb::CreateCollectionRequest {
                name: format!("kit {i}"),
                file_ids: vec![],
            })
            .await;
        let keys = admin(&server, credential)
            .list_api_keys(pb::ListApiKeysRequest {})
            .await;
        let codes = [
            listed.as_ref().map_or_else(tonic::Status::code, |_| Allowed),
            created.as_ref().map_or_else(tonic::Status::code, |_| Allowed),
            keys.as_ref().map_or_else(tonic::Status::code, |_| Allowed),
        ];
        assert_eq!(codes, expected, "{case}");
        for status in [listed.err(), created.err(), keys.err()].into_iter().flatten() {
            let message = status.message();
            if status.code() == Denied {
                assert!(message.contains("role"), "{case}: {message}");
            }
            // Refusals never tell which keys exist.
            for name in ["reader", "writer", "gone", "bootstrap"] {
                assert!(!message.contains(name), "{case}: {message}");
            }
        }
    }
    // The health check stays open: probes send no credential.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health/Check needs no credential");

    // Keys are stored only as the SHA-256 of their secret.
    let store = Store::connect(&env.db.url).await.unwrap();
    let stored = sea_orm::ConnectionTrait::query_all_raw(
        &store_connection(&env).await,
        sea_orm::Statement::from_string(
            backend_of(&env),
            "SELECT id, name, role, prefix, secret_sha256 FROM api_keys",
        ),
    )
    .await
    .unwrap();
    assert_eq!(stored.len(), 4);
    let hashes: Vec<String> = stored
        .iter()
        .map(|row| row.try_get::<String>("", "secret_sha256").unwrap())
        .collect();
    for secret in [&admin_key, &read_key, &write_key, &revoked_key] {
        assert!(hashes.contains(&sha256_hex(secret.as_bytes())), "stored by hash");
        for row in &stored {
            for column in ["id", "name", "role", "prefix", "secret_sha256"] {
                let value: String = row.try_get("", column).unwrap();
                assert!(
                    !value.contains(secret.as_str()),
                    "the secret itself is not stored"
                );
            }
        }
    }
    // The first use is recorded (in the background, so poll briefly).
    let mut used = false;
    for _ in 0..100 {
        let keys = store.list_api_keys().await.unwrap();
        if keys
            .iter()
            .any(|k| k.name == "reader" && k.last_used_at.is_some())
        {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used, "last_used_at is set after a successful call");
    let listed = admin(&server, Some(&admin_key))
        .list_api_keys(pb::ListApiKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let names: Vec<&str> = listed.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["gone", "writer", "reader", "bootstrap"], "newest first");
    assert!(
        listed
            .iter()
            .all(|k| k.prefix.starts_with("traum_") && k.prefix.len() == 12)
    );
    let err = admin(&server, Some(&admin_key))
        .create_api_key(pb::CreateApiKeyRequest {
            name: "x".into(),
            role: pb::Role::Unspecified as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = admin(&server, Some(&admin_key))
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // A write key uploads; the audio route needs read, by header.
    let data = wav(0.4, 44_100, 1, 330.0);
    let header = pb::UploadHeader {
        filename: "kick.wav".into(),
        size_bytes: Some(data.len() as u64),
        sha256: Some(sha256_hex(&data)),
        ..Default::default()
    };
    let messages = vec![
        pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Header(header)),
        },
        pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Chunk(bytes::Bytes::from(
                data.clone(),
            ))),
        },
    ];
    let refused = audio(&server, Some(&read_key))
        .upload_audio(futures::stream::iter(messages.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Denied);
    let uploaded = audio(&server, Some(&write_key))
        .upload_audio(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let web = format!("http://{}", server.web_addr.unwrap());
    let url = format!("{web}/api/files/{}/audio", uploaded.file_id);
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let response = http.get(&url).bearer_auth(&read_key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), data.as_slice());

    // gRPC-Web gets the same decisions.
    let origin = crate::support::origin(server.web_addr.unwrap());
    let mut browser = AudioServiceClient::with_origin(crate::support::web_channel(), origin.clone());
    let err = browser
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Unknown, "{err:?}");
    let mut request = tonic::Request::new(pb::ListFilesRequest::default());
    request
        .metadata_mut()
        .insert("x-api-key", read_key.parse().unwrap());
    let files = browser.list_files(request).await.unwrap().into_inner();
    assert_eq!(files.total_count, 1);
    server.stop().await;
    env.finish().await;
}
both_backends!(credentials_and_roles_decide_every_call);

async fn store_connection(env: &TestEnv) -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(&env.db.url).await.unwrap()
}

fn backend_of(env: &TestEnv) -> sea_orm::DbBackend {
    if env.db.url.starts_with("sqlite:") {
        sea_orm::DbBackend::Sqlite
    } else {
        sea_orm::DbBackend::Postgres
    }
}

fn server_binary(args: &[&str], data_dir: &std::path::Path) -> (Option<i32>, String, String) {
    let output = Command::new(workspace_binary("traum-server"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TRAUM_AUTH")
        .env_remove("TRAUM_LISTEN")
        .env_remove("TRAUM_WEB_LISTEN")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_managed_from_the_command_line_and_open_servers_stay_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, stdout, stderr) = server_binary(&["keys", "create", "--role", "admin", "--name", "me"], &data);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let secret = stdout.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("traum_") && secret.len() == 70, "{stdout}");
    let (code, stdout, _) = server_binary(&["keys", "list"], &data);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("admin") && stdout.contains(" me") && !stdout.contains(&secret),
        "{stdout}"
    );
    assert!(stdout.contains(&secret[..12]), "the prefix is shown: {stdout}");
    let id = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (code, stdout, stderr) = server_binary(&["keys", "revoke", &id], &data);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", data.join("traum.db").display()))
        .await
        .unwrap();
    let keys = store.list_api_keys().await.unwrap();
    assert!(keys[0].revoked_at.is_some());
    let audited = store
        .list_audit(&traum_server::audit::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let methods: Vec<(&str, &str)> = audited
        .items
        .iter()
        .map(|e| (e.principal.as_str(), e.method.as_str()))
        .collect();
    assert_eq!(
        methods,
        [
            ("local", "traum-server keys revoke"),
            ("local", "traum-server keys create")
        ]
    );
    let (code, _, stderr) = server_binary(&["keys", "create", "--role", "root", "--name", "x"], &data);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("root"), "{stderr}");

    // An open server on a public address does not start.
    for (flag, addr) in [("--listen", "0.0.0.0:0"), ("--web-listen", "0.0.0.0:0")] {
        let (code, _, stderr) = server_binary(&[flag, addr, "--model", "none"], &data);
        assert_eq!(code, Some(64), "{stderr}");
        assert!(stderr.contains(flag) && stderr.contains("--auth"), "{stderr}");
    }
}

fn traum(server: &TestServer, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(workspace_binary("traum"))
        .arg("--addr")
        .arg(format!("http://{}", server.addr))
        .args(args)
        .env_remove("TRAUM_API_KEY")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_its_key_to_both_ports() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let (server, admin_key) = secured(&env).await;
    let (_, write_key) = new_key(&server, &admin_key, "cli", pb::Role::Write).await;
    let server = std::sync::Arc::new(server);
    let run = |args: Vec<String>| {
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            traum(&server, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let (code, _, stderr) = run(owned(&["ls"])).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("UNAUTHENTICATED") && stderr.contains("credential"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(owned(&[
        "--api-key",
        &write_key,
        "--json",
        "collection",
        "create",
        "Kit",
    ]))
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let id = serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["collection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let web = format!("http://{}", server.web_addr.unwrap());
    let export = |key: Option<&str>| {
        let mut args = owned(&["export", &id, "--format", "csv", "--web-addr", &web]);
        if let Some(key) = key {
            args.splice(0..0, ["--api-key".to_owned(), key.to_owned()]);
        }
        run(args)
    };
    let (code, _, stderr) = export(None).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("401"), "{stderr}");
    let (code, stdout, stderr) = export(Some(&write_key)).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("position,"), "{stdout}");
    match std::sync::Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => panic!("the server is still shared"),
    }
    env.finish().await;
}

async fn audit_events_until(server: &TestServer, admin_key: &str, count: u64) -> pb::ListAuditEventsResponse {
    for _ in 0..200 {
        let page = admin(server, Some(admin_key))
            .list_audit_events(pb::ListAuditEventsRequest::default())
            .await
            .unwrap()
            .into_inner();
        if page.total_count >= count {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} audit events arrived");
}

async fn every_write_is_audited_with_its_caller_target_and_outcome(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let (server, admin_key) = secured(&env).await;
    let (_, read_key) = new_key(&server, &admin_key, "reader", pb::Role::Read).await;
    let (writer_id, write_key) = new_key(&server, &admin_key, "writer", pb::Role::Write).await;

    let data = wav(0.3, 44_100, 1, 440.0);
    let messages = vec![
        pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
                filename: "snare.wav".into(),
                ..Default::default()
            })),
        },
        pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Chunk(bytes::Bytes::from(data))),
        },
    ];
    let file_id = audio(&server, Some(&write_key))
        .upload_audio(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner()
        .file_id;
    let kit = audio(&server, Some(&write_key))
        .create_collection(pb::CreateCollectionRequest {
            name: "Kit".into(),
            file_ids: vec![file_id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let denied = audio(&server, Some(&read_key))
        .delete_file(pb::DeleteFileRequest {
            file_id: file_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = audio(&server, None)
        .delete_collection(pb::DeleteCollectionRequest {
            collection_id: kit.collection_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    audio(&server, Some(&write_key))
        .update_file(pb::UpdateFileRequest {
            file_id: file_id.clone(),
            filename: Some("Snare 01.wav".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Reads are not audited.
    audio(&server, Some(&read_key))
        .list_files(pb::ListFilesRequest::default())
        .await
        .unwrap();

    let page = audit_events_until(&server, &admin_key, 7).await;
    assert_eq!(page.total_count, 7, "{:#?}", page.events);
    let writer = format!("key {writer_id}");
    let seen: Vec<(&str, &str, &str, i32)> = page
        .events
        .iter()
        .map(|e| {
            (
                e.principal.as_str(),
                e.method.trim_start_matches("/traum.v1."),
                e.target.as_str(),
                e.code,
            )
        })
        .collect();
    let file_target = format!("file {file_id}");
    let kit_target = format!("collection {} (\"Kit\")", kit.collection_id);
    let kit_id_target = format!("collection {}", kit.collection_id);
    let expected: Vec<(&str, &str, &str, i32)> = vec![
        (&writer, "AudioService/UpdateFile", &file_target, 0),
        (
            "anonymous",
            "AudioService/DeleteCollection",
            "",
            Code::Unauthenticated as i32,
        ),
        (
            page.events[2].principal.as_str(),
            "AudioService/DeleteFile",
            "",
            Code::PermissionDenied as i32,
        ),
        (&writer, "AudioService/CreateCollection", &kit_target, 0),
        (&writer, "AudioService/UploadAudio", &file_target, 0),
        (seen[5].0, "AdminService/CreateApiKey", seen[5].2, 0),
        (seen[6].0, "AdminService/CreateApiKey", seen[6].2, 0),
    ];
    assert_eq!(seen, expected);
    assert!(
        page.events[2].principal.starts_with("key ") && page.events[2].role == pb::Role::Read as i32,
        "a refused caller whose key is valid is named: {:?}",
        page.events[2]
    );
    assert!(
        seen[5].2.contains("writer") && seen[6].2.contains("reader"),
        "{seen:?}"
    );
    assert!(!kit_id_target.is_empty());

    // The remaining writes: a verdict on a suggestion (the server has no
    // model, so there is none to find: refusals are audited too), a
    // resumable upload, reprocess, a collection change, a key revoked; then
    // every audited method is in the log.
    let mut writer_audio = audio(&server, Some(&write_key));
    let status = writer_audio
        .review_suggested_tag(pb::ReviewSuggestedTagRequest {
            file_id: file_id.clone(),
            vocabulary: "genre".into(),
            label: "techno".into(),
            verdict: pb::TagVerdict::Accept as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let data = wav(0.2, 22_050, 1, 550.0);
    let session = writer_audio
        .start_upload(pb::StartUploadRequest {
            header: Some(pb::UploadHeader {
                filename: "hat.wav".into(),
                size_bytes: Some(data.len() as u64),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    writer_audio
        .put_upload_chunk(pb::PutUploadChunkRequest {
            upload_id: session.upload_id.clone(),
            offset: 0,
            data: bytes::Bytes::from(data),
        })
        .await
        .unwrap();
    let hat = writer_audio
        .finish_upload(pb::FinishUploadRequest {
            upload_id: session.upload_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // Reprocessing waits for the file's first job; a refusal is audited too.
    let _ = writer_audio
        .reprocess_file(pb::ReprocessFileRequest {
            file_id: hat.file_id.clone(),
        })
        .await;
    writer_audio
        .update_collection(pb::UpdateCollectionRequest {
            collection_id: kit.collection_id.clone(),
            name: Some("Kit 2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (reader_id, _) = (
        admin(&server, Some(&admin_key))
            .list_api_keys(pb::ListApiKeysRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys
            .into_iter()
            .find(|k| k.name == "reader")
            .unwrap()
            .key_id,
        (),
    );
    admin(&server, Some(&admin_key))
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: reader_id.clone(),
        })
        .await
        .unwrap();
    let page = audit_events_until(&server, &admin_key, 13).await;
    let newest: Vec<(&str, &str)> = page.events[..5]
        .iter()
        .map(|e| (e.method.trim_start_matches("/traum.v1."), e.target.as_str()))
        .collect();
    let hat_target = format!("file {} (upload {})", hat.file_id, session.upload_id);
    let upload_target = format!("upload {}", session.upload_id);
    let hat_file = format!("file {}", hat.file_id);
    let reader_target = format!("key {reader_id}");
    assert_eq!(
        newest,
        [
            ("AdminService/RevokeApiKey", reader_target.as_str()),
            ("AudioService/UpdateCollection", kit_id_target.as_str()),
            ("AudioService/ReprocessFile", hat_file.as_str()),
            ("AudioService/FinishUpload", hat_target.as_str()),
            ("AudioService/StartUpload", upload_target.as_str()),
        ]
    );
    let logged: BTreeSet<&str> = page.events.iter().map(|e| e.method.as_str()).collect();
    for method in traum_server::auth::AUDITED_RPCS {
        assert!(logged.contains(method), "{method} is audited");
    }

    // Filters: one principal, and a time.
    let mine = admin(&server, Some(&admin_key))
        .list_audit_events(pb::ListAuditEventsRequest {
            principal: writer.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.total_count, 8);
    let future = admin(&server, Some(&admin_key))
        .list_audit_events(pb::ListAuditEventsRequest {
            since: Some(prost_types::Timestamp {
                seconds: now() + 3600,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(future.total_count, 0);
    // Only admins read the log.
    let err = admin(&server, Some(&write_key))
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Retention: what the janitor calls removes what is older than the cutoff.
    let store = Store::connect(&env.db.url).await.unwrap();
    let removed = store
        .prune_audit(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(removed, 0, "nothing is an hour old");
    let removed = store
        .prune_audit(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(removed >= 12);
    server.stop().await;
    env.finish().await;
}
both_backends!(every_write_is_audited_with_its_caller_target_and_outcome);

fn search_client(
    server: &TestServer,
    credential: Option<&str>,
) -> traum_proto::v1::search_service_client::SearchServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
> {
    traum_proto::v1::search_service_client::SearchServiceClient::with_interceptor(
        server.channel(),
        Bearer(credential.map(str::to_owned)),
    )
}

async fn limits_hold_back_one_caller_and_let_it_recover(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let secret = env.dir.path().join("jwt-secret");
    std::fs::write(&secret, HS256_SECRET).unwrap();
    let server = env
        .start_with(|config| {
            config.auth = AuthMode::Required;
            config.limits.search = traum_server::auth::Rate {
                per_second: 4.0,
                burst: 2,
            };
            config.limits.max_concurrent_uploads = 1;
            config.limits.max_failure_delay = std::time::Duration::from_secs(2);
        })
        .await;
    let store = Store::connect(&env.db.url).await.unwrap();
    let (_, busy) = create_key(&store, "busy", Role::Write).await.unwrap();
    let (_, calm) = create_key(&store, "calm", Role::Read).await.unwrap();

    let search = |key: &str| {
        let mut client = search_client(&server, Some(key));
        async move {
            client
                .search_by_text(pb::SearchByTextRequest {
                    query: "warm pad".into(),
                    ..Default::default()
                })
                .await
        }
    };
    // Without a model searches are UNAVAILABLE, but they still count.
    for _ in 0..2 {
        assert_eq!(search(&busy).await.unwrap_err().code(), Code::Unavailable);
    }
    let limited = search(&busy).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(
        limited.message().contains("4 searches per second (burst 2)"),
        "{}",
        limited.message()
    );
    assert_eq!(limited.metadata().get("retry-after").unwrap(), "1");
    let retry = limited
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("a google.rpc.RetryInfo");
    let delay = retry.retry_delay.expect("a retry delay");
    assert!(
        delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(1),
        "{delay:?}"
    );
    // Another caller is not held back by this one.
    assert_eq!(search(&calm).await.unwrap_err().code(), Code::Unavailable);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        search(&busy).await.unwrap_err().code(),
        Code::Unavailable,
        "recovered"
    );

    // One upload in flight per caller: a second one waits for the first.
    let hold = || {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let header = pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
                filename: "slow.wav".into(),
                ..Default::default()
            })),
        };
        let mut client = audio(&server, Some(&busy));
        let call = tokio::spawn(async move {
            client
                .upload_audio(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        (tx, header, call)
    };
    let second = |name: &str| {
        let mut client = audio(&server, Some(&busy));
        let data = wav(0.2, 22_050, 1, 220.0);
        let messages = vec![
            pb::UploadAudioRequest {
                payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
                    filename: name.into(),
                    ..Default::default()
                })),
            },
            pb::UploadAudioRequest {
                payload: Some(pb::upload_audio_request::Payload::Chunk(bytes::Bytes::from(data))),
            },
        ];
        async move { client.upload_audio(futures::stream::iter(messages)).await }
    };
    let (mut tx, header, mut first) = hold();
    tx.send(header).await.unwrap();
    let mut refused = None;
    for _ in 0..100 {
        match second("second.wav").await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                refused = Some(status);
                break;
            }
            other => assert!(other.is_ok(), "{other:?}"),
        }
        // The held stream may have reached the server after a second
        // upload took the slot, and been refused itself: hold again.
        if first.is_finished() {
            let ended = first.await.unwrap();
            assert_eq!(ended.unwrap_err().code(), Code::ResourceExhausted);
            let (next_tx, header, next) = hold();
            next_tx.send(header).await.unwrap();
            (tx, first) = (next_tx, next);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a second concurrent upload is refused");
    assert!(refused.message().contains("in flight"), "{}", refused.message());
    tx.send(pb::UploadAudioRequest {
        payload: Some(pb::upload_audio_request::Payload::Chunk(bytes::Bytes::from(wav(
            0.2, 22_050, 1, 330.0,
        )))),
    })
    .await
    .unwrap();
    drop(tx);
    first.await.unwrap().expect("the first upload completes");
    second("third.wav").await.expect("the slot came back");

    // Failed credentials from one address are answered ever later.
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let err = search(&format!("traum_{}", "f".repeat(64))).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    // 50 + 100 + 200 + 400 ms of hold-back at least.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
    let metrics = server.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("traum_auth_failures_total{reason=\"unauthenticated\"}")),
        "{metrics}"
    );
    server.stop().await;
    env.finish().await;
}
both_backends!(limits_hold_back_one_caller_and_let_it_recover);

async fn the_web_session_keeps_a_credential_for_the_audio_element(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let (server, admin_key) = secured(&env).await;
    let (_, read_key) = new_key(&server, &admin_key, "browser", pb::Role::Read).await;
    let data = wav(0.3, 22_050, 1, 440.0);
    let messages = vec![
        pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Header(pb::UploadHeader {
                filename: "pad.wav".into(),
                ..Default::default()
            })),
        },
        pb::UploadAudioRequest {
            payload: Some(pb::upload_audio_request::Payload::Chunk(bytes::Bytes::from(
                data.clone(),
            ))),
        },
    ];
    let file_id = audio(&server, Some(&admin_key))
        .upload_audio(futures::stream::iter(messages))
        .await
        .unwrap()
        .into_inner()
        .file_id;
    let web = format!("http://{}", server.web_addr.unwrap());
    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .get(format!("{web}/api/session"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    assert_eq!(
        session,
        json!({"auth": "required", "role": null, "principal": null})
    );
    let refused = http
        .post(format!("{web}/api/session"))
        .bearer_auth("traum_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    let signed_in = http
        .post(format!("{web}/api/session"))
        .bearer_auth(&read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("traum_session={read_key};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Max-Age"),
        "{cookie}"
    );
    let body: serde_json::Value = serde_json::from_str(&signed_in.text().await.unwrap()).unwrap();
    assert_eq!(body["role"], "read");
    // What the browser then sends by itself: the cookie, no header.
    let jar = format!("traum_session={read_key}");
    let played = http
        .get(format!("{web}/api/files/{file_id}/audio"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(played.status(), 200);
    assert_eq!(played.bytes().await.unwrap().as_ref(), data.as_slice());
    let who: serde_json::Value = http
        .get(format!("{web}/api/session"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    assert_eq!(who["role"], "read");
    // The cookie opens no RPC: those take the header only.
    let mut request = tonic::Request::new(pb::ListFilesRequest::default());
    request.metadata_mut().insert("cookie", jar.parse().unwrap());
    let origin = crate::support::origin(server.web_addr.unwrap());
    let err = AudioServiceClient::with_origin(crate::support::web_channel(), origin)
        .list_files(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let signed_out = http.delete(format!("{web}/api/session")).send().await.unwrap();
    assert_eq!(signed_out.status(), 204);
    assert!(
        signed_out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    server.stop().await;
    env.finish().await;
}
both_backends!(the_web_session_keeps_a_credential_for_the_audio_element);
