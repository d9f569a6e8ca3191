//! Who may call what. Three roles, each including the one before; API keys
//! (random secrets of which only the SHA-256 is stored) and JWT bearer
//! tokens name a role; one access table says which role each RPC and HTTP
//! route needs. Transports extract the credential and ask [`Auth::check`];
//! nothing here knows about gRPC.

mod access;
mod limits;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::HeaderMap;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use self::access::{
    AUDIO_ROUTE, AUDITED_RPCS, Access, EXPORT_ROUTE, HTTP_ROUTES, RPC_ACCESS, SESSION_ROUTE, access_of_http,
    access_of_rpc, is_audited,
};
pub use self::limits::{CallClass, Limiter, Limits, Rate, UploadSlot};
pub use self::token::TokenVerifier;
use crate::error::{Error, Result};
use crate::store::Store;

/// Every key starts with this, so that secret scanners and people can tell a
/// Traum key from other strings.
pub const KEY_PREFIX: &str = "traum_";
/// Characters of a key shown in listings (the prefix and 6 of the secret).
const SHOWN_CHARS: usize = 12;
/// Longest key name.
const MAX_NAME_CHARS: usize = 100;
/// A key's `last_used_at` is written at most this often, so that a busy key
/// does not turn every read into a database write.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// What a credential allows; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Write, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the server checks credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every call is allowed; only for a server reachable from loopback.
    #[default]
    Off,
    /// Every call but the health check needs a key or token with its role.
    Required,
}

/// An API key as stored and listed; never its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    Token,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id, or the token's `sub`.
    pub subject: String,
    pub role: Role,
    pub kind: CredentialKind,
}

/// Checks credentials against the access table; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    mode: AuthMode,
    store: Store,
    tokens: Option<TokenVerifier>,
    limiter: Limiter,
    touched: Mutex<HashMap<String, Instant>>,
}

/// What [`Auth::admit`] decided about one call.
pub struct Admission {
    /// The caller, when a credential was accepted (also when its role was
    /// too small, for the audit log).
    pub principal: Option<Principal>,
    /// Go ahead (holding an upload slot for upload calls), or the refusal.
    pub decision: Result<Option<UploadSlot>>,
}

impl Auth {
    pub fn new(mode: AuthMode, store: Store, tokens: Option<TokenVerifier>, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                store,
                tokens,
                limiter: Limiter::new(limits),
                touched: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.inner.mode
    }

    /// Decides a request to one of the web port's GET routes, which also
    /// take the session cookie: a browser sends no header with `<audio
    /// src>`. Only reads are reached this way, so a forged cross-site
    /// request (blocked by `SameSite=Strict` anyway) could change nothing.
    pub async fn check_with_cookie(&self, access: Access, headers: &HeaderMap, client: &str) -> Result<()> {
        self.admit_from(access, CallClass::Other, headers, client, true)
            .await
            .decision
            .map(drop)
    }

    /// The caller a request's credential (header or session cookie) names,
    /// with no role required: what the web app's session endpoint reports.
    pub async fn whoami(&self, headers: &HeaderMap, client: &str) -> Result<Option<Principal>> {
        let Some(credential) = credential_from(headers, true)? else {
            return Ok(None);
        };
        match self.authenticate(credential).await {
            Ok(principal) => Ok(Some(principal)),
            Err(err) => {
                let err = count_failure(err);
                tokio::time::sleep(self.inner.limiter.failure_delay(client)).await;
                Err(err)
            }
        }
    }

    /// Authenticates, authorizes and rate-limits one call of `class`.
    /// Failed credentials are answered late (see [`Limiter::failure_delay`]).
    pub async fn admit(
        &self,
        access: Access,
        class: CallClass,
        headers: &HeaderMap,
        client: &str,
    ) -> Admission {
        self.admit_from(access, class, headers, client, false).await
    }

