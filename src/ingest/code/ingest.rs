//! Store code: parse each new blob once (content-addressed), record which symbols every
//! ingested commit modified, and which symbols each file defines at the repository's HEAD.
//!
//! Commits are processed in id order (parents first) from a watermark, `meta["code.commits_done"]`,
//! moved in the same transaction as each batch: an interrupted run resumes where it stopped.
//! A writer thread stores each batch while the next one is parsed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use gix::ObjectId;
use rayon::prelude::*;
use serde::Serialize;

use super::extract::{CodeParser, ParseBase, ParseLimits};
use super::symbols_diff::{changed_symbols, non_blank_lines};
use crate::ingest::git::linediff::LineCounter;
use crate::ingest::IngestError;
use crate::progress::Progress;
use crate::store::records::{
    BlobRecord, BlobStatus, ChangeKind, EdgeDetail, EdgeMeta, Provenance, SymbolRecord, TouchStats,
};
use crate::store::{NodeId, NodeKind, Rel, Store, StoreError, WriteTx};

const DONE_KEY: &str = "code.commits_done";

#[derive(Debug, Clone)]
pub struct CodeIngestOptions {
    pub limits: ParseLimits,
    /// Also parse vendored and generated paths (`vendor/`, `third_party/`, `node_modules/`, `*.min.js`).
    pub include_vendored: bool,
    /// Commits per transaction.
    pub batch_size: usize,
}

