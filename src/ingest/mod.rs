//! Ingest: read the outside world and write it into the store.
//!
//! * [`git`] — commits, parents, authors and per-file diff stats from a git repository.
//! * [`code`] — symbols and imports of every file version (tree-sitter), symbol history.
//! * [`issues`] — issues and pull requests from GitHub, `gh`, Jira and JSONL dumps.
//! * [`links`] — the edges between them: fixes, references, mentions, SZZ.
//!
//! Ingest reports progress through the [`Progress`] trait so that the library stays free of
//! terminal concerns; the CLI renders it as a progress bar.

pub mod code;
pub mod git;
pub mod issues;
pub mod links;

use std::path::PathBuf;

use crate::store::StoreError;

/// Errors of the ingest layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("{path} is not a git repository{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotARepository {
        path: PathBuf,
        detail: Option<String>,
    },
    #[error("cannot read {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("ref `{spec}` not found in {path}")]
    RefNotFound { path: PathBuf, spec: String },
    #[error("git error in {path}: {detail}")]
    Git { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Receives progress of long-running work. All methods default to doing nothing.
pub trait Progress: Sync {
    /// A new phase starts; `total` is the number of steps when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more steps of the current phase are done.
    fn advance(&self, _n: u64) {}
    /// Something the user should know (a skip, a rewritten ref).
    fn warn(&self, _message: &str) {}
    /// The current phase is over.
    fn done(&self) {}
}

/// A [`Progress`] that ignores everything.
pub struct Silent;
impl Progress for Silent {}
