//! `lore blame`: who wrote each line of a file at a revision, answered from the line
//! provenance the ingest stored (no walk of the history).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::Kb;
use crate::ingest::git::mailmap::{self, MAILMAP_KEY};
use crate::ingest::git::REPO_PATH_KEY;
use crate::ingest::provenance::{DONE_KEY, HEAD_KEY};
use crate::store::records::{LineOrigins, Signature};
use crate::store::{hex, NodeId, NodeKind, ReadTx, Rel, StoreError, StrId};
use crate::{Error, Result};

/// A file's lines at one commit, in hunks of lines with one origin.
#[derive(Debug, Clone, Serialize)]
pub struct Blame {
    pub path: String,
    /// The revision blamed (hex id).
    pub at: String,
    pub lines: u32,
    /// The details of every commit a hunk names, by hex id (each commit once, as
    /// `git blame --porcelain` gives them).
    pub commits: BTreeMap<String, BlameCommit>,
    pub hunks: Vec<BlameHunk>,
    /// The file's lines, when the repository the file was ingested from is readable; JSON
    /// shows them as a list of strings (invalid UTF-8 replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<BlameText>,
}

impl Blame {
    /// The details of the commit that introduced `hunk`'s lines.
    pub fn commit_of(&self, hunk: &BlameHunk) -> &BlameCommit {
        // Kb::blame enters every hunk's commit.
        &self.commits[&hunk.commit]
    }
}

/// A file's text, split into lines.
#[derive(Debug, Clone)]
pub struct BlameText {
    bytes: Vec<u8>,
    /// Where each line starts in `bytes`, and where the last one ends.
    bounds: Vec<usize>,
}

impl BlameText {
    pub fn new(bytes: Vec<u8>) -> BlameText {
        let mut bounds = vec![0];
        bounds.extend(line_ends(&bytes));
        if bounds.last() != Some(&bytes.len()) {
            bounds.push(bytes.len());
        }
        BlameText { bytes, bounds }
    }

    /// How many lines the text has.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Line `n` (1-based), without its line end.
    pub fn line(&self, n: usize) -> Option<&[u8]> {
        let (start, end) = (*self.bounds.get(n.checked_sub(1)?)?, *self.bounds.get(n)?);
        let line = &self.bytes[start..end];
        Some(line.strip_suffix(b"\n").unwrap_or(line))
    }

    /// Every line, without its line end.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        (1..=self.len()).filter_map(|n| self.line(n))
    }
}

/// The offsets just after each `\n`.
fn line_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
}

impl Serialize for BlameText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.lines().map(String::from_utf8_lossy))
    }
}

/// Consecutive lines that one commit introduced as consecutive lines of one file.
#[derive(Debug, Clone, Serialize)]
pub struct BlameHunk {
    /// The commit that introduced the lines (hex id; its details are in [`Blame::commits`]).
    pub commit: String,
    /// The path in the commit that introduced the lines.
    pub orig_path: String,
    /// 1-based, in that commit's version of the file.
    pub orig_line: u32,
    /// 1-based, in the blamed version.
    pub final_line: u32,
    pub len: u32,
}

/// Who made a commit and when, as `git blame` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BlameCommit {
    pub author: String,
    pub author_mail: String,
    pub author_time: i64,
    pub author_tz: i32,
    pub committer: String,
    pub committer_mail: String,
    pub committer_time: i64,
    pub committer_tz: i32,
    /// The first line of the message.
    pub summary: String,
    /// The commit has no parent in the file (a root or a shallow boundary).
    pub boundary: bool,
}

fn blame_error(message: String) -> Error {
    Error::Kb(super::KbError::Blame(message))
}

/// A revision as the user wrote it: `HEAD` (the repository's HEAD at the last ingest), a
/// branch or tag name, or a commit id or unique prefix of one.
fn resolve(read: &ReadTx, rev: Option<&str>) -> Result<NodeId> {
    let sha = match rev {
        None | Some("HEAD") => read.meta(HEAD_KEY)?.ok_or_else(|| {
            blame_error(
                "the file does not record the repository's HEAD; run `lore ingest` (or give --at REV)"
                    .into(),
            )
        })?,
        Some(rev) => {
            let marks = read.watermarks()?;
            let named = [
                format!("git:refs/heads/{rev}"),
                format!("git:refs/tags/{rev}"),
                format!("git:{rev}"),
            ];
            match named
                .iter()
                .find_map(|n| marks.iter().find(|(name, _)| name == n))
            {
                Some((_, mark)) => mark.sha.clone(),
                None => {
                    if rev.len() < 4 || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(blame_error(format!(
                            "unknown revision `{rev}`: give a branch or tag that was ingested, HEAD, or a commit id (at least 4 hex digits)"
                        )));
                    }
                    let ids = read.commits_by_hex_prefix(rev, 2)?;
                    match ids.as_slice() {
                        [one] => read.commit(*one)?.sha,
                        [] => {
                            return Err(blame_error(format!(
                                "no commit `{rev}` in the lore file"
                            )))
                        }
                        _ => {
                            return Err(blame_error(format!(
                                "commit prefix `{rev}` is ambiguous; give more digits"
                            )))
                        }
                    }
                }
            }
        }
    };
    read.commit_by_sha(&sha)?.ok_or_else(|| {
        blame_error(format!(
            "commit {} is not in the lore file; run `lore ingest`",
            hex(&sha)
        ))
    })
}

