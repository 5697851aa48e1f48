//! SZZ: which earlier commits introduced the lines a fix deleted or changed.
//!
//! For a fix commit, every line it deleted or changed in a modified or renamed file (diffed
//! against its first parent) is blamed in the parent: its origin is read from the line
//! provenance the ingest stored ([`crate::ingest::provenance`]), so blaming costs a lookup,
//! not a walk of the history. Blank and comment-only lines are skipped. A line whose origin
//! is a commit listed in `.git-blame-ignore-revs` is followed into that commit's parent
//! (through the commit's own diff, at the same offset inside the hunk, as
//! `git blame --ignore-revs-file` does) up to three times.

use std::collections::{HashMap, HashSet};

use gix::bstr::ByteSlice;
use gix::ObjectId;

use crate::ingest::git::linediff::LineCounter;
use crate::ingest::IngestError;
use crate::store::records::{ChangeKind, EdgeDetail, SzzBlame};
use crate::store::{NodeId, NodeKind, ReadTx, Rel};

/// How the introducing commits were found, recorded on each `introduced_by` edge.
pub const VARIANT: &str = "blame-deleted-lines,skip-cosmetic,ignore-revs,before-issue";

/// Commits listed in the head's `.git-blame-ignore-revs` (full hex ids; `#` comments).
pub fn ignore_revs(repo: &gix::Repository) -> HashSet<ObjectId> {
    let Ok(commit) = repo.head_commit() else {
        return HashSet::new();
    };
    let Ok(tree) = commit.tree() else {
        return HashSet::new();
    };
    let Ok(Some(entry)) = tree.lookup_entry_by_path(".git-blame-ignore-revs") else {
        return HashSet::new();
    };
    let Ok(object) = entry.object() else {
        return HashSet::new();
    };
    object
        .data
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            (!l.starts_with(b"#")).then(|| ObjectId::from_hex(l).ok())?
        })
        .collect()
}

/// Whether a line is blank or only a comment, judged by the file's extension.
fn is_cosmetic(path: &str, line: &[u8]) -> bool {
    let t = line.trim();
    if t.is_empty() {
        return true;
    }
    let ext = path.rsplit('.').next().unwrap_or("");
    let hash = matches!(
        ext,
        "py" | "pyi" | "sh" | "toml" | "yaml" | "yml" | "cfg" | "txt" | "rb"
    );
    let slash = matches!(
        ext,
        "rs" | "c"
            | "cc"
            | "cpp"
            | "cxx"
            | "h"
            | "hh"
            | "hpp"
            | "cu"
            | "cuh"
            | "go"
            | "js"
            | "jsx"
            | "ts"
            | "tsx"
            | "java"
            | "swift"
            | "kt"
    );
    (hash && t.starts_with(b"#"))
        || (slash
            && (t.starts_with(b"//") || t.starts_with(b"/*") || t.starts_with(b"*") || t == b"*/"))
}

fn read_blob(repo: &gix::Repository, id: ObjectId) -> Option<Vec<u8>> {
    repo.try_find_object(id)
        .ok()
        .flatten()
        .map(|o| o.detach().data)
}

/// 0-based line ranges → the 1-based inclusive ranges blame takes.
fn one_based(lines: &[u32]) -> Vec<std::ops::RangeInclusive<u32>> {
    let mut out: Vec<std::ops::RangeInclusive<u32>> = Vec::new();
    for &l in lines {
        match out.last_mut() {
            Some(r) if *r.end() == l => *r = *r.start()..=l + 1,
            _ => out.push(l + 1..=l + 1),
        }
    }
    out
}

/// The lines a fix commit deleted or changed, per file of its first parent.
#[derive(Debug, Clone, Default)]
pub struct FixLines {
    /// The first parent, where the lines are blamed (`None` for a root commit).
    pub parent: Option<ObjectId>,
    /// The files, with the lines (0-based) blank and comment-only lines left out.
    pub files: Vec<FixFile>,
    pub skipped_cosmetic: u32,
}

/// One file a fix changed, as it was in the fix's parent.
#[derive(Debug, Clone)]
pub struct FixFile {
    /// The path in the parent.
    pub path: String,
    pub file: NodeId,
    pub blob: ObjectId,
    pub lines: Vec<u32>,
}

