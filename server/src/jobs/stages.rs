//! The stages of the pipeline. Each does its heavy part on the blocking pool
//! and streams its progress back through a watch channel.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use traum_audio::fingerprint::Fingerprint;
use traum_audio::{
    AudioError, DecodeOptions, DecodeReport, OUTPUT_SAMPLE_RATE, SourceLevels, Stage, decode_to_vec,
    probe_file,
};

use super::Jobs;
use crate::blob::{LocalBlob, hash_file};
use crate::domain::{
    AudioFormat, AudioProperties, Descriptors, FileEmbeddings, JobRecord, JobStage, StoredWaveform,
};
use crate::embed::Engine;
use crate::error::{Error, Result};
use crate::isolation::guarded;
use crate::telemetry::metrics;

/// State carried between the stages of one run. Decoded audio lives here,
/// in memory only, from `decode` to `embed`; a run resumed after a restart
/// at `analyse` or `embed` decodes again.
#[derive(Default)]
pub(super) struct RunContext {
    /// The blob as a local file, fetched once per run from an object store.
    blob: Option<Arc<LocalBlob>>,
    decoded: Option<Arc<Vec<f32>>>,
    /// Measured on the source channels while decoding.
    levels: SourceLevels,
}

/// What a stage produced, to be persisted on the async side.
enum StageOutput {
    Verified,
    Probed(AudioProperties),
    Decoded(Vec<f32>, DecodeReport),
    /// With the fingerprint, or why it could not be computed (a failure
    /// there only costs the file its near-duplicates).
    Analysed(
        Descriptors,
        StoredWaveform,
        std::result::Result<Fingerprint, AudioError>,
    ),
    Embedded(FileEmbeddings, Arc<Engine>),
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
        let local = match &context.blob {
            Some(local) => local.clone(),
            None => {
                let local = Arc::new(self.inner.blobs.local(&file.sha256, file.size_bytes).await?);
                context.blob = Some(local.clone());
                local
            }
        };
        let blob_path = local.path().to_path_buf();
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
                let (format, file_id) = (file.format, file.id.clone());
                tokio::task::spawn_blocking(move || {
                    guarded(Stage::Probe, &file_id, || {
                        let properties = probe_file(&blob_path, format, |fraction| {
                            progress_tx.send_replace(fraction);
                        })?;
                        Ok(StageOutput::Probed(properties))
                    })
                })
            }
            JobStage::Decode => {
                let options = DecodeOptions {
                    max_duration: self.inner.max_duration,
                    format_hint: Some(file.format),
                };
                let file_id = file.id.clone();
                tokio::task::spawn_blocking(move || {
                    guarded(Stage::Decode, &file_id, || {
                        let (samples, report) = decode_to_vec(&blob_path, &options, |fraction| {
                            progress_tx.send_replace(fraction);
                        })?;
                        Ok(StageOutput::Decoded(samples, report))
                    })
                })
            }
            JobStage::Analyse => {
                let samples = self
                    .decoded_samples(context, &blob_path, file.format, &file.id, &progress_tx)
                    .await?;
                let share_done = *progress_tx.borrow();
                let levels = context.levels;
                let file_id = file.id.clone();
                tokio::task::spawn_blocking(move || {
                    guarded(Stage::Analysis, &file_id, || {
                        let analysis =
                            traum_audio::analyse(&samples, OUTPUT_SAMPLE_RATE, Some(levels), |fraction| {
                                progress_tx.send_replace(share_done + fraction * (1.0 - share_done));
                            });
                        let waveform = StoredWaveform::of(&samples, OUTPUT_SAMPLE_RATE);
                        let started = Instant::now();
                        let fingerprint = Fingerprint::compute(&samples, OUTPUT_SAMPLE_RATE);
                        metrics::FINGERPRINT_DURATION.record([], started.elapsed().as_secs_f64());
                        Ok(StageOutput::Analysed(analysis, waveform, fingerprint))
                    })
                })
            }
            JobStage::Embed => {
                let engine = self.inner.embedder.ready()?;
                let samples = self
                    .decoded_samples(context, &blob_path, file.format, &file.id, &progress_tx)
                    .await?;
                let share_done = *progress_tx.borrow();
                tokio::spawn(async move {
                    let embeddings = engine
                        .embed_audio(samples, |fraction| {
                            progress_tx.send_replace(share_done + fraction * (1.0 - share_done));
                        })
                        .await?;
                    Ok(StageOutput::Embedded(embeddings, engine))
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
                    self.report_progress(job, fraction, &mut last_persist).await;
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
                context.decoded = Some(Arc::new(samples));
                context.levels = report.levels;
                Ok(())
            }
            StageOutput::Analysed(analysis, waveform, fingerprint) => {
                store.put_waveform(&file.id, &waveform).await?;
                store.set_file_descriptors(&file.id, &analysis).await?;
                let linked = match fingerprint {
                    Ok(fingerprint) => self.inner.duplicates.fingerprinted(&file.id, fingerprint).await,
                    Err(err) => Err(err.into()),
                };
                if let Err(err) = linked {
                    tracing::warn!(file_id = %file.id, error = %err, "cannot fingerprint the file");
                    job.warnings
                        .push(format!("near-duplicates could not be looked up: {err}"));
                }
                Ok(())
            }
            StageOutput::Embedded(embeddings, engine) => {
                store.replace_embeddings(&file.id, &embeddings).await?;
                self.inner.search.follow_own_write().await;
                // Suggestions only add to a searchable file: a failure leaves
                // the file's key stale, so the background refresh retries.
                if let Err(err) = self
                    .inner
                    .zero_shot
                    .suggest(&engine, &file.id, &embeddings.file)
                    .await
                {
                    tracing::warn!(file_id = %file.id, error = %err, "cannot compute zero-shot tags");
                    job.warnings
                        .push(format!("zero-shot tags could not be computed: {err}"));
                }
                Ok(())
            }
        }
    }

    /// The decoded audio of this run, decoding again when the run resumed
    /// past the decode stage; decoding counts as the first half of progress.
    async fn decoded_samples(
        &self,
        context: &mut RunContext,
        blob_path: &Path,
        format: AudioFormat,
        file_id: &str,
        progress_tx: &watch::Sender<f64>,
    ) -> Result<Arc<Vec<f32>>> {
        if let Some(samples) = &context.decoded {
            return Ok(samples.clone());
        }
        let options = DecodeOptions {
            max_duration: self.inner.max_duration,
            format_hint: Some(format),
        };
        let (path, progress) = (blob_path.to_path_buf(), progress_tx.clone());
        let file_id = file_id.to_owned();
        let (samples, report) = tokio::task::spawn_blocking(move || {
            guarded(Stage::Decode, &file_id, || {
                Ok(decode_to_vec(&path, &options, |fraction| {
                    progress.send_replace(fraction * 0.5);
                })?)
            })
        })
        .await??;
        let samples = Arc::new(samples);
        context.decoded = Some(samples.clone());
        context.levels = report.levels;
        Ok(samples)
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
