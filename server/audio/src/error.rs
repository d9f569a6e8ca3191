//! The one error type of `traum-audio`.

/// Why audio could not be read. Every message names the problem in terms a
/// user can act on.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The format, codec or a feature of the stream is not one Traum reads.
    #[error("{0}")]
    Unsupported(String),
    /// The content is damaged or cut short beyond what skipping packets can repair.
    #[error("{0}")]
    Corrupt(String),
    /// The audio exceeds the configured maximum duration.
    #[error(
        "audio lasts {} but at most {} is accepted",
        clock(*duration_seconds),
        clock(*limit_seconds)
    )]
    TooLong {
        duration_seconds: f64,
        limit_seconds: f64,
    },
    /// The file could not be read.
    #[error("cannot read audio file: {0}")]
    Io(#[from] std::io::Error),
    /// Reading or analysing this file panicked; see [`crate::isolate`].
    #[error("the {stage} crashed on this file: {message}")]
    Crashed { stage: crate::Stage, message: String },
}

/// Result alias of this crate.
pub type Result<T, E = AudioError> = std::result::Result<T, E>;

/// Seconds with one decimal below a minute, `m:ss` or `h:mm:ss` above, as
/// durations appear in user-facing messages.
fn clock(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let total = seconds.round() as u64;
    let (hours, minutes, secs) = (total / 3600, (total / 60) % 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{secs:02}")
    } else {
        format!("{minutes}:{secs:02}")
    }
}
