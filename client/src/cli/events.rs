//! `traum events`: the library's changes as they happen (`WatchLibrary`).

use clap::Args;
use serde::Serialize;
use traum_client::v1::library_event::Change;
use traum_client::v1::{LibraryEvent, WatchLibraryRequest};
use traum_client::{ClientError, TraumClient};

use super::output::{FileJson, JobJson, job_stage_short, job_state_short, percent, rpc, timestamp_or_dash};
use super::{Globals, Outcome};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Stop after this many events (default: run until Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

/// One line of `events --json`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LibraryEventJson {
    Job { job: Box<JobJson> },
    File { file: Box<FileJson> },
    Deleted { file_id: String },
    Resync,
}

impl LibraryEventJson {
    fn from_event(event: &LibraryEvent) -> Option<Self> {
        Some(match event.change.as_ref()? {
            Change::Job(job) => Self::Job {
                job: Box::new(JobJson::from(job)),
            },
            Change::File(file) => Self::File {
                file: Box::new(FileJson::from(file)),
            },
            Change::DeletedFileId(file_id) => Self::Deleted {
                file_id: file_id.clone(),
            },
            Change::Resync(_) => Self::Resync,
        })
    }
}

fn event_line(event: &LibraryEvent) -> Option<String> {
    Some(match event.change.as_ref()? {
        Change::Job(job) => {
            let mut line = format!(
                "{}  job {}  file {}  {:<9}  {:<7}  {:>4}",
                timestamp_or_dash(job.updated_at.as_ref()),
                job.job_id,
                job.file_id,
                job_state_short(job.state),
                job_stage_short(job.stage),
                percent(job.progress),
            );
            if !job.error.is_empty() {
                line.push_str("  error: ");
                line.push_str(&job.error);
            } else if !job.message.is_empty() {
                line.push_str("  ");
                line.push_str(&job.message);
            }
            line
        }
        Change::File(file) => format!(
            "{}  file {}  {}  tags: {}",
            timestamp_or_dash(file.updated_at.as_ref()),
            file.file_id,
            file.filename,
            if file.tags.is_empty() {
                "-".to_owned()
            } else {
                file.tags.join(",")
            }
        ),
        Change::DeletedFileId(file_id) => format!("deleted file {file_id}"),
        Change::Resync(_) => "resync: events were skipped; reload what you show".to_owned(),
    })
}

pub async fn events(client: &TraumClient, globals: Globals, args: EventsArgs) -> anyhow::Result<Outcome> {
    let mut stream = rpc(client.audio().watch_library(WatchLibraryRequest {}).await)?;
    // The server subscribes before it answers, so from here on nothing is
    // missed; scripts can wait for this line before changing the library.
    eprintln!("watching the library (Ctrl-C to stop)");
    let mut seen = 0u64;
    loop {
        let message = tokio::select! {
            message = stream.message() => message.map_err(ClientError::from)?,
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Success),
        };
        let Some(event) = message else {
            anyhow::bail!("the server ended the library stream");
        };
        // An event of a kind this client does not know yet is skipped, not
        // counted.
        if globals.json {
            let Some(json) = LibraryEventJson::from_event(&event) else {
                continue;
            };
            // One object per line, so consumers can react to each as it arrives.
            println!("{}", serde_json::to_string(&json)?);
        } else {
            let Some(line) = event_line(&event) else {
                continue;
            };
            println!("{line}");
        }
        seen += 1;
        if args.count.is_some_and(|count| seen >= count) {
            return Ok(Outcome::Success);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use traum_client::v1::{Job, JobStage, JobState};

    #[test]
    fn events_become_lines_and_tagged_json() {
        let job = LibraryEvent {
            change: Some(Change::Job(Job {
                job_id: "j1".into(),
                file_id: "f1".into(),
                state: JobState::Running as i32,
                stage: JobStage::Decode as i32,
                progress: 0.5,
                ..Job::default()
            })),
        };
        let line = event_line(&job).unwrap();
        assert!(line.contains("job j1  file f1  running") && line.contains("decode") && line.contains("50%"));
        let json = serde_json::to_value(LibraryEventJson::from_event(&job).unwrap()).unwrap();
        assert_eq!(json["type"], "job");
        assert_eq!(json["job"]["state"], "JOB_STATE_RUNNING");

        let deleted = LibraryEvent {
            change: Some(Change::DeletedFileId("f2".into())),
        };
        assert_eq!(event_line(&deleted).unwrap(), "deleted file f2");
        let json = serde_json::to_value(LibraryEventJson::from_event(&deleted).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"type": "deleted", "file_id": "f2"}));
        assert!(event_line(&LibraryEvent { change: None }).is_none());
    }
}