    async fn admit_from(
        &self,
        access: Access,
        class: CallClass,
        headers: &HeaderMap,
        client: &str,
        cookie: bool,
    ) -> Admission {
        let (principal, decision) = self.decide_from(access, headers, cookie).await;
        if let Err(Error::Unauthenticated(_)) = &decision
            && credential_from(headers, cookie).ok().flatten().is_some()
        {
            tokio::time::sleep(self.inner.limiter.failure_delay(client)).await;
        }
        let decision = match decision {
            Ok(()) => {
                let caller = principal
                    .as_ref()
                    .map_or_else(|| client.to_owned(), principal_name);
                self.inner.limiter.admit(class, &caller)
            }
            Err(err) => Err(err),
        };
        Admission { principal, decision }
    }

    /// The caller and whether its credential allows the call; the caller
    /// is named also when its role is too small, for the audit log.
    async fn decide_from(
        &self,
        access: Access,
        headers: &HeaderMap,
        cookie: bool,
    ) -> (Option<Principal>, Result<()>) {
        let needed = match (self.inner.mode, access) {
            (AuthMode::Off, _) | (_, Access::Open) => return (None, Ok(())),
            (AuthMode::Required, Access::Role(role)) => role,
        };
        let credential = match credential_from(headers, cookie) {
            Ok(Some(credential)) => credential,
            Ok(None) => {
                return (
                    None,
                    Err(unauthenticated(format!(
                        "this call needs a credential with the `{needed}` role: send `authorization: Bearer <API key or token>`"
                    ))),
                );
            }
            Err(err) => return (None, Err(count_failure(err))),
        };
        let principal = match self.authenticate(credential).await {
            Ok(principal) => principal,
            Err(err) => return (None, Err(count_failure(err))),
        };
        if principal.role < needed {
            crate::telemetry::metrics::AUTH_FAILURES.increment(["permission_denied".to_owned()], 1);
            let refusal = Error::PermissionDenied(format!(
                "this call needs the `{needed}` role; the credential presented has `{}`",
                principal.role
            ));
            return (Some(principal), Err(refusal));
        }
        (Some(principal), Ok(()))
    }

    /// Who presents this key or token.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal> {
        if credential.starts_with(KEY_PREFIX) {
            return self.authenticate_key(credential).await;
        }
        if credential.split('.').count() == 3 {
            let Some(tokens) = &self.inner.tokens else {
                return Err(Error::Unauthenticated(
                    "this server accepts no tokens (it has no --jwt-hs256-secret-file or --jwt-public-key-file); \
                     use an API key"
                        .into(),
                ));
            };
            return tokens.verify(credential);
        }
        Err(Error::Unauthenticated(format!(
            "the credential is neither a Traum API key (`{KEY_PREFIX}…`) nor a JWT"
        )))
    }

    async fn authenticate_key(&self, secret: &str) -> Result<Principal> {
        let presented = secret_sha256(secret);
        let refused = || Error::Unauthenticated("the API key is unknown or revoked".into());
        let Some((key, stored)) = self.inner.store.api_key_by_secret(&presented).await? else {
            return Err(refused());
        };
        // The lookup already matched; comparing again in constant time keeps
        // the decision itself free of timing differences.
        if !bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) || key.revoked_at.is_some() {
            return Err(refused());
        }
        self.touch(&key.id);
        Ok(Principal {
            subject: key.id,
            role: key.role,
            kind: CredentialKind::ApiKey,
        })
    }

    fn touch(&self, id: &str) {
        let now = Instant::now();
        let due = match self.inner.touched.lock() {
            Ok(mut touched) => {
                let due = touched
                    .get(id)
                    .is_none_or(|last| now.duration_since(*last) >= TOUCH_INTERVAL);
                if due {
                    touched.insert(id.to_owned(), now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let store = self.inner.store.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                if let Err(err) = store.touch_api_key(&id, Utc::now()).await {
                    tracing::warn!(key = %id, error = %err, "cannot record the API key's last use");
                }
            });
        }
    }

    /// Creates a key; the secret is returned once and stored only hashed.
    pub async fn create_key(&self, name: &str, role: Role) -> Result<(ApiKeyRecord, String)> {
        create_key(&self.inner.store, name, role).await
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.inner.store.list_api_keys().await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<ApiKeyRecord> {
        self.inner.store.revoke_api_key(id, Utc::now()).await
    }
}

/// How a caller is named in audit entries and limit messages.
pub fn principal_name(principal: &Principal) -> String {
    match principal.kind {
        CredentialKind::ApiKey => format!("key {}", principal.subject),
        CredentialKind::Token => format!("token {}", principal.subject),
    }
}

/// Creates a key in `store` (also used by `traum-server keys create`, which
/// has a store but no server).
pub async fn create_key(store: &Store, name: &str, role: Role) -> Result<(ApiKeyRecord, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "a key name must be 1 to {MAX_NAME_CHARS} printable characters"
        )));
    }
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(random));
    let record = ApiKeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_owned(),
        role,
        prefix: secret[..SHOWN_CHARS].to_owned(),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store.create_api_key(&record, &secret_sha256(&secret)).await?;
    Ok((record, secret))
}

