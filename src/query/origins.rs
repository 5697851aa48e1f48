//! The `introducing` / `introduced_in` relations: which commits wrote the lines a file or a
//! symbol has at HEAD, read from the line provenance the ingest stored.
//!
//! HEAD is the commit the repository's HEAD pointed at when the file was last ingested; a
//! symbol's lines are its span in the file's code-head version, used when that version is
//! the one HEAD has (the two heads agree after every default ingest).

use std::collections::BTreeMap;

use crate::ingest::provenance::HEAD_KEY;
use crate::store::records::OriginRun;
use crate::store::{NodeId, NodeKind, ReadTx, StoreError};

/// HEAD at the last ingest, when the file records it.
fn head(read: &ReadTx) -> Result<Option<NodeId>, StoreError> {
    match read.meta(HEAD_KEY)? {
        Some(sha) => read.commit_by_sha(&sha),
        None => Ok(None),
    }
}

/// A file version's blob id and its runs.
type BlobRuns = (Vec<u8>, Vec<OriginRun>);

/// The runs of `file` at HEAD, with the blob they describe.
fn runs_at_head(read: &ReadTx, head: NodeId, file: NodeId) -> Result<Option<BlobRuns>, StoreError> {
    let Some((at, version)) = read.file_version_at(file, head)? else {
        return Ok(None);
    };
    let Some(blob) = version.blob else {
        return Ok(None);
    };
    Ok(read.origin_runs(file, at)?.map(|runs| (blob, runs)))
}

/// The 1-based inclusive line span of `symbol` in the code-head version of its file, when
/// that version's blob is `blob`.
fn symbol_span(
    read: &ReadTx,
    symbol: NodeId,
    blob: &[u8],
) -> Result<Option<(u32, u32)>, StoreError> {
    let node = read.symbol(symbol)?;
    let Some(head_blob) = read.head_blob(node.file)? else {
        return Ok(None);
    };
    let record = read.blob(head_blob)?;
    if record.sha != blob {
        return Ok(None);
    }
    let qname = read.string(node.qualified_name)?;
    Ok(record
        .definition(&qname)
        .map(|s| (s.start_line, s.end_line)))
}

/// Commits in `runs` within lines `span` (1-based inclusive; all lines when `None`), most lines
/// first.
fn commits_in(runs: &[OriginRun], span: Option<(u32, u32)>) -> Vec<NodeId> {
    let mut lines: BTreeMap<u64, u32> = BTreeMap::new();
    let mut at = 1u32;
    for r in runs {
        let (first, last) = (at, at + r.len - 1);
        at += r.len;
        let (lo, hi) = match span {
            Some((s, e)) => (first.max(s), last.min(e)),
            None => (first, last),
        };
        if lo <= hi {
            *lines.entry(r.commit).or_default() += hi - lo + 1;
        }
    }
    let mut out: Vec<(u64, u32)> = lines.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out.into_iter()
        .map(|(c, _)| NodeId::new(NodeKind::Commit, c))
        .collect()
}

/// The commits that introduced the current lines of a file or symbol.
pub fn commits_introducing(read: &ReadTx, id: NodeId) -> Result<Vec<NodeId>, StoreError> {
    let Some(head) = head(read)? else {
        return Ok(Vec::new());
    };
    match id.kind() {
        Some(NodeKind::File) => Ok(runs_at_head(read, head, id)?
            .map(|(_, runs)| commits_in(&runs, None))
            .unwrap_or_default()),
        Some(NodeKind::Symbol) => {
            let file = read.symbol(id)?.file;
            let Some((blob, runs)) = runs_at_head(read, head, file)? else {
                return Ok(Vec::new());
            };
            Ok(match symbol_span(read, id, &blob)? {
                Some(span) => commits_in(&runs, Some(span)),
                None => Vec::new(),
            })
        }
        _ => Ok(Vec::new()),
    }
}

/// The code files at HEAD and their symbols with lines that `commit` introduced.
pub fn introduced_by_commit(read: &ReadTx, commit: NodeId) -> Result<Vec<NodeId>, StoreError> {
    let Some(head) = head(read)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (file, blob) in read.head_files()? {
        let Some((sha, runs)) = runs_at_head(read, head, file)? else {
            continue;
        };
        if !runs.iter().any(|r| r.commit == commit.local()) {
            continue;
        }
        out.push(file);
        let record = read.blob(blob)?;
        if record.sha != sha {
            continue;
        }
        let mut seen = std::collections::HashSet::new();
        for s in &record.symbols {
            // One symbol per qualified name, at the span of its definition.
            if !seen.insert(s.qualified_name.as_str()) {
                continue;
            }
            let s = record.definition(&s.qualified_name).unwrap_or(s);
            let touched = commits_in(&runs, Some((s.start_line, s.end_line)));
            if touched.contains(&commit) {
                if let Some(id) = read.symbol_in_file(file, read_qname(read, &s.qualified_name)?)? {
                    out.push(id);
                }
            }
        }
    }
    Ok(out)
}

fn read_qname(read: &ReadTx, qname: &str) -> Result<crate::store::StrId, StoreError> {
    read.string_id(qname)?.ok_or_else(|| StoreError::Corrupt {
        what: "symbol",
        detail: format!("qualified name `{qname}` is not interned"),
    })
}
