//! Issues and pull requests from the dumps people already have: the GitHub REST API
//! (`/issues`, `/pulls`, with comments embedded or in a separate dump), `gh issue list --json`
//! / `gh pr list --json`, Jira's JSON export, and lore's generic JSONL (docs/issues.md).
//!
//! An import is one transaction: the whole dump is parsed and checked first, then every
//! issue is inserted or updated (by `updated_at`; never duplicated) and the links its text
//! produces are derived, or nothing is written. SZZ for newly linked fix commits runs after.

pub mod formats;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::code::CodeIndex;
use crate::ingest::links::{self, refs::RefParser, LinkReport};
use crate::ingest::IngestError;
use crate::progress::Progress;
use crate::store::records::{IssueRecord, TextFacets};
use crate::store::{Store, StoreError};

/// Dump formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide from the first record.
    Auto,
    /// GitHub REST API objects (`/repos/{o}/{r}/issues`, `/pulls`).
    Github,
    /// `gh issue list --json …` / `gh pr list --json …`.
    Gh,
    /// A Jira JSON export (`{"issues": [{"key", "fields": {…}}]}`).
    Jira,
    /// lore's generic JSON lines (docs/issues.md).
    Jsonl,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Auto,
        Format::Github,
        Format::Gh,
        Format::Jira,
        Format::Jsonl,
    ];

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Github => "github",
            Format::Gh => "gh",
            Format::Jira => "jira",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Errors of issue import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: malformed JSON: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}:{line}:{column}: not UTF-8 (byte {offset} is 0x{byte:02x}); save the dump as UTF-8"
    )]
    NotUtf8 {
        path: PathBuf,
        offset: usize,
        byte: u8,
        line: usize,
        column: usize,
    },
    #[error("cannot tell the format of {path}: {detail}; pass --format github|gh|jira|jsonl")]
    UnknownFormat { path: PathBuf, detail: String },
    #[error("{path}:{line}: {detail}")]
    Record {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Counted skips and repairs, by reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Skips(pub BTreeMap<String, u64>);

impl Skips {
    pub fn count(&mut self, reason: &str) {
        *self.0.entry(reason.to_string()).or_default() += 1;
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: Format,
    /// The project's repository (`owner/name`). Records of another repository are reported.
    pub repo: Option<String>,
    /// A separate dump of GitHub issue comments (`/issues/comments`), matched by `issue_url`.
    pub comments: Option<PathBuf>,
    /// The git repository, for SZZ. Defaults to the one the file was ingested from.
    pub git: Option<PathBuf>,
    /// Run SZZ for fix commits not blamed yet.
    pub szz: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub format: String,
    pub records: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Stubs (numbers seen in references) that this dump filled in.
    pub stubs_filled: u64,
    pub issues: u64,
    pub pull_requests: u64,
    pub skipped: Skips,
    pub warnings: Vec<String>,
    pub links: LinkReport,
    pub elapsed_ms: u64,
}

/// The dump's text. A UTF-8 byte order mark is removed and counted as `byte_order_mark`;
/// bytes that are not UTF-8 are an error naming their offset, line and column.
fn read_text(path: &Path, skips: &mut Skips) -> Result<String, IssueError> {
    let mut bytes = std::fs::read(path).map_err(|source| IssueError::Io {
        path: path.into(),
        source,
    })?;
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
        skips.count("byte_order_mark");
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let offset = e.utf8_error().valid_up_to();
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        IssueError::NotUtf8 {
            path: path.into(),
            offset,
            byte: bytes[offset],
            line,
            column,
        }
    })
}