impl Kb {
    /// Blame `path` as of `rev` (default: HEAD at the last ingest).
    pub fn blame(&self, path: &str, rev: Option<&str>) -> Result<Blame> {
        let read = self.store().read()?;
        // The text comes from the repository's object database, read on a thread of its own
        // while the commits of the hunks are looked up here; it opens the database now and
        // reads the blob once the version is known (nothing, if no blob is sent).
        let (blob_sender, blob) = std::sync::mpsc::channel::<Vec<u8>>();
        let text_reader = read.meta(REPO_PATH_KEY)?.and_then(|repo| {
            std::thread::Builder::new()
                .name("blame-text".into())
                .spawn(move || {
                    let objects = ObjectDatabase::open(&repo)?;
                    objects.text(&blob.recv().ok()?)
                })
                .ok()
        });
        let at = resolve(&read, rev)?;
        let done = read
            .meta(DONE_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        if at.local() >= done {
            return Err(blame_error(format!(
                "line provenance is stored for {done} commits, not yet for {}; run `lore ingest` (without --no-provenance)",
                hex(&read.commit(at)?.sha)
            )));
        }
        let at_sha = hex(&read.commit(at)?.sha);
        let short = &at_sha[..10];
        let file = read
            .file_by_path(path)?
            .ok_or_else(|| blame_error(format!("no file `{path}` in the lore file's history")))?;
        let (version_at, version) = read
            .file_version_at(file, at)?
            .ok_or_else(|| blame_error(format!("`{path}` does not exist at {short}")))?;
        match version.origins {
            LineOrigins::Deleted => {
                return Err(blame_error(format!("`{path}` does not exist at {short}")))
            }
            LineOrigins::Unknown => {
                return Err(blame_error(format!(
                    "`{path}` is binary or unreadable at {short}; lore keeps no line origins for it"
                )))
            }
            LineOrigins::Runs(_) | LineOrigins::SameAs { .. } | LineOrigins::Delta { .. } => {}
        }
        if let Some(blob) = version.blob.clone() {
            // The reader may have stopped (an unreadable repository): then there is no text.
            let _ = blob_sender.send(blob);
        }
        drop(blob_sender);
        let runs = read.origin_runs(file, version_at)?.ok_or_else(|| {
            Error::Store(StoreError::Corrupt {
                what: "line origins",
                detail: format!("the version of {path} at {short} points at a missing version"),
            })
        })?;
        let mut commits = BTreeMap::new();
        let mut shas: HashMap<u64, String> = HashMap::new();
        let mut paths: HashMap<u64, String> = HashMap::new();
        let mut people = People::new(&read)?;
        let mut hunks = Vec::with_capacity(runs.len());
        let mut final_line = 1;
        for run in &runs {
            let sha = match shas.get(&run.commit) {
                Some(sha) => sha.clone(),
                None => {
                    let (sha, details) =
                        people.commit(&read, NodeId::new(NodeKind::Commit, run.commit))?;
                    commits.insert(sha.clone(), details);
                    shas.insert(run.commit, sha.clone());
                    sha
                }
            };
            let orig_path = match paths.get(&run.file) {
                Some(p) => p.clone(),
                None => {
                    let p = read.string(read.file(NodeId::new(NodeKind::File, run.file))?.path)?;
                    paths.insert(run.file, p.clone());
                    p
                }
            };
            hunks.push(BlameHunk {
                commit: sha,
                orig_path,
                orig_line: run.line + 1,
                final_line,
                len: run.len,
            });
            final_line += run.len;
        }
        let text = text_reader.and_then(|t| t.join().ok().flatten());
        Ok(Blame {
            path: path.to_string(),
            at: at_sha,
            lines: version.lines,
            commits,
            hunks,
            text,
        })
    }
}

/// The people already read, since many of a file's commits share them, and the mailmap they
/// are shown through.
struct People {
    /// `None` in a file ingested before lore kept the mailmap: then authors are shown as their
    /// author nodes (after the mailmap, one name per address) until the next ingest records it.
    mailmap: Option<gix::mailmap::Snapshot>,
    /// By the name and email a commit records.
    known: HashMap<(StrId, StrId), (String, String)>,
    /// By author node, for files without a mailmap.
    nodes: HashMap<NodeId, (String, String)>,
}

impl People {
    fn new(read: &ReadTx) -> Result<People> {
        Ok(People {
            mailmap: read.meta(MAILMAP_KEY)?.map(|text| mailmap::parse(&text)),
            known: HashMap::new(),
            nodes: HashMap::new(),
        })
    }

