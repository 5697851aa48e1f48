//! Bug localization: which files (and symbols) an issue concerns, ranked from its text alone and
//! from what the project knew when the issue was opened.
//!
//! Everything [`Locator`] looks at is cut at a time `T` (the issue's creation): the files as they
//! were at `T` (from the `touches` history: last version committed before `T`, deleted and
//! renamed-away files dropped), their symbols at that version, the issues opened and the commits
//! committed before `T`, and the fixes of those issues that landed before `T`. So it can be
//! replayed on past issues and scored honestly (`lore eval locate`).
//!
//! Signals, each a ranking of files that exist at `T`:
//! - **mentions**: traceback frames, panics, compiler diagnostics, paths and backticked
//!   identifiers in the text, resolved against the files and symbols at `T`;
//! - **file text (BM25)**: the issue text against each file's path, symbol names, signatures and
//!   docs at `T`;
//! - **history (BM25)**: past issues and commits that match the text (tantivy, filtered to before
//!   `T`), credited to the files their fixes and changes touched;
//! - **file vectors** and **history (vectors)**: the same two with the active embedder.
//!
//! The BM25 ranker fuses the two BM25 signals, the vector ranker the two vector signals, and the
//! hybrid ranker all five (vector signals at half weight), by reciprocal rank fusion.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use super::embed::cosine;
use super::rank::reciprocal_rank_fusion;
use super::text::{analyzer, TextFilter};
use super::{IndexError, Indexes};
use crate::code::{CodeIndex, Mention};
use crate::store::records::{ChangeKind, EdgeDetail, IssueRecord, Provenance};
use crate::store::{NodeId, NodeKind, ReadTx, Rel};

/// Which signals a ranking uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ranker {
    Bm25,
    Vector,
    Hybrid,
}

impl Ranker {
    pub const ALL: [Ranker; 3] = [Ranker::Bm25, Ranker::Vector, Ranker::Hybrid];

    pub fn name(self) -> &'static str {
        match self {
            Ranker::Bm25 => "bm25",
            Ranker::Vector => "vector",
            Ranker::Hybrid => "hybrid",
        }
    }

    pub fn parse(s: &str) -> Option<Ranker> {
        Ranker::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// Weights of mentions, file text, history, file vectors and history vectors in the hybrid
/// ranker. The built-in embedder's signals count half: on huggingface/peft and rust-lang/cargo
/// this beat equal weights (docs/benchmarks.md).
const HYBRID_WEIGHTS: [f32; 5] = [1.0, 1.0, 1.0, 0.5, 0.5];

/// Commits touching more files than this say little about any one of them.
const MAX_FILES_PER_COMMIT: usize = 40;
/// Past issues and commits taken from each history search.
const HISTORY_HITS: usize = 20;
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// One version of a file in history.
#[derive(Debug, Clone)]
struct Version {
    time: i64,
    /// The blob's sha, `None` when the commit deleted or renamed the file away.
    blob: Option<Vec<u8>>,
}

/// When each file changed, from the `touches` edges, to reconstruct the tree at any time.
pub struct Timeline {
    versions: HashMap<NodeId, Vec<Version>>,
    paths: HashMap<NodeId, String>,
    commit_time: HashMap<NodeId, i64>,
}

impl Timeline {
    pub fn build(read: &ReadTx) -> Result<Timeline, IndexError> {
        let paths: HashMap<NodeId, String> = read.all_files()?.into_iter().collect();
        let by_path: HashMap<&str, NodeId> = paths.iter().map(|(k, v)| (v.as_str(), *k)).collect();
        let mut versions: HashMap<NodeId, Vec<Version>> = HashMap::new();
        let mut commit_time = HashMap::new();
        for (commit, record) in read.all_commits()? {
            let time = record.committer.time;
            commit_time.insert(commit, time);
            if record.is_merge {
                continue;
            }
            for edge in read.edges_from(commit, Rel::Touches)? {
                let EdgeDetail::Touch(t) = &edge.meta.detail else {
                    continue;
                };
                let blob = match t.change {
                    ChangeKind::Deleted => None,
                    _ => t.new_blob.clone(),
                };
                versions
                    .entry(edge.dst)
                    .or_default()
                    .push(Version { time, blob });
                if t.change == ChangeKind::Renamed {
                    if let Some(old) = t.old_path {
                        let old = read.string(old)?;
                        if let Some(&old_file) = by_path.get(old.as_str()) {
                            versions
                                .entry(old_file)
                                .or_default()
                                .push(Version { time, blob: None });
                        }
                    }
                }
            }
        }
        for v in versions.values_mut() {
            v.sort_by_key(|x| x.time);
        }
        Ok(Timeline {
            versions,
            paths,
            commit_time,
        })
    }

    /// Files that existed just before `t`, with their path and blob sha (when known).
    pub fn files_at(&self, t: i64) -> Vec<(NodeId, String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for (file, versions) in &self.versions {
            let before = versions.partition_point(|v| v.time < t);
            if before == 0 {
                continue;
            }
            let last = &versions[before - 1];
            // A file deleted and re-added at the same second: the version with a blob wins.
            let alive = last.blob.is_some()
                || versions[..before]
                    .iter()
                    .rev()
                    .take_while(|v| v.time == last.time)
                    .any(|v| v.blob.is_some());
            if !alive {
                continue;
            }
            let blob = versions[..before]
                .iter()
                .rev()
                .take_while(|v| v.time == last.time)
                .find_map(|v| v.blob.clone());
            out.push((
                *file,
                self.paths.get(file).cloned().unwrap_or_default(),
                blob,
            ));
        }
        out.sort_by_key(|f| f.0);
        out
    }

    /// When a commit was committed.
    pub fn commit_time(&self, commit: NodeId) -> Option<i64> {
        self.commit_time.get(&commit).copied()
    }
}

/// What lore knows of one file version, for ranking.
struct FileDoc {
    blob: Option<NodeId>,
    /// Analyzed terms with counts.
    terms: HashMap<String, u32>,
    len: u32,
    /// The texts vectors are made of: the path, then each symbol (name, signature, doc).
    parts: Vec<String>,
    symbols: Vec<(String, String)>,
}

/// A file as it stood at some time: id, path and blob sha.
type TimedFile = (NodeId, String, Option<Vec<u8>>);

/// The files as they stood at a time, with their documents.
#[derive(Clone, Copy)]
struct CodeAt<'a> {
    files: &'a [TimedFile],
    docs: &'a [(NodeId, Rc<FileDoc>)],
    alive: &'a HashSet<NodeId>,
    before: i64,
}

