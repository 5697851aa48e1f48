//! Line provenance: for every file version a commit wrote, the commit that introduced each of
//! its lines, as `git blame` computes it, carried forward over the history in one pass.
//!
//! Commits are visited in id order, which is parents-first, from the watermark
//! `meta["provenance.commits_done"]`, a batch at a time:
//!
//! 1. On worker threads ([`sides`]), each changed file of each commit is diffed against the
//!    file in each parent (the first parent's blob comes from the commit's diff, other
//!    parents' from their trees): either the blob is the parent's, or the diff gives the
//!    blocks of unchanged lines.
//! 2. In one write transaction per batch, in order ([`apply`]), each version's runs are
//!    computed from its parents' runs (looked up by file and blob): a line kept from the first
//!    parent takes its origin, then from later parents, and any other line was introduced by
//!    the commit. A version identical to a parent's is stored as a reference to it. The
//!    watermark moves in the same transaction, so a killed pass resumes with the same result.
//!
//! The history ingest does both steps itself for the commits it adds, with the blobs its own
//! diff read and in the transaction that stores the commits, when the file's provenance is
//! complete up to then ([`in_sync`]); [`run`] is the pass for what it did not cover (a file
//! from an earlier lore, an ingest with `--no-provenance`).
//!
//! SZZ reads the origins of the lines a fix changed from here, and `lore blame` prints them.

pub mod apply;
pub mod lines;
pub mod sides;

use std::path::Path;
use std::time::Instant;

use gix::ObjectId;
use rayon::prelude::*;
use serde::Serialize;

use self::apply::FirstParents;
use self::sides::{FileDiff, PendingChange, SideReader};
use super::IngestError;
use crate::progress::Progress;
use crate::store::records::{ChangeKind, EdgeDetail};
use crate::store::{NodeId, NodeKind, ReadTx, Rel, Store, StoreError, WriteTx};

/// Meta key: how many commits (in id order) have their file versions stored.
pub const DONE_KEY: &str = "provenance.commits_done";

/// Meta key: the commit the repository's HEAD pointed at when the pass last ran (raw id), the
/// default revision of `lore blame`.
pub const HEAD_KEY: &str = "provenance.head";

/// Commits per write transaction.
const BATCH: usize = 512;

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

impl ProvenanceReport {
    pub fn add(&mut self, other: &ProvenanceReport) {
        self.commits += other.commits;
        self.versions += other.versions;
        self.shared += other.shared;
        self.unknown += other.unknown;
        self.parent_missing += other.parent_missing;
        self.elapsed_ms += other.elapsed_ms;
    }
}

/// A commit as read from the store: its parents and what it changed against the first one.
struct CommitPlan {
    id: NodeId,
    parents: Vec<ObjectId>,
    touches: Vec<Touch>,
}

struct Touch {
    path: String,
    change: ChangeKind,
    binary: bool,
    old_path: String,
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
            if let (Some(_), Ok(p)) = (read.commit_by_sha(sha)?, ObjectId::try_from(sha.as_slice()))
            {
                parents.push(p);
            }
        }
    }
    let mut touches = Vec::new();
    for edge in read.edges_from(id, Rel::Touches)? {
        let EdgeDetail::Touch(stats) = edge.meta.detail else {
            continue;
        };
        let path = read.string(read.file(edge.dst)?.path)?;
        let old_path = match stats.old_path {
            Some(p) => read.string(p)?,
            None => path.clone(),
        };
        touches.push(Touch {
            path,
            change: stats.change,
            binary: stats.binary,
            old_path,
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

fn renamed_from(t: &Touch) -> Option<String> {
    (t.change == ChangeKind::Renamed && t.old_path != t.path).then(|| t.old_path.clone())
}

/// What each parent holds of each file `plan`'s commit changed.
fn sides_of(
    repo: &gix::Repository,
    reader: &mut SideReader,
    plan: &CommitPlan,
) -> Vec<PendingChange> {
    plan.touches
        .iter()
        .map(|t| {
            let new_blob = t.new_blob.filter(|_| t.change != ChangeKind::Deleted);
            if t.binary && new_blob.is_some() {
                // Binary: no lines, no parents.
                return PendingChange {
                    path: t.path.clone(),
                    blob: new_blob,
                    lines: None,
                    parents: Vec::new(),
                    renamed_from: renamed_from(t),
                };
            }
            let old = match (t.change, t.old_blob) {
                (ChangeKind::Modified | ChangeKind::Renamed, Some(b)) => {
                    Some((t.old_path.as_str(), b, None))
                }
                _ => None,
            };
            let mut change = reader.change(
                repo,
                &plan.parents,
                FileDiff {
                    path: &t.path,
                    new_blob,
                    new: None,
                    old,
                    old_blocks: None,
                },
            );
            change.renamed_from = renamed_from(t);
            change
        })
        .collect()
}

fn done_count(read: &ReadTx) -> Result<u64, StoreError> {
    Ok(read
        .meta(DONE_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Whether the file's provenance covers every stored commit, so that an ingest can add the
/// provenance of the commits it stores as it stores them.
pub fn in_sync(read: &ReadTx) -> Result<bool, StoreError> {
    Ok(done_count(read)? >= read.commit_count()?)
}

/// For the history ingest: state kept across its batches while it adds provenance with the
/// commits it stores.
pub struct Inline {
    parents: FirstParents,
    pub report: ProvenanceReport,
}

impl Inline {
    pub fn start(tx: &WriteTx<'_>) -> Result<Inline, StoreError> {
        Ok(Inline {
            parents: FirstParents::load(tx)?,
            report: ProvenanceReport::default(),
        })
    }

    /// Store the versions of commit `id`, stored in this transaction.
    pub fn store(
        &mut self,
        tx: &mut WriteTx<'_>,
        id: NodeId,
        parents: &[ObjectId],
        changes: &[PendingChange],
    ) -> Result<(), StoreError> {
        apply::store_commit(
            tx,
            &mut self.parents,
            id,
            parents,
            changes,
            &mut self.report,
        )
    }

    /// Close a batch: every stored commit has its versions.
    pub fn finish_batch(&self, tx: &mut WriteTx<'_>, commits: u64) -> Result<(), StoreError> {
        tx.set_meta(DONE_KEY, &commits.to_le_bytes())
    }
}

/// Store the file versions of every commit not covered yet, and record the repository's HEAD.
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
    let mut parents = store.write(|tx| FirstParents::load(tx))?;
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
        let works: Vec<Vec<PendingChange>> = plans
            .par_iter()
            .map_init(
                || (sync.to_thread_local(), SideReader::default()),
                |(repo, reader), p| {
                    let out = sides_of(repo, reader, p);
                    progress.advance(1);
                    out
                },
            )
            .collect();
        store.write(|tx| -> Result<(), StoreError> {
            for (plan, changes) in plans.iter().zip(&works) {
                apply::store_commit(
                    tx,
                    &mut parents,
                    plan.id,
                    &plan.parents,
                    changes,
                    &mut report,
                )?;
            }
            tx.set_meta(DONE_KEY, &end.to_le_bytes())?;
            if end == total {
                record_head(tx)?;
            }
            Ok(())
        })?;
        next = end;
    }
    progress.done();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
