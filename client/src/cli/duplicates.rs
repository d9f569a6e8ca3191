//! `traum duplicates`: the groups of files that are the same recording.

use clap::Args;
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{DuplicateGroup, ListDuplicatesRequest};

use super::output::{DuplicateGroupJson, duplicate_member_line, print_json, rpc};
use super::{Globals, Outcome};

/// Groups asked for per request.
const PAGE_SIZE: u32 = 1000;

#[derive(Debug, Args)]
pub struct DuplicatesArgs {
    /// Show at most this many groups (all by default).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

#[derive(Serialize)]
struct DuplicatesJson {
    groups: Vec<DuplicateGroupJson>,
    total_count: u64,
}

pub async fn duplicates(
    client: &TraumClient,
    globals: Globals,
    args: DuplicatesArgs,
) -> anyhow::Result<Outcome> {
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut groups: Vec<DuplicateGroup> = Vec::new();
    let mut page_token = String::new();
    let mut total_count;
    loop {
        let page = rpc(client
            .audio()
            .list_duplicates(ListDuplicatesRequest {
                page_size: PAGE_SIZE,
                page_token,
            })
            .await)?;
        total_count = page.total_count;
        groups.extend(page.groups);
        if page.next_page_token.is_empty() || groups.len() >= limit {
            break;
        }
        page_token = page.next_page_token;
    }
    groups.truncate(limit);
    if globals.json {
        print_json(&DuplicatesJson {
            groups: groups.iter().map(DuplicateGroupJson::from).collect(),
            total_count,
        })?;
        return Ok(Outcome::Success);
    }
    if groups.is_empty() {
        println!("no near-duplicates: no two files are the same recording");
        return Ok(Outcome::Success);
    }
    for (index, group) in groups.iter().enumerate() {
        if index > 0 {
            println!();
        }
        println!(
            "group {} of {total_count}, {} files:",
            index + 1,
            group.members.len()
        );
        for (position, member) in group.members.iter().enumerate() {
            println!("  {}", duplicate_member_line(member, position == 0));
        }
    }
    Ok(Outcome::Success)
}
