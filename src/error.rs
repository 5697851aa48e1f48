//! The umbrella error: every layer's error converts into [`Error`].

use crate::adapt::AdaptError;
use crate::export::ExportError;
use crate::index::IndexError;
use crate::ingest::issues::IssueError;
use crate::ingest::IngestError;
use crate::kb::KbError;
use crate::query::QueryError;
use crate::store::StoreError;
use crate::sync::SyncError;
use crate::watch::WatchError;

/// Any error lore's library can return. Each variant wraps one layer's own error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Issues(#[from] IssueError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Adapt(#[from] AdaptError),
    #[error(transparent)]
    Kb(KbError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// `Result` with lore's umbrella [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
