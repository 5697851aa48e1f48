//! The code behind an example: file contents and diffs, read from the git repository the lore
//! file was ingested from (the store keeps which blob each file change had, not its bytes).

use std::path::{Path, PathBuf};

use gix::diff::blob::{sources, Algorithm, Diff, Hunk, InternedInput};
use gix::ObjectId;

use super::ExportError;
use crate::store::records::{ChangeKind, EdgeDetail};
use crate::store::{NodeId, ReadTx, Rel};

/// An open repository to read blobs from.
pub struct GitSource {
    repo: gix::Repository,
    path: PathBuf,
}

/// One file a commit changed, with both sides' text (`None`: absent, binary or unreadable).
#[derive(Debug, Clone)]
pub struct FileDiff {
    pub path: String,
    pub old_path: Option<String>,
    pub change: ChangeKind,
    pub old: Option<String>,
    pub new: Option<String>,
    /// Lines added and removed.
    pub added: u32,
    pub removed: u32,
    /// `diff --git` text of this file (empty for binary or unreadable sides).
    pub patch: String,
    /// A test file (a path word `test`, `tests`, `testing` or `e2e`): its changes are the
    /// test patch, not the fix.
    pub is_test: bool,
}

impl GitSource {
    /// The repository at `path`.
    pub fn open(path: &Path) -> Result<GitSource, ExportError> {
        let mut repo = gix::open(path).map_err(|e| ExportError::Repository {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        // The same blobs are read again and again (a file's parent and new versions).
        repo.object_cache_size_if_unset(32 * 1024 * 1024);
        Ok(GitSource {
            repo,
            path: path.to_path_buf(),
        })
    }

    /// The repository recorded by the last ingest of `read`'s file.
    pub fn of_store(read: &ReadTx) -> Result<GitSource, ExportError> {
        let path = read
            .meta(crate::ingest::git::REPO_PATH_KEY)?
            .ok_or(ExportError::NoRepository)?;
        GitSource::open(Path::new(&*String::from_utf8_lossy(&path)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text of a blob, or `None` when it is missing or binary.
    pub fn text(&self, sha: &[u8]) -> Option<String> {
        let id = ObjectId::try_from(sha).ok()?;
        let object = self.repo.try_find_object(id).ok()??;
        let data = &object.data;
        if data.iter().take(8000).any(|&b| b == 0) {
            return None;
        }
        Some(String::from_utf8_lossy(data).into_owned())
    }

    /// The text of `path` in the commit with id `commit` (raw bytes), if it is there and not
    /// binary.
    pub fn file_at(&self, commit: &[u8], path: &str) -> Option<String> {
        let id = ObjectId::try_from(commit).ok()?;
        let tree = self.repo.find_object(id).ok()?.peel_to_tree().ok()?;
        let entry = tree
            .lookup_entry_by_path(crate::store::paths::to_git_path(path))
            .ok()??;
        self.text(entry.object_id().as_bytes())
    }

    /// The files `commit` changed against its first parent, in path order.
    pub fn changes(&self, read: &ReadTx, commit: NodeId) -> Result<Vec<FileDiff>, ExportError> {
        let mut out = Vec::new();
        for edge in read.edges_from(commit, Rel::Touches)? {
            let EdgeDetail::Touch(touch) = &edge.meta.detail else {
                continue;
            };
            let path = read.string(read.file(edge.dst)?.path)?;
            let old_path = match touch.old_path {
                Some(p) => Some(read.string(p)?),
                None => None,
            };
            let old = touch.old_blob.as_deref().and_then(|s| self.text(s));
            let new = touch.new_blob.as_deref().and_then(|s| self.text(s));
            let patch = patch(
                old_path.as_deref().unwrap_or(&path),
                &path,
                touch.change,
                old.as_deref(),
                new.as_deref(),
            );
            out.push(FileDiff {
                is_test: is_test_path(&path),
                path,
                old_path,
                change: touch.change,
                old,
                new,
                added: touch.added.unwrap_or(0),
                removed: touch.removed.unwrap_or(0),
                patch,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Whether a path is a test file by SWE-bench's rule: one of its words is `test`, `tests`,
/// `testing` or `e2e` (`tests/test_cache.py`, `src/cache_test.go`, `e2e/run.ts`).
pub fn is_test_path(path: &str) -> bool {
    path.split(['/', '_', '.', '-']).any(|w| {
        matches!(
            w.to_ascii_lowercase().as_str(),
            "test" | "tests" | "testing" | "e2e"
        )
    })
}

/// A `diff --git` patch of one file, three lines of context, as `git diff` writes it.
pub fn patch(
    old_path: &str,
    new_path: &str,
    change: ChangeKind,
    old: Option<&str>,
    new: Option<&str>,
) -> String {
    let (before, after) = match (change, old, new) {
        (ChangeKind::Added, _, Some(n)) => ("", n),
        (ChangeKind::Deleted, Some(o), _) => (o, ""),
        (_, Some(o), Some(n)) => (o, n),
        _ => return String::new(),
    };
    let mut out = format!("diff --git a/{old_path} b/{new_path}\n");
    let (from, to) = match change {
        ChangeKind::Added => ("/dev/null".to_string(), format!("b/{new_path}")),
        ChangeKind::Deleted => (format!("a/{old_path}"), "/dev/null".to_string()),
        _ => (format!("a/{old_path}"), format!("b/{new_path}")),
    };
    match change {
        ChangeKind::Added => out.push_str("new file mode 100644\n"),
        ChangeKind::Deleted => out.push_str("deleted file mode 100644\n"),
        _ => {}
    }
    if old_path != new_path {
        out.push_str(&format!("rename from {old_path}\nrename to {new_path}\n"));
    }
    let hunks = unified(before, after);
    if hunks.is_empty() {
        return out;
    }
    out.push_str(&format!("--- {from}\n+++ {to}\n"));
    out.push_str(&hunks);
    out
}

/// The 0-based line ranges of `before` that changed on the way to `after` (an insertion is the
/// empty range where it goes).
pub fn changed_lines(before: &str, after: &str) -> Vec<std::ops::Range<u32>> {
    let input = InternedInput::new(sources::lines(before), sources::lines(after));
    let diff = Diff::compute(Algorithm::Histogram, &input);
    diff.hunks().map(|h| h.before).collect()
}

/// Lines of context around each change, as `git diff` shows by default.
const CONTEXT: u32 = 3;

/// The hunks between two texts, three lines of context each, as `git diff` writes them: an
/// empty side's start is the line before it, a length of one is left out, and a last line
/// without a newline is marked.
pub fn unified(before: &str, after: &str) -> String {
    let input = InternedInput::new(sources::lines(before), sources::lines(after));
    let diff = Diff::compute(Algorithm::Histogram, &input);
    let (old, new) = (&input.before, &input.after);
    let changes: Vec<Hunk> = diff.hunks().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < changes.len() {
        // Changes closer than twice the context share a hunk.
        let mut j = i;
        while j + 1 < changes.len()
            && changes[j + 1].before.start - changes[j].before.end <= 2 * CONTEXT
        {
            j += 1;
        }
        let (first, last) = (&changes[i], &changes[j]);
        let lead = first.before.start.min(CONTEXT);
        let trail = (old.len() as u32 - last.before.end).min(CONTEXT);
        let old_start = first.before.start - lead;
        let new_start = first.after.start - lead;
        let old_len = last.before.end + trail - old_start;
        let new_len = last.after.end + trail - new_start;
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_start, old_len),
            range(new_start, new_len)
        ));
        let mut at = old_start;
        for h in &changes[i..=j] {
            for t in &old[at as usize..h.before.start as usize] {
                line(&mut out, ' ', input.interner[*t]);
            }
            for t in &old[h.before.start as usize..h.before.end as usize] {
                line(&mut out, '-', input.interner[*t]);
            }
            for t in &new[h.after.start as usize..h.after.end as usize] {
                line(&mut out, '+', input.interner[*t]);
            }
            at = h.before.end;
        }
        for t in &old[at as usize..(last.before.end + trail) as usize] {
            line(&mut out, ' ', input.interner[*t]);
        }
        i = j + 1;
    }
    out
}

fn line(out: &mut String, sign: char, text: &str) {
    out.push(sign);
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

fn range(start: u32, len: u32) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths_by_word() {
        assert!(is_test_path("tests/test_cache.py"));
        assert!(is_test_path("minillm/worker/test_memory_utils.py"));
        assert!(is_test_path("pkg/cache_test.go"));
        assert!(is_test_path("e2e/run.ts"));
        assert!(!is_test_path("minillm/worker/memory_utils.py"));
        assert!(!is_test_path("src/attestation.rs"));
        assert!(!is_test_path("contest/main.c"));
    }

    #[test]
    fn patches_read_like_git_diff() {
        let p = patch(
            "a.py",
            "a.py",
            ChangeKind::Modified,
            Some("x = 1\ny = 2\n"),
            Some("x = 1\ny = 3\n"),
        );
        assert_eq!(
            p,
            "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n"
        );
        // Changes far apart are separate hunks with three lines of context each.
        let old: String = (0..20).map(|i| format!("{i}\n")).collect();
        let new: String = (0..20)
            .map(|i| match i {
                2 => "two\n".to_string(),
                17 => "seventeen\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let hunks = unified(&old, &new);
        assert_eq!(
            hunks,
            "@@ -1,6 +1,6 @@\n 0\n 1\n-2\n+two\n 3\n 4\n 5\n@@ -15,6 +15,6 @@\n 14\n 15\n 16\n-17\n+seventeen\n 18\n 19\n"
        );
        let added = patch("n.py", "n.py", ChangeKind::Added, None, Some("z\n"));
        assert!(
            added.contains("--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+z\n"),
            "{added}"
        );
    }
}
