//! The stages of the pipeline. Each does its heavy part on the blocking pool
//! and streams its progress back through a watch channel.

use std::path::Path;
use std::time::Instant;

use tokio::sync::watch;

use super::Jobs;
use crate::audio::decode::{DecodeOptions, DecodeReport, decode_to_vec};
use crate::audio::{descriptors, probe_file};
use crate::blob::hash_file;
use crate::error::{Error, Result};
use crate::model::{AudioDescriptors, AudioProperties, JobRecord, JobStage};

/// State carried between the stages of one run. Decoded audio lives here,
/// in memory only, from `decode` to `analyse`; a run resumed after a restart
/// at `analyse` decodes again.
#[derive(Default)]
pub(super) struct RunContext {
    decoded: Option<Vec<f32>>,
}

/// What a stage produced, to be persisted on the async side.
enum StageOutput {
    Verified,
    Probed(AudioProperties),
    Decoded(Vec<f32>, DecodeReport),
    Analysed(AudioDescriptors),
}

impl Jobs {
    pub(super) async fn run_stage(
        &self,
        job: &mut JobRecord,
        stage: JobStage,
        context: &mut RunContext,
    ) -> Result<()> {
        let store = &self.inner.store;
        let file = store.get_file(&job.file_id).await?;
        let blob_path = self.inner.blobs.blob_path(&file.sha256);
        let (progress_tx, mut progress_rx) = watch::channel(0.0_f64);
        let mut task = match stage {
            JobStage::Store => {
                let (expected, size) = (file.sha256.clone(), file.size_bytes);
                tokio::task::spawn_blocking(move || {
                    verify_blob(&blob_path, &expected, size, |fraction| {
                        progress_tx.send_replace(fraction);
                    })
                    .map(|()| StageOutput::Verified)
                })
            }
            JobStage::Probe => {
                let format = file.format;
                tokio::task::spawn_blocking(move || {
                    probe_file(&blob_path, format, |fraction| {
                        progress_tx.send_replace(fraction);
                    })
                    .map(StageOutput::Probed)
                    .map_err(Error::from)
                })
            }
            JobStage::Decode => {
                let options = DecodeOptions {
                    max_duration: self.inner.max_duration,
                    format_hint: Some(file.format),
                };
                tokio::task::spawn_blocking(move || {
                    let (samples, report) = decode_to_vec(&blob_path, &options, |fraction| {
                        progress_tx.send_replace(fraction);
                    })?;
                    Ok(StageOutput::Decoded(samples, report))
                })
            }
            JobStage::Analyse => {
                let decoded = context.decoded.take();
                let options = DecodeOptions {
                    max_duration: self.inner.max_duration,
                    format_hint: Some(file.format),
                };
                tokio::task::spawn_blocking(move || {
                    let (samples, share_done) = match decoded {
                        Some(samples) => (samples, 0.0),
                        None => {
                            let (samples, _) = decode_to_vec(&blob_path, &options, |fraction| {
                                progress_tx.send_replace(fraction * 0.5);
                            })?;
                            (samples, 0.5)
                        }
                    };
                    let analysis = descriptors::analyse(
                        &samples,
                        crate::audio::decode::OUTPUT_SAMPLE_RATE,
                        |fraction| {
                            progress_tx.send_replace(share_done + fraction * (1.0 - share_done));
                        },
                    );
                    Ok(StageOutput::Analysed(analysis.into()))
                })
            }
        };
        let mut last_persist = Instant::now();
        let output = loop {
            tokio::select! {
                result = &mut task => break result??,
                changed = progress_rx.changed() => {
                    if changed.is_err() {
                        // The stage dropped its sender: it is about to return.
                        break (&mut task).await??;
                    }
                    let fraction = *progress_rx.borrow_and_update();
                    self.report_progress(job, stage, fraction, &mut last_persist).await;
                }
            }
        };
        match output {
            StageOutput::Verified => Ok(()),
            StageOutput::Probed(properties) => store.set_file_properties(&file.id, &properties).await,
            StageOutput::Decoded(samples, report) => {
                if let Some(warning) = report.warning {
                    job.warnings.push(warning);
                }
                context.decoded = Some(samples);
                Ok(())
            }
            StageOutput::Analysed(analysis) => store.set_file_descriptors(&file.id, &analysis).await,
        }
    }
}

/// Re-hashes a stored blob, so a job never processes bytes that differ from
/// what was uploaded.
fn verify_blob(path: &Path, expected: &str, size: u64, mut progress: impl FnMut(f64)) -> Result<()> {
    let (digest, length) =
        hash_file(path, |read| progress(read as f64 / size.max(1) as f64)).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                Error::Internal(format!("stored blob {expected} is missing from the blob store"))
            } else {
                Error::Io(err)
            }
        })?;
    if digest != expected || length != size {
        return Err(Error::ChecksumMismatch(format!(
            "stored blob is damaged: expected sha256 {expected} ({size} bytes), found {digest} ({length} bytes)"
        )));
    }
    Ok(())
}
