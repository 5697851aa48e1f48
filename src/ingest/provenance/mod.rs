//! Line provenance: for every file version a commit wrote, the commit that introduced each of
//! its lines, as `git blame` computes it, carried forward over the history in one pass.
//!
//! Commits are visited in id order, which is parents-first, from the watermark
//! `meta["provenance.commits_done"]`, a batch at a time:
//!
//! 1. On worker threads, each changed file of each commit is diffed against the file in each
//!    parent (the first parent's blob comes from the stored diff, other parents' from their
//!    trees): either the blob is the parent's, or the diff gives the blocks of unchanged lines.
//! 2. In one write transaction per batch, in order, each version's runs are computed from its
//!    parents' runs (looked up by file and blob): a line kept from the first parent takes its
//!    origin, then from later parents, and any other line was introduced by the commit. A
//!    version identical to a parent's is stored as a reference to it. The watermark moves in
//!    the same transaction, so a killed pass resumes with the same result.
//!
//! SZZ reads the origins of the lines a fix changed from here, and `lore blame` prints them.

pub mod lines;

use std::path::Path;
use std::time::Instant;

use gix::ObjectId;
use rayon::prelude::*;
use serde::Serialize;

use self::lines::{Block, LineDiffer};
use super::IngestError;
use crate::progress::Progress;
use crate::store::records::{ChangeKind, EdgeDetail, FileVersion, LineOrigins};
use crate::store::{NodeId, NodeKind, ReadTx, Rel, Store, StoreError, WriteTx};

/// Meta key: how many commits (in id order) have their file versions stored.
pub const DONE_KEY: &str = "provenance.commits_done";

/// Meta key: the commit the repository's HEAD pointed at when the pass last ran (raw id), the
/// default revision of `lore blame`.
pub const HEAD_KEY: &str = "provenance.head";

/// Commits per write transaction.
const BATCH: usize = 512;

/// Files larger than this get no line origins (as git's own diff limits would make blame
/// meaningless and slow on generated data).
const MAX_BYTES: usize = 64 << 20;

/// What one provenance pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProvenanceReport {
    pub commits: u64,
    /// File versions stored with their own runs.
    pub versions: u64,
    /// File versions identical to a parent's, stored as a reference to it.
    pub shared: u64,
    /// Binary, unreadable or oversized versions, stored without line origins.
    pub unknown: u64,
    /// Parent versions that could not be found (their lines count as the commit's own).
    pub parent_missing: u64,
    pub elapsed_ms: u64,
}

/// What a parent looks like to one changed file.
enum ParentSide {
    /// The parent has the file with the same blob.
    Same,
    /// The parent has the file with another blob; these lines are kept from it.
    Blocks(Vec<Block>),
}

struct ParentFile {
    commit: NodeId,
    /// The file node in the parent (the old path of a rename).
    file: NodeId,
    blob: ObjectId,
    side: ParentSide,
}

/// One changed file of one commit, ready to be given its runs.
struct Change {
    file: NodeId,
    blob: Option<ObjectId>,
    /// `None`: no line origins (binary, unreadable, oversized).
    lines: Option<u32>,
    parents: Vec<ParentFile>,
}

struct CommitWork {
    id: NodeId,
    first_parent: Option<NodeId>,
    changes: Vec<Change>,
}

/// A commit as read from the store: its parents and what it changed against the first one.
struct CommitPlan {
    id: NodeId,
    parents: Vec<(NodeId, ObjectId)>,
    touches: Vec<Touch>,
}

struct Touch {
    file: NodeId,
    path: String,
    change: ChangeKind,
    binary: bool,
    old_file: Option<NodeId>,
    old_blob: Option<ObjectId>,
    new_blob: Option<ObjectId>,
}

fn oid(bytes: &Option<Vec<u8>>) -> Option<ObjectId> {
    bytes
        .as_ref()
        .and_then(|b| ObjectId::try_from(b.as_slice()).ok())
}

