//! The writer side of provenance: each pending change becomes a stored file version, its runs
//! computed from its parents' runs, inside the transaction that stores the commit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use gix::ObjectId;

use super::sides::{ParentSide, PendingChange};
use super::ProvenanceReport;
use crate::store::origins::assign;
use crate::store::records::{Block, FileVersion, LineOrigins, OriginRun, ParentDelta};
use crate::store::{NodeId, NodeKind, StoreError, WriteTx};

/// A version is stored as a delta against its parents unless that would put more than this
/// many deltas between it and stored runs: reading a version applies at most this many.
pub const MAX_DELTA_DEPTH: u32 = 24;

/// A parent version a new version keeps lines from: file, commit, delta depth, runs, blocks.
type FromParent<'a> = (NodeId, NodeId, u32, Arc<Vec<OriginRun>>, &'a [Block]);

/// A version's delta depth and runs.
type DepthRuns = (u32, Arc<Vec<OriginRun>>);

/// How many computed versions [`RunsCache`] keeps.
const CACHED_VERSIONS: usize = 4096;

/// The runs of the versions computed last, so the next version of a file (on any branch)
/// finds its parent's runs without applying deltas; the oldest entry goes first.
#[derive(Default)]
pub struct RunsCache {
    runs: HashMap<(u64, u64), DepthRuns>,
    order: VecDeque<(u64, u64)>,
}

impl RunsCache {
    /// The runs and delta depth of the version at `(file, commit)`.
    fn get(
        &mut self,
        tx: &WriteTx<'_>,
        file: NodeId,
        commit: NodeId,
    ) -> Result<Option<DepthRuns>, StoreError> {
        if let Some(hit) = self.runs.get(&(file.local(), commit.local())) {
            return Ok(Some(hit.clone()));
        }
        let Some(runs) = tx.origin_runs(file, commit)? else {
            return Ok(None);
        };
        let found = (tx.origin_depth(file, commit)?, Arc::new(runs));
        self.put(file.local(), commit.local(), found.0, found.1.clone());
        Ok(Some(found))
    }

    /// Remember a version's runs.
    fn put(&mut self, file: u64, commit: u64, depth: u32, runs: Arc<Vec<OriginRun>>) {
        if self.runs.insert((file, commit), (depth, runs)).is_none() {
            self.order.push_back((file, commit));
        }
        while self.order.len() > CACHED_VERSIONS {
            if let Some(old) = self.order.pop_front() {
                self.runs.remove(&old);
            }
        }
    }
}

/// The first parents of every commit seen, in memory: telling apart versions that share a
/// blob walks the first-parent chain, which is too slow through the table.
pub struct FirstParents(Vec<u64>, RunsCache);

impl FirstParents {
    /// The parents the file records.
    pub fn load(tx: &WriteTx<'_>) -> Result<FirstParents, StoreError> {
        Ok(FirstParents(tx.all_first_parents()?, RunsCache::default()))
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
    // A renamed file's old path is gone as of this commit, unless the commit also wrote a
    // file there.
    for change in changes {
        let Some(old) = &change.renamed_from else {
            continue;
        };
        if changes.iter().any(|c| &c.path == old) {
            continue;
        }
        if let Some(old_file) = tx.file_id(old)? {
            let gone = FileVersion {
                blob: None,
                lines: 0,
                origins: LineOrigins::Deleted,
            };
            tx.put_file_version(old_file, id, &gone)?;
        }
    }
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
        let mut from_parents: Vec<FromParent<'_>> = Vec::new();
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
                    // Point at the version that holds the lines, so lookups take one step.
                    match tx.file_version(parent_file, at)?.map(|v| v.origins) {
                        Some(LineOrigins::Runs(_) | LineOrigins::Delta { .. }) => {
                            same = Some((parent_file.local(), at.local()))
                        }
                        Some(LineOrigins::SameAs { file, commit }) => same = Some((file, commit)),
                        _ => continue,
                    }
                    break;
                }
                ParentSide::Blocks(blocks) => {
                    let Some((depth, runs)) = parents.1.get(tx, parent_file, at)? else {
                        continue;
                    };
                    from_parents.push((parent_file, at, depth, runs, blocks.as_slice()));
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
                let from: Vec<(&[OriginRun], &[Block])> = from_parents
                    .iter()
                    .map(|(_, _, _, runs, blocks)| (runs.as_slice(), *blocks))
                    .collect();
                let runs = Arc::new(assign(id.local(), file.local(), lines, &from));
                // Deltas against one parent only: a chain, read in at most MAX_DELTA_DEPTH
                // steps. A version that merges lines of several parents keeps its runs.
                let depth = match from_parents.as_slice() {
                    [one] => one.2 + 1,
                    _ => 0,
                };
                let origins = if depth == 0 || depth > MAX_DELTA_DEPTH {
                    parents.1.put(file.local(), id.local(), 0, runs.clone());
                    LineOrigins::Runs(runs.to_vec())
                } else {
                    parents.1.put(file.local(), id.local(), depth, runs);
                    LineOrigins::Delta {
                        parents: from_parents
                            .iter()
                            .map(|(f, c, _, _, blocks)| ParentDelta {
                                file: f.local(),
                                commit: c.local(),
                                blocks: blocks.to_vec(),
                            })
                            .collect(),
                        depth,
                    }
                };
                origins
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
