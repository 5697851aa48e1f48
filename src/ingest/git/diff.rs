//! Diff commits against their first parent on worker threads.
//!
//! Each worker owns a thread-local repository handle, a blob resource cache (used by rename
//! detection) and a tree-diff state for the whole ingest. Workers pull commit indices from a
//! shared counter and send results to the single writer, which puts them back in order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gix::bstr::ByteSlice;
use gix::ObjectId;

use super::{git_error, git_error_in, linediff, renames};
use crate::ingest::provenance::lines::Block;
use crate::ingest::provenance::sides::{self, FileDiff, PendingChange, SideReader};
use crate::ingest::IngestError;
use crate::store::records::ChangeKind;

/// A signature as read from the commit header.
#[derive(Debug, Clone)]
pub struct RawSignature {
    pub name: String,
    pub email: String,
    pub time: i64,
    pub tz_offset: i32,
}

/// One file changed by a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub old_path: Option<String>,
    pub change: ChangeKind,
    pub added: Option<u32>,
    pub removed: Option<u32>,
    pub binary: bool,
    pub old_blob: Option<ObjectId>,
    pub new_blob: Option<ObjectId>,
}

/// A commit read and diffed, ready to be stored.
#[derive(Debug, Clone)]
pub struct DiffedCommit {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author: RawSignature,
    pub committer: RawSignature,
    /// Author identity after `.mailmap`.
    pub canonical_author: (String, String),
    pub message: String,
    pub shallow_boundary: bool,
    pub files: Vec<FileChange>,
    /// Changes whose stats are unknown because a blob is missing.
    pub stats_unknown: u32,
    /// Set when the tree diff itself failed (missing trees); `files` is then empty.
    pub diff_error: Option<String>,
    /// What each parent holds of each changed file, for line provenance (empty when the
    /// ingest does not add provenance).
    pub origins: Vec<PendingChange>,
}

pub struct DiffPool {
    repo: gix::ThreadSafeRepository,
    mailmap: gix::mailmap::Snapshot,
    threads: usize,
    path: PathBuf,
    /// Also read what each parent holds of each changed file (line provenance).
    provenance: bool,
}

