//! Ingest: read the outside world and write it into the store.
//!
//! * [`git`] — commits, parents, authors and per-file diff stats from a git repository.
//! * [`code`] — symbols and imports of every file version (tree-sitter), symbol history.
//! * [`issues`] — issues and pull requests from GitHub, `gh`, Jira and JSONL dumps.
//! * [`provenance`] — each line's origin commit, carried over the history as `git blame` finds it.
//! * [`links`] — the edges between them: fixes, references, mentions, SZZ.
//!
//! Ingest reports progress through the [`crate::progress::Progress`] trait so that the library stays free of
//! terminal concerns; the CLI renders it as a progress bar.

pub mod code;
pub mod git;
pub mod issues;
pub mod links;
pub mod provenance;

use std::path::PathBuf;

use crate::store::StoreError;

/// Errors of the ingest layer.
/// Any error a library lore calls can return, kept as the source of an [`IngestError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("{path} is not a git repository{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotARepository {
        path: PathBuf,
        detail: Option<String>,
    },
    #[error("cannot read {path}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ref `{spec}` not found in {path}")]
    RefNotFound { path: PathBuf, spec: String },
    /// git could not give what lore asked for; `what` says what it was.
    #[error("git error in {path}: {what}")]
    Git {
        path: PathBuf,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{} is not the repository {} was built from: it holds none of the file's root commits ({root}…) nor the ref tips it last ingested (the file's origin: {origin}); use another --kb for another project", path.display(), kb.display())]
    OtherRepository {
        path: PathBuf,
        kb: PathBuf,
        root: String,
        origin: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
