//! `traum audit`: the server's audit log (needs an admin key).

use std::time::Duration;

use clap::Args;
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{ListAuditEventsRequest, Role};

use super::output::{print_json, print_table, rpc, timestamp_or_dash};
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
            role: Role::try_from(event.role)
                .ok()
                .filter(|role| *role != Role::Unspecified)
                .map_or_else(
                    || "-".to_owned(),
                    |role| role.as_str_name().trim_start_matches("ROLE_").to_lowercase(),
                ),
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
