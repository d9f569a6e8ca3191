//! `traum upload`: expands paths, uploads every file (in parallel), then
//! follows the jobs.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use clap::Args;
use futures::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use traum_client::v1::UploadResult;
use traum_client::{ResumableOptions, TraumClient};

use super::jobs::{FOLLOWED_AT_ONCE, follow_with_bar, progress_display};
use super::output::print_json;
use super::{Globals, Outcome};

/// Extensions picked up when walking directories or expanding globs.
const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "aif", "aiff", "aifc", "flac", "mp3", "ogg", "oga", "m4a", "mp4", "aac", "alac", "caf",
    "opus", "wma",
];

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files, directories (searched recursively for audio files) or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,

    /// Tag to attach to every uploaded file (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// How many files to upload at the same time.
    #[arg(long, default_value = "4", value_name = "N")]
    parallel: NonZeroUsize,

    /// Do not wait for the processing jobs to finish.
    #[arg(long)]
    no_wait: bool,

    /// Upload through resumable sessions, chunk by chunk: a failed chunk is
    /// sent again from where the server stands.
    #[arg(long)]
    resumable: bool,

    /// Size of the chunks of --resumable, e.g. `256KiB`, `4MiB` (the server may cap it).
    #[arg(long, value_name = "SIZE", requires = "resumable", default_value = "1MiB", value_parser = parse_size)]
    chunk_size: usize,

    /// How many failures in a row --resumable retries before giving up on a file.
    #[arg(long, value_name = "N", requires = "resumable", default_value_t = 5)]
    retries: u32,
}

/// Parses a byte count with an optional binary suffix: `65536`, `64KiB`,
/// `64K`, `4MiB`, `4M`.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 65536, 64KiB or 4MiB"))?;
    let unit: usize = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1024,
        "m" | "mib" => 1024 * 1024,
        other => return Err(format!("unknown size unit `{other}`; use KiB or MiB")),
    };
    match number.checked_mul(unit) {
        Some(0) => Err("the chunk size must be at least 1 byte".to_owned()),
        Some(size) => Ok(size),
        None => Err(format!("`{text}` is too large")),
    }
}

/// How a file is sent.
#[derive(Clone, Copy, Debug)]
enum Transfer {
    Stream,
    Resumable(ResumableOptions),
}

/// How many times one file waits out the server's upload rate limit before
/// its upload counts as failed.
const RATE_LIMIT_WAITS: u32 = 100;

/// The delay a rate-limited upload was asked to wait (`RESOURCE_EXHAUSTED`
/// with a retry delay; without one it is a size limit, which waiting does
/// not fix).
fn rate_limit_delay(err: &traum_client::ClientError) -> Option<std::time::Duration> {
    (err.code() == Some(tonic::Code::ResourceExhausted))
        .then(|| err.retry_delay())
        .flatten()
}

/// Result for one file, also the JSON shape of `upload --json`.
#[derive(Debug, Default, Serialize)]
struct FileOutcome {
    path: String,
    file_id: Option<String>,
    job_id: Option<String>,
    duplicate: bool,
    /// Size and SHA-256 of the bytes the server stored.
    size_bytes: Option<u64>,
    sha256: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// Set when the job cannot finish yet, with the server's reason (e.g. no
    /// embedding model).
    waiting: Option<String>,
}

impl FileOutcome {
    fn failed(path: String, error: String) -> Self {
        Self {
            path,
            error: Some(error),
            ..Self::default()
        }
    }
}

