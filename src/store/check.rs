//! `lore check`: is a lore file whole? Two layers, both read without touching the file:
//!
//! 1. **redb's integrity check** (every page checksum of the committed trees, the allocator
//!    state), run on a private copy, because redb's check repairs what it can and a check must
//!    not change the file it checks. A file a killed writer left behind needs redb's recovery;
//!    the copy shows whether that recovery succeeds.
//! 2. **lore's invariants**, on the checked copy: every record decodes and its strings resolve,
//!    the string table and its inverse agree, every lookup points at a record, every edge has its
//!    reverse (and the reverse its edge) and both ends exist, edge counters equal the edges, and
//!    id sequences are past every id in use.
//!
//! A panic inside redb or a decoder on damaged bytes is contained here and reported as damage.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{Builder, ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use super::codec::decode;
use super::ids::{NodeId, NodeKind, Rel, StrId};
use super::read::ReadTx;
use super::records::{AuthorRecord, CommitRecord, FileRecord, IssueRecord, SymbolNode, Watermark};
use super::write::{counter_key_edges, counter_key_next};
use super::{Store, StoreError};

/// At most this many problems are listed; the count covers all of them.
const LISTED: usize = 50;

/// What redb's own check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum RedbState {
    /// Every page checksum matched and the file was closed cleanly.
    Intact,
    /// A writer ended without closing the file (killed, crashed), or one has it open now;
    /// redb's recovery brings it back to its last commit, and did so on the copy.
    NeedsRecovery,
    /// The file is damaged: redb cannot open, verify or repair it.
    Damaged(String),
}

/// What `lore check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub path: PathBuf,
    pub redb: RedbState,
    /// Rows read per table (lore's invariants ran over these).
    pub rows: BTreeMap<String, u64>,
    /// Broken invariants, the first [`LISTED`].
    pub problems: Vec<String>,
    pub problem_count: u64,
}

impl CheckReport {
    /// Whether the file is whole (a file that only needs recovery is: nothing is lost).
    pub fn is_whole(&self) -> bool {
        !matches!(self.redb, RedbState::Damaged(_)) && self.problem_count == 0
    }
}

/// Check the lore file at `path` (see the module documentation). Needs free space in the
/// temporary directory for one copy of the file. Errors are about the check itself (no file,
/// no space for the copy); damage is in the report.
pub fn check(
    path: &Path,
    extra: &dyn Fn(&Store) -> Vec<String>,
) -> Result<CheckReport, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing { path: path.into() });
    }
    let scratch = tempfile::Builder::new()
        .prefix("lore-check-")
        .tempdir()
        .map_err(|e| io_error(&std::env::temp_dir(), e))?;
    let copy = scratch.path().join("copy.lore");
    std::fs::copy(path, &copy).map_err(|e| io_error(&copy, e))?;
    let mut report = CheckReport {
        path: path.into(),
        redb: RedbState::Intact,
        rows: BTreeMap::new(),
        problems: Vec::new(),
        problem_count: 0,
    };
    report.redb = redb_check(&copy);
    if matches!(report.redb, RedbState::Damaged(_)) {
        return Ok(report);
    }
    let outcome = contain(|| -> Result<(), StoreError> {
        let store = Store::open(&copy)?;
        let mut problems = Problems::default();
        {
            let read = store.read()?;
            invariants(&read, &mut problems, &mut report.rows)?;
        }
        for p in extra(&store) {
            problems.push(p);
        }
        report.problems = problems.listed;
        report.problem_count = problems.count;
        Ok(())
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.redb = RedbState::Damaged(e.to_string()),
        Err(panic) => report.redb = RedbState::Damaged(panic),
    }
    Ok(report)
}

/// Recover a file a killed writer left behind, after [`check`] showed the recovery succeeds on a
/// copy: open it for writing (which runs redb's recovery) and verify it.
pub fn repair(path: &Path) -> Result<RedbState, StoreError> {
    let store = Store::open(path)?;
    drop(store);
    Ok(redb_check(path))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.into(),
        detail: e.to_string(),
    }
}

/// Run `f`, turning a panic (redb or a decoder on damaged bytes) into a description.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        format!("reading stopped on an impossible value ({message})")
    })
}

