//! `traum audit` and `traum keys`: the audit log and API keys (both need an
//! admin key).

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{
    ApiKey, CreateApiKeyRequest, ListApiKeysRequest, ListAuditEventsRequest, RevokeApiKeyRequest, Role,
};

use super::output::{print_json, print_table, rpc, timestamp, timestamp_or_dash};
use super::{Globals, Outcome};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events this recent, e.g. `1h`, `7days`.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,

    /// Only events of this principal, as listed (e.g. `key 0193…`).
    #[arg(long)]
    principal: Option<String>,

    /// Most events to show (1 to 1000), newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
}

#[derive(Serialize)]
struct AuditEventJson {
    at: String,
    principal: String,
    role: String,
    method: String,
    target: String,
    code: i32,
}

pub async fn audit(client: &TraumClient, globals: Globals, args: AuditArgs) -> anyhow::Result<Outcome> {
    let since = args.since.map(|ago| {
        let at = std::time::SystemTime::now() - ago;
        prost_types::Timestamp::from(at)
    });
    let page = rpc(client
        .admin()
        .list_audit_events(ListAuditEventsRequest {
            page_size: args.limit,
            page_token: String::new(),
            since,
            principal: args.principal.unwrap_or_default(),
        })
        .await)?;
    let events: Vec<AuditEventJson> = page
        .events
        .iter()
        .map(|event| AuditEventJson {
            at: timestamp_or_dash(event.at.as_ref()),
            principal: event.principal.clone(),
            role: role_name(event.role),
            method: event.method.clone(),
            target: event.target.clone(),
            code: event.code,
        })
        .collect();
    if globals.json {
        print_json(&events)?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = events
        .into_iter()
        .map(|e| {
            let code = tonic::Code::from_i32(e.code);
            vec![e.at, e.principal, e.role, e.method, e.target, format!("{code:?}")]
        })
        .collect();
    print_table(&["AT", "PRINCIPAL", "ROLE", "METHOD", "TARGET", "OUTCOME"], &rows);
    println!("{} of {} events", rows.len(), page.total_count);
    Ok(Outcome::Success)
}

/// `read`, `write`, `admin`, or `-` for none.
fn role_name(role: i32) -> String {
    Role::try_from(role)
        .ok()
        .filter(|role| *role != Role::Unspecified)
        .map_or_else(
            || "-".to_owned(),
            |role| role.as_str_name().trim_start_matches("ROLE_").to_lowercase(),
        )
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once, as the last line.
    Create {
        /// What the key allows.
        #[arg(long)]
        role: RoleArg,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id; calls with it fail from then on.
    Revoke {
        /// The key's id, as `traum keys list` shows.
        key_id: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Search, list, get, download, stats, suggestions, live updates.
    Read,
    /// Read, plus upload, rename, retag, delete, reprocess and collections.
    Write,
    /// Write, plus key management, the audit log and everyone's usage.
    Admin,
}

impl RoleArg {
    fn proto(self) -> i32 {
        let role = match self {
            Self::Read => Role::Read,
            Self::Write => Role::Write,
            Self::Admin => Role::Admin,
        };
        role as i32
    }
}

#[derive(Serialize)]
struct ApiKeyJson {
    key_id: String,
    name: String,
    role: String,
    prefix: String,
    created_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyJson {
    fn from(key: &ApiKey) -> Self {
        Self {
            key_id: key.key_id.clone(),
            name: key.name.clone(),
            role: role_name(key.role),
            prefix: key.prefix.clone(),
            created_at: timestamp(key.created_at.as_ref()),
            last_used_at: timestamp(key.last_used_at.as_ref()),
            revoked_at: timestamp(key.revoked_at.as_ref()),
        }
    }
}

#[derive(Serialize)]
struct CreatedKeyJson {
    key: Option<ApiKeyJson>,
    secret: String,
}

pub async fn keys(client: &TraumClient, globals: Globals, command: KeysCommand) -> anyhow::Result<Outcome> {
    let mut admin = client.admin();
    match command {
        KeysCommand::Create { role, name } => {
            let created = rpc(admin
                .create_api_key(CreateApiKeyRequest {
                    name,
                    role: role.proto(),
                })
                .await)?;
            if globals.json {
                print_json(&CreatedKeyJson {
                    key: created.key.as_ref().map(ApiKeyJson::from),
                    secret: created.secret,
                })?;
            } else {
                let key = created.key.as_ref().map(ApiKeyJson::from);
                let (role, name, id) = key.as_ref().map_or(("?", "?", "?"), |k| {
                    (k.role.as_str(), k.name.as_str(), k.key_id.as_str())
                });
                // The secret goes last, alone on its line, so scripts can
                // take it with `tail -n 1`.
                println!("created {role} key `{name}` (id {id}); it is shown only now:");
                println!("{}", created.secret);
            }
        }
        KeysCommand::List => {
            let keys = rpc(admin.list_api_keys(ListApiKeysRequest {}).await)?.keys;
            let keys: Vec<ApiKeyJson> = keys.iter().map(ApiKeyJson::from).collect();
            if globals.json {
                print_json(&keys)?;
            } else {
                let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.key_id.clone(),
                            k.role.clone(),
                            k.prefix.clone(),
                            dash(&k.created_at),
                            dash(&k.last_used_at),
                            dash(&k.revoked_at),
                            k.name.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &["ID", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED", "NAME"],
                    &rows,
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            let key = rpc(admin.revoke_api_key(RevokeApiKeyRequest { key_id }).await)?;
            if globals.json {
                print_json(&ApiKeyJson::from(&key))?;
            } else {
                println!("revoked key `{}` ({})", key.name, key.key_id);
            }
        }
    }
    Ok(Outcome::Success)
}