/// Read a dump into records without touching the store.
pub fn read_dump(
    path: &Path,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<Vec<IssueRecord>, IssueError> {
    let text = read_text(path, &mut report.skipped)?;
    let dump = formats::parse_dump(path, &text)?;
    let format = match options.format {
        Format::Auto => formats::detect(path, &dump)?,
        f => f,
    };
    report.format = format.name().into();
    let mut by_number: BTreeMap<u64, IssueRecord> = BTreeMap::new();
    let mut other_repos: BTreeMap<String, u64> = BTreeMap::new();
    for (line, value) in &dump.records {
        report.records += 1;
        let parsed =
            formats::parse_record(format, value, &mut report.skipped).map_err(|detail| {
                IssueError::Record {
                    path: path.into(),
                    line: *line,
                    detail,
                }
            })?;
        let Some(parsed) = parsed else { continue };
        if let (Some(want), Some(got)) = (&options.repo, &parsed.repo) {
            if !want.eq_ignore_ascii_case(got) {
                *other_repos.entry(got.clone()).or_default() += 1;
            }
        }
        // A number twice in one dump: the most recently updated wins.
        match by_number.get(&parsed.record.number) {
            Some(old) if old.updated_at >= parsed.record.updated_at => {
                report.skipped.count("duplicate_record");
            }
            Some(_) => {
                report.skipped.count("duplicate_record");
                by_number.insert(parsed.record.number, parsed.record);
            }
            None => {
                by_number.insert(parsed.record.number, parsed.record);
            }
        }
    }
    for (repo, n) in other_repos {
        report.warnings.push(format!(
            "{n} record(s) in {} belong to {repo}, not {}",
            path.display(),
            options.repo.as_deref().unwrap_or("?")
        ));
    }
    if let Some(comments_path) = &options.comments {
        attach_comments(comments_path, &mut by_number, report)?;
    }
    let mut records: Vec<IssueRecord> = by_number.into_values().collect();
    for r in &mut records {
        r.facets = facets_of(r);
    }
    Ok(records)
}

fn facets_of(r: &IssueRecord) -> TextFacets {
    let mut text = format!("{}\n{}", r.title, r.body);
    for c in &r.comments {
        text.push('\n');
        text.push_str(&c.body);
    }
    links::facets::text_facets(&text)
}

/// Comments from a separate GitHub dump, attached to their issues by `issue_url`.
fn attach_comments(
    path: &Path,
    records: &mut BTreeMap<u64, IssueRecord>,
    report: &mut ImportReport,
) -> Result<(), IssueError> {
    let text = read_text(path, &mut report.skipped)?;
    let dump = formats::parse_dump(path, &text)?;
    let mut by_issue: HashMap<u64, Vec<crate::store::records::Comment>> = HashMap::new();
    for (_, value) in &dump.records {
        let number = value
            .get("issue_url")
            .and_then(|u| u.as_str())
            .and_then(|u| u.rsplit('/').next())
            .and_then(|n| n.parse::<u64>().ok());
        match number {
            Some(n) => by_issue
                .entry(n)
                .or_default()
                .push(formats::github_comment(value, &mut report.skipped)),
            None => report.skipped.count("comment_without_issue_url"),
        }
    }
    for (n, mut comments) in by_issue {
        match records.get_mut(&n) {
            Some(r) => {
                comments.sort_by_key(|c| c.created_at);
                r.comments = comments;
            }
            None => report.skipped.count("comment_for_unknown_issue"),
        }
    }
    Ok(())
}

/// Whether `new` should replace `old`.
fn is_newer(old: &IssueRecord, new: &IssueRecord) -> bool {
    if old.stub {
        return true;
    }
    match (old.updated_at, new.updated_at) {
        (Some(a), Some(b)) if a != b => b > a,
        _ => old != new,
    }
}

/// Import the dump at `path` into `store`.
pub fn import(
    store: &Store,
    path: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, IssueError> {
    let started = Instant::now();
    let mut report = ImportReport::default();
    progress.phase(&format!("reading {}", path.display()), None);
    let records = read_dump(path, options, &mut report)?;
    progress.done();
    report.issues = records.iter().filter(|r| !r.is_pr).count() as u64;
    report.pull_requests = records.iter().filter(|r| r.is_pr).count() as u64;

    let mut link_report = LinkReport::default();
    links::rederive_if_rules_changed(store, progress, &mut link_report)?;
    // Commit messages whose links a re-derivation took away are scanned again now, not only at
    // the next ingest (a no-op when every commit is scanned).
    links::link_commits(store, progress, &mut link_report)?;
    let (index, parser, stored_repo) = {
        let read = store.read()?;
        let stored = links::repo_name(&read)?;
        let repo = options.repo.clone().or(stored.clone());
        (
            CodeIndex::build(&read)?,
            RefParser::new(repo.as_deref()),
            stored,
        )
    };
    if let (Some(stored), Some(given)) = (&stored_repo, &options.repo) {
        if !stored.eq_ignore_ascii_case(given) {
            report.warnings.push(format!(
                "this file was used with issues of {stored}; --repo says {given}"
            ));
        }
    }
    progress.phase("importing issues", Some(records.len() as u64));
    store.write(|tx| -> Result<(), StoreError> {
        if stored_repo.is_none() {
            if let Some(repo) = &options.repo {
                tx.set_meta(links::REPO_KEY, repo.as_bytes())?;
            }
        }
        for record in &records {
            let mut merged;
            let mut record = record;
            let (id, changed) = match tx.issue_by_number(record.number)? {
                Some(id) => {
                    let old = tx.issue(id)?;
                    if !is_newer(&old, record) {
                        report.unchanged += 1;
                        progress.advance(1);
                        continue;
                    }
                    if old.stub {
                        report.stubs_filled += 1;
                    }
                    // A dump without comments (a REST issue object counts them; a webhook
                    // carries none) or without events keeps what the file has.
                    if (record.comments.is_empty() && !old.comments.is_empty())
                        || (record.state_history.is_empty() && !old.state_history.is_empty())
                    {
                        merged = record.clone();
                        if merged.comments.is_empty() && !old.comments.is_empty() {
                            merged.comments = old.comments;
                            report.skipped.count("kept_stored_comments");
                        }
                        if merged.state_history.is_empty() && !old.state_history.is_empty() {
                            merged.state_history = old.state_history;
                        }
                        merged.facets = facets_of(&merged);
                        record = &merged;
                    }
                    report.updated += 1;
                    (tx.put_issue(record)?.0, true)
                }
                None => {
                    report.created += 1;
                    (tx.put_issue(record)?.0, true)
                }
            };
            if changed {
                links::link_issue(tx, &index, &parser, id, record, &mut link_report)?;
            }
            progress.advance(1);
        }
        links::link_through_prs(tx, &mut link_report)?;
        Ok(())
    })?;
    progress.done();
    // Created + updated counts include stubs filled; a filled stub is an update.
    let git = match &options.git {
        Some(p) => Some(p.clone()),
        None => store
            .read()?
            .meta(crate::ingest::git::REPO_PATH_KEY)?
            .and_then(|v| String::from_utf8(v).ok())
            .map(PathBuf::from),
    };
    match git {
        _ if !options.szz => {}
        Some(git) if git.exists() => links::szz(store, &git, progress, &mut link_report)?,
        Some(git) => report.warnings.push(format!(
            "SZZ skipped: the repository {} is gone; pass --git PATH",
            git.display()
        )),
        None => report
            .warnings
            .push("SZZ skipped: no git history ingested yet (run `lore ingest PATH`)".into()),
    }
    report.links = link_report;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Comments that arrived on their own (the GitHub comments endpoint, a comment webhook),
/// merged into the issues they belong to: a comment with the same author and time as a stored
/// one replaces it (an edit), any other is added. The issues' links are derived again. Comments
/// of issues the file does not hold are counted as `comment_of_unknown_issue`.
pub fn merge_comments(
    store: &Store,
    comments: &BTreeMap<u64, Vec<crate::store::records::Comment>>,
    repo: Option<&str>,
) -> Result<ImportReport, IssueError> {
    let mut report = ImportReport::default();
    let mut link_report = LinkReport::default();
    let (index, parser) = {
        let read = store.read()?;
        let stored = links::repo_name(&read)?;
        let repo = repo.map(str::to_string).or(stored);
        (CodeIndex::build(&read)?, RefParser::new(repo.as_deref()))
    };
    store.write(|tx| -> Result<(), StoreError> {
        for (number, new) in comments {
            let Some(id) = tx.issue_by_number(*number)? else {
                report.skipped.count("comment_of_unknown_issue");
                continue;
            };
            let mut record = tx.issue(id)?;
            let mut changed = false;
            for c in new {
                report.records += 1;
                let same = record
                    .comments
                    .iter()
                    .position(|o| o.author == c.author && o.created_at == c.created_at);
                match same {
                    Some(i) if record.comments[i] == *c => {}
                    Some(i) => {
                        record.comments[i] = c.clone();
                        changed = true;
                    }
                    None => {
                        record.comments.push(c.clone());
                        changed = true;
                    }
                }
            }
            if changed {
                record.comments.sort_by_key(|c| c.created_at);
                record.facets = facets_of(&record);
                tx.put_issue(&record)?;
                links::link_issue(tx, &index, &parser, id, &record, &mut link_report)?;
                report.updated += 1;
            } else {
                report.unchanged += 1;
            }
        }
        Ok(())
    })?;
    report.links = link_report;
    Ok(report)
}
