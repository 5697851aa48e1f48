//! Links: derive the edges that tie issues, pull requests, commits, files and symbols
//! together, each with its provenance, confidence and evidence.
//!
//! * Commits (after git ingest, from a watermark): closing keywords → `fixed_by`
//!   issue→commit; squash titles and merge commits → `merged_as` PR→commit; other `#N` →
//!   `references` commit→issue; and [`CommitFacets`] (class, bot, merge, size, text facets).
//! * Issues (after each import, for the issues it changed): closing keywords in pull requests →
//!   `fixed_by` issue→PR; `Duplicate of #N` → `duplicate_of`; other `#N` → `references`;
//!   tracebacks, panics, compiler errors, paths and identifiers → `mentions` file/symbol.
//! * Through pull requests: an issue fixed by a PR is `fixed_by` the commit that landed it.
//! * SZZ ([`szz`]): each fix commit is `introduced_by` the commits that last touched the
//!   lines it changed, keeping those older than the issue.
//!
//! A number referenced but never imported becomes a stub issue so the link is kept.

pub mod facets;
pub mod refs;
pub mod szz;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::code::CodeIndex;
use crate::ingest::IngestError;
use crate::progress::Progress;
use crate::store::records::{
    CommitFacets, EdgeDetail, EdgeMeta, IssueRecord, Provenance, SzzBlame,
};
use crate::store::{NodeId, NodeKind, ReadTx, Rel, Store, StoreError, WriteTx};
use refs::{RefKind, RefParser, RefSkips};

const COMMITS_DONE: &str = "links.commits_done";
/// The version of the rules that derive links from text (`refs.rs`). Files whose links were
/// derived by older rules have them derived again by the next ingest or import.
pub const RULES_VERSION: u32 = 2;
const RULES_KEY: &str = "links.rules";
/// The confidence of a hedged closing claim (`Should fix #7`, `Partly resolves #7`).
pub const HEDGED: f32 = 0.6;

/// The evidence of a hedged claim: the hedge, then the line.
fn hedged(r: &refs::IssueRef) -> String {
    format!("[{}] {}", r.hedge.unwrap_or("hedged"), r.evidence)
}
/// `owner/name` of the project's GitHub repository, when known (from `--repo` or a dump).
pub const REPO_KEY: &str = "issues.repo";

#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkReport {
    pub commits_scanned: u64,
    pub issues_linked: u64,
    /// Edges that were not there before, in all and by relation (what `lore stats` counts).
    pub edges_added: u64,
    pub added_by_relation: std::collections::BTreeMap<String, u64>,
    pub edges_removed: u64,
    /// References to another repository's issues, skipped.
    pub other_repo_refs: u64,
    pub fix_commits_blamed: u64,
    pub blame_errors: u64,
    pub introduced_by: u64,
    pub elapsed_ms: u64,
}

impl LinkReport {
    /// Count an edge `add_edge` wrote, when it was new.
    fn added(&mut self, rel: Rel, new: bool) {
        if new {
            self.edges_added += 1;
            *self
                .added_by_relation
                .entry(rel.name().to_string())
                .or_default() += 1;
        }
    }
}

fn meta(provenance: Provenance, confidence: f32, evidence: &str) -> EdgeMeta {
    EdgeMeta {
        provenance,
        confidence,
        evidence: Some(evidence.to_string()),
        detail: EdgeDetail::None,
    }
}

/// The repository name references are resolved against.
pub fn repo_name(read: &ReadTx) -> Result<Option<String>, StoreError> {
    Ok(read.meta(REPO_KEY)?.and_then(|v| String::from_utf8(v).ok()))
}

