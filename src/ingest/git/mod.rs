//! Git history ingest.
//!
//! 1. [`refs`] resolves the refs to ingest (default: all branches and tags) to commit tips.
//! 2. [`walk`] finds the commits reachable from them that the store does not hold yet, in
//!    parents-first order, and notices rewritten (force-pushed) refs.
//! 3. [`diff`] diffs each new commit against its first parent on worker threads.
//! 4. [`write`] stores the results in parents-first order, one transaction per batch, so the
//!    stored commits are always closed under ancestry and an interrupted ingest resumes where it
//!    stopped. Watermarks are written with the last batch.

mod diff;
pub mod identity;
pub mod linediff;
pub mod mailmap;
pub mod numstat;
mod refs;
mod renames;
mod walk;
mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::IngestError;
use crate::progress::Progress;
use crate::store::Store;

pub use refs::RefTip;

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct GitIngestOptions {
    /// Ref names or globs (`main`, `refs/heads/*`, `v1.*`). Empty means all branches and tags.
    pub refs: Vec<String>,
    /// Commits per write transaction.
    pub batch_size: usize,
    /// Diff worker threads (0 = one per core).
    pub threads: usize,
    /// Store each new commit's line provenance with it (see [`crate::ingest::provenance`]).
    pub provenance: bool,
}

impl Default for GitIngestOptions {
    fn default() -> Self {
        GitIngestOptions {
            refs: Vec::new(),
            batch_size: 2000,
            threads: 0,
            provenance: true,
        }
    }
}

/// How a ref moved since the last ingest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RefUpdate {
    New,
    Unchanged,
    FastForward,
    /// The old tip is not an ancestor of the new one; `merge_base` is where they part.
    Rewritten {
        old: String,
        merge_base: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct RefReport {
    pub name: String,
    pub tip: String,
    pub update: RefUpdate,
}

/// What one ingest did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct GitIngestReport {
    pub repo: PathBuf,
    pub refs: Vec<RefReport>,
    /// Refs that were skipped (tags of trees or blobs), with the reason.
    pub skipped_refs: Vec<String>,
    /// Refs recorded by an earlier ingest that no longer exist.
    pub vanished_refs: Vec<String>,
    pub commits_added: u64,
    pub merges_added: u64,
    pub touches_added: u64,
    /// File changes whose line stats are unknown because objects are missing.
    pub stats_unknown: u64,
    /// Commits whose tree diff failed entirely (missing trees).
    pub diffs_failed: u64,
    pub shallow: bool,
    /// The line provenance stored with the new commits.
    pub provenance: Option<crate::ingest::provenance::ProvenanceReport>,
    pub elapsed_ms: u64,
}