/// What `fix` deleted or changed in modified and renamed files, against its first parent.
pub fn fix_lines(
    repo: &gix::Repository,
    read: &ReadTx,
    fix: NodeId,
    lines: &mut LineCounter,
) -> Result<FixLines, IngestError> {
    let record = read.commit(fix)?;
    let mut out = FixLines {
        parent: record
            .parents
            .first()
            .and_then(|p| ObjectId::try_from(p.as_slice()).ok()),
        ..Default::default()
    };
    if out.parent.is_none() {
        return Ok(out);
    }
    for edge in read.edges_from(fix, Rel::Touches)? {
        let EdgeDetail::Touch(stats) = edge.meta.detail else {
            continue;
        };
        if !matches!(stats.change, ChangeKind::Modified | ChangeKind::Renamed) || stats.binary {
            continue;
        }
        let oid = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .and_then(|b| ObjectId::try_from(b.as_slice()).ok())
        };
        let (Some(old_id), Some(new_id)) = (oid(&stats.old_blob), oid(&stats.new_blob)) else {
            continue;
        };
        let (Some(old), Some(new)) = (read_blob(repo, old_id), read_blob(repo, new_id)) else {
            continue;
        };
        let path = match stats.old_path {
            Some(p) => read.string(p)?,
            None => read.string(read.file(edge.dst)?.path)?,
        };
        let Some(file) = read.file_by_path(&path)? else {
            continue;
        };
        let old_lines: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
        let mut picked = Vec::new();
        for (before, _) in lines.hunks(&old, &new) {
            for l in before {
                match old_lines.get(l as usize) {
                    Some(text) if is_cosmetic(&path, text) => out.skipped_cosmetic += 1,
                    Some(_) => picked.push(l),
                    None => {}
                }
            }
        }
        if !picked.is_empty() {
            out.files.push(FixFile {
                path,
                file,
                blob: old_id,
                lines: picked,
            });
        }
    }
    Ok(out)
}

/// 1-based inclusive line ranges, as `git blame -L` takes them.
pub fn line_ranges(lines: &[u32]) -> Vec<std::ops::RangeInclusive<u32>> {
    one_based(lines)
}

/// Reads the origins of lines from the provenance the ingest stored, following ignored
/// revisions into their parents.
struct Origins<'a> {
    repo: &'a gix::Repository,
    read: &'a ReadTx,
    /// Ignored revisions by local id.
    ignore: HashSet<NodeId>,
    lines: LineCounter,
}

/// Lines of a file mapped into a revision's parent: the parent, the file and blob there, and
/// the lines.
type ParentLines = (NodeId, NodeId, ObjectId, Vec<u32>);

/// Per introducing commit: blamed lines and the evidence of its first stretch.
type Found = HashMap<NodeId, (u32, String)>;

fn missing(what: String) -> IngestError {
    IngestError::Store(crate::store::StoreError::Corrupt {
        what: "line origins",
        detail: what,
    })
}

impl Origins<'_> {
    /// Attribute `lines` (0-based, sorted) of the version of `file` with content `blob` that
    /// `commit` sees. Returns how many lines were carried past ignored revisions.
    fn attribute(
        &mut self,
        file: NodeId,
        blob: ObjectId,
        commit: NodeId,
        lines: &[u32],
        depth: u32,
        found: &mut Found,
    ) -> Result<u32, IngestError> {
        if lines.is_empty() {
            return Ok(0);
        }
        let at = self
            .read
            .version_with_blob(file, blob.as_bytes(), commit)?
            .ok_or_else(|| missing(format!("no version of file {file} as of commit {commit}; the provenance pass has not covered it")))?;
        let runs = self.read.origin_runs(file, at)?.ok_or_else(|| {
            missing(format!(
                "the version of file {file} at {at} has no line origins"
            ))
        })?;
        let origin = crate::store::origins::expand(&runs);
        let mut carried = 0;
        // Lines whose origin is an ignored revision, by (revision, file there).
        let mut ignored: HashMap<(NodeId, NodeId), Vec<u32>> = HashMap::new();
        let mut i = 0;
        while i < lines.len() {
            let Some(first) = origin.get(lines[i] as usize).copied() else {
                i += 1;
                continue;
            };
            // A stretch: consecutive lines here from consecutive lines there.
            let mut len = 1;
            while let Some(next) = lines.get(i + len as usize) {
                match origin.get(*next as usize) {
                    Some(o)
                        if *next == lines[i] + len
                            && o.commit == first.commit
                            && o.file == first.file
                            && o.line == first.line + len =>
                    {
                        len += 1;
                    }
                    _ => break,
                }
            }
            let source = NodeId::new(NodeKind::Commit, first.commit);
            let source_file = NodeId::new(NodeKind::File, first.file);
            if depth < 3 && self.ignore.contains(&source) {
                carried += len;
                ignored
                    .entry((source, source_file))
                    .or_default()
                    .extend(first.line..first.line + len);
            } else {
                let slot = match found.entry(source) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let path = self.read.string(self.read.file(source_file)?.path)?;
                        let start = first.line + 1;
                        e.insert((0, format!("{path}:{start}-{}", start + len - 1)))
                    }
                };
                slot.0 += len;
            }
            i += len as usize;
        }
        let mut revs: Vec<_> = ignored.into_iter().collect();
        revs.sort();
        for ((rev, rev_file), rev_lines) in revs {
            if let Some((parent, old_file, old_blob, mapped)) =
                self.parent_lines(rev, rev_file, &rev_lines)?
            {
                self.attribute(old_file, old_blob, parent, &mapped, depth + 1, found)?;
            }
        }
        Ok(carried)
    }

    /// Map lines of `file` in `rev` to its first parent through the revision's own diff (at
    /// the same offset inside a hunk, as `git blame --ignore-revs-file` does): the parent, the
    /// file and blob there, and the lines.
    fn parent_lines(
        &mut self,
        rev: NodeId,
        file: NodeId,
        lines: &[u32],
    ) -> Result<Option<ParentLines>, IngestError> {
        let Some(parent) = self.read.first_parent(rev)? else {
            return Ok(None);
        };
        let Some(meta) = self.read.edge_meta(rev, Rel::Touches, file)? else {
            return Ok(None);
        };
        let EdgeDetail::Touch(stats) = meta.detail else {
            return Ok(None);
        };
        let oid = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .and_then(|b| ObjectId::try_from(b.as_slice()).ok())
        };
        let (Some(old_id), Some(new_id)) = (oid(&stats.old_blob), oid(&stats.new_blob)) else {
            return Ok(None);
        };
        let old_file = match stats.old_path {
            Some(p) => match self.read.file_by_path(&self.read.string(p)?)? {
                Some(f) => f,
                None => return Ok(None),
            },
            None => file,
        };
        let (Some(old), Some(new)) = (read_blob(self.repo, old_id), read_blob(self.repo, new_id))
        else {
            return Ok(None);
        };
        let hunks = self.lines.hunks(&old, &new);
        let mut mapped = Vec::new();
        for &line in lines {
            let mut shift: i64 = 0;
            let mut target = None;
            for (before, after) in &hunks {
                if line < after.start {
                    break;
                }
                if line < after.end {
                    // Inside a hunk: the same offset on the old side, if it has lines.
                    target = (!before.is_empty())
                        .then(|| before.start + (line - after.start).min(before.len() as u32 - 1));
                    shift = i64::MIN;
                    break;
                }
                shift = before.end as i64 - after.end as i64;
            }
            if shift != i64::MIN {
                target = Some((line as i64 + shift) as u32);
            }
            mapped.extend(target);
        }
        mapped.sort_unstable();
        mapped.dedup();
        Ok(Some((parent, old_file, old_id, mapped)))
    }
}

