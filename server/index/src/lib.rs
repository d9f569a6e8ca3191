//! Traum's search indexes: vectors (an HNSW graph built by hora, walked by
//! our own search, plus an exact segment) and keywords (tantivy).
//!
//! Both are derived data: the DB is the source of truth, and
//! each index is persisted only for a fast start. Anything that cannot be
//! trusted on load (missing, stale, corrupt) is reported as an error so the
//! caller rebuilds from the DB instead of serving wrong answers.
//!
//! The code here is synchronous; builds are CPU-heavy, so callers run them on
//! a blocking pool or a dedicated thread.

pub mod text;
pub mod vector;

use std::path::PathBuf;

/// Everything the indexes can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector of the wrong length.
    #[error("vector has {got} dimensions but the index holds {expected}-dimensional vectors")]
    Dimension { expected: usize, got: usize },
    /// A vector the cosine formula cannot handle.
    #[error("{0}")]
    BadVector(String),
    /// No saved index where one was expected.
    #[error("no saved index in {0}; rebuild it from the database")]
    Missing(PathBuf),
    /// A saved index from another model, dimension or format version.
    #[error("saved index in {path} is stale ({reason}); rebuild it from the database")]
    Stale { path: PathBuf, reason: String },
    /// A saved index whose bytes cannot be trusted.
    #[error("saved index in {path} is corrupt ({reason}); rebuild it from the database")]
    Corrupt { path: PathBuf, reason: String },
    /// hora refused an operation (it reports `&'static str`s) or panicked.
    #[error("HNSW index failed: {0}")]
    Hnsw(String),
    /// tantivy failed.
    #[error("text index failed: {0}")]
    Text(#[from] tantivy::TantivyError),
    /// Reading or writing index files failed.
    #[error("index file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the caller should rebuild the index from the DB.
    pub fn needs_rebuild(&self) -> bool {
        matches!(
            self,
            IndexError::Missing(_) | IndexError::Stale { .. } | IndexError::Corrupt { .. }
        )
    }
}