/// A ranked file with what pointed at it.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    pub file: NodeId,
    pub path: String,
    pub score: f32,
    /// Signals that ranked the file, with its rank in each (1-based).
    pub signals: Vec<(String, usize)>,
    /// Symbols of the file at that time that the text points at, best first.
    pub symbols: Vec<String>,
}

/// Every signal's ranking for one query.
#[derive(Debug, Default, Clone)]
pub struct Signals {
    pub mentions: Vec<NodeId>,
    pub file_bm25: Vec<NodeId>,
    pub history_bm25: Vec<NodeId>,
    pub file_vector: Vec<NodeId>,
    pub history_vector: Vec<NodeId>,
    /// Symbols mentioned, per file.
    mentioned_symbols: HashMap<NodeId, Vec<NodeId>>,
}

impl Signals {
    /// Each signal's ranking with its name.
    pub fn named(&self) -> [(&'static str, &Vec<NodeId>); 5] {
        [
            ("mentions", &self.mentions),
            ("text", &self.file_bm25),
            ("history", &self.history_bm25),
            ("text-vector", &self.file_vector),
            ("history-vector", &self.history_vector),
        ]
    }

    /// The fused ranking of `ranker`.
    pub fn fuse(&self, ranker: Ranker) -> Vec<(NodeId, f32)> {
        match ranker {
            Ranker::Bm25 => {
                reciprocal_rank_fusion(&[self.file_bm25.clone(), self.history_bm25.clone()], &[])
            }
            Ranker::Vector => reciprocal_rank_fusion(
                &[self.file_vector.clone(), self.history_vector.clone()],
                &[],
            ),
            Ranker::Hybrid => reciprocal_rank_fusion(
                &[
                    self.mentions.clone(),
                    self.file_bm25.clone(),
                    self.history_bm25.clone(),
                    self.file_vector.clone(),
                    self.history_vector.clone(),
                ],
                &HYBRID_WEIGHTS,
            ),
        }
    }
}

/// Ranks files for issue text as of a point in time; see the module docs.
pub struct Locator<'a> {
    read: &'a ReadTx,
    indexes: &'a Indexes,
    timeline: Timeline,
    docs: RefCell<HashMap<Vec<u8>, std::rc::Rc<FileDoc>>>,
    /// Vectors of each file version's parts.
    vectors: RefCell<HashMap<Vec<u8>, Vec<Vec<f32>>>>,
    use_vectors: bool,
}