pub async fn run(client: &TraumClient, globals: Globals, args: UploadArgs) -> anyhow::Result<Outcome> {
    let (files, mut outcomes) = expand_paths(&args.paths);
    if files.is_empty() && outcomes.is_empty() {
        anyhow::bail!("no audio files found in the given paths");
    }

    let multi = progress_display(globals);
    let transfer = if args.resumable {
        Transfer::Resumable(ResumableOptions {
            chunk_bytes: args.chunk_size,
            retries: args.retries,
            ..ResumableOptions::default()
        })
    } else {
        Transfer::Stream
    };
    let overall = multi.add(ProgressBar::new(files.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix:.bold} [{bar:30.green/white}] {pos}/{len} files {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    overall.set_prefix("total");

    let tags = &args.tags;
    // Every file is sent before any job is followed, so jobs that cannot
    // finish (no model, say) never hold the remaining uploads back.
    let mut uploaded: Vec<FileOutcome> = futures::stream::iter(files)
        .map(|path| {
            let multi = &multi;
            let overall = &overall;
            async move {
                let outcome = upload_one(client, multi, path, tags.clone(), transfer).await;
                overall.inc(1);
                outcome
            }
        })
        // `buffered` keeps the results in argument order for the summary.
        .buffered(args.parallel.get())
        .collect()
        .await;
    overall.finish_and_clear();
    if !args.no_wait {
        futures::stream::iter(
            uploaded
                .iter_mut()
                .filter(|o| o.error.is_none() && o.job_id.is_some()),
        )
        .for_each_concurrent(FOLLOWED_AT_ONCE, |outcome| follow_one(client, &multi, outcome))
        .await;
    }
    outcomes.extend(uploaded);

    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let waiting = outcomes.iter().filter(|o| o.waiting.is_some()).count();
    if globals.json {
        print_json(&outcomes)?;
    } else {
        print_summary(&outcomes);
    }
    Ok(if failed > 0 {
        Outcome::Failure
    } else if waiting > 0 {
        Outcome::Waiting
    } else {
        Outcome::Success
    })
}

fn print_summary(outcomes: &[FileOutcome]) {
    for outcome in outcomes.iter().filter(|o| o.error.is_none()) {
        let file_id = outcome.file_id.as_deref().unwrap_or("-");
        let note = if outcome.duplicate { "  (duplicate)" } else { "" };
        println!("{file_id}  {}{note}", outcome.path);
    }
    let failures: Vec<&FileOutcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    let duplicates = outcomes
        .iter()
        .filter(|o| o.error.is_none() && o.duplicate)
        .count();
    let uploaded = outcomes
        .iter()
        .filter(|o| o.error.is_none() && !o.duplicate)
        .count();
    println!(
        "{uploaded} uploaded, {duplicates} duplicate{}, {} failed",
        if duplicates == 1 { "" } else { "s" },
        failures.len()
    );
    for failure in failures {
        println!(
            "  {}: {}",
            failure.path,
            failure.error.as_deref().unwrap_or_default()
        );
    }
    let waiting: Vec<&FileOutcome> = outcomes.iter().filter(|o| o.waiting.is_some()).collect();
    if let Some(first) = waiting.first() {
        println!(
            "{} waiting: their jobs cannot finish yet: {}",
            waiting.len(),
            first.waiting.as_deref().unwrap_or_default()
        );
    }
}

async fn upload_one(
    client: &TraumClient,
    multi: &MultiProgress,
    path: PathBuf,
    tags: Vec<String>,
    transfer: Transfer,
) -> FileOutcome {
    let display = path.display().to_string();
    let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
    let bar = multi.add(ProgressBar::new(size));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:30!} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(display.clone());
    bar.set_message("hashing");

    let mut outcome = FileOutcome {
        path: display.clone(),
        ..FileOutcome::default()
    };
    let progress_bar = bar.clone();
    let progress = move |sent| {
        progress_bar.set_message("uploading");
        progress_bar.set_position(sent);
    };
    // A rate limit is the server asking for patience, not a failure: a folder
    // larger than the upload burst would otherwise lose files to it.
    let mut waits = 0;
    let sent = loop {
        let sent = match transfer {
            Transfer::Stream => client.upload_file(&path, tags.clone(), progress.clone()).await,
            Transfer::Resumable(options) => {
                client
                    .upload_file_resumable(&path, tags.clone(), options, progress.clone())
                    .await
            }
        };
        if let Err(err) = &sent
            && waits < RATE_LIMIT_WAITS
            && let Some(delay) = rate_limit_delay(err)
        {
            waits += 1;
            bar.set_message(format!("rate-limited, retrying in {delay:.1?}"));
            tokio::time::sleep(delay).await;
            continue;
        }
        break sent;
    };
    match sent {
        Ok(UploadResult {
            file_id,
            job_id,
            duplicate,
            size_bytes,
            sha256,
            ..
        }) => {
            outcome.file_id = Some(file_id);
            outcome.job_id = Some(job_id);
            outcome.duplicate = duplicate;
            outcome.size_bytes = Some(size_bytes);
            outcome.sha256 = Some(sha256);
        }
        Err(err) => report_failure(multi, &mut outcome, err.to_string()),
    }
    bar.finish_and_clear();
    multi.remove(&bar);
    outcome
}

/// Records a failure and shows it above the bars right away; the summary
/// repeats it at the end.
fn report_failure(multi: &MultiProgress, outcome: &mut FileOutcome, error: String) {
    let _ = multi.println(format!("failed: {}: {error}", outcome.path));
    outcome.error = Some(error);
}

/// Follows an uploaded file's job until it ends or waits for something the
/// server lacks.
async fn follow_one(client: &TraumClient, multi: &MultiProgress, outcome: &mut FileOutcome) {
    let Some(job_id) = outcome.job_id.clone() else {
        return;
    };
    match follow_with_bar(client, multi, outcome.path.clone(), &job_id).await {
        Ok(end) => {
            outcome.state = end.state;
            outcome.error = end.error;
            outcome.waiting = end.waiting;
        }
        Err(err) => report_failure(multi, outcome, err.to_string()),
    }
}

/// Turns the command-line paths into the files to upload, plus failures for
/// paths that cannot be used (reported per path rather than aborting all).
fn expand_paths(args: &[String]) -> (Vec<PathBuf>, Vec<FileOutcome>) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |path: PathBuf, files: &mut Vec<PathBuf>| {
        if seen.insert(path.clone()) {
            files.push(path);
        }
    };

    for arg in args {
        if arg.contains(['*', '?', '[']) {
            // Like shells, `*` does not match dot files unless the pattern says so.
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            let entries = match glob::glob_with(arg, options) {
                Ok(entries) => entries,
                Err(err) => {
                    failures.push(FileOutcome::failed(
                        arg.clone(),
                        format!("bad glob pattern: {err}"),
                    ));
                    continue;
                }
            };
            let mut matched = false;
            for entry in entries {
                matched = true;
                match entry {
                    Ok(path) if path.is_dir() => {
                        walk_dir(&path, &mut failures, &mut |p| push(p, &mut files));
                    }
                    Ok(path) if is_audio(&path) => push(path, &mut files),
                    Ok(_) => {}
                    Err(err) => failures.push(FileOutcome::failed(
                        err.path().display().to_string(),
                        err.error().to_string(),
                    )),
                }
            }
            if !matched {
                failures.push(FileOutcome::failed(
                    arg.clone(),
                    "no files match this pattern".to_owned(),
                ));
            }
            continue;
        }

        let path = PathBuf::from(arg);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk_dir(&path, &mut failures, &mut |p| push(p, &mut files)),
            // Named explicitly, so it is sent whatever its extension; the
            // server decides from the content whether it is audio.
            Ok(_) => push(path, &mut files),
            Err(err) => failures.push(FileOutcome::failed(arg.clone(), err.to_string())),
        }
    }
    (files, failures)
}