/// Scan the messages of commits not scanned yet.
pub fn link_commits(
    store: &Store,
    progress: &dyn Progress,
    report: &mut LinkReport,
) -> Result<(), IngestError> {
    let (done, total, parser) = {
        let read = store.read()?;
        let done = read
            .meta(COMMITS_DONE)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        (
            done,
            read.commit_count()?,
            RefParser::new(repo_name(&read)?.as_deref()),
        )
    };
    if done >= total {
        return Ok(());
    }
    progress.phase("linking commits", Some(total - done));
    let mut next = done;
    while next < total {
        let end = (next + 2000).min(total);
        // Read and analyse outside the write transaction, in parallel.
        let read = store.read()?;
        let analysed: Vec<(NodeId, Vec<refs::IssueRef>, CommitFacets, RefSkips)> = (next..end)
            .into_par_iter()
            .map(|local| -> Result<_, StoreError> {
                let id = NodeId::new(NodeKind::Commit, local);
                let commit = read.commit(id)?;
                let mut skips = RefSkips::default();
                let found = parser.commit_message(&commit.message, &mut skips);
                let mut paths = Vec::new();
                for edge in read.edges_from(id, Rel::Touches)? {
                    paths.push(read.string(read.file(edge.dst)?.path)?);
                }
                let is_bot = match read.edges_from(id, Rel::AuthoredBy)?.first() {
                    Some(e) => read.author(e.dst)?.is_bot,
                    None => false,
                };
                let facets = CommitFacets {
                    class: facets::commit_class(&commit.message, &paths),
                    is_bot,
                    is_merge: commit.is_merge,
                    diff_size: commit.lines_added + commit.lines_removed,
                    text: facets::text_facets(&commit.message),
                };
                Ok((id, found, facets, skips))
            })
            .collect::<Result<_, _>>()?;
        drop(read);
        store.write(|tx| -> Result<(), StoreError> {
            for (commit, found, facets, skips) in &analysed {
                tx.set_commit_facets(*commit, facets)?;
                report.other_repo_refs += skips.other_repo;
                for r in found {
                    let (src, rel, dst, m) = match r.kind {
                        RefKind::Closing => (
                            tx.issue_or_stub(r.number, false)?,
                            Rel::FixedBy,
                            *commit,
                            meta(Provenance::ClosingKeywordCommit, 1.0, &r.evidence),
                        ),
                        RefKind::HedgedClosing => (
                            tx.issue_or_stub(r.number, false)?,
                            Rel::FixedBy,
                            *commit,
                            meta(Provenance::HedgedClosing, HEDGED, &hedged(r)),
                        ),
                        RefKind::NegatedClosing => (
                            *commit,
                            Rel::References,
                            tx.issue_or_stub(r.number, false)?,
                            meta(Provenance::NegatedClosing, 0.5, &r.evidence),
                        ),
                        RefKind::SquashTitle => (
                            tx.issue_or_stub(r.number, true)?,
                            Rel::MergedAs,
                            *commit,
                            meta(Provenance::SquashTitle, 0.9, &r.evidence),
                        ),
                        RefKind::MergeCommit => (
                            tx.issue_or_stub(r.number, true)?,
                            Rel::MergedAs,
                            *commit,
                            meta(Provenance::MergeCommit, 1.0, &r.evidence),
                        ),
                        RefKind::Duplicate | RefKind::Mention => (
                            *commit,
                            Rel::References,
                            tx.issue_or_stub(r.number, false)?,
                            meta(Provenance::Mention, 0.5, &r.evidence),
                        ),
                    };
                    let new = tx.add_edge(src, rel, dst, &m)?;
                    report.added(rel, new);
                }
            }
            tx.set_meta(COMMITS_DONE, &end.to_le_bytes())?;
            Ok(())
        })?;
        progress.advance(end - next);
        report.commits_scanned += end - next;
        next = end;
    }
    progress.done();
    Ok(())
}

/// Edges an issue's own text produces; removed and re-derived when the issue changes.
const TEXT_RELS: [Rel; 3] = [Rel::References, Rel::DuplicateOf, Rel::Mentions];

