//! `traum jobs`, `traum watch` and `traum reprocess`, and the job
//! following that `upload` shares.

use clap::Args;
use futures::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use traum_client::v1::{GetJobRequest, Job, JobStage, JobState, ListJobsRequest, ReprocessFileRequest};
use traum_client::{ClientError, TraumClient};

use super::output::{
    JobEventJson, JobJson, dash_if_empty, job_stage_short, job_state_name, job_state_short, percent,
    print_json, print_table, rpc, timestamp_or_dash,
};
use super::{Globals, JobStateArg, Outcome};

/// Jobs followed at the same time; each is one stream on the client's one
/// connection.
pub(super) const FOLLOWED_AT_ONCE: usize = 64;

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Show this one job in detail instead of a list.
    #[arg(value_name = "JOB_ID", conflicts_with_all = ["state", "file_id"])]
    job_id: Option<String>,

    /// Only jobs in this state.
    #[arg(long)]
    state: Option<JobStateArg>,

    /// Only jobs of this file.
    #[arg(long = "file", value_name = "FILE_ID")]
    file_id: Option<String>,

    /// Maximum number of jobs to show (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
}

#[derive(Serialize)]
struct JobListJson {
    jobs: Vec<JobJson>,
    next_page_token: String,
    total_count: u64,
}

pub async fn list(client: &TraumClient, globals: Globals, args: JobsArgs) -> anyhow::Result<Outcome> {
    if let Some(job_id) = args.job_id {
        let job = rpc(client.audio().get_job(GetJobRequest { job_id }).await)?;
        if globals.json {
            print_json(&JobJson::from(&job))?;
        } else {
            print_job_details(&job);
        }
        return Ok(Outcome::Success);
    }
    let request = ListJobsRequest {
        page_size: args.limit,
        page_token: String::new(),
        state: args
            .state
            .map_or(JobState::Unspecified as i32, JobStateArg::proto),
        file_id: args.file_id.unwrap_or_default(),
    };
    let response = rpc(client.audio().list_jobs(request).await)?;
    if globals.json {
        print_json(&JobListJson {
            jobs: response.jobs.iter().map(JobJson::from).collect(),
            next_page_token: response.next_page_token,
            total_count: response.total_count,
        })?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = response
        .jobs
        .iter()
        .map(|job| {
            vec![
                job.job_id.clone(),
                job.file_id.clone(),
                job_state_short(job.state),
                job_stage_short(job.stage),
                percent(job.progress),
                job.attempts.to_string(),
                dash_if_empty(&job.error),
            ]
        })
        .collect();
    print_table(
        &["JOB", "FILE", "STATE", "STAGE", "PROGRESS", "ATTEMPTS", "ERROR"],
        &rows,
    );
    println!("{} of {} jobs", response.jobs.len(), response.total_count);
    Ok(Outcome::Success)
}

/// Whether a job went back to the queue at its `embed` stage because the
/// server cannot embed yet (no model, or the vector index still loading):
/// it will not finish until that changes, so following it further would
/// wait for ever. The job's message says what is missing.
pub(super) fn waits_for_model(job: &Job) -> bool {
    job.state == JobState::Queued as i32
        && job.stage == JobStage::Embed as i32
        && job.attempts > 0
        && job.message.starts_with("waiting for")
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The job to follow.
    job_id: String,
}

pub async fn watch(client: &TraumClient, globals: Globals, args: WatchArgs) -> anyhow::Result<Outcome> {
    let mut events = client.watch_job(args.job_id.as_str()).await?;
    // Every event repeats the job's warnings so far; only new ones are printed.
    let mut warnings_shown = 0;
    while let Some(event) = events.message().await.map_err(ClientError::from)? {
        if globals.json {
            // One object per line, so consumers can react to each event as it arrives.
            println!("{}", serde_json::to_string(&JobEventJson::from(&event))?);
        }
        let Some(job) = &event.job else {
            if event.terminal {
                return Ok(Outcome::Success);
            }
            continue;
        };
        if !globals.json {
            let mut line = format!(
                "{}  {:<9}  {:<5}  {:>4}",
                timestamp_or_dash(job.updated_at.as_ref()),
                job_state_short(job.state),
                job_stage_short(job.stage),
                percent(job.progress),
            );
            if !job.message.is_empty() {
                line.push_str("  ");
                line.push_str(&job.message);
            }
            println!("{line}");
            for warning in job.warnings.iter().skip(warnings_shown) {
                println!("  warning: {warning}");
            }
            warnings_shown = warnings_shown.max(job.warnings.len());
        }
        if event.terminal {
            if job.state == JobState::Failed as i32 {
                eprintln!(
                    "error: job {} {}: {}",
                    job.job_id,
                    job_state_name(job.state),
                    job.error
                );
                return Ok(Outcome::Failure);
            }
            return Ok(Outcome::Success);
        }
        if waits_for_model(job) {
            eprintln!("job {} cannot finish yet: {}", job.job_id, job.message);
            return Ok(Outcome::Waiting);
        }
    }
    anyhow::bail!("the job event stream ended before the job finished")
}

fn print_job_details(job: &Job) {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", job.job_id.clone()),
        ("file", job.file_id.clone()),
        ("state", job_state_short(job.state)),
        ("stage", job_stage_short(job.stage)),
        ("progress", percent(job.progress)),
        ("attempts", job.attempts.to_string()),
    ];
    if !job.message.is_empty() {
        lines.push(("message", job.message.clone()));
    }
    if !job.error.is_empty() {
        lines.push(("error", job.error.clone()));
    }
    for warning in &job.warnings {
        lines.push(("warning", warning.clone()));
    }
    lines.push(("created", timestamp_or_dash(job.created_at.as_ref())));
    lines.push(("started", timestamp_or_dash(job.started_at.as_ref())));
    lines.push(("updated", timestamp_or_dash(job.updated_at.as_ref())));
    lines.push(("finished", timestamp_or_dash(job.finished_at.as_ref())));
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    for (key, value) in lines {
        println!("{:<width$} {value}", format!("{key}:"));
    }
}

