//! JWT bearer tokens: HS256 with a shared secret, or RS256/ES256 with a
//! public key. The algorithm is pinned by the key that verifies it (never
//! taken on the token's word), and `sub`, `exp` and `role` are required: a
//! token without a role gets nothing rather than everything.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{CredentialKind, Principal, Role};
use crate::error::{Error, Result};

/// Shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key at least as
/// long as the hash output.
const MIN_SECRET_BYTES: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: Option<String>,
}

/// Verifies tokens with the configured keys.
pub struct TokenVerifier {
    keys: Vec<(Algorithm, DecodingKey)>,
}

impl TokenVerifier {
    /// Reads the key files; `None` when neither is given. The error names
    /// the file and what is wrong with it.
    pub fn from_files(
        hs256_secret: Option<&Path>,
        public_key: Option<&Path>,
    ) -> Result<Option<Self>, String> {
        let mut keys = Vec::new();
        if let Some(path) = hs256_secret {
            let bytes =
                std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            let secret = bytes.trim_ascii();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "{} holds {} bytes; an HS256 secret needs at least {MIN_SECRET_BYTES}",
                    path.display(),
                    secret.len()
                ));
            }
            let key = DecodingKey::from_secret(secret)
                .map_err(|err| format!("{} is not a usable HS256 secret: {err}", path.display()))?;
            keys.push((Algorithm::HS256, key));
        }
        if let Some(path) = public_key {
            let pem = std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            let key = match (DecodingKey::from_rsa_pem(&pem), DecodingKey::from_ec_pem(&pem)) {
                (Ok(key), _) => (Algorithm::RS256, key),
                (_, Ok(key)) => (Algorithm::ES256, key),
                _ => {
                    return Err(format!(
                        "{} is neither an RSA nor a P-256 public key in PEM",
                        path.display()
                    ));
                }
            };
            keys.push(key);
        }
        Ok((!keys.is_empty()).then_some(Self { keys }))
    }

    /// The caller a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let refuse = |why: &str| Error::Unauthenticated(format!("the token is refused: {why}"));
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refuse("its header is malformed or names an unsupported algorithm (e.g. `none`)"))?;
        let Some((algorithm, key)) = self.keys.iter().find(|(algorithm, _)| *algorithm == header.alg) else {
            let accepted: Vec<String> = self.keys.iter().map(|(a, _)| format!("{a:?}")).collect();
            return Err(refuse(&format!(
                "it is signed with {:?}; this server accepts {}",
                header.alg,
                accepted.join(", ")
            )));
        };
        let mut validation = Validation::new(*algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => refuse("it has expired"),
                ErrorKind::ImmatureSignature => refuse("it is not valid yet (`nbf`)"),
                ErrorKind::InvalidSignature => refuse("its signature does not verify"),
                ErrorKind::MissingRequiredClaim(claim) => refuse(&format!("it has no `{claim}` claim")),
                _ => refuse("it is malformed"),
            })?;
        let claims = data.claims;
        let role = claims
            .role
            .as_deref()
            .and_then(Role::parse)
            .ok_or_else(|| refuse("its `role` claim must be read, write or admin"))?;
        if claims.sub.trim().is_empty() {
            return Err(refuse("its `sub` claim is empty"));
        }
        Ok(Principal {
            subject: claims.sub,
            role,
            kind: CredentialKind::Token,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/jwt")
            .join(name)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn verifier(dir: &tempfile::TempDir, public_key: Option<&Path>) -> TokenVerifier {
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        TokenVerifier::from_files(Some(&secret), public_key)
            .unwrap()
            .unwrap()
    }

    fn refusal(result: Result<Principal>) -> String {
        match result {
            Err(Error::Unauthenticated(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn hs256_tokens_need_a_good_signature_a_live_exp_and_a_role() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = verifier(&dir, None);
        let good = hs256(&json!({"sub": "ci", "exp": now() + 600, "role": "write"}), SECRET);
        assert_eq!(
            tokens.verify(&good).unwrap(),
            Principal {
                subject: "ci".into(),
                role: Role::Write,
                kind: CredentialKind::Token
            }
        );
        let cases = [
            (
                hs256(&json!({"sub": "ci", "exp": now() - 600, "role": "read"}), SECRET),
                "expired",
            ),
            (
                hs256(
                    &json!({"sub": "ci", "exp": now() + 600, "nbf": now() + 300, "role": "read"}),
                    SECRET,
                ),
                "not valid yet",
            ),
            (
                hs256(
                    &json!({"sub": "ci", "exp": now() + 600, "role": "read"}),
                    "another secret of 32 bytes or more!",
                ),
                "signature",
            ),
            (hs256(&json!({"sub": "ci", "role": "read"}), SECRET), "`exp`"),
            (hs256(&json!({"sub": "ci", "exp": now() + 600}), SECRET), "`role`"),
            (
                hs256(&json!({"sub": "ci", "exp": now() + 600, "role": "root"}), SECRET),
                "`role`",
            ),
        ];
        for (token, why) in cases {
            let message = refusal(tokens.verify(&token));
            assert!(message.contains(why), "{why}: {message}");
        }
        // `alg: none` with the signature left off, as the attack sends it.
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(format!(r#"{{"sub":"x","exp":{},"role":"admin"}}"#, now() + 600).as_bytes())
        );
        assert!(refusal(tokens.verify(&unsigned)).contains("`none`"));
        // A token for an algorithm no key is configured for.
        let rs = rs256(&json!({"sub": "x", "exp": now() + 600, "role": "admin"}));
        assert!(refusal(tokens.verify(&rs)).contains("RS256"));
    }

    fn rs256(claims: &serde_json::Value) -> String {
        let pem = std::fs::read(fixture("rsa-private.pem")).unwrap();
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
        .unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn public_keys_pin_rs256_or_es256() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = verifier(&dir, Some(&fixture("rsa-public.pem")));
        let token = rs256(&json!({"sub": "svc", "exp": now() + 600, "role": "admin"}));
        assert_eq!(tokens.verify(&token).unwrap().role, Role::Admin);
        // The RSA public key used as an HS256 secret: the classic confusion.
        let public = std::fs::read_to_string(fixture("rsa-public.pem")).unwrap();
        let confused = hs256(&json!({"sub": "x", "exp": now() + 600, "role": "admin"}), &public);
        assert!(refusal(tokens.verify(&confused)).contains("signature"));

        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let public = dir.path().join("ec.pem");
        std::fs::write(&public, pair.public_key_pem()).unwrap();
        let tokens = TokenVerifier::from_files(None, Some(&public)).unwrap().unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &json!({"sub": "edge", "exp": now() + 600, "role": "read"}),
            &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(tokens.verify(&token).unwrap().subject, "edge");
        let hs = hs256(&json!({"sub": "x", "exp": now() + 600, "role": "admin"}), SECRET);
        assert!(refusal(tokens.verify(&hs)).contains("HS256"));
    }

    #[test]
    fn unusable_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "too short").unwrap();
        let err = TokenVerifier::from_files(Some(&short), None).err().unwrap();
        assert!(err.contains("short") && err.contains("32"), "{err}");
        let err = TokenVerifier::from_files(None, Some(&short)).err().unwrap();
        assert!(err.contains("PEM"), "{err}");
        assert!(TokenVerifier::from_files(None, None).unwrap().is_none());
    }
}
