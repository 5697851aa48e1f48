//! Diff commits against their first parent on worker threads.
//!
//! Each worker owns a thread-local repository handle, a blob resource cache (used by rename
//! detection) and a tree-diff state for the whole ingest. Workers pull commit indices from a
//! shared counter and send results to the single writer, which puts them back in order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gix::bstr::ByteSlice;
use gix::diff::blob::{sources, Algorithm, Diff, InternedInput};
use gix::diff::tree_with_rewrites::{ChangeRef, Options};
use gix::diff::Rewrites;
use gix::ObjectId;

use super::git_error;
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
}

pub struct DiffPool {
    repo: gix::ThreadSafeRepository,
    mailmap: gix::mailmap::Snapshot,
    threads: usize,
    path: PathBuf,
}

impl DiffPool {
    pub fn new(repo: gix::ThreadSafeRepository, threads: usize) -> DiffPool {
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
        }
    }

    /// Diff every commit in `order` and hand the results to `sink` in that same order. Stops at
    /// the first error from a worker or from `sink`.
    pub fn run(
        &self,
        order: &[ObjectId],
        mut sink: impl FnMut(DiffedCommit) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        if order.is_empty() {
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let workers = self.threads.min(order.len()).max(1);
        std::thread::scope(|scope| {
            let (tx, rx) =
                crossbeam_channel::bounded::<(usize, Result<DiffedCommit, IngestError>)>(256);
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
    cache: gix::diff::blob::Platform,
    state: gix::diff::tree::State,
}

/// What git calls binary: a NUL byte in the first 8000 bytes.
fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(8000)].contains(&0)
}

fn count_lines(data: &[u8]) -> u32 {
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let unterminated = usize::from(!data.is_empty() && !data.ends_with(b"\n"));
    (newlines + unterminated) as u32
}

/// Cut the lines both sides share at the start and at the end; what is left holds every
/// difference. Returns the two middles, each starting at a line start.
fn trim_common_lines<'a>(a: &'a [u8], b: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let mut prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    prefix = a[..prefix]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let mut suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let at_line_start = |s: &[u8], cut: usize| cut == 0 || s[cut - 1] == b'\n';
    if !(at_line_start(a, a.len() - suffix) && at_line_start(b, b.len() - suffix)) {
        // Move the cut forward to just after the first newline inside the shared suffix.
        let tail = &a[a.len() - suffix..];
        suffix = match tail.iter().position(|&c| c == b'\n') {
            Some(i) => suffix - (i + 1),
            None => 0,
        };
    }
    (&a[..a.len() - suffix], &b[..b.len() - suffix])
}

/// `(added, removed)` lines between two texts, with a Myers diff as `git diff --numstat` uses.
fn line_diff_counts(old: &[u8], new: &[u8]) -> (u32, u32) {
    let (old, new) = trim_common_lines(old, new);
    if old.is_empty() || new.is_empty() {
        return (count_lines(new), count_lines(old));
    }
    let input = InternedInput::new(sources::byte_lines(old), sources::byte_lines(new));
    let diff = Diff::compute(Algorithm::Myers, &input);
    (diff.count_additions(), diff.count_removals())
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
    old_path: Option<String>,
    change: ChangeKind,
    old: Option<(ObjectId, bool)>,
    new: Option<(ObjectId, bool)>,
}