impl DiffPool {
    pub fn new(repo: gix::ThreadSafeRepository, threads: usize, provenance: bool) -> DiffPool {
        let local = repo.to_thread_local();
        let mailmap = local.open_mailmap();
        let path = local.path().to_path_buf();
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            threads
        };
        DiffPool {
            repo,
            mailmap,
            threads,
            path,
            provenance,
        }
    }

    /// The repository's `.mailmap`, as the workers resolve authors through it.
    pub fn mailmap(&self) -> &gix::mailmap::Snapshot {
        &self.mailmap
    }

    /// Whether workers also read what each parent holds of each changed file.
    pub fn provenance(&self) -> bool {
        self.provenance
    }

    /// Diff every commit in `order` and hand the results to `sink` in that same order. Stops at
    /// the first error from a worker or from `sink`. Workers run up to `ahead` commits ahead of
    /// `sink`: while `sink` stores a batch of commits in one transaction, they go on diffing
    /// the next batch.
    pub fn run(
        &self,
        order: &[ObjectId],
        ahead: usize,
        mut sink: impl FnMut(DiffedCommit) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        if order.is_empty() {
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let workers = self.threads.min(order.len()).max(1);
        std::thread::scope(|scope| {
            let (tx, rx) = crossbeam_channel::bounded::<(usize, Result<DiffedCommit, IngestError>)>(
                ahead.max(1),
            );
            for n in 0..workers {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                std::thread::Builder::new()
                    .name(format!("lore-diff-{n}"))
                    .spawn_scoped(scope, move || {
                        let mut worker = match Worker::new(self) {
                            Ok(w) => w,
                            Err(e) => {
                                let _ = tx.send((usize::MAX, Err(e)));
                                return;
                            }
                        };
                        while !stop.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= order.len() {
                                break;
                            }
                            let result = worker.diff_commit(order[i]);
                            if tx.send((i, result)).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("spawning a diff worker thread");
            }
            drop(tx);

            let mut pending: BTreeMap<usize, DiffedCommit> = BTreeMap::new();
            let mut expected = 0usize;
            let outcome = (|| {
                for (i, result) in rx.iter() {
                    pending.insert(i, result?);
                    while let Some(done) = pending.remove(&expected) {
                        sink(done)?;
                        expected += 1;
                    }
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            // Drain so no worker blocks on a full channel.
            for _ in rx.iter() {}
            outcome
        })
    }
}

struct Worker<'p> {
    pool: &'p DiffPool,
    repo: gix::Repository,
    state: gix::diff::tree::State,
    lines: linediff::LineCounter,
    sides: Option<SideReader>,
}

fn signature(sig: gix::actor::SignatureRef<'_>) -> RawSignature {
    let (time, tz_offset) = match sig.time() {
        Ok(t) => (t.seconds, t.offset),
        Err(_) => (sig.seconds(), 0),
    };
    RawSignature {
        name: sig.name.to_str_lossy().trim().to_string(),
        email: sig.email.to_str_lossy().trim().to_string(),
        time,
        tz_offset,
    }
}

/// A raw change from the tree diff, before stats.
struct RawChange {
    path: String,
    change: ChangeKind,
    old: Option<(ObjectId, bool)>,
    new: Option<(ObjectId, bool)>,
}

impl<'p> Worker<'p> {
    fn new(pool: &'p DiffPool) -> Result<Worker<'p>, IngestError> {
        let mut repo = pool.repo.to_thread_local();
        repo.object_cache_size_if_unset(64 * 1024 * 1024);
        Ok(Worker {
            pool,
            repo,
            lines: Default::default(),
            state: Default::default(),
            sides: pool.provenance.then(SideReader::default),
        })
    }

    fn diff_commit(&mut self, id: ObjectId) -> Result<DiffedCommit, IngestError> {
        let path = &self.pool.path;
        let commit = self.repo.find_commit(id).map_err(|e| git_error(path, e))?;
        let decoded = commit
            .decode()
            .map_err(|e| git_error_in(path, format!("reading commit {id}"), e))?;
        let author = signature(
            decoded
                .author()
                .map_err(|e| git_error_in(path, format!("reading commit {id}"), e))?,
        );
        let committer = signature(
            decoded
                .committer()
                .map_err(|e| git_error_in(path, format!("reading commit {id}"), e))?,
        );
        let author_ref = decoded.author().map_err(|e| git_error(path, e))?;
        let resolved = self.pool.mailmap.resolve(author_ref);
        let canonical_author = (
            resolved.name.to_str_lossy().trim().to_string(),
            resolved.email.to_str_lossy().trim().to_string(),
        );
        let message = decoded.message.to_str_lossy().into_owned();
        let tree: ObjectId = decoded.tree();
        let parents: Vec<ObjectId> = decoded.parents().collect();
        drop(decoded);
        drop(commit);

        let first_parent_tree = match parents.first() {
            None => None,
            Some(p) => match self
                .repo
                .try_find_object(*p)
                .map_err(|e| git_error(path, e))?
            {
                Some(obj) => Some(
                    obj.try_into_commit()
                        .map_err(|e| git_error(path, e))?
                        .tree_id()
                        .map_err(|e| git_error(path, e))?
                        .detach(),
                ),
                None => None,
            },
        };
        let shallow_boundary = !parents.is_empty() && first_parent_tree.is_none();

        let mut diffed = DiffedCommit {
            id,
            tree,
            parents,
            author,
            committer,
            canonical_author,
            message,
            shallow_boundary,
            files: Vec::new(),
            stats_unknown: 0,
            diff_error: None,
            origins: Vec::new(),
        };
        let raw = match self.tree_changes(first_parent_tree, tree) {
            Ok(changes) => changes,
            Err(e) => {
                diffed.diff_error = Some(e);
                return Ok(diffed);
            }
        };
        let sides: Vec<(Loaded<'_>, Loaded<'_>)> = raw
            .iter()
            .map(|c| (load(&self.repo, c.old), load(&self.repo, c.new)))
            .collect();
        let renamed_from = pair_renames(&raw, &sides);
        // With provenance, each text file's diff against the first parent is computed once:
        // its blocks give both the line stats and the origins.
        let mut first_blocks = match self.sides.as_mut() {
            Some(reader) => first_parent_blocks(reader, &raw, &sides, &renamed_from),
            None => Vec::new(),
        };
        file_changes(
            &raw,
            &sides,
            &renamed_from,
            &first_blocks,
            &mut self.lines,
            &mut diffed,
        );
        if let Some(reader) = self.sides.as_mut() {
            diffed.origins = origins(
                &self.repo,
                reader,
                &raw,
                &sides,
                &renamed_from,
                &mut first_blocks,
                &diffed,
            );
        }
        Ok(diffed)
    }

    /// The changes between two trees, files only, sorted by path.
    fn tree_changes(
        &mut self,
        old: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Vec<RawChange>, String> {
        let hash_kind = new.kind();
        let repo = &self.repo;
        let read_tree = |id: ObjectId| match repo.try_find_object(id) {
            Ok(Some(obj)) => Ok(obj),
            Ok(None) => Err(format!("tree {id} is missing")),
            Err(e) => Err(format!("tree {id}: {e}")),
        };
        let old_tree = old.map(read_tree).transpose()?;
        let new_tree = read_tree(new)?;
        let old_data: &[u8] = old_tree.as_ref().map_or(&[], |t| t.data.as_slice());
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(
            gix::objs::TreeRefIter::from_bytes(old_data, hash_kind),
            gix::objs::TreeRefIter::from_bytes(&new_tree.data, hash_kind),
            &mut self.state,
            &repo.objects,
            &mut recorder,
        )
        .map_err(|e| e.to_string())?;
        let mut out: Vec<RawChange> = recorder
            .records
            .into_iter()
            .filter_map(raw_change)
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// For each change, the deleted file it was renamed from (exact or similar content), when it
/// is an addition that pairs with a deletion.
fn pair_renames(raw: &[RawChange], sides: &[(Loaded<'_>, Loaded<'_>)]) -> Vec<Option<usize>> {
    let candidate = |i: usize, old_side: bool| {
        let (side, id) = if old_side {
            (&sides[i].0, raw[i].old)
        } else {
            (&sides[i].1, raw[i].new)
        };
        // Submodules take part in exact renames only: their "content" is a commit id.
        id.map(|(id, submodule)| {
            (
                i,
                renames::Candidate {
                    path: raw[i].path.as_str(),
                    id,
                    data: if submodule { None } else { side.data() },
                },
            )
        })
    };
    let (deleted_idx, deleted): (Vec<usize>, Vec<_>) = raw
        .iter()
        .enumerate()
        .filter(|(_, c)| c.change == ChangeKind::Deleted)
        .filter_map(|(i, _)| candidate(i, true))
        .unzip();
    let (added_idx, added): (Vec<usize>, Vec<_>) = raw
        .iter()
        .enumerate()
        .filter(|(_, c)| c.change == ChangeKind::Added)
        .filter_map(|(i, _)| candidate(i, false))
        .unzip();
    let mut renamed_from: Vec<Option<usize>> = vec![None; raw.len()];
    for (d, a) in renames::pair(&deleted, &added) {
        renamed_from[added_idx[a]] = Some(deleted_idx[d]);
    }
    renamed_from
}

/// For each change (by index) that modifies or renames a text file's content, the blocks of
/// lines the new version keeps from the first parent's.
fn first_parent_blocks(
    reader: &mut SideReader,
    raw: &[RawChange],
    sides: &[(Loaded<'_>, Loaded<'_>)],
    renamed_from: &[Option<usize>],
) -> Vec<Option<Vec<Block>>> {
    raw.iter()
        .enumerate()
        .map(|(i, change)| {
            let (old_id, old_side) = match renamed_from[i] {
                Some(src) => (raw[src].old?, &sides[src].0),
                None if change.change == ChangeKind::Modified => (change.old?, &sides[i].0),
                None => return None,
            };
            let new_id = change.new?;
            // Submodules are compared by their commit line, and unchanged content not at all.
            if old_id.1 || new_id.1 || old_id.0 == new_id.0 {
                return None;
            }
            let (old, new) = (old_side.data()?, sides[i].1.data()?);
            (sides::is_text(old) && sides::is_text(new)).then(|| reader.blocks(old, new))
        })
        .collect()
}

/// One [`FileChange`] per change with its line stats; deletions consumed by a rename are
/// left out (the rename carries them). Where `first_blocks` has a change's diff already, the
/// stats are counted from it.
fn file_changes(
    raw: &[RawChange],
    sides: &[(Loaded<'_>, Loaded<'_>)],
    renamed_from: &[Option<usize>],
    first_blocks: &[Option<Vec<Block>>],
    lines: &mut linediff::LineCounter,
    diffed: &mut DiffedCommit,
) {
    let mut consumed = vec![false; raw.len()];
    for &src in renamed_from.iter().flatten() {
        consumed[src] = true;
    }
    for (i, change) in raw.iter().enumerate() {
        if consumed[i] {
            continue;
        }
        let (kind, old_path, old_side, old_id) = match renamed_from[i] {
            Some(src) => (
                ChangeKind::Renamed,
                Some(raw[src].path.clone()),
                &sides[src].0,
                raw[src].old,
            ),
            None => (change.change, None, &sides[i].0, change.old),
        };
        let same_blob = matches!((old_id, change.new), (Some((a, _)), Some((b, _))) if a == b);
        let from_blocks = first_blocks
            .get(i)
            .and_then(Option::as_ref)
            .and_then(|blocks| {
                let (old, new) = old_side.data().zip(sides[i].1.data())?;
                linediff::stats_from_blocks(blocks, old, new)
            });
        let stats = from_blocks
            .or_else(|| linediff::stats(lines, old_side.data(), sides[i].1.data(), same_blob));
        let (added, removed, binary) = match stats {
            Some(s) => s,
            None => {
                diffed.stats_unknown += 1;
                (None, None, false)
            }
        };
        diffed.files.push(FileChange {
            path: change.path.clone(),
            old_path,
            change: kind,
            added,
            removed,
            binary,
            old_blob: old_id.map(|(id, _)| id),
            new_blob: change.new.map(|(id, _)| id),
        });
    }
}

/// Read one side of a change.
/// What each parent holds of each file `diffed` changed, from the blobs the diff loaded.
fn origins(
    repo: &gix::Repository,
    reader: &mut SideReader,
    raw: &[RawChange],
    sides: &[(Loaded<'_>, Loaded<'_>)],
    renamed_from: &[Option<usize>],
    first_blocks: &mut [Option<Vec<Block>>],
    diffed: &DiffedCommit,
) -> Vec<PendingChange> {
    let parents: &[ObjectId] = if diffed.shallow_boundary {
        &[]
    } else {
        &diffed.parents
    };
    let by_path: std::collections::HashMap<&str, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, c)| (c.path.as_str(), i))
        .collect();
    diffed
        .files
        .iter()
        .map(|f| {
            let i = by_path[f.path.as_str()];
            let submodule = raw[i].new.is_some_and(|(_, s)| s);
            if (f.binary || submodule) && f.new_blob.is_some() {
                return PendingChange {
                    path: f.path.clone(),
                    blob: f.new_blob,
                    lines: None,
                    parents: Vec::new(),
                    renamed_from: f.old_path.clone(),
                };
            }
            let old_side = match renamed_from[i] {
                Some(src) => &sides[src].0,
                None => &sides[i].0,
            };
            let old = match (f.change, f.old_blob) {
                (ChangeKind::Modified | ChangeKind::Renamed, Some(b)) => {
                    Some((f.old_path.as_deref().unwrap_or(&f.path), b, old_side.data()))
                }
                _ => None,
            };
            let mut change = reader.change(
                repo,
                parents,
                FileDiff {
                    path: &f.path,
                    new_blob: f.new_blob,
                    new: sides[i].1.data(),
                    old,
                    old_blocks: first_blocks.get_mut(i).and_then(Option::take),
                },
            );
            change.renamed_from = f.old_path.clone();
            change
        })
        .collect()
}

fn load(repo: &gix::Repository, side: Option<(ObjectId, bool)>) -> Loaded<'_> {
    match side {
        None => Loaded::Absent,
        Some((id, true)) => Loaded::Data(Side::Owned(
            format!("Subproject commit {id}\n").into_bytes(),
        )),
        Some((id, false)) => match repo.try_find_object(id) {
            Ok(Some(obj)) => Loaded::Data(Side::Object(obj)),
            _ => Loaded::Missing,
        },
    }
}

/// One side of a file change.
enum Loaded<'r> {
    /// The file does not exist on this side (added or deleted).
    Absent,
    /// The object should exist but is not in the repository.
    Missing,
    Data(Side<'r>),
}

impl Loaded<'_> {
    /// Content for stats: `Some(empty)` for an absent side, `None` when missing.
    fn data(&self) -> Option<&[u8]> {
        match self {
            Loaded::Absent => Some(&[]),
            Loaded::Missing => None,
            Loaded::Data(side) => Some(side),
        }
    }
}

/// File content, borrowed from the object database where possible.
enum Side<'r> {
    Owned(Vec<u8>),
    Object(gix::Object<'r>),
}

impl std::ops::Deref for Side<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Side::Owned(v) => v,
            Side::Object(o) => &o.data,
        }
    }
}

fn raw_change(change: gix::diff::tree::recorder::Change) -> Option<RawChange> {
    use gix::diff::tree::recorder::Change;
    let stored = |p: &gix::bstr::BStr| crate::store::paths::from_git(p).into_owned();
    match change {
        Change::Addition {
            entry_mode,
            oid,
            path,
            ..
        } => (!entry_mode.is_tree()).then(|| RawChange {
            path: stored(path.as_ref()),
            change: ChangeKind::Added,
            old: None,
            new: Some((oid, entry_mode.is_commit())),
        }),
        Change::Deletion {
            entry_mode,
            oid,
            path,
            ..
        } => (!entry_mode.is_tree()).then(|| RawChange {
            path: stored(path.as_ref()),
            change: ChangeKind::Deleted,
            old: Some((oid, entry_mode.is_commit())),
            new: None,
        }),
        Change::Modification {
            previous_entry_mode,
            previous_oid,
            entry_mode,
            oid,
            path,
        } => {
            // A tree replaced by a file (or the reverse): only the file side is a change here;
            // the tree's files show up as their own additions or deletions.
            let old = (!previous_entry_mode.is_tree())
                .then_some((previous_oid, previous_entry_mode.is_commit()));
            let new = (!entry_mode.is_tree()).then_some((oid, entry_mode.is_commit()));
            let change = match (old, new) {
                (Some(_), Some(_)) => ChangeKind::Modified,
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Deleted,
                (None, None) => return None,
            };
            Some(RawChange {
                path: stored(path.as_ref()),
                change,
                old,
                new,
            })
        }
    }
}