fn redb_check(copy: &Path) -> RedbState {
    // Readers refuse a file a writer left unclosed; no writer has the private copy open, so a
    // refusal here means exactly that. Opening it for writing below recovers it.
    let unclean = matches!(
        contain(|| Builder::new()
            .set_concurrency_mode(super::SHARING)
            .open_read_only(copy)
            .map(drop)),
        Ok(Err(redb::DatabaseError::RepairAborted))
    );
    let checked = contain(|| -> Result<bool, redb::DatabaseError> {
        let mut db = Builder::new().open(copy)?;
        db.check_integrity()
    });
    match checked {
        Ok(Ok(true)) if unclean => RedbState::NeedsRecovery,
        Ok(Ok(true)) => RedbState::Intact,
        Ok(Ok(false)) => RedbState::NeedsRecovery,
        Ok(Err(e)) => RedbState::Damaged(e.to_string()),
        Err(panic) => RedbState::Damaged(panic),
    }
}

#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    count: u64,
}

impl Problems {
    fn push(&mut self, p: String) {
        self.count += 1;
        if self.listed.len() < LISTED {
            self.listed.push(p);
        }
    }
}

fn invariants(
    r: &ReadTx,
    problems: &mut Problems,
    rows: &mut BTreeMap<String, u64>,
) -> Result<(), StoreError> {
    // Strings: a dense table and its inverse.
    let next_strings = counter(r, "next.strings")?;
    let mut n = 0;
    for entry in r.strings.iter()? {
        let (id, s) = entry?;
        let (id, s) = (id.value(), s.value());
        n += 1;
        if u64::from(id) >= next_strings {
            problems.push(format!(
                "string {id} is past the string sequence ({next_strings})"
            ));
        }
        match r.string_ids.get(s)? {
            Some(back) if back.value() == id => {}
            _ => problems.push(format!("string {id} has no inverse entry")),
        }
    }
    rows.insert("strings".into(), n);
    if r.string_ids.len()? != n {
        problems.push(format!(
            "{} string ids but {n} strings",
            r.string_ids.len()?
        ));
    }
    let resolves = |id: StrId, what: &str, problems: &mut Problems| -> Result<(), StoreError> {
        if r.strings.get(id.0)?.is_none() {
            problems.push(format!("{what} names string {} which does not exist", id.0));
        }
        Ok(())
    };

    // Nodes: each record decodes, its strings resolve, its id is inside its sequence.
    let mut max_local: BTreeMap<NodeKind, u64> = BTreeMap::new();
    let mut note = |kind: NodeKind, local: u64| {
        let m = max_local.entry(kind).or_default();
        *m = (*m).max(local + 1);
    };
    let mut n = 0;
    for entry in r.commits.iter()? {
        let (id, v) = entry?;
        n += 1;
        note(NodeKind::Commit, id.value());
        let c: CommitRecord = decode("commit", v.value())?;
        for sig in [&c.author, &c.committer] {
            resolves(sig.name, "a commit signature", problems)?;
            resolves(sig.email, "a commit signature", problems)?;
        }
        match r.commit_by_sha.get(c.sha.as_slice())? {
            Some(back) if back.value() == id.value() => {}
            _ => problems.push(format!(
                "commit {} is missing from the sha lookup",
                super::hex(&c.sha)
            )),
        }
    }
    rows.insert("commits".into(), n);
    for entry in r.commit_by_sha.iter()? {
        let (sha, id) = entry?;
        if r.commits.get(id.value())?.is_none() {
            problems.push(format!(
                "sha {} points at a missing commit",
                super::hex(sha.value())
            ));
        }
    }
    let mut n = 0;
    for entry in r.files.iter()? {
        let (id, v) = entry?;
        n += 1;
        note(NodeKind::File, id.value());
        let f: FileRecord = decode("file", v.value())?;
        resolves(f.path, "a file", problems)?;
    }
    rows.insert("files".into(), n);
    for entry in r.file_by_path.iter()? {
        let (path, id) = entry?;
        if r.files.get(id.value())?.is_none() {
            problems.push(format!(
                "path string {} points at a missing file",
                path.value()
            ));
        }
    }
    let mut n = 0;
    for entry in r.authors.iter()? {
        let (id, v) = entry?;
        n += 1;
        note(NodeKind::Author, id.value());
        let a: AuthorRecord = decode("author", v.value())?;
        resolves(a.name, "an author", problems)?;
        resolves(a.email, "an author", problems)?;
    }
    rows.insert("authors".into(), n);
    let mut n = 0;
    for entry in r.blobs.iter()? {
        let (id, _) = entry?;
        n += 1;
        note(NodeKind::Blob, id.value());
        // Decodes the stored blob and resolves every interned string of its symbols.
        r.blob(NodeId::new(NodeKind::Blob, id.value()))?;
    }
    rows.insert("blobs".into(), n);
    for entry in r.blob_by_sha.iter()? {
        let (sha, id) = entry?;
        if r.blobs.get(id.value())?.is_none() {
            problems.push(format!(
                "blob sha {} points at a missing blob",
                super::hex(sha.value())
            ));
        }
    }
    let mut n = 0;
    for entry in r.symbols.iter()? {
        let (id, v) = entry?;
        n += 1;
        note(NodeKind::Symbol, id.value());
        let s: SymbolNode = decode("symbol", v.value())?;
        resolves(s.name, "a symbol", problems)?;
        resolves(s.qualified_name, "a symbol", problems)?;
        if s.file.kind() != Some(NodeKind::File) || r.files.get(s.file.local())?.is_none() {
            problems.push(format!(
                "symbol {} belongs to a missing file {}",
                id.value(),
                s.file
            ));
        }
    }
    rows.insert("symbols".into(), n);
    for entry in r.symbol_by_key.iter()? {
        let (key, id) = entry?;
        if r.symbols.get(id.value())?.is_none() {
            problems.push(format!(
                "symbol key {:?} points at a missing symbol",
                key.value()
            ));
        }
    }
    for entry in r.head_blobs.iter()? {
        let (file, blob) = entry?;
        if r.files.get(file.value())?.is_none() || r.blobs.get(blob.value())?.is_none() {
            problems.push(format!(
                "the head entry of file {} is dangling",
                file.value()
            ));
        }
    }
    let mut n = 0;
    for entry in r.issues.iter()? {
        let (id, v) = entry?;
        n += 1;
        note(NodeKind::Issue, id.value());
        let i: IssueRecord = decode("issue", v.value())?;
        match r.issue_by_number.get(i.number)? {
            Some(back) if back.value() == id.value() => {}
            _ => problems.push(format!(
                "issue #{} is missing from the number lookup",
                i.number
            )),
        }
    }
    rows.insert("issues".into(), n);
    for entry in r.commit_facets.iter()? {
        let (id, v) = entry?;
        decode::<super::records::CommitFacets>("commit facets", v.value())?;
        if r.commits.get(id.value())?.is_none() {
            problems.push(format!("facets of a missing commit {}", id.value()));
        }
    }
    for entry in r.szz_blame.iter()? {
        let (_, v) = entry?;
        decode::<super::records::SzzBlame>("SZZ blame", v.value())?;
    }
    for entry in r.watermarks.iter()? {
        let (_, v) = entry?;
        decode::<Watermark>("watermark", v.value())?;
    }
    // Line provenance: every version decodes, its runs cover its lines, a shared version
    // points at a stored one, and the blob index and the first parents name what exists.
    let mut n = 0;
    for entry in r.line_origins.iter()? {
        let (k, v) = entry?;
        let (file, commit) = k.value();
        n += 1;
        let version: super::records::FileVersion = decode("line origins", v.value())?;
        let at = format!("the version of file {file} at commit {commit}");
        if r.files.get(file)?.is_none() || r.commits.get(commit)?.is_none() {
            problems.push(format!("{at} names a missing file or commit"));
        }
        match &version.origins {
            super::records::LineOrigins::Runs(runs) => {
                let covered: u64 = runs.iter().map(|run| u64::from(run.len)).sum();
                if covered != u64::from(version.lines) {
                    problems.push(format!(
                        "{at} has {} lines but its runs cover {covered}",
                        version.lines
                    ));
                }
            }
            super::records::LineOrigins::SameAs { file: f, commit: c }
                if r.line_origins.get((*f, *c))?.is_none() =>
            {
                problems.push(format!("{at} shares the lines of a missing version"));
            }
            super::records::LineOrigins::Delta { parents, .. } => {
                for p in parents {
                    if r.line_origins.get((p.file, p.commit))?.is_none() {
                        problems.push(format!("{at} is a delta against a missing version"));
                    }
                    if p.blocks.iter().any(|b| b.new + b.len > version.lines) {
                        problems.push(format!("{at} keeps lines past its end"));
                    }
                }
            }
            _ => {}
        }
        if let Some(blob) = &version.blob {
            if r.version_by_blob
                .get((file, blob.as_slice(), commit))?
                .is_none()
            {
                problems.push(format!("{at} is missing from the blob index"));
            }
        }
    }
    rows.insert("line_origins".into(), n);
    for entry in r.version_by_blob.iter()? {
        let (file, _, commit) = entry?.0.value();
        if r.line_origins.get((file, commit))?.is_none() {
            problems.push(format!(
                "the blob index names a missing version of file {file} at commit {commit}"
            ));
        }
    }
    for entry in r.first_parents.iter()? {
        let (child, parent) = entry?;
        let (child, parent) = (child.value(), parent.value());
        if parent >= child || r.commits.get(child)?.is_none() || r.commits.get(parent)?.is_none() {
            problems.push(format!(
                "first parent {parent} of commit {child} is missing or not older"
            ));
        }
    }
    for kind in NodeKind::ALL {
        let used = max_local.get(&kind).copied().unwrap_or(0);
        let next = counter(r, &counter_key_next(kind))?;
        if next < used {
            problems.push(format!(
                "the {} sequence is at {next} but id {} is in use",
                kind.plural(),
                used - 1
            ));
        }
    }

    // Edges: both directions, both ends, one counter per relation.
    let exists = |id: NodeId| -> Result<bool, StoreError> {
        let local = id.local();
        Ok(match id.kind() {
            Some(NodeKind::Commit) => r.commits.get(local)?.is_some(),
            Some(NodeKind::File) => r.files.get(local)?.is_some(),
            Some(NodeKind::Author) => r.authors.get(local)?.is_some(),
            Some(NodeKind::Blob) => r.blobs.get(local)?.is_some(),
            Some(NodeKind::Symbol) => r.symbols.get(local)?.is_some(),
            Some(NodeKind::Issue) => r.issues.get(local)?.is_some(),
            None => false,
        })
    };
    let mut per_rel: BTreeMap<u8, u64> = BTreeMap::new();
    let mut n = 0;
    for entry in r.edges.iter()? {
        let (k, v) = entry?;
        let (src, rel, dst) = k.value();
        n += 1;
        *per_rel.entry(rel).or_default() += 1;
        decode::<super::records::EdgeMeta>("edge", v.value())?;
        let name = Rel::from_u8(rel).map_or("?", Rel::name);
        if Rel::from_u8(rel).is_none() {
            problems.push(format!(
                "edge {} -{rel}-> {} has an unknown relation",
                NodeId(src),
                NodeId(dst)
            ));
        }
        if r.edges_rev.get((dst, rel, src))?.is_none() {
            problems.push(format!(
                "edge {} -{name}-> {} has no reverse",
                NodeId(src),
                NodeId(dst)
            ));
        }
        for end in [src, dst] {
            if !exists(NodeId(end))? {
                problems.push(format!(
                    "edge {} -{name}-> {} ends at a missing node {}",
                    NodeId(src),
                    NodeId(dst),
                    NodeId(end)
                ));
            }
        }
    }
    rows.insert("edges".into(), n);
    let mut n = 0;
    for entry in r.edges_rev.iter()? {
        let (dst, rel, src) = entry?.0.value();
        n += 1;
        if r.edges.get((src, rel, dst))?.is_none() {
            problems.push(format!(
                "reverse edge {} <-{rel}- {} has no forward edge",
                NodeId(dst),
                NodeId(src)
            ));
        }
    }
    rows.insert("edges_rev".into(), n);
    for rel in Rel::ALL {
        let counted = counter(r, &counter_key_edges(rel))?;
        let stored = per_rel.get(&(rel as u8)).copied().unwrap_or(0);
        if counted != stored {
            problems.push(format!(
                "the {} counter says {counted} but {stored} edges are stored",
                rel.name()
            ));
        }
    }
    Ok(())
}

fn counter(r: &ReadTx, key: &str) -> Result<u64, StoreError> {
    Ok(r.counters.get(key)?.map_or(0, |v| v.value()))
}