/// Derive the links of issue `id` from its text, replacing what an earlier version derived.
pub fn link_issue(
    tx: &mut WriteTx<'_>,
    index: &CodeIndex,
    parser: &RefParser,
    id: NodeId,
    issue: &IssueRecord,
    report: &mut LinkReport,
) -> Result<(), StoreError> {
    for rel in TEXT_RELS {
        if rel == Rel::DuplicateOf {
            // Duplicates a user accepted (`lore duplicates --accept`) are not derived from the
            // text and stay.
            for (dst, meta) in tx.edges_from(id, rel)? {
                if meta.provenance != Provenance::Similarity && tx.remove_edge(id, rel, dst)? {
                    report.edges_removed += 1;
                }
            }
            continue;
        }
        report.edges_removed += tx.remove_edges_from(id, rel)?;
    }
    if issue.is_pr {
        let from_text = [Provenance::ClosingKeywordPr, Provenance::HedgedClosing];
        report.edges_removed += remove_fixes_into(tx, id, &from_text)?;
    }
    // Closing keywords count in a pull request's title and body (as on GitHub), not in
    // comments.
    let own = format!("{}\n{}", issue.title, issue.body);
    let mut comments = String::new();
    for c in &issue.comments {
        comments.push_str(&c.body);
        comments.push('\n');
    }
    let text = format!("{own}\n{comments}");
    let mut skips = RefSkips::default();
    let closed_as_duplicate = matches!(
        issue.state_reason.as_deref(),
        Some("duplicate" | "not_planned")
    );
    let mut found = parser.issue_text(&own, issue.is_pr, &mut skips);
    for r in parser.issue_text(&comments, false, &mut skips) {
        // A number the title or body already links keeps that (stronger or equal) link.
        if !found.iter().any(|f| f.number == r.number) {
            found.push(r);
        }
    }
    for r in found {
        if r.number == issue.number {
            continue;
        }
        let (src, rel, dst, m) = match r.kind {
            RefKind::Closing => (
                tx.issue_or_stub(r.number, false)?,
                Rel::FixedBy,
                id,
                meta(Provenance::ClosingKeywordPr, 0.9, &r.evidence),
            ),
            RefKind::HedgedClosing => (
                tx.issue_or_stub(r.number, false)?,
                Rel::FixedBy,
                id,
                meta(Provenance::HedgedClosing, HEDGED, &hedged(&r)),
            ),
            RefKind::NegatedClosing => (
                id,
                Rel::References,
                tx.issue_or_stub(r.number, false)?,
                meta(Provenance::NegatedClosing, 0.5, &r.evidence),
            ),
            RefKind::Duplicate => {
                let confidence = if closed_as_duplicate { 1.0 } else { 0.8 };
                (
                    id,
                    Rel::DuplicateOf,
                    tx.issue_or_stub(r.number, false)?,
                    meta(Provenance::DuplicateText, confidence, &r.evidence),
                )
            }
            _ => (
                id,
                Rel::References,
                tx.issue_or_stub(r.number, false)?,
                meta(Provenance::Mention, 0.5, &r.evidence),
            ),
        };
        let new = tx.add_edge(src, rel, dst, &m)?;
        report.added(rel, new);
    }
    report.other_repo_refs += skips.other_repo;
    for m in index.mentions(&text) {
        let new = tx.add_edge(
            id,
            Rel::Mentions,
            m.target,
            &meta(m.provenance, m.confidence, &m.evidence),
        )?;
        report.added(Rel::Mentions, new);
    }
    report.issues_linked += 1;
    Ok(())
}