impl Default for CodeIngestOptions {
    fn default() -> Self {
        CodeIngestOptions {
            limits: ParseLimits::default(),
            include_vendored: false,
            batch_size: 2000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CodeIngestReport {
    pub commits: u64,
    pub blobs_parsed: u64,
    /// Parses avoided because the blob was already in the file.
    pub blobs_reused: u64,
    pub skipped: BTreeMap<String, u64>,
    pub modifies_added: u64,
    pub head_files: u64,
    pub head_symbols: u64,
    /// `imports` edges at HEAD (imports that name a repository file), and imports that do not,
    /// among the files whose imports this run derived: every HEAD file's when a file was added
    /// or removed, else the files whose content changed.
    pub head_imports: u64,
    pub unresolved_imports: u64,
    pub elapsed_ms: u64,
}

/// Paths skipped unless `include_vendored`.
pub fn is_vendored(path: &str) -> bool {
    let dirs = [
        "vendor/",
        "third_party/",
        "third-party/",
        "node_modules/",
        "external/",
    ];
    dirs.iter()
        .any(|d| path.starts_with(d) || path.contains(&format!("/{d}")))
        || path.ends_with(".min.js")
        || path.ends_with(".min.css")
}

/// The version of the rules that resolve imports to files ([`super::imports::resolve`]),
/// recorded with the `imports` edges they made. Change it with the rules: an ingest that finds
/// another version derives every HEAD file's imports again, not only the changed files'.
const IMPORT_RULES: &str = "1";
const IMPORT_RULES_KEY: &str = "code.import_rules";

fn wanted(path: &str, options: &CodeIngestOptions) -> bool {
    super::Lang::detect(path, b"").is_some() && (options.include_vendored || !is_vendored(path))
}

/// Parse `data` into a blob record, incrementally from `base` (an earlier version of the file).
fn parse_blob(
    parser: &mut CodeParser,
    sha: ObjectId,
    path: &str,
    data: Option<&[u8]>,
    base: Option<ParseBase>,
) -> (BlobRecord, Option<ParseBase>) {
    let skipped = |reason: &str| BlobStatus::Skipped {
        reason: reason.into(),
    };
    let (lang, status, symbols, imports, next) = match data {
        None => (
            None,
            skipped("missing_object"),
            Vec::new(),
            Vec::new(),
            base,
        ),
        Some(data) => match parser.parse_from(path, data, base) {
            (Ok(parsed), next) => (
                Some(parsed.lang.name().to_string()),
                BlobStatus::Parsed {
                    error_bytes: parsed.error_bytes,
                },
                parsed.symbols,
                parsed.imports,
                next,
            ),
            (Err(skip), next) => (None, skipped(skip.name()), Vec::new(), Vec::new(), next),
        },
    };
    let record = BlobRecord {
        sha: sha.as_bytes().to_vec(),
        lang,
        status,
        symbols,
        imports,
    };
    (record, next)
}

fn read_blob(repo: &gix::Repository, id: ObjectId) -> Option<Vec<u8>> {
    repo.try_find_object(id)
        .ok()
        .flatten()
        .map(|o| o.detach().data)
}

/// One file change of one commit, as the code stage needs it.
struct Touch {
    commit: NodeId,
    file: NodeId,
    old_file: NodeId,
    path: String,
    stats: TouchStats,
}

fn oid(bytes: &Option<Vec<u8>>) -> Option<ObjectId> {
    bytes
        .as_ref()
        .and_then(|b| ObjectId::try_from(b.as_slice()).ok())
}

/// The last parsed version of each recently changed file (with its blob id), so the next
/// version parses only what changed. Bounded by the source bytes it holds: past the bound,
/// the files changed longest ago are dropped first.
struct ParseBases {
    by_path: HashMap<String, (u64, ParseBase, ObjectId)>,
    /// Batches seen so far; each entry records the batch that last used it.
    batch: u64,
    /// Source bytes kept at the end of a batch; past it, eviction goes down to three quarters.
    max_bytes: usize,
}

impl Default for ParseBases {
    fn default() -> Self {
        ParseBases {
            by_path: HashMap::new(),
            batch: 0,
            max_bytes: Self::MAX_BYTES,
        }
    }
}

impl ParseBases {
    /// Source bytes kept. The units kept with them (symbols, one entry per item, member and
    /// function statement) cost more; on cargo the whole code stage peaks at 0.78 GB RSS
    /// (batches of 2,000 commits).
    const MAX_BYTES: usize = 128 << 20;

    fn take(&mut self, path: &str) -> Option<(ParseBase, ObjectId)> {
        self.by_path.remove(path).map(|(_, base, id)| (base, id))
    }

    fn put(&mut self, path: String, base: ParseBase, id: ObjectId) {
        self.by_path.insert(path, (self.batch, base, id));
    }

    /// End a batch: drop the least recently used bases while over the bound.
    fn end_batch(&mut self) {
        self.batch += 1;
        let mut bytes: usize = self.by_path.values().map(|(_, b, _)| b.len()).sum();
        if bytes <= self.max_bytes {
            return;
        }
        let mut by_age: Vec<(u64, String, usize)> = self
            .by_path
            .iter()
            .map(|(p, (used, b, _))| (*used, p.clone(), b.len()))
            .collect();
        by_age.sort_unstable();
        for (_, path, len) in by_age {
            if bytes <= self.max_bytes * 3 / 4 {
                break;
            }
            self.by_path.remove(&path);
            bytes -= len;
        }
    }
}

/// The changed non-blank lines (0-based) of a file change: those of the old version, and
/// those of the new one.
type ChangedLines = (Vec<u32>, Vec<u32>);

/// A file change as a pair of blob ids: old version, new version.
type BlobPair = (ObjectId, ObjectId);

fn changed_lines(counter: &mut LineCounter, old: &[u8], new: &[u8]) -> ChangedLines {
    let hunks = counter.hunks(old, new);
    (
        non_blank_lines(old, hunks.iter().map(|h| h.0.clone())),
        non_blank_lines(new, hunks.iter().map(|h| h.1.clone())),
    )
}

/// The versions parsed for the first time, and the changed lines of the `pairs` asked for
/// whose two versions a chain held one after the other.
type ParsedVersions = (Vec<(String, BlobRecord)>, HashMap<BlobPair, ChangedLines>);

/// Parse the blobs `needed` that the store does not have yet. Versions of one path form a
/// chain parsed in order, each from the previous one's units; chains run in parallel.
///
/// While a chain holds two consecutive versions of its file (or its base and its first
/// version), the lines changed between them are diffed too when `pairs` asks for that change,
/// so those blobs are not inflated a second time.
#[allow(clippy::too_many_arguments)]
fn parse_missing(
    store: &Store,
    repo: &gix::ThreadSafeRepository,
    needed: Vec<(ObjectId, String)>,
    pairs: &HashSet<BlobPair>,
    options: &CodeIngestOptions,
    cache: &mut HashMap<ObjectId, Arc<BlobRecord>>,
    bases: &mut ParseBases,
    report: &mut CodeIngestReport,
) -> Result<ParsedVersions, IngestError> {
    let read = store.read()?;
    let mut chains: Vec<(String, Vec<ObjectId>)> = Vec::new();
    let mut chain_of: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for (id, path) in needed {
        if cache.contains_key(&id) || !seen.insert(id) {
            continue;
        }
        match read.blob_by_sha(id.as_bytes())? {
            Some(bid) => {
                cache.insert(id, Arc::new(read.blob(bid)?));
                report.blobs_reused += 1;
            }
            None => {
                let next = chains.len();
                let at = *chain_of.entry(path.clone()).or_insert(next);
                if at == next {
                    chains.push((path, Vec::new()));
                }
                chains[at].1.push(id);
            }
        }
    }
    drop(read);
    // Each path's versions to parse, in order, with the base its first version parses from.
    type ChainWork = (String, Vec<ObjectId>, Option<(ParseBase, ObjectId)>);
    let work: Vec<ChainWork> = chains
        .into_iter()
        .map(|(path, ids)| {
            let base = bases.take(&path);
            (path, ids, base)
        })
        .collect();
    type Chain = (
        String,
        Vec<BlobRecord>,
        Option<(ParseBase, ObjectId)>,
        Vec<(BlobPair, ChangedLines)>,
    );
    let done: Vec<Chain> = work
        .into_par_iter()
        .map_init(
            || {
                (
                    repo.to_thread_local(),
                    CodeParser::new(options.limits.clone()),
                    LineCounter::default(),
                )
            },
            |(repo, parser, counter), (path, ids, base)| {
                // A CUDA file's base holds the blanked source, not the blob's bytes.
                let base_is_blob = !super::Lang::is_cuda(&path);
                let (mut base, mut base_id) = match base {
                    Some((base, id)) => (Some(base), Some(id)),
                    None => (None, None),
                };
                let mut records = Vec::with_capacity(ids.len());
                let mut changed = Vec::new();
                // The version before this one in the chain, as read from the repository.
                let mut previous: Option<(ObjectId, Vec<u8>)> = None;
                for id in ids {
                    let data = read_blob(repo, id);
                    if let Some(new) = data.as_deref() {
                        let old = match &previous {
                            Some((old_id, old)) => Some((*old_id, old.as_slice())),
                            None => base
                                .as_ref()
                                .zip(base_id)
                                .filter(|_| base_is_blob)
                                .map(|(b, b_id)| (b_id, b.source())),
                        };
                        if let Some((old_id, old)) = old.filter(|(o, _)| pairs.contains(&(*o, id)))
                        {
                            changed.push(((old_id, id), changed_lines(counter, old, new)));
                        }
                    }
                    let (record, next) = parse_blob(parser, id, &path, data.as_deref(), base);
                    records.push(record);
                    // Without the blob's bytes the base is passed on unchanged; otherwise
                    // what comes back is this version's (or none).
                    if data.is_some() {
                        base_id = Some(id);
                    }
                    base = next;
                    previous = data.map(|d| (id, d));
                }
                (path, records, base.zip(base_id), changed)
            },
        )
        .collect();
    let mut parsed = Vec::new();
    let mut changed = HashMap::new();
    for (path, records, base, pairs) in done {
        parsed.extend(records.into_iter().map(|r| (path.clone(), r)));
        if let Some((base, id)) = base {
            bases.put(path, base, id);
        }
        changed.extend(pairs);
    }
    bases.end_batch();
    for (_, record) in &parsed {
        report.blobs_parsed += 1;
        if let BlobStatus::Skipped { reason } = &record.status {
            *report.skipped.entry(reason.clone()).or_default() += 1;
        }
        if let Ok(id) = ObjectId::try_from(record.sha.as_slice()) {
            cache.insert(id, Arc::new(record.clone()));
        }
    }
    Ok((parsed, changed))
}

/// Store parsed versions in the order each file's were parsed. Each is stored against the
/// file's previous stored version (`previous`, or the file's HEAD version from an earlier
/// ingest), which keeps the symbols it shares with it as a reference.
fn store_blobs(
    tx: &mut WriteTx<'_>,
    parsed: &[(String, BlobRecord)],
    previous: &mut HashMap<String, NodeId>,
) -> Result<(), StoreError> {
    for (path, record) in parsed {
        let base = match previous.get(path) {
            Some(&id) => Some(id),
            None => match tx.file_id(path)? {
                Some(file) => tx.head_blob(file)?,
                None => None,
            },
        };
        let id = tx.insert_blob(record, base)?;
        previous.insert(path.clone(), id);
        match &record.status {
            BlobStatus::Parsed { .. } => tx.bump("code.blobs_parsed", 1),
            BlobStatus::Skipped { reason } => tx.bump(&format!("code.skipped.{reason}"), 1),
        }
    }
    Ok(())
}

/// Run the code stage on the repository at `repo_path`.
pub fn ingest(
    store: &Store,
    repo_path: &Path,
    options: &CodeIngestOptions,
    progress: &dyn Progress,
) -> Result<CodeIngestReport, IngestError> {
    let started = Instant::now();
    let repo = gix::open(repo_path).map_err(|e| IngestError::NotARepository {
        path: repo_path.into(),
        detail: Some(e.to_string()),
    })?;
    let sync = repo.clone().into_sync();
    let mut report = CodeIngestReport::default();
    let mut cache: HashMap<ObjectId, Arc<BlobRecord>> = HashMap::new();
    let mut bases = ParseBases::default();
    let (done, total) = {
        let read = store.read()?;
        let done = read
            .meta(DONE_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        (done, read.commit_count()?)
    };
    progress.phase("parsing code history", Some(total.saturating_sub(done)));
    // Each batch is parsed while the one before it is written: the writer, on a thread of its
    // own, stores the parsed versions and the symbols each commit modified, and moves the
    // watermark in the same transaction.
    let (batches, written) = std::sync::mpsc::sync_channel::<ParsedBatch>(1);
    let (parsing, writing) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<u64, IngestError> {
            // Each path's last stored version, the base its next version is stored against.
            let mut previous: HashMap<String, NodeId> = HashMap::new();
            let mut modifies = 0;
            for batch in written {
                modifies += write_batch(store, &batch, &mut previous)?;
                progress.advance(batch.commits);
            }
            Ok(modifies)
        });
        let parsing = (|| -> Result<(), IngestError> {
            let mut next = done;
            while next < total {
                let end = (next + options.batch_size.max(1) as u64).min(total);
                let batch = parse_batch(
                    store,
                    &sync,
                    next,
                    end,
                    options,
                    &mut cache,
                    &mut bases,
                    &mut report,
                )?;
                report.commits += end - next;
                next = end;
                if batches.send(batch).is_err() {
                    // The writer stopped: its error is the one to report.
                    break;
                }
            }
            Ok(())
        })();
        drop(batches);
        let writing = match writer.join() {
            Ok(outcome) => outcome,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (parsing, writing)
    });
    report.modifies_added += writing?;
    parsing?;
    progress.done();

    head(
        store,
        &repo,
        &sync,
        options,
        &mut cache,
        &mut report,
        progress,
    )?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// One batch of commits, parsed and ready to store.
struct ParsedBatch {
    /// The commits' local ids end here (exclusive): the watermark after the batch.
    end: u64,
    commits: u64,
    /// File versions parsed for the first time, in each file's order.
    parsed: Vec<(String, BlobRecord)>,
    touches: Vec<Touch>,
    /// Per touch: the old and new version's records, and the changed non-blank lines of each.
    sides: Vec<TouchSides>,
}

struct TouchSides {
    old: Option<Arc<BlobRecord>>,
    new: Option<Arc<BlobRecord>>,
    old_lines: Vec<u32>,
    new_lines: Vec<u32>,
}

/// Parse the versions the commits `start..end` need and diff their changed files.
#[allow(clippy::too_many_arguments)]
fn parse_batch(
    store: &Store,
    sync: &gix::ThreadSafeRepository,
    start: u64,
    end: u64,
    options: &CodeIngestOptions,
    cache: &mut HashMap<ObjectId, Arc<BlobRecord>>,
    bases: &mut ParseBases,
    report: &mut CodeIngestReport,
) -> Result<ParsedBatch, IngestError> {
    let touches = history_touches(store, start, end, options)?;
    let needed: Vec<(ObjectId, String)> = touches
        .iter()
        .flat_map(|t| {
            [oid(&t.stats.old_blob), oid(&t.stats.new_blob)]
                .into_iter()
                .flatten()
                .map(|id| (id, t.path.clone()))
        })
        .collect();
    // The changes whose lines are diffed: both versions known, neither side empty.
    let pair = |t: &Touch| match (oid(&t.stats.old_blob), oid(&t.stats.new_blob)) {
        (Some(a), Some(b))
            if t.stats.change != ChangeKind::Added && t.stats.change != ChangeKind::Deleted =>
        {
            Some((a, b))
        }
        _ => None,
    };
    let pairs: HashSet<BlobPair> = touches.iter().filter_map(pair).collect();
    let (parsed, diffed) =
        parse_missing(store, sync, needed, &pairs, options, cache, bases, report)?;
    // Changes the parse did not diff (a version parsed in an earlier batch on another
    // branch, a revert to a known version) read both versions again.
    let changed_lines: Vec<ChangedLines> = touches
        .par_iter()
        .map_init(
            || (sync.to_thread_local(), LineCounter::default()),
            |(repo, counter), t| match pair(t) {
                Some(p) => match diffed.get(&p) {
                    Some(lines) => lines.clone(),
                    None => match (read_blob(repo, p.0), read_blob(repo, p.1)) {
                        (Some(x), Some(y)) => changed_lines(counter, &x, &y),
                        _ => Default::default(),
                    },
                },
                None => Default::default(),
            },
        )
        .collect();
    let record = |b: &Option<Vec<u8>>| oid(b).and_then(|id| cache.get(&id)).cloned();
    let sides = touches
        .iter()
        .zip(changed_lines)
        .map(|(t, (old_lines, new_lines))| TouchSides {
            old: (t.stats.change != ChangeKind::Added)
                .then(|| record(&t.stats.old_blob))
                .flatten(),
            new: (t.stats.change != ChangeKind::Deleted)
                .then(|| record(&t.stats.new_blob))
                .flatten(),
            old_lines,
            new_lines,
        })
        .collect();
    Ok(ParsedBatch {
        end,
        commits: end - start,
        parsed,
        touches,
        sides,
    })
}

/// Store one parsed batch in one transaction with the watermark after it; returns the
/// `modifies` edges added.
fn write_batch(
    store: &Store,
    batch: &ParsedBatch,
    previous: &mut HashMap<String, NodeId>,
) -> Result<u64, IngestError> {
    let modifies = store.write(|tx| -> Result<u64, StoreError> {
        store_blobs(tx, &batch.parsed, previous)?;
        let mut modifies = 0;
        for (t, sides) in batch.touches.iter().zip(&batch.sides) {
            fn symbols(r: &Option<Arc<BlobRecord>>) -> &[SymbolRecord] {
                r.as_deref().map_or(&[], |r| r.symbols.as_slice())
            }
            let (old, new) = (symbols(&sides.old), symbols(&sides.new));
            for (qname, (change, record)) in
                changed_symbols(old, new, &sides.old_lines, &sides.new_lines)
            {
                let file = if change == crate::store::records::SymbolChange::Removed {
                    t.old_file
                } else {
                    t.file
                };
                let symbol = tx.symbol(file, qname, &record.name, record.kind)?;
                let meta = EdgeMeta::certain(Provenance::DiffHunks, EdgeDetail::Modify { change });
                tx.add_edge(t.commit, Rel::Modifies, symbol, &meta)?;
                modifies += 1;
            }
        }
        tx.set_meta(DONE_KEY, &batch.end.to_le_bytes())?;
        Ok(modifies)
    })?;
    Ok(modifies)
}

/// The file changes of non-merge commits with local ids in `start..end` that touch code.
fn history_touches(
    store: &Store,
    start: u64,
    end: u64,
    options: &CodeIngestOptions,
) -> Result<Vec<Touch>, IngestError> {
    let read = store.read()?;
    let mut out = Vec::new();
    for local in start..end {
        let commit = NodeId::new(NodeKind::Commit, local);
        // Merges repeat their branch's changes; history is attributed to the commits themselves.
        if read.commit(commit)?.is_merge {
            continue;
        }
        for edge in read.edges_from(commit, Rel::Touches)? {
            let EdgeDetail::Touch(stats) = edge.meta.detail else {
                continue;
            };
            let path = read.string(read.file(edge.dst)?.path)?;
            if !wanted(&path, options) {
                continue;
            }
            let old_file = match stats.old_path {
                Some(old) => read.file_by_path(&read.string(old)?)?.unwrap_or(edge.dst),
                None => edge.dst,
            };
            out.push(Touch {
                commit,
                file: edge.dst,
                old_file,
                path,
                stats,
            });
        }
    }
    Ok(out)
}

/// Point every code file at its HEAD blob and refresh its `defines` edges where it changed.
fn head(
    store: &Store,
    repo: &gix::Repository,
    sync: &gix::ThreadSafeRepository,
    options: &CodeIngestOptions,
    cache: &mut HashMap<ObjectId, Arc<BlobRecord>>,
    report: &mut CodeIngestReport,
    progress: &dyn Progress,
) -> Result<(), IngestError> {
    let Ok(commit) = repo.head_commit() else {
        return Ok(());
    };
    let path = repo.path().to_path_buf();
    let tree = commit
        .tree()
        .map_err(|e| crate::ingest::git::git_error(&path, e))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(|e| crate::ingest::git::git_error(&path, e))?;
    let files: Vec<(String, ObjectId)> = recorder
        .records
        .into_iter()
        .filter(|e| e.mode.is_blob())
        .map(|e| {
            (
                crate::store::paths::from_git(&e.filepath).into_owned(),
                e.oid,
            )
        })
        .filter(|(p, _)| wanted(p, options))
        .collect();
    progress.phase("parsing code at HEAD", None);
    let needed = files.iter().map(|(p, id)| (*id, p.clone())).collect();
    let mut bases = ParseBases::default();
    let (parsed, _) = parse_missing(
        store,
        sync,
        needed,
        &HashSet::new(),
        options,
        cache,
        &mut bases,
        report,
    )?;
    store.write(|tx| -> Result<(), StoreError> {
        store_blobs(tx, &parsed, &mut HashMap::new())?;
        let before: HashSet<NodeId> = tx.head_files()?.into_iter().collect();
        let mut at_head = HashSet::new();
        let mut changed = HashSet::new();
        for (p, id) in &files {
            let (file, _) = tx.file(p)?;
            at_head.insert(file);
            let blob = tx.blob_id(id.as_bytes())?.expect("stored above or earlier");
            report.head_files += 1;
            if tx.head_blob(file)? == Some(blob) {
                continue;
            }
            changed.insert(file);
            tx.remove_edges_from(file, Rel::Defines)?;
            let record = tx.blob(blob)?;
            for s in &record.symbols {
                let symbol = tx.symbol(file, &s.qualified_name, &s.name, s.kind)?;
                let meta = EdgeMeta::certain(Provenance::TreeSitter, EdgeDetail::None);
                tx.add_edge(file, Rel::Defines, symbol, &meta)?;
                report.head_symbols += 1;
            }
            tx.set_head_blob(file, Some(blob))?;
        }
        for file in tx.head_files()? {
            if !at_head.contains(&file) {
                tx.remove_edges_from(file, Rel::Defines)?;
                tx.remove_edges_from(file, Rel::Imports)?;
                tx.set_head_blob(file, None)?;
            }
        }
        // Imports resolve against the whole HEAD tree: when a file was added or removed (a new
        // module can make an old import resolve), or the rules changed, every file's imports
        // are derived again. Otherwise a file's imports follow from its content and path, and
        // only the files whose content changed are read.
        let every_file = at_head != before
            || tx.get_meta(IMPORT_RULES_KEY)?.as_deref() != Some(IMPORT_RULES.as_bytes());
        let head_paths = super::imports::HeadPaths::new(files.iter().map(|(p, _)| p.as_str()));
        for (p, id) in &files {
            let (file, _) = tx.file(p)?;
            if !every_file && !changed.contains(&file) {
                continue;
            }
            tx.remove_edges_from(file, Rel::Imports)?;
            let blob = tx.blob_id(id.as_bytes())?.expect("stored above or earlier");
            let record = tx.blob(blob)?;
            let Some(lang) = record.lang.as_deref().and_then(super::Lang::from_name) else {
                continue;
            };
            for import in &record.imports {
                match super::imports::resolve(lang, p, import, &head_paths) {
                    Some(target) if target != *p => {
                        let (target, _) = tx.file(&target)?;
                        let meta = EdgeMeta {
                            evidence: Some(import.clone()),
                            ..EdgeMeta::certain(Provenance::TreeSitter, EdgeDetail::None)
                        };
                        tx.add_edge(file, Rel::Imports, target, &meta)?;
                        report.head_imports += 1;
                    }
                    // The file itself (`from . import x` in a package's __init__.py).
                    Some(_) => {}
                    // `from package import name` where the name is no module: the package's
                    // own import is recorded and counted on its own.
                    None if super::imports::python_from(import).is_some() => {}
                    None => report.unresolved_imports += 1,
                }
            }
        }
        tx.set_meta("code.head", commit.id.as_bytes())?;
        tx.set_meta(IMPORT_RULES_KEY, IMPORT_RULES.as_bytes())?;
        Ok(())
    })?;
    progress.done();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::code::extract::ParseLimits;

    /// A parse base of a Rust file of about `bytes` bytes.
    fn base(parser: &mut CodeParser, bytes: usize) -> ParseBase {
        let line = "fn f() { let x = 1; }\n";
        let source = line.repeat(bytes / line.len());
        let (parsed, next) = parser.parse_from("a.rs", source.as_bytes(), None);
        assert!(parsed.is_ok());
        next.expect("a Rust file leaves a parse base")
    }

    #[test]
    fn parse_bases_drop_the_files_changed_longest_ago_past_the_bound() {
        let mut parser = CodeParser::new(ParseLimits::default());
        let size = base(&mut parser, 3_000).len();
        // Three files are over the bound; two are under three quarters of it.
        let mut bases = ParseBases {
            max_bytes: size * 28 / 10,
            ..ParseBases::default()
        };
        let id = ObjectId::null(gix::hash::Kind::Sha1);
        bases.put("a".into(), base(&mut parser, 3_000), id);
        bases.end_batch();
        bases.put("b".into(), base(&mut parser, 3_000), id);
        bases.end_batch();
        assert_eq!(bases.by_path.len(), 2, "under the bound nothing is dropped");
        // `a` changes again, so `b` is now the file changed longest ago.
        let (a, _) = bases.take("a").expect("kept");
        assert!(bases.take("a").is_none(), "taken once");
        bases.put("a".into(), a, id);
        bases.put("c".into(), base(&mut parser, 3_000), id);
        bases.end_batch();
        let mut kept: Vec<&str> = bases.by_path.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["a", "c"]);
    }
}
