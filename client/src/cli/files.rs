//! `traum ls`, `info`, `tag`, `rm` and `download`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{
    DeleteFileRequest, FileOrder, FileState, GetFileRequest, ListFilesRequest, ReviewSuggestedTagRequest,
    TagList, TagVerdict, UpdateFileRequest,
};

use super::output::{
    FileJson, file_state_short, format_short, human_bytes, minutes_seconds, print_file_details, print_json,
    print_table, rpc,
};
use super::{FileStateArg, FormatArg, Globals, Outcome};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SortArg {
    Created,
    Name,
    Size,
    Duration,
}

impl SortArg {
    fn proto(self) -> i32 {
        let order = match self {
            Self::Created => FileOrder::CreatedAt,
            Self::Name => FileOrder::Filename,
            Self::Size => FileOrder::Size,
            Self::Duration => FileOrder::Duration,
        };
        order as i32
    }
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only files carrying this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// Only files in this processing state.
    #[arg(long)]
    state: Option<FileStateArg>,

    /// Only files in this format (repeatable; any may match).
    #[arg(long = "format", value_name = "FORMAT")]
    formats: Vec<FormatArg>,

    /// Sort key (newest first unless --asc).
    #[arg(long, default_value = "created")]
    sort: SortArg,

    /// Sort ascending.
    #[arg(long)]
    asc: bool,

    /// Only files whose name contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    name: Option<String>,

    /// Only files in this collection (its id, as `traum collection ls` shows).
    #[arg(long, value_name = "COLLECTION_ID")]
    collection: Option<String>,

    /// Only files whose suggested tags in VOCABULARY include one of the
    /// labels, e.g. `genre=techno,house` (repeatable; all must match).
    #[arg(long = "suggested", value_name = "VOCABULARY=LABEL,...", value_parser = super::search::parse_suggested)]
    suggested: Vec<traum_client::v1::SuggestedTagFilter>,

    /// Files per page (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,

    /// Follow the pages to list every matching file.
    #[arg(long)]
    all: bool,
}

#[derive(Serialize)]
struct FileListJson {
    files: Vec<FileJson>,
    next_page_token: String,
    total_count: u64,
}

pub async fn ls(client: &TraumClient, globals: Globals, args: LsArgs) -> anyhow::Result<Outcome> {
    let mut request = ListFilesRequest {
        page_size: args.limit,
        page_token: String::new(),
        tags: args.tags,
        state: args
            .state
            .map_or(FileState::Unspecified as i32, FileStateArg::proto),
        formats: args.formats.into_iter().map(FormatArg::proto).collect(),
        order_by: args.sort.proto(),
        ascending: args.asc,
        filename_contains: args.name.unwrap_or_default(),
        collection_id: args.collection.unwrap_or_default(),
        suggested: args.suggested,
    };
    let mut audio = client.audio();
    let mut files = Vec::new();
    let (next_page_token, total_count) = loop {
        let page = rpc(audio.list_files(request.clone()).await)?;
        files.extend(page.files);
        // A repeated token would loop forever; treat it as the last page.
        if !args.all || page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            break (page.next_page_token, page.total_count);
        }
        request.page_token = page.next_page_token;
    };

    if globals.json {
        print_json(&FileListJson {
            files: files.iter().map(FileJson::from).collect(),
            next_page_token,
            total_count,
        })?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|file| {
            let props = file.properties.as_ref();
            vec![
                file.file_id.clone(),
                file.filename.clone(),
                format_short(file.format),
                props.map_or_else(|| "-".to_owned(), |p| minutes_seconds(p.duration_seconds)),
                props.map_or_else(|| "-".to_owned(), |p| format!("{} Hz", p.sample_rate_hz)),
                props.map_or_else(|| "-".to_owned(), |p| p.channels.to_string()),
                human_bytes(file.size_bytes),
                file_state_short(file.state),
                file.tags.join(","),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "FILENAME", "FORMAT", "DURATION", "RATE", "CH", "SIZE", "STATE", "TAGS",
        ],
        &rows,
    );
    println!("{} of {total_count} files", files.len());
    Ok(Outcome::Success)
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The file to describe.
    file_id: String,
}