impl<'p> Worker<'p> {
    fn new(pool: &'p DiffPool) -> Result<Worker<'p>, IngestError> {
        let mut repo = pool.repo.to_thread_local();
        repo.object_cache_size_if_unset(64 * 1024 * 1024);
        let cache = repo
            .diff_resource_cache_for_tree_diff()
            .map_err(|e| git_error(&pool.path, e))?;
        Ok(Worker {
            pool,
            repo,
            cache,
            state: Default::default(),
        })
    }

    fn diff_commit(&mut self, id: ObjectId) -> Result<DiffedCommit, IngestError> {
        let path = &self.pool.path;
        let commit = self.repo.find_commit(id).map_err(|e| git_error(path, e))?;
        let decoded = commit
            .decode()
            .map_err(|e| git_error(path, format!("commit {id}: {e}")))?;
        let author = signature(
            decoded
                .author()
                .map_err(|e| git_error(path, format!("commit {id}: {e}")))?,
        );
        let committer = signature(
            decoded
                .committer()
                .map_err(|e| git_error(path, format!("commit {id}: {e}")))?,
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
        };
        let raw = match self.tree_changes(first_parent_tree, tree, true) {
            Ok(changes) => changes,
            // Rename detection reads blobs; retry without it when some are missing.
            Err(_) => match self.tree_changes(first_parent_tree, tree, false) {
                Ok(changes) => changes,
                Err(e) => {
                    diffed.diff_error = Some(e);
                    return Ok(diffed);
                }
            },
        };
        for change in raw {
            let stats = self.line_stats(change.old, change.new);
            let (added, removed, binary) = match stats {
                Some(s) => s,
                None => {
                    diffed.stats_unknown += 1;
                    (None, None, false)
                }
            };
            diffed.files.push(FileChange {
                path: change.path,
                old_path: change.old_path,
                change: change.change,
                added,
                removed,
                binary,
            });
        }
        Ok(diffed)
    }

    fn tree_changes<'r>(
        &'r mut self,
        old: Option<ObjectId>,
        new: ObjectId,
        rewrites: bool,
    ) -> Result<Vec<RawChange>, String> {
        let hash_kind = new.kind();
        let read_tree = |repo: &'r gix::Repository, id: ObjectId| match repo.try_find_object(id) {
            Ok(Some(obj)) => Ok(obj),
            Ok(None) => Err(format!("tree {id} is missing")),
            Err(e) => Err(format!("tree {id}: {e}")),
        };
        let old_tree = old.map(|id| read_tree(&self.repo, id)).transpose()?;
        let new_tree = read_tree(&self.repo, new)?;
        let old_data: &[u8] = old_tree.as_ref().map_or(&[], |t| t.data.as_slice());
        let new_data: &[u8] = new_tree.data.as_slice();
        let options = Options {
            location: Some(gix::diff::tree::recorder::Location::Path),
            rewrites: rewrites.then_some(Rewrites {
                copies: None,
                percentage: Some(0.5),
                limit: 1000,
                track_empty: false,
            }),
        };
        let mut out = Vec::new();
        let result = gix::diff::tree_with_rewrites(
            gix::objs::TreeRefIter::from_bytes(old_data, hash_kind),
            gix::objs::TreeRefIter::from_bytes(new_data, hash_kind),
            &mut self.cache,
            &mut self.state,
            &self.repo.objects,
            |change| {
                if let Some(c) = raw_change(change) {
                    out.push(c);
                }
                Ok(std::ops::ControlFlow::Continue(()))
            },
            options,
        );
        self.cache.clear_resource_cache_keep_allocation();
        result.map_err(|e| e.to_string())?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// `(added, removed, binary)`, or `None` when an object is missing. Submodule entries count
    /// as one line, as `git diff --numstat` does.
    fn line_stats(
        &self,
        old: Option<(ObjectId, bool)>,
        new: Option<(ObjectId, bool)>,
    ) -> Option<(Option<u32>, Option<u32>, bool)> {
        if let (Some((a, _)), Some((b, _))) = (old, new) {
            if a == b {
                return Some((Some(0), Some(0), false));
            }
        }
        let old_data = self.side(old)?;
        let new_data = self.side(new)?;
        if is_binary(&old_data) || is_binary(&new_data) {
            return Some((None, None, true));
        }
        let (added, removed) = if old_data.is_empty() {
            (count_lines(&new_data), 0)
        } else if new_data.is_empty() {
            (0, count_lines(&old_data))
        } else {
            line_diff_counts(&old_data, &new_data)
        };
        Some((Some(added), Some(removed), false))
    }

