//! The worker side of provenance: what each parent of a commit holds of one changed file.
//! Runs on diff worker threads, where the blobs are at hand; the writer turns the result into
//! runs ([`super::apply`]).

use gix::ObjectId;

use super::lines::{line_count, Block, LineDiffer};

/// Files larger than this get no line origins (generated data; blame there is slow and
/// meaningless).
pub const MAX_BYTES: usize = 64 << 20;

/// What a parent looks like to one changed file.
#[derive(Debug, Clone)]
pub enum ParentSide {
    /// The parent has the file with the same blob.
    Same,
    /// The parent has the file with another blob; these lines are kept from it.
    Blocks(Vec<Block>),
}

/// One parent's version of a changed file.
#[derive(Debug, Clone)]
pub struct PendingParent {
    pub commit: ObjectId,
    /// The path in the parent (the old path of a rename, for the first parent).
    pub path: String,
    pub blob: ObjectId,
    pub side: ParentSide,
}

/// One changed file of a commit, ready to be given its runs.
#[derive(Debug, Clone)]
pub struct PendingChange {
    pub path: String,
    /// `None`: the commit deleted the file.
    pub blob: Option<ObjectId>,
    /// `None`: no line origins (deleted, binary, unreadable, oversized).
    pub lines: Option<u32>,
    pub parents: Vec<PendingParent>,
    /// The path the file had in the first parent, when the commit renamed it: that path is
    /// gone as of this commit.
    pub renamed_from: Option<String>,
}

/// Whether line origins are kept for content: not binary (no NUL in its first 8000 bytes, as
/// git decides) and not over the size limit.
pub fn is_text(data: &[u8]) -> bool {
    data.len() <= MAX_BYTES && !data[..data.len().min(8000)].contains(&0)
}

/// Reads parents' versions and diffs them; one per worker thread.
#[derive(Default)]
pub struct SideReader {
    differ: LineDiffer,
}

/// The change a commit made to one file against its first parent, as the diff saw it.
pub struct FileDiff<'a> {
    pub path: &'a str,
    pub new_blob: Option<ObjectId>,
    /// The new content, when it was read.
    pub new: Option<&'a [u8]>,
    /// The first parent's path and blob of a modified or renamed file, with the content when
    /// it was read.
    pub old: Option<(&'a str, ObjectId, Option<&'a [u8]>)>,
    /// The blocks of lines the new content keeps from the old, when they were diffed already
    /// (by [`SideReader::blocks`], for the line stats).
    pub old_blocks: Option<Vec<Block>>,
}

fn read_blob(repo: &gix::Repository, id: ObjectId) -> Option<Vec<u8>> {
    repo.try_find_object(id)
        .ok()
        .flatten()
        .map(|o| o.detach().data)
}

fn blob_in(repo: &gix::Repository, commit: ObjectId, path: &str) -> Option<ObjectId> {
    let tree = repo.find_commit(commit).ok()?.tree().ok()?;
    let entry = tree
        .lookup_entry_by_path(crate::store::paths::to_git_path(path))
        .ok()??;
    entry.mode().is_blob().then(|| entry.object_id())
}

impl SideReader {
    /// The blocks of lines `new` keeps from `old` (both text).
    pub fn blocks(&mut self, old: &[u8], new: &[u8]) -> Vec<Block> {
        self.differ.blocks(old, new)
    }

    /// What each of `parents` (in order; empty for a root) holds of the changed file.
    pub fn change(
        &mut self,
        repo: &gix::Repository,
        parents: &[ObjectId],
        mut diff: FileDiff<'_>,
    ) -> PendingChange {
        let Some(new_blob) = diff.new_blob else {
            return PendingChange {
                path: diff.path.to_string(),
                blob: None,
                lines: None,
                parents: Vec::new(),
                renamed_from: None,
            };
        };
        let owned;
        let new = match diff.new {
            Some(data) => Some(data),
            None => {
                owned = read_blob(repo, new_blob);
                owned.as_deref()
            }
        };
        let Some(new) = new.filter(|d| is_text(d)) else {
            return PendingChange {
                path: diff.path.to_string(),
                blob: Some(new_blob),
                lines: None,
                parents: Vec::new(),
                renamed_from: None,
            };
        };
        let mut out = Vec::new();
        for (k, &parent) in parents.iter().enumerate() {
            let (path, blob, loaded) = if k == 0 {
                match diff.old {
                    Some(old) => old,
                    None => continue,
                }
            } else {
                match blob_in(repo, parent, diff.path) {
                    Some(b) => (diff.path, b, None),
                    None => continue,
                }
            };
            let side = if blob == new_blob {
                ParentSide::Same
            } else if let Some(blocks) = (k == 0).then(|| diff.old_blocks.take()).flatten() {
                ParentSide::Blocks(blocks)
            } else {
                let owned;
                let old = match loaded {
                    Some(data) => Some(data),
                    None => {
                        owned = read_blob(repo, blob);
                        owned.as_deref()
                    }
                };
                match old.filter(|d| is_text(d)) {
                    Some(old) => ParentSide::Blocks(self.differ.blocks(old, new)),
                    None => continue,
                }
            };
            out.push(PendingParent {
                commit: parent,
                path: path.to_string(),
                blob,
                side,
            });
        }
        PendingChange {
            path: diff.path.to_string(),
            blob: Some(new_blob),
            lines: Some(line_count(new)),
            parents: out,
            renamed_from: None,
        }
    }
}