fn walk_dir(dir: &Path, failures: &mut Vec<FileOutcome>, push: &mut dyn FnMut(PathBuf)) {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        // Skips dot entries such as macOS `._x.wav` resource forks, which carry
        // audio extensions but no audio.
        .filter_entry(|entry| entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_file() && is_audio(entry.path()) => {
                push(entry.into_path());
            }
            Ok(_) => {}
            Err(err) => {
                let path = err.path().unwrap_or(dir).display().to_string();
                failures.push(FileOutcome::failed(path, err.to_string()));
            }
        }
    }
}

fn is_audio(path: &Path) -> bool {
    path.extension().and_then(|ext| ext.to_str()).is_some_and(|ext| {
        AUDIO_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(ext))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunk_sizes() {
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("4M"), Ok(4 * 1024 * 1024));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn recognises_audio_extensions() {
        assert!(is_audio(Path::new("a/b.WAV")));
        assert!(is_audio(Path::new("x.flac")));
        assert!(!is_audio(Path::new("notes.txt")));
        assert!(!is_audio(Path::new("noext")));
    }

    #[test]
    fn expands_directories_globs_and_explicit_files() {
        let root = std::env::temp_dir().join(format!("traum-cli-expand-{}", std::process::id()));
        let nested = root.join("nested");
        std::fs::create_dir_all(&nested).unwrap();
        for name in ["a.wav", "b.txt", "._c.wav", "nested/d.flac"] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        let dir = root.display().to_string();
        let (files, failures) = expand_paths(std::slice::from_ref(&dir));
        assert!(failures.is_empty());
        assert_eq!(files, vec![root.join("a.wav"), nested.join("d.flac")]);

        let (files, _) = expand_paths(&[format!("{dir}/*"), root.join("b.txt").display().to_string()]);
        assert_eq!(
            files,
            vec![root.join("a.wav"), nested.join("d.flac"), root.join("b.txt")]
        );

        let (files, failures) = expand_paths(&[format!("{dir}/*.none"), format!("{dir}/missing.wav")]);
        assert!(files.is_empty());
        assert_eq!(failures.len(), 2);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