    /// The content of one side of a change; empty for an absent side; a one-line stand-in for
    /// a submodule commit.
    fn side(&self, side: Option<(ObjectId, bool)>) -> Option<Side<'_>> {
        match side {
            None => Some(Side::Owned(Vec::new())),
            Some((id, true)) => Some(Side::Owned(
                format!("Subproject commit {id}\n").into_bytes(),
            )),
            Some((id, false)) => match self.repo.try_find_object(id) {
                Ok(Some(obj)) => Some(Side::Object(obj)),
                _ => None,
            },
        }
    }
}

/// One side of a file change, borrowed from the object database where possible.
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

fn raw_change(change: ChangeRef<'_>) -> Option<RawChange> {
    let lossy = |p: &gix::bstr::BStr| p.to_str_lossy().into_owned();
    match change {
        ChangeRef::Addition {
            location,
            entry_mode,
            id,
            ..
        } => (!entry_mode.is_tree()).then(|| RawChange {
            path: lossy(location),
            old_path: None,
            change: ChangeKind::Added,
            old: None,
            new: Some((id, entry_mode.is_commit())),
        }),
        ChangeRef::Deletion {
            location,
            entry_mode,
            id,
            ..
        } => (!entry_mode.is_tree()).then(|| RawChange {
            path: lossy(location),
            old_path: None,
            change: ChangeKind::Deleted,
            old: Some((id, entry_mode.is_commit())),
            new: None,
        }),
        ChangeRef::Modification {
            location,
            previous_entry_mode,
            previous_id,
            entry_mode,
            id,
        } => {
            if entry_mode.is_tree() && previous_entry_mode.is_tree() {
                return None;
            }
            // A tree replaced by a file (or the reverse) shows up as its own addition/deletion.
            let old = (!previous_entry_mode.is_tree())
                .then_some((previous_id, previous_entry_mode.is_commit()));
            let new = (!entry_mode.is_tree()).then_some((id, entry_mode.is_commit()));
            let change = match (old, new) {
                (Some(_), Some(_)) => ChangeKind::Modified,
                (None, _) => ChangeKind::Added,
                (_, None) => ChangeKind::Deleted,
            };
            Some(RawChange {
                path: lossy(location),
                old_path: None,
                change,
                old,
                new,
            })
        }
        ChangeRef::Rewrite {
            source_location,
            source_entry_mode,
            source_id,
            entry_mode,
            id,
            location,
            copy,
            ..
        } => (!entry_mode.is_tree()).then(|| RawChange {
            path: lossy(location),
            old_path: (!copy).then(|| lossy(source_location)),
            change: if copy {
                ChangeKind::Added
            } else {
                ChangeKind::Renamed
            },
            old: (!copy).then_some((source_id, source_entry_mode.is_commit())),
            new: Some((id, entry_mode.is_commit())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_like_git() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\n"), 1);
        assert_eq!(count_lines(b"a\nb"), 2);
        assert!(is_binary(b"ab\0c"));
        assert!(!is_binary("héllo\n".as_bytes()));
    }

    #[test]
    fn trimming_keeps_whole_lines() {
        assert_eq!(
            trim_common_lines(b"xfoo\n", b"foo\n"),
            (&b"xfoo\n"[..], &b"foo\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"foo", b"foo\nbar\n"),
            (&b"foo"[..], &b"foo\nbar\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"foo\n", b"foo\nbar\n"),
            (&b""[..], &b"bar\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"a\nb\nc\n", b"a\nX\nc\n"),
            (&b"b\n"[..], &b"X\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"a\nbc\n", b"a\nxbc\n"),
            (&b"bc\n"[..], &b"xbc\n"[..])
        );
    }

    #[test]
    fn line_counts_match_numstat() {
        assert_eq!(line_diff_counts(b"a\nb\nc\n", b"a\nX\nc\n"), (1, 1));
        assert_eq!(line_diff_counts(b"a\nb", b"a\nb\n"), (1, 1));
        assert_eq!(line_diff_counts(b"a\n", b"a\nb\nc\n"), (2, 0));
        assert_eq!(line_diff_counts(b"x\na\nb\n", b"a\nb\n"), (0, 1));
        assert_eq!(line_diff_counts(b"xfoo\n", b"foo\n"), (1, 1));
    }
}