/// Where following a job ended.
#[derive(Debug, Default)]
pub(super) struct JobEnd {
    /// Proto name of the last state seen.
    pub state: Option<String>,
    /// Set when processing failed, with the server's reason.
    pub error: Option<String>,
    /// Set when the job cannot finish yet, with the server's reason (e.g. no
    /// embedding model).
    pub waiting: Option<String>,
}

/// Follows a job with a progress bar of its own (labelled `label`) until it
/// ends or waits for something the server lacks.
pub(super) async fn follow_with_bar(
    client: &TraumClient,
    multi: &MultiProgress,
    label: String,
    job_id: &str,
) -> Result<JobEnd, ClientError> {
    let bar = multi.add(ProgressBar::new(100));
    bar.set_prefix(label);
    bar.set_style(
        ProgressStyle::with_template("{prefix:30!} [{bar:30.green/white}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(0);
    bar.set_message("queued");
    let result = follow(client, &bar, job_id).await;
    bar.finish_and_clear();
    multi.remove(&bar);
    result
}

async fn follow(client: &TraumClient, bar: &ProgressBar, job_id: &str) -> Result<JobEnd, ClientError> {
    let mut end = JobEnd::default();
    let mut events = client.watch_job(job_id).await?;
    while let Some(event) = events.message().await? {
        if let Some(job) = &event.job {
            bar.set_position((job.progress * 100.0).clamp(0.0, 100.0).round() as u64);
            bar.set_message(job_stage_short(job.stage));
            end.state = Some(job_state_name(job.state));
            if event.terminal {
                if job.state == JobState::Failed as i32 {
                    end.error = Some(format!("processing failed: {}", job.error));
                }
                return Ok(end);
            }
            if waits_for_model(job) {
                end.waiting = Some(job.message.clone());
                return Ok(end);
            }
        } else if event.terminal {
            return Ok(end);
        }
    }
    Err(ClientError::Protocol(
        "job event stream ended before the job finished".to_owned(),
    ))
}

/// A progress display that stays out of the way of `--json` output.
pub(super) fn progress_display(globals: Globals) -> MultiProgress {
    if globals.json {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        // indicatif hides this target by itself when stderr is not a terminal.
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    }
}

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The files to process again.
    #[arg(required = true, value_name = "FILE_ID")]
    file_ids: Vec<String>,

    /// Do not wait for the jobs to finish.
    #[arg(long)]
    no_wait: bool,
}

/// Result for one file, also the JSON shape of `reprocess --json`.
#[derive(Debug, Default, Serialize)]
struct ReprocessOutcome {
    file_id: String,
    job_id: Option<String>,
    state: Option<String>,
    error: Option<String>,
    waiting: Option<String>,
}

pub async fn reprocess(
    client: &TraumClient,
    globals: Globals,
    args: ReprocessArgs,
) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::with_capacity(args.file_ids.len());
    // One failure (an unknown id, say) is reported with the rest rather than
    // stopping them.
    for file_id in args.file_ids {
        let request = ReprocessFileRequest {
            file_id: file_id.clone(),
        };
        let mut outcome = ReprocessOutcome {
            file_id,
            ..ReprocessOutcome::default()
        };
        match rpc(client.audio().reprocess_file(request).await) {
            Ok(job) => {
                outcome.state = Some(job_state_name(job.state));
                outcome.job_id = Some(job.job_id);
            }
            Err(err) => outcome.error = Some(err.to_string()),
        }
        outcomes.push(outcome);
    }
    if !args.no_wait {
        let multi = progress_display(globals);
        futures::stream::iter(outcomes.iter_mut().filter(|o| o.error.is_none()))
            .for_each_concurrent(FOLLOWED_AT_ONCE, |outcome| {
                let multi = &multi;
                async move {
                    let Some(job_id) = outcome.job_id.clone() else {
                        return;
                    };
                    match follow_with_bar(client, multi, outcome.file_id.clone(), &job_id).await {
                        Ok(end) => {
                            outcome.state = end.state.or(outcome.state.take());
                            outcome.error = end.error;
                            outcome.waiting = end.waiting;
                        }
                        Err(err) => outcome.error = Some(err.to_string()),
                    }
                }
            })
            .await;
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let waiting = outcomes.iter().filter(|o| o.waiting.is_some()).count();
    if globals.json {
        print_json(&outcomes)?;
    } else {
        let rows: Vec<Vec<String>> = outcomes
            .iter()
            .map(|o| {
                vec![
                    o.file_id.clone(),
                    o.job_id.clone().unwrap_or_else(|| "-".to_owned()),
                    o.state.as_deref().map_or_else(
                        || "-".to_owned(),
                        |state| {
                            state
                                .strip_prefix("JOB_STATE_")
                                .unwrap_or(state)
                                .to_ascii_lowercase()
                        },
                    ),
                    o.error
                        .clone()
                        .or_else(|| o.waiting.clone().map(|w| format!("cannot finish yet: {w}")))
                        .unwrap_or_else(|| "-".to_owned()),
                ]
            })
            .collect();
        print_table(&["FILE", "JOB", "STATE", "NOTE"], &rows);
    }
    Ok(if failed > 0 {
        Outcome::Failure
    } else if waiting > 0 {
        Outcome::Waiting
    } else {
        Outcome::Success
    })
}
