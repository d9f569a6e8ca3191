//! A panic while reading or analysing a file, as an error of that file.
//!
//! symphonia (and any of the code after it) can panic on crafted input: an
//! index out of range, an arithmetic overflow, a failed assertion. Callers
//! run each file's work through [`isolate`], so one file fails with a clear
//! message instead of taking its worker thread, or the request, down.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::AudioError;

/// The part of the work that crashed, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Sniff,
    Probe,
    Decode,
    Analysis,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Sniff => "format detection",
            Stage::Probe => "probe",
            Stage::Decode => "decoder",
            Stage::Analysis => "analysis",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs `work`; a panic inside it becomes [`AudioError::Crashed`].
///
/// Whatever `work` captured may be left half-updated by the panic
/// (`AssertUnwindSafe`); the caller gets an error instead of its result and
/// must discard that state, which all of this crate's callers do by
/// dropping the file's partial results.
pub fn isolate<T, E: From<AudioError>>(stage: Stage, work: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(E::from(AudioError::Crashed {
            stage,
            message: panic_message(&*payload).to_owned(),
        }))
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_error_of_its_stage() {
        let err = isolate(Stage::Decode, || -> Result<(), AudioError> {
            let values: Vec<u32> = Vec::new();
            let index = values.len() + 3;
            Err(AudioError::Corrupt(values[index].to_string()))
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                AudioError::Crashed {
                    stage: Stage::Decode,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("the decoder crashed on this file: index out of bounds"),
            "{message}"
        );
        let ok = isolate(Stage::Analysis, || Ok::<_, AudioError>(7)).unwrap();
        assert_eq!(ok, 7);
    }
}