fn unauthenticated(message: String) -> Error {
    count_failure(Error::Unauthenticated(message))
}

/// Counts refused credentials (a metric to alert on guessing).
fn count_failure(err: Error) -> Error {
    if matches!(err, Error::Unauthenticated(_)) {
        crate::telemetry::metrics::AUTH_FAILURES.increment(["unauthenticated".to_owned()], 1);
    }
    err
}

/// What is stored of a secret.
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The cookie the web app's session keeps its credential in, for what a
/// browser fetches without script (`<audio src>`, downloads).
pub const SESSION_COOKIE: &str = "traum_session";

/// The credential of a request: `authorization: Bearer …`, else
/// `x-api-key`, else (where `cookie` allows) the session cookie.
fn credential_from(headers: &HeaderMap, cookie: bool) -> Result<Option<&str>> {
    let found = credential(headers)?;
    if found.is_some() || !cookie {
        return Ok(found);
    }
    Ok(session_cookie(headers))
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// The credential of a request: `authorization: Bearer …`, else `x-api-key`.
pub fn credential(headers: &HeaderMap) -> Result<Option<&str>> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| Error::Unauthenticated("the authorization header is not ASCII".into()))?;
        let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
            return Err(Error::Unauthenticated(
                "the authorization header must be `Bearer <API key or token>`".into(),
            ));
        }
        return Ok(Some(rest.trim()));
    }
    match headers.get("x-api-key") {
        Some(value) => value
            .to_str()
            .map(|key| Some(key.trim()))
            .map_err(|_| Error::Unauthenticated("the x-api-key header is not ASCII".into())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_bearer_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(credential(&headers).unwrap(), None);
        headers.insert("x-api-key", "traum_abc".parse().unwrap());
        assert_eq!(credential(&headers).unwrap(), Some("traum_abc"));
        headers.insert(http::header::AUTHORIZATION, "bearer  traum_def ".parse().unwrap());
        assert_eq!(credential(&headers).unwrap(), Some("traum_def"), "bearer wins");
        headers.insert(http::header::AUTHORIZATION, "Basic dXNlcjpwdw==".parse().unwrap());
        assert!(matches!(credential(&headers), Err(Error::Unauthenticated(_))));
        headers.insert(http::header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert!(matches!(credential(&headers), Err(Error::Unauthenticated(_))));
    }

    #[test]
    fn the_session_cookie_counts_only_where_allowed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "theme=dark; traum_session=traum_abc; x=1".parse().unwrap(),
        );
        assert_eq!(credential_from(&headers, false).unwrap(), None);
        assert_eq!(credential_from(&headers, true).unwrap(), Some("traum_abc"));
        headers.insert("x-api-key", "traum_header".parse().unwrap());
        assert_eq!(
            credential_from(&headers, true).unwrap(),
            Some("traum_header"),
            "a header wins"
        );
    }

    #[test]
    fn roles_include_the_ones_before() {
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