fn plan(read: &ReadTx, id: NodeId) -> Result<CommitPlan, StoreError> {
    let record = read.commit(id)?;
    let mut parents = Vec::new();
    if !record.shallow_boundary {
        for sha in &record.parents {
            if let (Some(pid), Ok(p)) = (read.commit_by_sha(sha)?, ObjectId::try_from(sha.as_slice())) {
                parents.push((pid, p));
            }
        }
    }
    let mut touches = Vec::new();
    for edge in read.edges_from(id, Rel::Touches)? {
        let EdgeDetail::Touch(stats) = edge.meta.detail else {
            continue;
        };
        let old_file = match stats.old_path {
            Some(p) => read.file_by_path(&read.string(p)?)?,
            None => Some(edge.dst),
        };
        touches.push(Touch {
            file: edge.dst,
            path: read.string(read.file(edge.dst)?.path)?,
            change: stats.change,
            binary: stats.binary,
            old_file,
            old_blob: oid(&stats.old_blob),
            new_blob: oid(&stats.new_blob),
        });
    }
    Ok(CommitPlan {
        id,
        parents,
        touches,
    })
}

/// Worker-side state: a repository handle and a differ.
struct Worker {
    repo: gix::Repository,
    differ: LineDiffer,
}

impl Worker {
    fn blob(&self, id: ObjectId) -> Option<Vec<u8>> {
        self.repo
            .try_find_object(id)
            .ok()
            .flatten()
            .map(|o| o.detach().data)
    }

    fn blob_in(&self, commit: ObjectId, path: &str) -> Option<ObjectId> {
        let tree = self.repo.find_commit(commit).ok()?.tree().ok()?;
        let entry = tree
            .lookup_entry_by_path(crate::store::paths::to_git_path(path))
            .ok()??;
        entry.mode().is_blob().then(|| entry.object_id())
    }

    fn work(&mut self, plan: &CommitPlan) -> CommitWork {
        let mut changes = Vec::new();
        for t in &plan.touches {
            if t.change == ChangeKind::Deleted {
                changes.push(Change {
                    file: t.file,
                    blob: None,
                    lines: None,
                    parents: Vec::new(),
                });
                continue;
            }
            let content = (!t.binary)
                .then(|| t.new_blob.and_then(|b| self.blob(b)))
                .flatten()
                .filter(|c| c.len() <= MAX_BYTES && !c[..c.len().min(8000)].contains(&0));
            let mut parents = Vec::new();
            if let Some(new) = &content {
                for (k, (pid, psha)) in plan.parents.iter().enumerate() {
                    let (file, blob) = if k == 0 {
                        match (t.change, t.old_file, t.old_blob) {
                            (ChangeKind::Modified | ChangeKind::Renamed, Some(f), Some(b)) => (f, b),
                            _ => continue,
                        }
                    } else {
                        match self.blob_in(*psha, &t.path) {
                            Some(b) => (t.file, b),
                            None => continue,
                        }
                    };
                    let side = if Some(blob) == t.new_blob {
                        ParentSide::Same
                    } else {
                        match self.blob(blob) {
                            Some(old) if !old[..old.len().min(8000)].contains(&0) => {
                                ParentSide::Blocks(self.differ.blocks(&old, new))
                            }
                            _ => continue,
                        }
                    };
                    parents.push(ParentFile {
                        commit: *pid,
                        file,
                        blob,
                        side,
                    });
                }
            }
            changes.push(Change {
                file: t.file,
                blob: t.new_blob,
                lines: content.as_deref().map(lines::line_count),
                parents,
            });
        }
        CommitWork {
            id: plan.id,
            first_parent: plan.parents.first().map(|p| p.0),
            changes,
        }
    }
}

/// The first parents of every commit the pass has seen, in memory: telling apart versions
/// that share a blob walks the first-parent chain, which is too slow through the table.
struct FirstParents(Vec<u64>);

impl FirstParents {
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
}

/// The commit holding the version of `file` with content `blob` that `commit` sees.
fn find_version(
    tx: &WriteTx<'_>,
    parents: &FirstParents,
    file: NodeId,
    blob: &ObjectId,
    commit: NodeId,
) -> Result<Option<NodeId>, StoreError> {
    let candidates = tx.versions_with_blob(file, blob.as_bytes(), commit)?;
    Ok(parents
        .nearest(&candidates, commit.local())
        .map(|c| NodeId::new(NodeKind::Commit, c)))
}