/// Remove the `fixed_by` edges into `dst` that one of `provenances` derived; returns how many.
fn remove_fixes_into(
    tx: &mut WriteTx<'_>,
    dst: NodeId,
    provenances: &[Provenance],
) -> Result<u64, StoreError> {
    let mut removed = 0;
    for src in tx.sources_to(dst, Rel::FixedBy)? {
        let derived = tx
            .edge_meta(src, Rel::FixedBy, dst)?
            .is_some_and(|m| provenances.contains(&m.provenance));
        if derived && tx.remove_edge(src, Rel::FixedBy, dst)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Make `fixed_by` issue→commit edges through pull requests match the PR links: an issue a PR
/// fixes is fixed by each commit that landed the PR.
pub fn link_through_prs(tx: &mut WriteTx<'_>, report: &mut LinkReport) -> Result<(), StoreError> {
    let issues = tx.all_issue_ids()?;
    let mut wanted: HashMap<(NodeId, NodeId), String> = HashMap::new();
    let mut current: HashSet<(NodeId, NodeId)> = HashSet::new();
    for &issue in &issues {
        for (dst, m) in tx.edges_from(issue, Rel::FixedBy)? {
            match dst.kind() {
                Some(NodeKind::Issue) => {
                    let pr_number = tx.issue(dst)?.number;
                    for (commit, _) in tx.edges_from(dst, Rel::MergedAs)? {
                        wanted.insert((issue, commit), format!("via #{pr_number}"));
                    }
                }
                Some(NodeKind::Commit) if m.provenance == Provenance::ViaPullRequest => {
                    current.insert((issue, dst));
                }
                _ => {}
            }
        }
    }
    for (issue, commit) in &current {
        if !wanted.contains_key(&(*issue, *commit))
            && tx.remove_edge(*issue, Rel::FixedBy, *commit)?
        {
            report.edges_removed += 1;
        }
    }
    let mut keys: Vec<_> = wanted.into_iter().collect();
    keys.sort();
    for ((issue, commit), evidence) in keys {
        // A direct closing keyword in the commit is the stronger evidence: keep it.
        let direct = tx
            .edges_from(issue, Rel::FixedBy)?
            .into_iter()
            .any(|(d, m)| d == commit && m.provenance != Provenance::ViaPullRequest);
        if !direct && !current.contains(&(issue, commit)) {
            let new = tx.add_edge(
                issue,
                Rel::FixedBy,
                commit,
                &meta(Provenance::ViaPullRequest, 0.9, &evidence),
            )?;
            report.added(Rel::FixedBy, new);
        }
    }
    Ok(())
}

/// Fix commits and the issues each fixes (directly or through a PR).
pub fn fixes(read: &ReadTx) -> Result<HashMap<NodeId, Vec<NodeId>>, StoreError> {
    let mut out: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (issue, _) in read.issues()? {
        for edge in read.edges_from(issue, Rel::FixedBy)? {
            if edge.dst.kind() == Some(NodeKind::Commit) {
                out.entry(edge.dst).or_default().push(issue);
            }
        }
    }
    Ok(out)
}

/// Fix commits blamed per transaction.
const SZZ_BATCH: usize = 256;

/// SZZ: blame every fix commit not blamed yet (committing the blames batch by batch), then
/// rewrite each fix commit's `introduced_by` edges from the blame, keeping candidates older
/// than one of the issues it fixes (all candidates, at half confidence, when none of them has
/// a creation date).
pub fn szz(
    store: &Store,
    repo_path: &Path,
    progress: &dyn Progress,
    report: &mut LinkReport,
) -> Result<(), IngestError> {
    let read = store.read()?;
    let fixes = fixes(&read)?;
    let commit_count = read.commit_count()?;
    let mut todo: Vec<NodeId> = Vec::new();
    for fix in fixes.keys() {
        if read.szz_blame(*fix)?.is_none() {
            todo.push(*fix);
        }
    }
    todo.sort();
    if !todo.is_empty() {
        let repo = gix::open(repo_path).map_err(|e| IngestError::NotARepository {
            path: repo_path.into(),
            detail: Some(e.to_string()),
        })?;
        // Blame reads line origins: bring them up to date first (a no-op after an ingest).
        crate::ingest::provenance::run(store, repo_path, progress)?;
        let read = store.read()?;
        let ignore = szz::ignore_revs(&repo);
        let sync = repo.into_sync();
        progress.phase("blaming fix commits (SZZ)", Some(todo.len() as u64));
        // Blames are committed batch by batch: an interrupted SZZ keeps what it blamed, and
        // the next ingest or import blames only the rest.
        for batch in todo.chunks(SZZ_BATCH) {
            let results: Vec<(NodeId, Result<SzzBlame, IngestError>)> = batch
                .par_iter()
                .map_init(
                    || sync.to_thread_local(),
                    |repo, fix| {
                        let out = szz::blame_fix(repo, &read, *fix, &ignore);
                        progress.advance(1);
                        (*fix, out)
                    },
                )
                .collect();
            let mut done: Vec<(NodeId, SzzBlame)> = Vec::new();
            for (fix, result) in results {
                match result {
                    Ok(b) => done.push((fix, b)),
                    Err(e) => {
                        report.blame_errors += 1;
                        progress.warn(&format!("SZZ skipped a fix commit: {e}"));
                    }
                }
            }
            store.write(|tx| -> Result<(), StoreError> {
                for (fix, blame) in &done {
                    tx.set_szz_blame(*fix, blame)?;
                }
                Ok(())
            })?;
            report.fix_commits_blamed += done.len() as u64;
        }
        progress.done();
    }
    drop(read);
    store.write(|tx| -> Result<(), StoreError> {
        // A commit that no longer fixes anything (its link was re-derived away) introduced
        // nothing either.
        for local in 0..commit_count {
            let commit = NodeId::new(NodeKind::Commit, local);
            if !fixes.contains_key(&commit) {
                report.edges_removed += tx.remove_edges_from(commit, Rel::IntroducedBy)?;
            }
        }
        let mut fix_ids: Vec<&NodeId> = fixes.keys().collect();
        fix_ids.sort();
        for fix in fix_ids {
            // The edges are derived from the blame again; a fix commit whose edges come out as
            // they are stored is left alone (on a file that already has them, that is almost
            // all of them, and writing nothing is what keeps an incremental ingest fast).
            let mut before = tx.edges_from(*fix, Rel::IntroducedBy)?;
            let mut wanted: Vec<(NodeId, EdgeMeta)> = Vec::new();
            if let Some(blame) = tx.szz_blame(*fix)? {
                let issue_dates: Vec<i64> = fixes[fix]
                    .iter()
                    .map(|i| Ok(tx.issue(*i)?.created_at))
                    .collect::<Result<Vec<_>, StoreError>>()?
                    .into_iter()
                    .flatten()
                    .collect();
                let latest = issue_dates.iter().max().copied();
                for (local, lines, evidence) in &blame.candidates {
                    let candidate = NodeId::new(NodeKind::Commit, *local);
                    if candidate == *fix {
                        continue;
                    }
                    let time = tx.commit_time(candidate)?;
                    let (keep, scale) = match latest {
                        Some(created) => (time < created, 1.0),
                        None => (true, 0.5),
                    };
                    if !keep {
                        continue;
                    }
                    let confidence = scale * *lines as f32 / blame.blamed_lines.max(1) as f32;
                    wanted.push((
                        candidate,
                        EdgeMeta {
                            provenance: Provenance::Szz,
                            confidence,
                            evidence: Some(evidence.clone()),
                            detail: EdgeDetail::Szz {
                                lines: *lines,
                                of_lines: blame.blamed_lines,
                                variant: if latest.is_some() {
                                    szz::VARIANT.to_string()
                                } else {
                                    szz::VARIANT.replace("before-issue", "no-issue-date")
                                },
                            },
                        },
                    ));
                }
            }
            before.sort_by_key(|(dst, _)| *dst);
            let mut sorted = wanted.clone();
            sorted.sort_by_key(|(dst, _)| *dst);
            if sorted == before {
                continue;
            }
            let before: std::collections::HashSet<NodeId> =
                before.into_iter().map(|(dst, _)| dst).collect();
            tx.remove_edges_from(*fix, Rel::IntroducedBy)?;
            let mut kept = 0u64;
            for (candidate, m) in &wanted {
                tx.add_edge(*fix, Rel::IntroducedBy, *candidate, m)?;
                let new = !before.contains(candidate);
                kept += u64::from(!new);
                report.added(Rel::IntroducedBy, new);
                report.introduced_by += u64::from(new);
            }
            report.edges_removed += before.len() as u64 - kept;
        }
        Ok(())
    })?;
    Ok(())
}

/// When the file's links were derived by older text rules than [`RULES_VERSION`], take away
/// every link derived from commit messages and issue texts, derive the issues' again now, and
/// have the next commit scan start over; in one transaction, so a killed run leaves the file as
/// it was or ready to rescan.
pub fn rederive_if_rules_changed(
    store: &Store,
    progress: &dyn Progress,
    report: &mut LinkReport,
) -> Result<(), IngestError> {
    let (index, parser, issues, commits) = {
        let read = store.read()?;
        let version = read
            .meta(RULES_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0);
        if version >= RULES_VERSION {
            return Ok(());
        }
        (
            CodeIndex::build(&read)?,
            RefParser::new(repo_name(&read)?.as_deref()),
            read.issues()?,
            read.commit_count()?,
        )
    };
    progress.phase("deriving links with the current rules", None);
    store.write(|tx| -> Result<(), StoreError> {
        for local in 0..commits {
            let commit = NodeId::new(NodeKind::Commit, local);
            let from_message = [Provenance::ClosingKeywordCommit, Provenance::HedgedClosing];
            report.edges_removed += remove_fixes_into(tx, commit, &from_message)?;
            for (dst, m) in tx.edges_from(commit, Rel::References)? {
                if matches!(
                    m.provenance,
                    Provenance::Mention | Provenance::NegatedClosing
                ) && tx.remove_edge(commit, Rel::References, dst)?
                {
                    report.edges_removed += 1;
                }
            }
        }
        tx.set_meta(COMMITS_DONE, &0u64.to_le_bytes())?;
        for (id, issue) in &issues {
            if !issue.stub {
                link_issue(tx, &index, &parser, *id, issue, report)?;
            }
        }
        tx.set_meta(RULES_KEY, &RULES_VERSION.to_le_bytes())?;
        Ok(())
    })?;
    progress.done();
    Ok(())
}

/// Run the commit link stage after a git ingest, and SZZ unless `with_szz` is false (then the
/// next run with it blames what is missing).
pub fn after_ingest(
    store: &Store,
    repo_path: &Path,
    with_szz: bool,
    progress: &dyn Progress,
) -> Result<LinkReport, IngestError> {
    let started = Instant::now();
    let mut report = LinkReport::default();
    rederive_if_rules_changed(store, progress, &mut report)?;
    link_commits(store, progress, &mut report)?;
    store.write(|tx| link_through_prs(tx, &mut report))?;
    if with_szz {
        szz(store, repo_path, progress, &mut report)?;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