/// The text of an issue as it was opened: title and body, without later comments.
pub fn issue_text(issue: &IssueRecord) -> String {
    format!("{}\n{}", issue.title, issue.body)
}

fn analyze(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
    out
}

impl<'a> Locator<'a> {
    pub fn new(read: &'a ReadTx, indexes: &'a Indexes) -> Result<Locator<'a>, IndexError> {
        let use_vectors = indexes.vectors.active_model()?.is_some();
        Ok(Locator {
            read,
            indexes,
            timeline: Timeline::build(read)?,
            docs: RefCell::new(HashMap::new()),
            vectors: RefCell::new(HashMap::new()),
            use_vectors,
        })
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn file_doc(
        &self,
        path: &str,
        blob_sha: Option<&[u8]>,
    ) -> Result<std::rc::Rc<FileDoc>, IndexError> {
        let key = doc_key(path, blob_sha);
        if let Some(d) = self.docs.borrow().get(&key) {
            return Ok(d.clone());
        }
        let mut text = path.replace(['/', '.', '-'], " ");
        let mut parts = vec![text.clone()];
        let mut symbols = Vec::new();
        let mut blob = None;
        if let Some(sha) = blob_sha {
            if let Some(id) = self.read.blob_by_sha(sha)? {
                blob = Some(id);
                let record = self.read.blob(id)?;
                for s in &record.symbols {
                    let mut part = format!("{} {}", s.name, s.signature);
                    if let Some(d) = &s.doc {
                        part.push(' ');
                        part.push_str(d);
                    }
                    text.push('\n');
                    text.push_str(&part);
                    parts.push(part);
                    symbols.push((s.name.clone(), s.qualified_name.clone()));
                }
            }
        }
        let tokens = analyze(&text);
        let mut terms: HashMap<String, u32> = HashMap::new();
        for t in &tokens {
            *terms.entry(t.clone()).or_default() += 1;
        }
        let doc = std::rc::Rc::new(FileDoc {
            blob,
            len: tokens.len() as u32,
            terms,
            parts,
            symbols,
        });
        self.docs.borrow_mut().insert(key, doc.clone());
        Ok(doc)
    }

    /// Every signal for `text` as of `before`. `exclude` is the issue itself, which history
    /// searches must not find.
    pub fn signals(
        &self,
        text: &str,
        before: i64,
        exclude: Option<NodeId>,
    ) -> Result<Signals, IndexError> {
        let files = self.timeline.files_at(before);
        let alive: HashSet<NodeId> = files.iter().map(|f| f.0).collect();
        let mut docs = Vec::with_capacity(files.len());
        for (file, path, sha) in &files {
            docs.push((*file, self.file_doc(path, sha.as_deref())?));
        }
        let mut signals = Signals::default();
        self.mention_signals(text, &files, &docs, &alive, &mut signals)?;
        signals.file_bm25 = file_bm25(text, &docs);
        signals.history_bm25 = self.history_by_text(text, before, exclude, &alive)?;
        if self.use_vectors {
            let code = CodeAt {
                files: &files,
                docs: &docs,
                alive: &alive,
                before,
            };
            self.vector_signals(text, &code, exclude, &mut signals)?;
        }
        Ok(signals)
    }

    /// Files and symbols the text mentions, against the code as it was.
    fn mention_signals(
        &self,
        text: &str,
        files: &[TimedFile],
        docs: &[(NodeId, Rc<FileDoc>)],
        alive: &HashSet<NodeId>,
        signals: &mut Signals,
    ) -> Result<(), IndexError> {
        let listed: Vec<(NodeId, String)> = files.iter().map(|(f, p, _)| (*f, p.clone())).collect();
        let blobs: Vec<(NodeId, NodeId)> = docs
            .iter()
            .filter_map(|(f, d)| d.blob.map(|b| (*f, b)))
            .collect();
        let code = CodeIndex::from_files(self.read, &listed, &blobs)?;
        // Most confident first; among traceback frames the innermost (last printed) first, as
        // that is where the error was raised.
        let mut mentions: Vec<(usize, Mention)> =
            code.mentions(text).into_iter().enumerate().collect();
        mentions.sort_by(|(i, a), (j, b)| {
            b.confidence.total_cmp(&a.confidence).then_with(|| {
                if a.provenance == Provenance::Traceback && b.provenance == Provenance::Traceback {
                    j.cmp(i)
                } else {
                    i.cmp(j)
                }
            })
        });
        for (_, m) in mentions {
            match m.target.kind() {
                Some(NodeKind::File) => push_unique(&mut signals.mentions, m.target),
                Some(NodeKind::Symbol) => {
                    let file = self.read.symbol(m.target)?.file;
                    if alive.contains(&file) {
                        push_unique(&mut signals.mentions, file);
                        signals
                            .mentioned_symbols
                            .entry(file)
                            .or_default()
                            .push(m.target);
                    }
                }
                _ => {}
            }
        }

        Ok(())
    }

