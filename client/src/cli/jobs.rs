//! `traum jobs` and `traum watch`.

use clap::Args;
use serde::Serialize;
use traum_client::TraumClient;
use traum_client::v1::{Job, JobStage, JobState, ListJobsRequest};

use super::output::{
    JobEventJson, JobJson, dash_if_empty, job_stage_short, job_state_name, job_state_short, percent,
    print_json, print_table, rpc, timestamp_or_dash,
};
use super::{Globals, JobStateArg, Outcome};

#[derive(Debug, Args)]
pub struct JobsArgs {
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
    while let Some(event) = events.message().await.map_err(traum_client::ClientError::from)? {
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
