//! `lore watch`: keep a lore file current. One pass fetches the repository's remotes (`git
//! fetch`), ingests what is new, brings the indexes up to date and, when an adapter is
//! configured and its export has at least `min_new` examples newer than the last one, trains
//! the next adapter. `lore watch --once` is one pass (for cron); without it, a pass every
//! interval. Each pass is reported as one JSON line.
//!
//! One watcher per lore file: [`WatchLock`] holds an OS file lock next to it, which a killed
//! process releases with its other files, so it is never left stuck.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::adapt::{AdaptOptions, AdaptReport};
use crate::export::{ExportOptions, Template};
use crate::kb::{adapt::AdaptData, IngestOptions, Kb};
use crate::progress::Progress;
use crate::{Error, Result};

/// What a pass does.
pub struct WatchConfig {
    /// The git repository to fetch and ingest (a mirror clone: `git clone --mirror URL`).
    pub repo: PathBuf,
    /// Run `git fetch --prune` in it first.
    pub fetch: bool,
    pub ingest: IngestOptions,
    /// Sync issues from GitHub after the ingest.
    pub sync: Option<crate::sync::SyncOptions>,
    pub adapt: Option<WatchAdapt>,
}

/// The adapter a pass trains when enough is new.
pub struct WatchAdapt {
    pub query: String,
    pub template: Template,
    /// Export options (`name` is what "new" is counted against).
    pub export: ExportOptions,
    pub options: AdaptOptions,
    /// Train only when at least this many examples are newer than the last adapt export.
    pub min_new: u64,
}

/// What one pass did, stage by stage (one JSON line).
#[derive(Debug, Clone, Serialize, Default)]
pub struct PassReport {
    pub fetch_ms: Option<u64>,
    pub commits_added: u64,
    pub ingest_ms: u64,
    /// What `lore sync` did, when configured.
    pub sync: Option<crate::sync::SyncReport>,
    pub index_ms: u64,
    /// New examples for the configured adapter, and whether one was trained.
    pub new_examples: Option<u64>,
    pub adapter: Option<u64>,
    /// Why a stage did nothing (`nothing new`, `3 new examples, fewer than --min-new 50`…).
    pub skipped: Vec<String>,
    pub elapsed_ms: u64,
}

/// Errors of the watcher itself (the stages report their own).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("another lore watch is running on {} (lock {})", kb.display(), lock.display())]
    AlreadyWatching { kb: PathBuf, lock: PathBuf },
    #[error("cannot lock {}: {detail}", lock.display())]
    Lock { lock: PathBuf, detail: String },
    #[error("git fetch in {} failed: {detail}", repo.display())]
    Fetch { repo: PathBuf, detail: String },
}

/// The lock that makes a watcher the only one on its lore file.
pub struct WatchLock {
    _file: File,
}

impl WatchLock {
    /// Take `KB.watch.lock`, or fail at once when another watcher holds it.
    pub fn acquire(kb: &Path) -> std::result::Result<WatchLock, WatchError> {
        let mut name = kb.as_os_str().to_owned();
        name.push(".watch.lock");
        let lock = PathBuf::from(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|e| WatchError::Lock {
                lock: lock.clone(),
                detail: e.to_string(),
            })?;
        match file.try_lock() {
            Ok(()) => Ok(WatchLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(WatchError::AlreadyWatching {
                kb: kb.into(),
                lock,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(WatchError::Lock {
                lock,
                detail: e.to_string(),
            }),
        }
    }
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// One pass over `kb` (see the module documentation).
pub fn pass(kb: &Kb, config: &WatchConfig, progress: &dyn Progress) -> Result<PassReport> {
    let started = Instant::now();
    let mut report = PassReport::default();
    if config.fetch {
        let t = Instant::now();
        fetch(&config.repo)?;
        report.fetch_ms = Some(ms(t));
    }
    let t = Instant::now();
    let ingest = IngestOptions {
        index: false,
        ..config.ingest.clone()
    };
    let ingested = kb.ingest(&config.repo, &ingest, progress)?;
    report.commits_added = ingested.git.commits_added;
    report.ingest_ms = ms(t);
    if report.commits_added == 0 {
        report.skipped.push("ingest: no new commits".into());
    }
    if let Some(options) = &config.sync {
        report.sync = Some(crate::sync::sync(kb, options, progress)?);
    }
    let t = Instant::now();
    kb.update_indexes(progress)?;
    report.index_ms = ms(t);
    if let Some(adapt) = &config.adapt {
        let dry = ExportOptions {
            dry_run: true,
            ..adapt.export.clone()
        };
        let counted = kb.export(&adapt.query, &adapt.template, &dry, true, progress)?;
        let new = counted.manifest.counts.train + counted.manifest.counts.val;
        report.new_examples = Some(new);
        if new < adapt.min_new.max(1) {
            report.skipped.push(format!(
                "adapt: {new} new examples, fewer than --min-new {}",
                adapt.min_new.max(1)
            ));
        } else {
            let source = AdaptData::Query {
                query: adapt.query.clone(),
                template: Box::new(adapt.template.clone()),
                export: Box::new(adapt.export.clone()),
            };
            match kb.adapt(source, &adapt.options, progress, &|_| {})? {
                AdaptReport::Trained(record) => report.adapter = Some(record.id),
                AdaptReport::NothingNew { .. } => report
                    .skipped
                    .push("adapt: nothing newer than the last adapter".into()),
            }
        }
    }
    report.elapsed_ms = ms(started);
    Ok(report)
}

/// `git fetch --prune` in `repo` (every remote; a mirror clone updates its branches). git never
/// prompts for credentials here: a remote that needs them fails the fetch instead of hanging.
pub fn fetch(repo: &Path) -> Result<()> {
    let remotes = Command::new("git")
        .arg("-C")
        .arg(repo)
        .arg("remote")
        .output()
        .map_err(|e| fetch_error(repo, e.to_string()))?;
    if !remotes.status.success() {
        return Err(fetch_error(
            repo,
            String::from_utf8_lossy(&remotes.stderr).trim().to_string(),
        ));
    }
    if remotes.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["fetch", "--prune", "--quiet", "--all"])
        .output()
        .map_err(|e| fetch_error(repo, e.to_string()))?;
    if !out.status.success() {
        return Err(fetch_error(
            repo,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

fn fetch_error(repo: &Path, detail: String) -> Error {
    Error::from(WatchError::Fetch {
        repo: repo.into(),
        detail,
    })
}