    /// Files touched by the fixes of earlier issues and by earlier commits whose text matches.
    fn history_by_text(
        &self,
        text: &str,
        before: i64,
        exclude: Option<NodeId>,
        alive: &HashSet<NodeId>,
    ) -> Result<Vec<NodeId>, IndexError> {
        let filter = |kind| TextFilter {
            kinds: vec![kind],
            before: Some(before),
        };
        let past_issues: Vec<NodeId> = self
            .indexes
            .search_text(text, &filter(NodeKind::Issue), HISTORY_HITS + 1)?
            .into_iter()
            .map(|h| h.node)
            .filter(|n| Some(*n) != exclude)
            .take(HISTORY_HITS)
            .collect();
        let past_commits: Vec<NodeId> = self
            .indexes
            .search_text(text, &filter(NodeKind::Commit), HISTORY_HITS)?
            .into_iter()
            .map(|h| h.node)
            .collect();
        self.history(&past_issues, &past_commits, before, alive)
    }

    /// Files by the best vector match among their path and symbols at that time, and files
    /// touched by the fixes of similar earlier issues and by similar earlier commits.
    fn vector_signals(
        &self,
        text: &str,
        code: &CodeAt<'_>,
        exclude: Option<NodeId>,
        signals: &mut Signals,
    ) -> Result<(), IndexError> {
        let CodeAt {
            files,
            docs,
            alive,
            before,
        } = *code;
        let query = self.indexes.embed_text(text)?;
        // Files by the best match among their path and symbols at that time (an average
        // over a whole file would make every large file look alike).
        let embedder = self.indexes.embedder()?;
        for ((_, path, sha), (_, doc)) in files.iter().zip(docs) {
            let key = doc_key(path, sha.as_deref());
            if self.vectors.borrow().contains_key(&key) {
                continue;
            }
            let mut vs = Vec::with_capacity(doc.parts.len());
            for chunk in doc.parts.chunks(embedder.batch_size().max(1)) {
                let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
                vs.extend(embedder.embed(&texts)?);
            }
            self.vectors.borrow_mut().insert(key, vs);
        }
        let cache = self.vectors.borrow();
        let scores: Vec<(NodeId, f32)> = files
            .iter()
            .map(|(f, path, sha)| {
                let best = cache
                    .get(&doc_key(path, sha.as_deref()))
                    .into_iter()
                    .flatten()
                    .map(|v| cosine(&query, v))
                    .fold(0.0f32, f32::max);
                (*f, best)
            })
            .collect();
        signals.file_vector = ranked(scores);
        drop(cache);

        // History through vectors.
        let mut issue_ok = |n: NodeId| {
            Some(n) != exclude
                && self
                    .read
                    .issue(n)
                    .ok()
                    .and_then(|i| i.created_at)
                    .is_some_and(|t| t < before)
        };
        let near_issues: Vec<NodeId> = self
            .indexes
            .nearest(NodeKind::Issue, &query, HISTORY_HITS, &mut issue_ok)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut commit_ok = |n: NodeId| self.timeline.commit_time(n).is_some_and(|t| t < before);
        let near_commits: Vec<NodeId> = self
            .indexes
            .nearest(NodeKind::Commit, &query, HISTORY_HITS, &mut commit_ok)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        signals.history_vector = self.history(&near_issues, &near_commits, before, alive)?;
        Ok(())
    }

