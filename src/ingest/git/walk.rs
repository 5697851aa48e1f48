//! Find the commits to ingest: reachable from the tips, not yet in the store, parents first.

use std::collections::HashSet;
use std::path::Path;

use gix::ObjectId;

use super::{git_error, RefReport, RefTip, RefUpdate};
use crate::ingest::IngestError;
use crate::progress::Progress;
use crate::store::Store;

/// Watermarks of git refs are stored under this prefix.
pub const WATERMARK_PREFIX: &str = "git:";

/// Everything the write stage needs to know before diffing starts.
pub struct Plan {
    /// New commits, every parent before its children.
    pub order: Vec<ObjectId>,
    pub ref_reports: Vec<RefReport>,
    /// Watermarks to write when the last batch is stored.
    pub tips: Vec<RefTip>,
    /// Refs with a watermark that no longer exist; their watermarks are removed.
    pub vanished_refs: Vec<String>,
}

pub fn plan(
    store: &Store,
    repo: &gix::Repository,
    path: &Path,
    tips: &[RefTip],
    all_refs: bool,
    progress: &dyn Progress,
) -> Result<Plan, IngestError> {
    let read = store.read()?;
    let known: HashSet<ObjectId> = read
        .all_commit_shas()?
        .into_iter()
        .filter_map(|sha| ObjectId::try_from(sha.as_slice()).ok())
        .collect();
    let watermarks = read.watermarks()?;
    drop(read);

    let mut ref_reports = Vec::with_capacity(tips.len());
    for tip in tips {
        let key = format!("{WATERMARK_PREFIX}{}", tip.name);
        let old = watermarks
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| ObjectId::try_from(w.sha.as_slice()).ok());
        let update = match old {
            None => RefUpdate::New,
            Some(old) if old == tip.id => RefUpdate::Unchanged,
            Some(old) => match repo.merge_base(old, tip.id) {
                Ok(Some(base)) if base.detach() == old => RefUpdate::FastForward,
                Ok(base) => RefUpdate::Rewritten {
                    old: old.to_string(),
                    merge_base: base.map(|b| b.to_string()),
                },
                Err(_) => RefUpdate::Rewritten {
                    old: old.to_string(),
                    merge_base: None,
                },
            },
        };
        ref_reports.push(RefReport {
            name: tip.name.clone(),
            tip: tip.id.to_string(),
            update,
        });
    }
    let vanished_refs = if all_refs {
        watermarks
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(WATERMARK_PREFIX))
            .filter(|name| !tips.iter().any(|t| t.name == *name))
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };

    progress.phase("finding new commits", None);
    let order = parents_first(repo, path, tips, &known, progress)?;
    progress.done();
    Ok(Plan {
        order,
        ref_reports,
        tips: tips.to_vec(),
        vanished_refs,
    })
}

/// Depth-first post-order over the unknown part of the graph: a commit is emitted only after
/// all its (unknown, present) parents. Parents missing from the object database (shallow
/// boundaries, damaged snapshots) are not emitted; the diff stage records them.
fn parents_first(
    repo: &gix::Repository,
    path: &Path,
    tips: &[RefTip],
    known: &HashSet<ObjectId>,
    progress: &dyn Progress,
) -> Result<Vec<ObjectId>, IngestError> {
    let mut order = Vec::new();
    let mut visited: HashSet<ObjectId> = HashSet::new();
    let mut stack: Vec<(ObjectId, bool)> = tips.iter().rev().map(|t| (t.id, false)).collect();
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            order.push(id);
            if order.len() % 1024 == 0 {
                progress.advance(1024);
            }
            continue;
        }
        if known.contains(&id) || !visited.insert(id) {
            continue;
        }
        let parents: Vec<ObjectId> =
            match repo.try_find_object(id).map_err(|e| git_error(path, e))? {
                Some(obj) if obj.kind == gix::object::Kind::Commit => {
                    let commit = obj.into_commit();
                    commit.parent_ids().map(|p| p.detach()).collect()
                }
                // Absent (shallow boundary parent or damaged repository): not ingestable.
                _ => continue,
            };
        stack.push((id, true));
        for p in parents.into_iter().rev() {
            if !known.contains(&p) && !visited.contains(&p) {
                stack.push((p, false));
            }
        }
    }
    progress.advance((order.len() % 1024) as u64);
    Ok(order)
}