pub async fn info(client: &TraumClient, globals: Globals, args: InfoArgs) -> anyhow::Result<Outcome> {
    let file = rpc(client
        .audio()
        .get_file(GetFileRequest {
            file_id: args.file_id,
        })
        .await)?;
    show_file(globals, &file)
}

/// Prints one file, as JSON for scripts or in detail for people.
fn show_file(globals: Globals, file: &traum_client::v1::File) -> anyhow::Result<Outcome> {
    if globals.json {
        print_json(&FileJson::from(file))?;
    } else {
        print_file_details(file);
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The file to change.
    file_id: String,

    /// Tag to add (repeatable).
    #[arg(long = "add", value_name = "TAG")]
    add: Vec<String>,

    /// Tag to remove (repeatable).
    #[arg(long = "remove", value_name = "TAG")]
    remove: Vec<String>,

    /// Replace all tags with these (repeatable); applied before --add/--remove.
    #[arg(long = "set", value_name = "TAG", conflicts_with = "clear")]
    set: Vec<String>,

    /// Remove all tags; applied before --add/--remove.
    #[arg(long)]
    clear: bool,

    /// New display filename.
    #[arg(long, value_name = "NAME")]
    rename: Option<String>,

    /// Accept a suggested tag, VOCABULARY/LABEL (e.g. `genre/techno`): it
    /// becomes an ordinary tag (repeatable).
    #[arg(long = "accept", value_name = "VOCABULARY/LABEL", value_parser = parse_suggestion)]
    accept: Vec<(String, String)>,

    /// Reject a suggested tag, VOCABULARY/LABEL: it is never suggested for
    /// this file again (repeatable).
    #[arg(long = "reject", value_name = "VOCABULARY/LABEL", value_parser = parse_suggestion)]
    reject: Vec<(String, String)>,
}

/// Parses `VOCABULARY/LABEL`; a label may itself hold `/`.
fn parse_suggestion(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('/') {
        Some((vocabulary, label)) if !vocabulary.trim().is_empty() && !label.trim().is_empty() => {
            Ok((vocabulary.trim().to_owned(), label.trim().to_owned()))
        }
        _ => Err(format!("`{raw}` is not VOCABULARY/LABEL, e.g. genre/techno")),
    }
}

pub async fn tag(client: &TraumClient, globals: Globals, args: TagArgs) -> anyhow::Result<Outcome> {
    let replace_tags = if args.clear || !args.set.is_empty() {
        Some(TagList { tags: args.set })
    } else {
        None
    };
    let updates =
        replace_tags.is_some() || !args.add.is_empty() || !args.remove.is_empty() || args.rename.is_some();
    if !updates && args.accept.is_empty() && args.reject.is_empty() {
        anyhow::bail!(
            "nothing to change: give --add, --remove, --set, --clear, --rename, --accept or --reject"
        );
    }
    let mut audio = client.audio();
    let mut file = None;
    if updates {
        let request = UpdateFileRequest {
            file_id: args.file_id.clone(),
            filename: args.rename,
            replace_tags,
            add_tags: args.add,
            remove_tags: args.remove,
        };
        file = Some(rpc(audio.update_file(request).await)?);
    }
    let verdicts = args
        .accept
        .into_iter()
        .map(|s| (s, TagVerdict::Accept))
        .chain(args.reject.into_iter().map(|s| (s, TagVerdict::Reject)));
    for ((vocabulary, label), verdict) in verdicts {
        let request = ReviewSuggestedTagRequest {
            file_id: args.file_id.clone(),
            vocabulary,
            label,
            verdict: verdict as i32,
        };
        file = Some(rpc(audio.review_suggested_tag(request).await)?);
    }
    match file {
        Some(file) => show_file(globals, &file),
        None => anyhow::bail!("nothing was changed"),
    }
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The files to delete.
    #[arg(required = true, value_name = "FILE_ID")]
    file_ids: Vec<String>,
}

#[derive(Serialize)]
struct DeletionJson {
    file_id: String,
    deleted: bool,
    blob_deleted: bool,
    error: Option<String>,
}

pub async fn rm(client: &TraumClient, globals: Globals, args: RmArgs) -> anyhow::Result<Outcome> {
    let mut audio = client.audio();
    let mut results = Vec::new();
    // Keeps going after a failure so one bad id does not block the rest.
    for file_id in args.file_ids {
        let result = rpc(audio
            .delete_file(DeleteFileRequest {
                file_id: file_id.clone(),
            })
            .await);
        let entry = match result {
            Ok(response) => DeletionJson {
                file_id,
                deleted: true,
                blob_deleted: response.blob_deleted,
                error: None,
            },
            Err(err) => DeletionJson {
                file_id,
                deleted: false,
                blob_deleted: false,
                error: Some(err.to_string()),
            },
        };
        if !globals.json {
            match &entry.error {
                None if entry.blob_deleted => println!("deleted {} (blob removed)", entry.file_id),
                None => println!(
                    "deleted {} (blob kept: other files share its content)",
                    entry.file_id
                ),
                Some(error) => eprintln!("error: {}: {error}", entry.file_id),
            }
        }
        results.push(entry);
    }
    if globals.json {
        print_json(&results)?;
    }
    let failed = results.iter().any(|r| r.error.is_some());
    Ok(if failed {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The file to download.
    file_id: String,

    /// Destination file or directory (default: the file's name in the current directory).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,

    /// Replace the destination if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct DownloadJson {
    file_id: String,
    path: String,
    bytes: u64,
}

pub async fn download(client: &TraumClient, globals: Globals, args: DownloadArgs) -> anyhow::Result<Outcome> {
    let file = rpc(client
        .audio()
        .get_file(GetFileRequest {
            file_id: args.file_id.clone(),
        })
        .await)?;
    let local_name = safe_file_name(&file.filename, &file.file_id);
    let dest = match args.output {
        Some(path) if path.is_dir() => path.join(local_name),
        Some(path) => path,
        None => PathBuf::from(local_name),
    };
    if !args.force && tokio::fs::try_exists(&dest).await? {
        anyhow::bail!("{} already exists (use --force to overwrite)", dest.display());
    }

    let bar = if globals.json {
        ProgressBar::with_draw_target(Some(file.size_bytes), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::with_draw_target(Some(file.size_bytes), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let result = client
        .download_to_with_progress(args.file_id.as_str(), &dest, move |written, total| {
            progress_bar.set_length(total);
            progress_bar.set_position(written);
        })
        .await;
    bar.finish_and_clear();
    let bytes = result?;

    if globals.json {
        print_json(&DownloadJson {
            file_id: file.file_id,
            path: dest.display().to_string(),
            bytes,
        })?;
    } else {
        println!("wrote {} ({}) to {}", human_bytes(bytes), bytes, dest.display());
    }
    Ok(Outcome::Success)
}

/// The stored filename is metadata chosen by whoever uploaded it, so only its
/// last plain component is trusted as a local name.
fn safe_file_name(filename: &str, fallback: &str) -> String {
    Path::new(filename)
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| !name.is_empty() && *name != "." && *name != "..")
        .unwrap_or(fallback)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_cannot_escape_the_directory() {
        assert_eq!(safe_file_name("kick.wav", "id"), "kick.wav");
        assert_eq!(safe_file_name("../../etc/passwd", "id"), "passwd");
        assert_eq!(safe_file_name("..", "id"), "id");
        assert_eq!(safe_file_name("", "id"), "id");
    }
}
