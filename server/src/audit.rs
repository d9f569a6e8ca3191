//! The audit log: every write call (uploads, renames, retags, deletes,
//! reprocessing, collection changes, keys created or revoked) with who made
//! it, when, on what, and how it ended. The RPC layer opens an
//! [`AuditSlot`] per audited call, authentication fills in the caller, the
//! handler names the target, and the finished call is queued here and
//! written in the background, so a write never waits on its audit row.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::auth::{Principal, Role, principal_name};
use crate::domain::Page;
use crate::error::Result;
use crate::store::Store;

/// Entries buffered before `record` starts dropping (and counting) them.
const QUEUE_CAPACITY: usize = 16_384;

/// One audited call.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `key <id>`, `token <sub>`, `anonymous` (auth off) or a local command.
    pub principal: String,
    pub role: Option<Role>,
    /// The gRPC method path, or the local command.
    pub method: String,
    /// What the call acted on, e.g. `file <id>`, when the handler got that far.
    pub target: Option<String>,
    /// The gRPC status code the call ended with.
    pub code: i32,
}

/// Filters and paging of an audit listing.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<DateTime<Utc>>,
    pub principal: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// What one call learns about itself while it runs.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<SlotDetails>>);

#[derive(Debug, Default)]
struct SlotDetails {
    principal: Option<Principal>,
    target: Option<String>,
}

impl AuditSlot {
    pub fn set_principal(&self, principal: Principal) {
        if let Ok(mut details) = self.0.lock() {
            details.principal = Some(principal);
        }
    }

    /// Names the call's target; a later name (e.g. the id a create made)
    /// replaces an earlier one.
    pub fn set_target(&self, target: impl Into<String>) {
        if let Ok(mut details) = self.0.lock() {
            details.target = Some(target.into());
        }
    }

    /// The entry for a call to `method` that ended with `code`.
    pub fn entry(&self, method: String, code: i32) -> AuditEntry {
        let (principal, target) = match self.0.lock() {
            Ok(details) => (details.principal.clone(), details.target.clone()),
            Err(_) => (None, None),
        };
        AuditEntry {
            at: Utc::now(),
            principal: principal
                .as_ref()
                .map_or_else(|| "anonymous".to_owned(), principal_name),
            role: principal.map(|p| p.role),
            method,
            target,
            code,
        }
    }
}

enum Command {
    Record(AuditEntry),
    Flush(oneshot::Sender<()>),
}

/// Queues audit entries and reads the log; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Store,
    tx: mpsc::Sender<Command>,
}

impl Audit {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_loop(store.clone(), rx));
        Self { store, tx }
    }

    /// Queues one entry without waiting.
    pub fn record(&self, entry: AuditEntry) {
        if self.tx.try_send(Command::Record(entry)).is_err() {
            crate::telemetry::metrics::AUDIT_EVENTS_DROPPED.increment([], 1);
            tracing::warn!("the audit queue is full; an audit entry was dropped");
        }
    }

    /// Waits until every entry queued so far is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub async fn list(&self, query: &AuditQuery) -> Result<Page<AuditEntry>> {
        self.store.list_audit(query).await
    }

    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.store.prune_audit(before).await
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Command>) {
    while let Some(command) = rx.recv().await {
        match command {
            Command::Record(entry) => {
                if let Err(err) = store.insert_audit(&entry).await {
                    tracing::error!(error = %err, method = %entry.method, "cannot write an audit entry");
                }
            }
            Command::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