    /// Files touched by the fixes (landed before `before`) of `issues` and by `commits`,
    /// credited by the rank of what led to them.
    fn history(
        &self,
        issues: &[NodeId],
        commits: &[NodeId],
        before: i64,
        alive: &HashSet<NodeId>,
    ) -> Result<Vec<NodeId>, IndexError> {
        let mut scores: HashMap<NodeId, f32> = HashMap::new();
        let mut credit = |commit: NodeId, weight: f32| -> Result<(), IndexError> {
            if self
                .timeline
                .commit_time(commit)
                .is_none_or(|t| t >= before)
            {
                return Ok(());
            }
            let touched = self.read.targets_of(commit, Rel::Touches)?;
            if touched.len() > MAX_FILES_PER_COMMIT {
                return Ok(());
            }
            for f in touched {
                if alive.contains(&f) {
                    *scores.entry(f).or_default() += weight;
                }
            }
            Ok(())
        };
        for (rank, issue) in issues.iter().enumerate() {
            for fix in self.read.targets_of(*issue, Rel::FixedBy)? {
                credit(fix, 1.0 / (rank as f32 + 1.0))?;
            }
        }
        for (rank, commit) in commits.iter().enumerate() {
            credit(*commit, 0.5 / (rank as f32 + 1.0))?;
        }
        Ok(ranked(scores.into_iter().collect()))
    }

    /// The best `limit` files for `text` as of `before`, by `ranker`.
    pub fn locate(
        &self,
        text: &str,
        before: i64,
        exclude: Option<NodeId>,
        ranker: Ranker,
        limit: usize,
    ) -> Result<Vec<Located>, IndexError> {
        let signals = self.signals(text, before, exclude)?;
        let files: HashMap<NodeId, (String, Option<Vec<u8>>)> = self
            .timeline
            .files_at(before)
            .into_iter()
            .map(|(f, p, b)| (f, (p, b)))
            .collect();
        let query_terms: HashSet<String> = analyze(text).into_iter().collect();
        let mut out = Vec::new();
        for (file, score) in signals.fuse(ranker).into_iter().take(limit) {
            let Some((path, sha)) = files.get(&file) else {
                continue;
            };
            let mut ranks = Vec::new();
            for (name, ranking) in signals.named() {
                if let Some(r) = ranking.iter().position(|n| *n == file) {
                    ranks.push((name.to_string(), r + 1));
                }
            }
            let doc = self.file_doc(path, sha.as_deref())?;
            let mut symbols: Vec<(f32, String)> = Vec::new();
            let mentioned = signals.mentioned_symbols.get(&file);
            for (name, qname) in &doc.symbols {
                let mut s = analyze(name)
                    .iter()
                    .filter(|t| query_terms.contains(*t))
                    .count() as f32;
                if let Some(ids) = mentioned {
                    for id in ids {
                        if self.read.symbol(*id).is_ok_and(|sym| {
                            self.read.string(sym.qualified_name).ok().as_deref() == Some(qname)
                        }) {
                            s += 10.0;
                        }
                    }
                }
                if s > 0.0 {
                    symbols.push((s, qname.clone()));
                }
            }
            symbols.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            symbols.dedup_by(|a, b| a.1 == b.1);
            out.push(Located {
                file,
                path: path.clone(),
                score,
                signals: ranks,
                symbols: symbols.into_iter().take(3).map(|(_, n)| n).collect(),
            });
        }
        Ok(out)
    }
}

fn doc_key(path: &str, sha: Option<&[u8]>) -> Vec<u8> {
    let mut k = path.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(sha.unwrap_or_default());
    k
}

fn push_unique(v: &mut Vec<NodeId>, n: NodeId) {
    if !v.contains(&n) {
        v.push(n);
    }
}

/// Files ranked by BM25 of `text` over their words at that time.
fn file_bm25(text: &str, docs: &[(NodeId, Rc<FileDoc>)]) -> Vec<NodeId> {
    let mut query_terms = analyze(text);
    query_terms.sort();
    query_terms.dedup();
    let n = docs.len().max(1) as f32;
    let avg_len = docs.iter().map(|(_, d)| d.len as f32).sum::<f32>() / n;
    let mut scores: Vec<(NodeId, f32)> = docs.iter().map(|(f, _)| (*f, 0.0)).collect();
    for term in &query_terms {
        let df = docs
            .iter()
            .filter(|(_, d)| d.terms.contains_key(term))
            .count() as f32;
        if df == 0.0 {
            continue;
        }
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        for (i, (_, d)) in docs.iter().enumerate() {
            if let Some(&tf) = d.terms.get(term) {
                let tf = tf as f32;
                let norm = K1 * (1.0 - B + B * d.len as f32 / avg_len.max(1.0));
                scores[i].1 += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
    }
    ranked(scores)
}

/// Nodes with a positive score, best first (ties by id, for stable output).
fn ranked(mut scores: Vec<(NodeId, f32)>) -> Vec<NodeId> {
    scores.retain(|s| s.1 > 0.0);
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores.into_iter().map(|s| s.0).collect()
}