    /// A commit's hex id and its details as `git blame` shows them: author and committer
    /// mapped through the mailmap of the last ingest.
    fn commit(&mut self, read: &ReadTx, id: NodeId) -> Result<(String, BlameCommit)> {
        let c = read.commit(id)?;
        let (author, author_mail) = match self.mailmap {
            Some(_) => self.person(read, &c.author)?,
            None => self.author_node(read, id, &c.author)?,
        };
        let (committer, committer_mail) = if self.mailmap.is_none()
            && (c.committer.name, c.committer.email) == (c.author.name, c.author.email)
        {
            (author.clone(), author_mail.clone())
        } else {
            self.person(read, &c.committer)?
        };
        let details = BlameCommit {
            author,
            author_mail,
            author_time: c.author.time,
            author_tz: c.author.tz_offset,
            committer,
            committer_mail,
            committer_time: c.committer.time,
            committer_tz: c.committer.tz_offset,
            summary: c.message.lines().next().unwrap_or("").to_string(),
            boundary: c.parents.is_empty() || c.shallow_boundary,
        };
        Ok((hex(&c.sha), details))
    }

    /// The author of commit `id` as its author node has it, or as the commit names them.
    fn author_node(
        &mut self,
        read: &ReadTx,
        id: NodeId,
        signature: &Signature,
    ) -> Result<(String, String)> {
        let Some(&node) = read.targets_of(id, Rel::AuthoredBy)?.first() else {
            return self.person(read, signature);
        };
        if let Some(known) = self.nodes.get(&node) {
            return Ok(known.clone());
        }
        let record = read.author(node)?;
        let person = (read.string(record.name)?, read.string(record.email)?);
        self.nodes.insert(node, person.clone());
        Ok(person)
    }

    /// The name and email of a signature, after the mailmap.
    fn person(&mut self, read: &ReadTx, signature: &Signature) -> Result<(String, String)> {
        let key = (signature.name, signature.email);
        if let Some(known) = self.known.get(&key) {
            return Ok(known.clone());
        }
        let (name, email) = (read.string(key.0)?, read.string(key.1)?);
        let person = match &self.mailmap {
            Some(map) => {
                let (name, email) = mailmap::resolve(map, &name, &email);
                (name.into_owned(), email.into_owned())
            }
            None => (name, email),
        };
        self.known.insert(key, person.clone());
        Ok(person)
    }
}

/// The object database of the repository the file was ingested from.
struct ObjectDatabase(gix::odb::Handle);

impl ObjectDatabase {
    /// The object database at `repo` (the path the file was ingested from: a worktree's
    /// `.git/objects` or a bare repository's `objects`), without opening the repository
    /// around it; `None` if it is not readable.
    fn open(repo: &[u8]) -> Option<ObjectDatabase> {
        let root = std::path::PathBuf::from(String::from_utf8_lossy(repo).as_ref());
        let objects = [root.join(".git/objects"), root.join("objects")]
            .into_iter()
            .find(|p| p.is_dir())?;
        Some(ObjectDatabase(
            gix::odb::at(objects, gix::hash::Kind::Sha1).ok()?,
        ))
    }

    /// A blob's text, if the database has it.
    fn text(&self, blob: &[u8]) -> Option<BlameText> {
        let id = gix::ObjectId::try_from(blob).ok()?;
        let mut buf = Vec::new();
        use gix::prelude::Find;
        let data = self.0.try_find(&id, &mut buf).ok()??.data;
        // The object is handed back inside `buf` (at its start, as a rule): keep just it.
        let (at, len) = (data.as_ptr() as usize, data.len());
        let offset = at
            .checked_sub(buf.as_ptr() as usize)
            .filter(|offset| offset + len <= buf.len())?;
        buf.truncate(offset + len);
        buf.drain(..offset);
        Some(BlameText::new(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::BlameText;

    #[test]
    fn text_lines_are_gits_lines() {
        for (text, lines) in [
            ("", vec![]),
            ("\n", vec![""]),
            ("a", vec!["a"]),
            ("a\n", vec!["a"]),
            ("a\nb", vec!["a", "b"]),
            ("a\n\nb\n", vec!["a", "", "b"]),
            ("a\r\nb\n", vec!["a\r", "b"]),
        ] {
            let t = BlameText::new(text.as_bytes().to_vec());
            let got: Vec<&[u8]> = t.lines().collect();
            let want: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            assert_eq!(got, want, "{text:?}");
            assert_eq!(t.len(), lines.len(), "{text:?}");
            assert_eq!(t.line(0), None);
            assert_eq!(t.line(lines.len() + 1), None);
        }
        let json = serde_json::to_string(&BlameText::new(b"x\n\xff y\n".to_vec())).unwrap();
        assert_eq!(json, "[\"x\",\"\u{fffd} y\"]");
    }
}
