//! Audio work for one file, run so that a panic in it (sniffing, probing,
//! decoding, analysis: symphonia on a crafted file, or a bug of ours) fails
//! that file alone: its upload is refused or its job fails with a clear
//! message, and the worker, the request handler and the server go on.

use std::fmt::Display;

use traum_audio::{AudioError, Stage};

use crate::error::{Error, Result};
use crate::telemetry::metrics;

/// Runs `work` for `file` (an id, or what the work is on), turning a panic
/// into [`AudioError::Crashed`] and logging it as a warning. Call it inside
/// the blocking task, around everything that touches the file's content.
pub(crate) fn guarded<T>(stage: Stage, file: impl Display, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = traum_audio::isolate(stage, work);
    if let Err(Error::Audio(crashed @ AudioError::Crashed { .. })) = &result {
        tracing::warn!(file = %file, stage = %stage, error = %crashed, "audio work panicked; only this file fails");
        metrics::AUDIO_CRASHES.increment([stage_label(stage).to_owned()], 1);
    }
    result
}

/// The metric label of a stage: one word.
fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Sniff => "sniff",
        Stage::Probe => "probe",
        Stage::Decode => "decode",
        Stage::Analysis => "analysis",
    }
}
