//! Line provenance lookups, shared by the read and the write side: which stored version of a
//! file a commit sees, and the runs of line origins of that version.
//!
//! A version is stored at `(file, commit)` for every commit that changed the file against its
//! first parent. The file as of any commit `c` is therefore the version stored at the nearest
//! commit on `c`'s first-parent chain that changed it; [`version_at`] walks that chain through
//! the `first_parents` table. When the blob is known (a diff names it), [`version_with_blob`]
//! finds the version from the few that share the content, walking only to tell those apart.

use std::collections::BTreeSet;

use redb::ReadableTable;

use super::codec::decode;
use super::records::{FileVersion, LineOrigins, OriginRun};
use super::StoreError;

/// How many `SameAs` links are followed before the chain is called corrupt.
const MAX_SAME_AS: usize = 64;

pub(super) fn version(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    file: u64,
    commit: u64,
) -> Result<Option<FileVersion>, StoreError> {
    match origins.get((file, commit))? {
        Some(v) => Ok(Some(decode("line origins", v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn first_parent(
    parents: &impl ReadableTable<u64, u64>,
    commit: u64,
) -> Result<Option<u64>, StoreError> {
    Ok(parents.get(commit)?.map(|v| v.value()))
}

/// The first of `candidates` (sorted) met walking the first-parent chain down from `commit`.
fn walk_to(
    parents: &impl ReadableTable<u64, u64>,
    candidates: &BTreeSet<u64>,
    commit: u64,
) -> Result<Option<u64>, StoreError> {
    let Some(&lowest) = candidates.first() else {
        return Ok(None);
    };
    let mut at = commit;
    loop {
        if candidates.contains(&at) {
            return Ok(Some(at));
        }
        match first_parent(parents, at)? {
            Some(p) if p >= lowest && p < at => at = p,
            _ => return Ok(None),
        }
    }
}

/// The commit whose stored version of `file` is the file as of `commit` (`None`: the file did
/// not exist there, or no version is stored), with that version.
pub(super) fn version_at(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    parents: &impl ReadableTable<u64, u64>,
    file: u64,
    commit: u64,
) -> Result<Option<(u64, FileVersion)>, StoreError> {
    let mut candidates = BTreeSet::new();
    for entry in origins.range((file, 0)..=(file, commit))? {
        candidates.insert(entry?.0.value().1);
    }
    let Some(found) = walk_to(parents, &candidates, commit)? else {
        return Ok(None);
    };
    Ok(version(origins, file, found)?.map(|v| (found, v)))
}

/// The commit holding the version of `file` with content `blob` that `commit` sees: among the
/// stored versions with that blob at or before `commit`, the one on its first-parent chain (or
/// the latest, when the chain passes none of them).
pub(super) fn version_with_blob(
    by_blob: &impl ReadableTable<(u64, &'static [u8], u64), ()>,
    parents: &impl ReadableTable<u64, u64>,
    file: u64,
    blob: &[u8],
    commit: u64,
) -> Result<Option<u64>, StoreError> {
    let mut candidates = BTreeSet::new();
    for entry in by_blob.range((file, blob, 0)..=(file, blob, commit))? {
        candidates.insert(entry?.0.value().2);
    }
    match candidates.len() {
        0 => Ok(None),
        1 => Ok(candidates.first().copied()),
        _ => Ok(walk_to(parents, &candidates, commit)?.or(candidates.last().copied())),
    }
}

/// The commits (sorted) holding a version of `file` with content `blob`, at or before
/// `commit`.
pub(super) fn versions_with_blob(
    by_blob: &impl ReadableTable<(u64, &'static [u8], u64), ()>,
    file: u64,
    blob: &[u8],
    commit: u64,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in by_blob.range((file, blob, 0)..=(file, blob, commit))? {
        out.push(entry?.0.value().2);
    }
    Ok(out)
}

/// Every recorded first parent, indexed by commit local id (`u64::MAX`: none recorded).
pub(super) fn all_first_parents(
    parents: &impl ReadableTable<u64, u64>,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in parents.iter()? {
        let (k, v) = entry?;
        let k = k.value() as usize;
        if out.len() <= k {
            out.resize(k + 1, u64::MAX);
        }
        out[k] = v.value();
    }
    Ok(out)
}

/// The runs of the version stored at `(file, commit)`, following `SameAs` links. `None` when
/// the version is unknown (binary), deleted or missing.
pub(super) fn runs(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    mut file: u64,
    mut commit: u64,
) -> Result<Option<Vec<OriginRun>>, StoreError> {
    for _ in 0..MAX_SAME_AS {
        let Some(v) = version(origins, file, commit)? else {
            return Ok(None);
        };
        match v.origins {
            LineOrigins::Runs(runs) => return Ok(Some(runs)),
            LineOrigins::SameAs { file: f, commit: c } => {
                file = f;
                commit = c;
            }
            LineOrigins::Unknown | LineOrigins::Deleted => return Ok(None),
        }
    }
    Err(StoreError::Corrupt {
        what: "line origins",
        detail: format!("more than {MAX_SAME_AS} versions point at each other from file {file}"),
    })
}
