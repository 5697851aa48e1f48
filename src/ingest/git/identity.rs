//! Which repository a lore file was built from. The first ingest records the history's root
//! commits and the `origin` URL; a later ingest from a repository that holds none of those
//! roots, nor any ref tip the file last ingested, is another project and is refused (a fork, a
//! mirror or a full clone of the same project holds them; a shallow clone whose history starts
//! after every recorded tip does not, and is refused too).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::IngestError;
use crate::store::{hex, Store, StoreError};

/// `meta` key of the recorded [`Identity`] (JSON).
pub const IDENTITY_KEY: &str = "git.identity";

/// At most this many root commits are recorded (a history with more roots is rare: imported
/// subtrees, merged unrelated histories).
const MAX_ROOTS: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// Hex ids of the history's root commits (and shallow boundaries, which act as roots).
    pub roots: Vec<String>,
    /// The `origin` remote's URL when there was one.
    pub origin: Option<String>,
}

/// The identity the file records; for a file with history but no record (written by an
/// earlier lore), the one its commits give.
pub fn recorded(store: &Store) -> Result<Option<Identity>, StoreError> {
    let read = store.read()?;
    if let Some(bytes) = read.meta(IDENTITY_KEY)? {
        let identity = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            what: "repository identity",
            detail: e.to_string(),
        })?;
        return Ok(Some(identity));
    }
    if read.commit_count()? == 0 {
        return Ok(None);
    }
    Ok(Some(Identity {
        roots: roots_in(&read)?,
        origin: None,
    }))
}

fn roots_in(read: &crate::store::ReadTx) -> Result<Vec<String>, StoreError> {
    let mut roots: Vec<String> = read
        .all_commits()?
        .into_iter()
        .filter(|(_, c)| c.parents.is_empty() || c.shallow_boundary)
        .map(|(_, c)| hex(&c.sha))
        .collect();
    roots.sort();
    roots.truncate(MAX_ROOTS);
    Ok(roots)
}

/// Refuse `repo` when the file was built from another repository.
pub fn check(store: &Store, repo: &gix::Repository, repo_path: &Path) -> Result<(), IngestError> {
    let Some(identity) = recorded(store)? else {
        return Ok(());
    };
    let holds = |hex_id: &str| {
        gix::ObjectId::from_hex(hex_id.as_bytes())
            .ok()
            .is_some_and(|id| repo.has_object(id))
    };
    if identity.roots.iter().any(|r| holds(r)) {
        return Ok(());
    }
    let tips: Vec<String> = store
        .read()?
        .watermarks()?
        .into_iter()
        .map(|(_, w)| hex(&w.sha))
        .collect();
    if tips.iter().any(|t| holds(t)) {
        return Ok(());
    }
    Err(IngestError::OtherRepository {
        path: repo_path.into(),
        kb: store.path().into(),
        root: identity.roots.first().cloned().unwrap_or_default(),
        origin: identity.origin.unwrap_or_else(|| "no origin remote".into()),
    })
}

/// Record the identity after the first ingest that wrote commits.
pub fn record_if_new(store: &Store, origin: Option<String>) -> Result<(), StoreError> {
    let read = store.read()?;
    if read.meta(IDENTITY_KEY)?.is_some() || read.commit_count()? == 0 {
        return Ok(());
    }
    let identity = Identity {
        roots: roots_in(&read)?,
        origin,
    };
    drop(read);
    let bytes = serde_json::to_vec(&identity).expect("an identity serializes");
    store.write(|tx| tx.set_meta(IDENTITY_KEY, &bytes))
}

/// The `origin` remote's fetch URL, if any.
pub fn origin_url(repo: &gix::Repository) -> Option<String> {
    let remote = repo.find_remote("origin").ok()?;
    Some(
        remote
            .url(gix::remote::Direction::Fetch)?
            .to_bstring()
            .to_string(),
    )
}
