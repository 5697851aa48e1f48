//! The writer side of provenance: each pending change becomes a stored file version, its runs
//! computed from its parents' runs, inside the transaction that stores the commit.

use gix::ObjectId;

use super::lines;
use super::sides::{ParentSide, PendingChange};
use super::ProvenanceReport;
use crate::store::records::{FileVersion, LineOrigins};
use crate::store::{NodeId, NodeKind, StoreError, WriteTx};

/// The first parents of every commit seen, in memory: telling apart versions that share a
/// blob walks the first-parent chain, which is too slow through the table.
pub struct FirstParents(Vec<u64>);

impl FirstParents {
    /// The parents the file records.
    pub fn load(tx: &WriteTx<'_>) -> Result<FirstParents, StoreError> {
        Ok(FirstParents(tx.all_first_parents()?))
    }

    fn set(&mut self, commit: NodeId, parent: Option<NodeId>) {
        let at = commit.local() as usize;
        if self.0.len() <= at {
            self.0.resize(at + 1, u64::MAX);
        }
        self.0[at] = parent.map_or(u64::MAX, |p| p.local());
    }

    /// Of `candidates` (sorted commits), the first met walking down the first-parent chain
    /// from `commit`; the latest when the chain passes none of them.
    fn nearest(&self, candidates: &[u64], commit: u64) -> Option<u64> {
        let (&lowest, &latest) = (candidates.first()?, candidates.last()?);
        if candidates.len() == 1 {
            return Some(lowest);
        }
        let mut at = commit;
        while at >= lowest && at != u64::MAX {
            if candidates.binary_search(&at).is_ok() {
                return Some(at);
            }
            let parent = self.0.get(at as usize).copied().unwrap_or(u64::MAX);
            if parent >= at {
                break;
            }
            at = parent;
        }
        Some(latest)
    }

    /// The commit holding the version of `file` with content `blob` that `commit` sees.
    fn find(
        &self,
        tx: &WriteTx<'_>,
        file: NodeId,
        blob: &ObjectId,
        commit: NodeId,
    ) -> Result<Option<NodeId>, StoreError> {
        let candidates = tx.versions_with_blob(file, blob.as_bytes(), commit)?;
        Ok(self
            .nearest(&candidates, commit.local())
            .map(|c| NodeId::new(NodeKind::Commit, c)))
    }
}

/// Store the file versions commit `id` (stored already) wrote.
pub fn store_commit(
    tx: &mut WriteTx<'_>,
    parents: &mut FirstParents,
    id: NodeId,
    parent_shas: &[ObjectId],
    changes: &[PendingChange],
    report: &mut ProvenanceReport,
) -> Result<(), StoreError> {
    let first_parent = match parent_shas.first() {
        Some(p) => tx.commit_id(p.as_bytes())?,
        None => None,
    };
    parents.set(id, first_parent);
    if let Some(p) = first_parent {
        tx.set_first_parent(id, p)?;
    }
    report.commits += 1;
    for change in changes {
        let (file, _) = tx.file(&change.path)?;
        let blob = change.blob.map(|b| b.as_bytes().to_vec());
        let Some(lines) = change.lines else {
            let origins = if blob.is_none() {
                LineOrigins::Deleted
            } else {
                report.unknown += 1;
                LineOrigins::Unknown
            };
            let version = FileVersion {
                blob,
                lines: 0,
                origins,
            };
            tx.put_file_version(file, id, &version)?;
            continue;
        };
        let mut from_parents = Vec::new();
        let mut same = None;
        for p in &change.parents {
            let (Some(commit), Some(parent_file)) =
                (tx.commit_id(p.commit.as_bytes())?, tx.file_id(&p.path)?)
            else {
                report.parent_missing += 1;
                continue;
            };
            let Some(at) = parents.find(tx, parent_file, &p.blob, commit)? else {
                report.parent_missing += 1;
                continue;
            };
            match &p.side {
                ParentSide::Same => {
                    // Point at the version that holds the runs, so lookups take one step.
                    match tx.file_version(parent_file, at)?.map(|v| v.origins) {
                        Some(LineOrigins::Runs(_)) => {
                            same = Some((parent_file.local(), at.local()))
                        }
                        Some(LineOrigins::SameAs { file, commit }) => same = Some((file, commit)),
                        _ => continue,
                    }
                    break;
                }
                ParentSide::Blocks(blocks) => {
                    let Some(runs) = tx.origin_runs(parent_file, at)? else {
                        continue;
                    };
                    from_parents.push((lines::expand(&runs), blocks.clone()));
                }
            }
        }
        let origins = match same {
            Some((file, commit)) => {
                report.shared += 1;
                LineOrigins::SameAs { file, commit }
            }
            None => {
                report.versions += 1;
                LineOrigins::Runs(lines::assign(
                    id.local(),
                    file.local(),
                    lines,
                    &from_parents,
                ))
            }
        };
        let version = FileVersion {
            blob,
            lines,
            origins,
        };
        tx.put_file_version(file, id, &version)?;
    }
    Ok(())
}
