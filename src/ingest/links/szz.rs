//! SZZ: which earlier commits introduced the lines a fix deleted or changed.
//!
//! For a fix commit, every line it deleted or changed in a modified or renamed file (diffed
//! against its first parent) is blamed in the parent. Blank and comment-only lines are
//! skipped. A line whose blame falls on a commit listed in `.git-blame-ignore-revs` is
//! followed into that commit's parent (through the commit's own diff, at the same offset
//! inside the hunk, as `git blame --ignore-revs-file` does) up to three times.

use std::collections::{HashMap, HashSet};

use gix::bstr::ByteSlice;
use gix::ObjectId;

use crate::ingest::git::linediff::LineCounter;
use crate::ingest::IngestError;
use crate::store::records::{ChangeKind, EdgeDetail, SzzBlame};
use crate::store::{NodeId, ReadTx, Rel};

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

struct Blamer<'r> {
    repo: &'r gix::Repository,
    ignore: &'r HashSet<ObjectId>,
    lines: LineCounter,
}

impl Blamer<'_> {
    /// The commits that last touched `lines` (0-based) of `path` as of `commit`, following
    /// ignored revisions into their parents. Returns `(commit, line count, evidence)` and how
    /// many lines were carried past ignored revisions.
    fn blame(
        &mut self,
        path: &str,
        commit: ObjectId,
        lines: &[u32],
        depth: u32,
        out: &mut HashMap<ObjectId, (u32, String)>,
        carried: &mut u32,
    ) -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        let ranges = gix::blame::BlameRanges::from_one_based_inclusive_ranges(one_based(lines))
            .map_err(|e| e.to_string())?;
        let outcome = self
            .repo
            .blame_file(
                path.as_bytes().as_bstr(),
                commit,
                gix::repository::blame_file::Options {
                    ranges,
                    rewrites: Some(Default::default()),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
        // Lines attributed to an ignored revision, by (revision, its path), as 0-based lines
        // of that revision's version of the file.
        let mut ignored: HashMap<(ObjectId, String), Vec<u32>> = HashMap::new();
        for entry in &outcome.entries {
            let source_path = entry
                .source_file_name
                .as_ref()
                .map_or_else(|| path.to_string(), |p| p.to_string());
            let len = entry.len.get();
            if depth < 3 && self.ignore.contains(&entry.commit_id) {
                *carried += len;
                ignored
                    .entry((entry.commit_id, source_path))
                    .or_default()
                    .extend(entry.start_in_source_file..entry.start_in_source_file + len);
                continue;
            }
            let slot = out.entry(entry.commit_id).or_insert_with(|| {
                let first = entry.start_in_source_file + 1;
                (0, format!("{source_path}:{first}-{}", first + len - 1))
            });
            slot.0 += len;
        }
        for ((rev, rev_path), rev_lines) in ignored {
            let Some(parent) = self.parent_lines(rev, &rev_path, &rev_lines)? else {
                continue;
            };
            self.blame(&rev_path, parent.0, &parent.1, depth + 1, out, carried)?;
        }
        Ok(())
    }

    /// Map lines of `path` in `rev` to its first parent through the revision's own diff.
    fn parent_lines(
        &mut self,
        rev: ObjectId,
        path: &str,
        lines: &[u32],
    ) -> Result<Option<(ObjectId, Vec<u32>)>, String> {
        let commit = self.repo.find_commit(rev).map_err(|e| e.to_string())?;
        let Some(parent) = commit.parent_ids().next().map(|p| p.detach()) else {
            return Ok(None);
        };
        let blob_at = |c: ObjectId| -> Option<Vec<u8>> {
            let tree = self.repo.find_commit(c).ok()?.tree().ok()?;
            let entry = tree
                .lookup_entry_by_path(crate::store::paths::to_git_path(path))
                .ok()??;
            read_blob(self.repo, entry.object_id())
        };
        let (Some(old), Some(new)) = (blob_at(parent), blob_at(rev)) else {
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
        Ok(Some((parent, mapped)))
    }
}

/// The lines a fix commit deleted or changed, per file of its first parent.
#[derive(Debug, Clone, Default)]
pub struct FixLines {
    /// The first parent, where the lines are blamed (`None` for a root commit).
    pub parent: Option<ObjectId>,
    /// `(path in the parent, 0-based lines)`, blank and comment-only lines left out.
    pub files: Vec<(String, Vec<u32>)>,
    pub skipped_cosmetic: u32,
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
            out.files.push((path, picked));
        }
    }
    Ok(out)
}

/// 1-based inclusive line ranges, as `git blame -L` takes them.
pub fn line_ranges(lines: &[u32]) -> Vec<std::ops::RangeInclusive<u32>> {
    one_based(lines)
}

/// Blame the lines fix commit `fix` deleted or changed.
pub fn blame_fix(
    repo: &gix::Repository,
    read: &ReadTx,
    fix: NodeId,
    ignore: &HashSet<ObjectId>,
) -> Result<SzzBlame, IngestError> {
    let mut blamer = Blamer {
        repo,
        ignore,
        lines: LineCounter::default(),
    };
    let target = fix_lines(repo, read, fix, &mut blamer.lines)?;
    let mut blame = SzzBlame {
        candidates: Vec::new(),
        blamed_lines: 0,
        skipped_cosmetic: target.skipped_cosmetic,
        ignored_revs: 0,
    };
    let Some(parent) = target.parent else {
        return Ok(blame);
    };
    let mut found: HashMap<ObjectId, (u32, String)> = HashMap::new();
    for (path, lines) in &target.files {
        blame.blamed_lines += lines.len() as u32;
        let mut carried = 0;
        blamer
            .blame(path, parent, lines, 0, &mut found, &mut carried)
            .map_err(|e| {
                crate::ingest::git::git_error_in(
                    repo.path(),
                    format!("blame of {path} at {parent}"),
                    e,
                )
            })?;
        blame.ignored_revs += carried;
    }
    for (sha, (lines, evidence)) in found {
        if let Some(id) = read.commit_by_sha(sha.as_bytes())? {
            blame.candidates.push((id.local(), lines, evidence));
        }
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