/// Ingest the history of the repository at `repo_path` into `store`.
pub fn ingest(
    store: &Store,
    repo_path: &Path,
    options: &GitIngestOptions,
    progress: &dyn Progress,
) -> Result<GitIngestReport, IngestError> {
    let started = Instant::now();
    let repo = open_repository(repo_path)?;
    let mut report = GitIngestReport {
        repo: repo_path.to_path_buf(),
        shallow: repo.is_shallow().unwrap_or(false),
        ..Default::default()
    };
    if report.shallow {
        progress.warn("the repository is a shallow clone: history before its boundary is absent, and boundary commits are diffed as roots");
    }

    identity::check(store, &repo, repo_path)?;
    let origin = identity::origin_url(&repo);
    let tips = refs::resolve(&repo, repo_path, &options.refs, &mut report.skipped_refs)?;
    for skipped in &report.skipped_refs {
        progress.warn(&format!("skipped ref {skipped}"));
    }
    let plan = walk::plan(
        store,
        &repo,
        repo_path,
        &tips,
        options.refs.is_empty(),
        progress,
    )?;
    report.refs = plan.ref_reports.clone();
    report.vanished_refs = plan.vanished_refs.clone();
    for r in &report.refs {
        if let RefUpdate::Rewritten { old, merge_base } = &r.update {
            progress.warn(&format!(
                "{} was rewritten: old tip {} is not an ancestor of {} (merge base {})",
                r.name,
                &old[..old.len().min(12)],
                &r.tip[..r.tip.len().min(12)],
                merge_base
                    .as_deref()
                    .map(|m| &m[..m.len().min(12)])
                    .unwrap_or("none")
            ));
        }
    }

    let github = github_remote(&repo);
    // Provenance is added with the commits when the file's provenance is complete so far;
    // otherwise the provenance pass catches up afterwards.
    let provenance = options.provenance && crate::ingest::provenance::in_sync(&store.read()?)?;
    let diffs = diff::DiffPool::new(repo.into_sync(), options.threads, provenance);
    write::write_all(
        store,
        &plan,
        &diffs,
        options.batch_size.max(1),
        progress,
        &mut report,
    )?;
    // Where the history came from, for later stages (SZZ after an issue import); the mailmap
    // it was read with, for readers; and the GitHub repository issue references resolve
    // against, unless one is set already.
    let path = std::fs::canonicalize(repo_path).unwrap_or_else(|_| repo_path.to_path_buf());
    store.write(|tx| -> Result<(), crate::store::StoreError> {
        tx.set_meta(REPO_PATH_KEY, path.to_string_lossy().as_bytes())?;
        tx.set_meta(mailmap::MAILMAP_KEY, &mailmap::to_text(diffs.mailmap()))?;
        if let Some(github) = &github {
            if tx.get_meta(crate::ingest::links::REPO_KEY)?.is_none() {
                tx.set_meta(crate::ingest::links::REPO_KEY, github.as_bytes())?;
            }
        }
        Ok(())
    })?;
    identity::record_if_new(store, origin)?;
    report.elapsed_ms = duration_ms(started.elapsed());
    Ok(report)
}

/// `meta` key of the repository path the history was last ingested from.
pub const REPO_PATH_KEY: &str = "git.repo_path";

/// `owner/name` of the `origin` remote when it is on github.com.
fn github_remote(repo: &gix::Repository) -> Option<String> {
    let remote = repo.find_remote("origin").ok()?;
    let url = remote
        .url(gix::remote::Direction::Fetch)?
        .to_bstring()
        .to_string();
    let rest = url
        .split_once("github.com/")
        .or_else(|| url.split_once("github.com:"))?
        .1;
    let mut parts = rest.trim_end_matches('/').split('/');
    let (owner, name) = (parts.next()?, parts.next()?);
    let name = name.trim_end_matches(".git");
    (!owner.is_empty() && !name.is_empty()).then(|| format!("{owner}/{name}"))
}

fn duration_ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

fn open_repository(path: &Path) -> Result<gix::Repository, IngestError> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(IngestError::Unreadable {
            path: path.into(),
            source: e,
        });
    }
    // A delta-base cache as large as git's default (96 MiB): history walks hit the same delta
    // chains again and again, and gix's default keeps only 64 entries.
    let options = gix::open::Options::default().config_overrides(["core.deltaBaseCacheLimit=96m"]);
    let mut repo = gix::open_opts(path, options).map_err(|e| {
        let detail = e.to_string();
        IngestError::NotARepository {
            path: path.into(),
            // gix's own message repeats the path; keep only what adds to ours.
            detail: (!detail.contains("does not appear to be a git repository")).then_some(detail),
        }
    })?;
    repo.object_cache_size_if_unset(64 * 1024 * 1024);
    Ok(repo)
}

/// A gix error while reading the repository at `path`.
pub fn git_error(path: &Path, e: impl Into<super::BoxError>) -> IngestError {
    git_error_in(path, "reading the repository", e)
}

/// A gix error while doing `what` in the repository at `path`.
pub fn git_error_in(
    path: &Path,
    what: impl Into<String>,
    e: impl Into<super::BoxError>,
) -> IngestError {
    IngestError::Git {
        path: path.into(),
        what: what.into(),
        source: e.into(),
    }
}