/// Store the versions one commit wrote.
fn store_commit(
    tx: &mut WriteTx<'_>,
    parents: &mut FirstParents,
    work: CommitWork,
    report: &mut ProvenanceReport,
) -> Result<(), StoreError> {
    parents.set(work.id, work.first_parent);
    if let Some(p) = work.first_parent {
        tx.set_first_parent(work.id, p)?;
    }
    for change in work.changes {
        let blob = change.blob.map(|b| b.as_bytes().to_vec());
        let Some(lines) = change.lines else {
            let origins = if blob.is_none() {
                LineOrigins::Deleted
            } else {
                report.unknown += 1;
                LineOrigins::Unknown
            };
            tx.put_file_version(
                change.file,
                work.id,
                &FileVersion {
                    blob,
                    lines: 0,
                    origins,
                },
            )?;
            continue;
        };
        let mut from_parents = Vec::new();
        let mut same = None;
        for p in &change.parents {
            let Some(at) = find_version(tx, parents, p.file, &p.blob, p.commit)? else {
                report.parent_missing += 1;
                continue;
            };
            match &p.side {
                ParentSide::Same => {
                    // Point at the version that holds the runs, so lookups take one step.
                    match tx.file_version(p.file, at)?.map(|v| v.origins) {
                        Some(LineOrigins::Runs(_)) => same = Some((p.file.local(), at.local())),
                        Some(LineOrigins::SameAs { file, commit }) => same = Some((file, commit)),
                        _ => continue,
                    }
                    break;
                }
                ParentSide::Blocks(blocks) => {
                    let Some(runs) = tx.origin_runs(p.file, at)? else {
                        continue;
                    };
                    let parent_lines = lines::expand(&runs);
                    from_parents.push((parent_lines, blocks.clone()));
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
                    work.id.local(),
                    change.file.local(),
                    lines,
                    &from_parents,
                ))
            }
        };
        tx.put_file_version(
            change.file,
            work.id,
            &FileVersion {
                blob,
                lines,
                origins,
            },
        )?;
    }
    Ok(())
}

fn done_count(read: &ReadTx) -> Result<u64, StoreError> {
    Ok(read
        .meta(DONE_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Store the file versions of every commit not covered yet.
pub fn run(
    store: &Store,
    repo_path: &Path,
    progress: &dyn Progress,
) -> Result<ProvenanceReport, IngestError> {
    let started = Instant::now();
    let mut report = ProvenanceReport::default();
    let repo = gix::open(repo_path).map_err(|e| IngestError::NotARepository {
        path: repo_path.into(),
        detail: Some(e.to_string()),
    })?;
    let head = repo.head_id().ok().map(|id| id.detach());
    let (done, total, head_stored) = {
        let read = store.read()?;
        let head_stored = match head {
            Some(h) => read.commit_by_sha(h.as_bytes())?.is_some(),
            None => false,
        };
        (done_count(&read)?, read.commit_count()?, head_stored)
    };
    let record_head = |tx: &mut WriteTx<'_>| -> Result<(), StoreError> {
        match head {
            Some(h) if head_stored => tx.set_meta(HEAD_KEY, h.as_bytes()),
            _ => Ok(()),
        }
    };
    if done >= total {
        let read = store.read()?;
        let current = read.meta(HEAD_KEY)?;
        drop(read);
        if head_stored && current.as_deref() != head.as_ref().map(|h| h.as_bytes()) {
            store.write(record_head)?;
        }
        return Ok(report);
    }
    let sync = repo.into_sync();
    let mut parents = FirstParents(store.read()?.all_first_parents()?);
    progress.phase("line provenance", Some(total - done));
    let mut next = done;
    while next < total {
        let end = (next + BATCH as u64).min(total);
        let plans: Vec<CommitPlan> = {
            let read = store.read()?;
            (next..end)
                .map(|local| plan(&read, NodeId::new(NodeKind::Commit, local)))
                .collect::<Result<_, _>>()?
        };
        let works: Vec<CommitWork> = plans
            .par_iter()
            .map_init(
                || Worker {
                    repo: sync.to_thread_local(),
                    differ: LineDiffer::default(),
                },
                |w, p| {
                    let out = w.work(p);
                    progress.advance(1);
                    out
                },
            )
            .collect();
        store.write(|tx| -> Result<(), StoreError> {
            for work in works {
                store_commit(tx, &mut parents, work, &mut report)?;
            }
            tx.set_meta(DONE_KEY, &end.to_le_bytes())?;
            if end == total {
                record_head(tx)?;
            }
            Ok(())
        })?;
        report.commits += end - next;
        next = end;
    }
    progress.done();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
