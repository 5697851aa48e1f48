//! `lore blame`: who wrote each line of a file at a revision, answered from the line
//! provenance the ingest stored (no walk of the history).

use serde::Serialize;

use super::Kb;
use crate::ingest::git::REPO_PATH_KEY;
use crate::ingest::provenance::{DONE_KEY, HEAD_KEY};
use crate::store::records::LineOrigins;
use crate::store::{hex, NodeId, NodeKind, ReadTx, Rel, StoreError, StrId};
use crate::{Error, Result};

/// A file's lines at one commit, in hunks of lines with one origin.
#[derive(Debug, Clone, Serialize)]
pub struct Blame {
    pub path: String,
    /// The revision blamed (hex id).
    pub at: String,
    pub lines: u32,
    pub hunks: Vec<BlameHunk>,
    /// The file's lines (bytes, without the line end), when the repository the file was
    /// ingested from is readable; JSON shows them as text (invalid UTF-8 replaced).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "lines_as_text"
    )]
    pub text: Option<Vec<Vec<u8>>>,
}

fn lines_as_text<S: serde::Serializer>(
    lines: &Option<Vec<Vec<u8>>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let text: Option<Vec<std::borrow::Cow<'_, str>>> = lines
        .as_ref()
        .map(|l| l.iter().map(|b| String::from_utf8_lossy(b)).collect());
    text.serialize(s)
}

/// Consecutive lines that one commit introduced as consecutive lines of one file.
#[derive(Debug, Clone, Serialize)]
pub struct BlameHunk {
    pub commit: String,
    /// The path in the commit that introduced the lines.
    pub orig_path: String,
    /// 1-based, in that commit's version of the file.
    pub orig_line: u32,
    /// 1-based, in the blamed version.
    pub final_line: u32,
    pub len: u32,
    pub author: String,
    pub author_mail: String,
    pub author_time: i64,
    pub author_tz: i32,
    pub committer: String,
    pub committer_mail: String,
    pub committer_time: i64,
    pub committer_tz: i32,
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
        // The text comes from the repository's object database, read on a thread of its own
        // while the commits of the hunks are looked up here.
        let text_reader = version.blob.clone().and_then(|blob| {
            let repo = read.meta(REPO_PATH_KEY).ok()??;
            std::thread::Builder::new()
                .name("blame-text".into())
                .spawn(move || blob_lines(&repo, &blob))
                .ok()
        });
        let runs = read.origin_runs(file, version_at)?.ok_or_else(|| {
            Error::Store(StoreError::Corrupt {
                what: "line origins",
                detail: format!("the version of {path} at {short} points at a missing version"),
            })
        })?;
        let mut hunks = Vec::with_capacity(runs.len());
        let mut commits: std::collections::HashMap<u64, BlameHunk> = Default::default();
        let mut paths: std::collections::HashMap<u64, String> = Default::default();
        // Many of a file's commits share authors and committers.
        let mut authors: std::collections::HashMap<NodeId, (String, String)> = Default::default();
        let mut strings: std::collections::HashMap<StrId, String> = Default::default();
        let mut final_line = 1;
        for run in &runs {
            let template = match commits.get(&run.commit) {
                Some(h) => h.clone(),
                None => {
                    let id = NodeId::new(NodeKind::Commit, run.commit);
                    let c = read.commit(id)?;
                    // As git blame shows them: after `.mailmap` (the author node); the
                    // committer too when it is the author.
                    let author = match read.targets_of(id, Rel::AuthoredBy)?.first() {
                        Some(&a) => match authors.get(&a) {
                            Some(known) => known.clone(),
                            None => {
                                let record = read.author(a)?;
                                let named = (
                                    string(&read, &mut strings, record.name)?,
                                    string(&read, &mut strings, record.email)?,
                                );
                                authors.insert(a, named.clone());
                                named
                            }
                        },
                        None => (
                            string(&read, &mut strings, c.author.name)?,
                            string(&read, &mut strings, c.author.email)?,
                        ),
                    };
                    let committer = if (c.committer.name, c.committer.email)
                        == (c.author.name, c.author.email)
                    {
                        author.clone()
                    } else {
                        (
                            string(&read, &mut strings, c.committer.name)?,
                            string(&read, &mut strings, c.committer.email)?,
                        )
                    };
                    let h = BlameHunk {
                        commit: hex(&c.sha),
                        orig_path: String::new(),
                        orig_line: 0,
                        final_line: 0,
                        len: 0,
                        author: author.0,
                        author_mail: author.1,
                        author_time: c.author.time,
                        author_tz: c.author.tz_offset,
                        committer: committer.0,
                        committer_mail: committer.1,
                        committer_time: c.committer.time,
                        committer_tz: c.committer.tz_offset,
                        summary: c.message.lines().next().unwrap_or("").to_string(),
                        boundary: c.parents.is_empty() || c.shallow_boundary,
                    };
                    commits.insert(run.commit, h.clone());
                    h
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
                orig_path,
                orig_line: run.line + 1,
                final_line,
                len: run.len,
                ..template
            });
            final_line += run.len;
        }
        let text = text_reader.and_then(|t| t.join().ok().flatten());
        Ok(Blame {
            path: path.to_string(),
            at: at_sha,
            lines: version.lines,
            hunks,
            text,
        })
    }
}

/// String `id`, looked up once.
fn string(
    read: &ReadTx,
    known: &mut std::collections::HashMap<StrId, String>,
    id: StrId,
) -> Result<String> {
    if let Some(s) = known.get(&id) {
        return Ok(s.clone());
    }
    let s = read.string(id)?;
    known.insert(id, s.clone());
    Ok(s)
}

/// A blob's lines from the repository at `repo` (the path the file was ingested from), if it
/// is readable.
fn blob_lines(repo: &[u8], blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Only the object database is read (a worktree's `.git/objects` or a bare
    // repository's `objects`), without opening the repository around it.
    let root = std::path::PathBuf::from(String::from_utf8_lossy(repo).as_ref());
    let objects = [root.join(".git/objects"), root.join("objects")]
        .into_iter()
        .find(|p| p.is_dir())?;
    let odb = gix::odb::at(objects, gix::hash::Kind::Sha1).ok()?;
    let id = gix::ObjectId::try_from(blob).ok()?;
    let mut buf = Vec::new();
    use gix::prelude::Find;
    let data = odb.try_find(&id, &mut buf).ok()??.data.to_vec();
    Some(
        data.split_inclusive(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\n").unwrap_or(l).to_vec())
            .collect(),
    )
}