/// Blame the lines fix commit `fix` deleted or changed, from the line origins the ingest
/// stored (`lore ingest` runs the provenance pass before SZZ).
pub fn blame_fix(
    repo: &gix::Repository,
    read: &ReadTx,
    fix: NodeId,
    ignore: &HashSet<ObjectId>,
) -> Result<SzzBlame, IngestError> {
    let mut origins = Origins {
        repo,
        read,
        ignore: ignore
            .iter()
            .filter_map(|sha| read.commit_by_sha(sha.as_bytes()).transpose())
            .collect::<Result<_, _>>()?,
        lines: LineCounter::default(),
    };
    let target = fix_lines(repo, read, fix, &mut origins.lines)?;
    let mut blame = SzzBlame {
        candidates: Vec::new(),
        blamed_lines: 0,
        skipped_cosmetic: target.skipped_cosmetic,
        ignored_revs: 0,
    };
    let Some(parent) = target.parent else {
        return Ok(blame);
    };
    let Some(parent) = read.commit_by_sha(parent.as_bytes())? else {
        return Ok(blame);
    };
    let mut found: Found = HashMap::new();
    for f in &target.files {
        blame.blamed_lines += f.lines.len() as u32;
        blame.ignored_revs += origins.attribute(f.file, f.blob, parent, &f.lines, 0, &mut found)?;
    }
    for (id, (lines, evidence)) in found {
        blame.candidates.push((id.local(), lines, evidence));
    }
    blame.candidates.sort();
    Ok(blame)
}

/// Line ranges for tests and callers that want to see what `one_based` does.
#[cfg(test)]
fn ranges_for(lines: &[u32]) -> Vec<std::ops::Range<u32>> {
    one_based(lines)
        .into_iter()
        .map(|r| *r.start()..*r.end() + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_based_ranges_merge_adjacent_lines() {
        assert_eq!(ranges_for(&[0, 1, 2, 5, 7, 8]), vec![1..4, 6..7, 8..10]);
        assert!(ranges_for(&[]).is_empty());
    }

    #[test]
    fn cosmetic_lines() {
        assert!(is_cosmetic("a.py", b"   \n"));
        assert!(is_cosmetic("a.py", b"  # note\n"));
        assert!(!is_cosmetic("a.py", b"x = 1  # note\n"));
        assert!(is_cosmetic("a.rs", b"  // note\n"));
        assert!(is_cosmetic("a.cu", b" * doc\n"));
        assert!(!is_cosmetic("a.rs", b"  let x = 1;\n"));
        assert!(!is_cosmetic("a.md", b"# Title\n"));
    }
}
