//! [`Kb`]: one lore file and everything lore does with it. The CLI, the tests, the benchmarks
//! and the later stages (export, adapt, sync) go through this type rather than calling the
//! stages in sequence themselves.
//!
//! ```no_run
//! use lore::kb::{IngestOptions, Kb};
//! use lore::progress::Silent;
//!
//! let (kb, _created) = Kb::open_or_create("project.lore".as_ref())?;
//! kb.ingest("path/to/repo".as_ref(), &IngestOptions::default(), &Silent)?;
//! let rows = kb.query("issues fixed_by commit touching memory_utils")?;
//! println!("{} rows", rows.rows.len());
//! # Ok::<(), lore::Error>(())
//! ```

pub mod adapt;
pub mod blame;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::export::{self, ExportOptions, ExportReport, Template};
use crate::index::embed::Device;
use crate::index::locate::{issue_text, Located, Locator, Ranker};
use crate::index::{IndexError, IndexReport, Indexes};
use crate::ingest::code::{self, CodeIngestOptions, CodeIngestReport};
use crate::ingest::git::{self, GitIngestOptions, GitIngestReport};
use crate::ingest::issues::{self, ImportOptions, ImportReport};
use crate::ingest::links::{self, LinkReport};
use crate::ingest::provenance::{self, ProvenanceReport};
use crate::progress::Progress;
use crate::query::{self, QueryError, Rows, RunOptions};
use crate::store::check::{CheckReport, RedbState};
use crate::store::{ReadTx, Store, StoreError};
use crate::{Error, Result};

/// One open lore file: the store, and its search indexes opened on first use.
pub struct Kb {
    store: Store,
    device: Device,
    indexes: OnceLock<Indexes>,
}

/// What `lore ingest` runs: the git history, then each later stage unless it is turned off.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub git: GitIngestOptions,
    /// The code stage (tree-sitter symbols); `None` skips it.
    pub code: Option<CodeIngestOptions>,
    /// Derive links from commit messages (`fixed_by`, `references`, pull-request merges).
    pub links: bool,
    /// Blame what each fix commit changed (SZZ), with `links`; a later run with it blames what
    /// is missing.
    pub szz: bool,
    /// Bring the full-text and vector indexes up to date.
    pub index: bool,
    /// The project's GitHub repository (`owner/name`), recorded before the links are derived.
    pub github_repo: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            git: GitIngestOptions::default(),
            code: Some(CodeIngestOptions::default()),
            links: true,
            szz: true,
            index: true,
            github_repo: None,
        }
    }
}

/// What one ingest did, stage by stage (`None`: the stage was skipped).
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub git: GitIngestReport,
    pub provenance: Option<ProvenanceReport>,
    pub code: Option<CodeIngestReport>,
    pub links: Option<LinkReport>,
    pub index: Option<IndexReport>,
}

/// What one issue import did, and the index update after it.
#[derive(Debug, Clone, Serialize)]
pub struct IssueImportReport {
    #[serde(flatten)]
    pub import: ImportReport,
    pub index: Option<IndexReport>,
}

/// How `locate` ranks.
#[derive(Debug, Clone, Copy)]
pub struct LocateOptions {
    pub ranker: Ranker,
    pub limit: usize,
    /// Use everything the file knows now, not only what existed when the issue was opened.
    pub now: bool,
}

/// The files and symbols an issue concerns.
#[derive(Debug, Clone, Serialize)]
pub struct Location {
    pub number: u64,
    pub title: String,
    /// What the ranking could see: unix seconds, or `None` for everything the file knows.
    pub as_of: Option<i64>,
    pub ranker: Ranker,
    pub files: Vec<Located>,
}

/// Errors about what the caller asked for (an issue that is not in the file, say).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KbError {
    #[error("there is no issue #{number} in {}", path.display())]
    NoSuchIssue { number: u64, path: PathBuf },
    #[error("#{number} was referenced but never imported, so lore has no text for it")]
    StubIssue { number: u64 },
    #[error("--repo `{repo}` is not of the form owner/name")]
    BadRepoName { repo: String },
    /// `lore blame` could not answer: the message says why and what to do.
    #[error("{0}")]
    Blame(String),
}

impl Kb {
    /// Open an existing lore file.
    pub fn open(path: &Path) -> Result<Kb> {
        Ok(Kb::from_store(Store::open(path)?))
    }

    /// Open an existing lore file read-only: queries, `show`, `stats`, `locate` and the like
    /// work, nothing is written, and any number of readers share the file with one writer,
    /// each read seeing the writer's last commit. Methods that write return
    /// [`StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<Kb> {
        Ok(Kb::from_store(Store::open_read_only(path)?))
    }

    /// Check whether the lore file at `path` is whole: redb's integrity check and lore's own
    /// invariants over the store and the indexes, run on a private copy so the file itself is
    /// never changed (see [`crate::store::check`]). Damage is in the report, not an error.
    pub fn check(path: &Path) -> Result<CheckReport> {
        let indexes = |store: &Store| -> Vec<String> {
            let db = store.database();
            let mut problems = match crate::index::text::directory::check_stored(&db) {
                Ok(p) => p,
                Err(e) => vec![format!("the text index cannot be read: {e}")],
            };
            match crate::index::vectors::check_stored(&db) {
                Ok(p) => problems.extend(p),
                Err(e) => problems.push(format!("the vector tables cannot be read: {e}")),
            }
            problems
        };
        Ok(crate::store::check::check(path, &indexes)?)
    }

    /// Compact the lore file at `path` as its one writer (no `Kb` may have it open for
    /// writing): every stage's tables are copied in key order into a fresh file that replaces
    /// it (see [`crate::store::compact`]).
    pub fn compact(path: &Path) -> Result<crate::store::compact::CompactReport> {
        Ok(Store::compact(path, &|r| {
            crate::index::copy_tables(r)?;
            crate::adapt::lineage::copy_tables(r)
        })?)
    }

    /// Recover a file a killed writer left behind, once [`Kb::check`] has shown on a copy that
    /// redb's recovery succeeds; returns redb's verdict on the recovered file.
    pub fn repair(path: &Path) -> Result<RedbState> {
        Ok(crate::store::check::repair(path)?)
    }

    /// Create a new, empty lore file (an error if one exists).
    pub fn create(path: &Path) -> Result<Kb> {
        Ok(Kb::from_store(Store::create(path)?))
    }

    /// Open the file, creating it when it does not exist; says whether it was created.
    pub fn open_or_create(path: &Path) -> Result<(Kb, bool)> {
        let (store, created) = Store::open_or_create(path)?;
        Ok((Kb::from_store(store), created))
    }

    fn from_store(store: Store) -> Kb {
        Kb {
            store,
            device: Device::Cpu,
            indexes: OnceLock::new(),
        }
    }

    /// Run candle embedders on `device` (before the indexes are first used).
    pub fn with_device(mut self, device: Device) -> Kb {
        self.device = device;
        self
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The store underneath, for readers that need records directly (`show`, `stats`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A read transaction: a consistent snapshot of the file.
    pub fn read(&self) -> Result<ReadTx, StoreError> {
        self.store.read()
    }

    /// The full-text and vector indexes, opened on first use.
    pub fn indexes(&self) -> Result<&Indexes, IndexError> {
        if let Some(i) = self.indexes.get() {
            return Ok(i);
        }
        let opened = Indexes::open_on(&self.store, self.device)?;
        Ok(self.indexes.get_or_init(|| opened))
    }

    /// Ingest a git repository: history, then code, links (with SZZ) and indexes, each unless
    /// `options` turns it off. Incremental: only what is new is read.
    pub fn ingest(
        &self,
        repo: &Path,
        options: &IngestOptions,
        progress: &dyn Progress,
    ) -> Result<IngestReport> {
        if let Some(name) = &options.github_repo {
            check_repo_name(name)?;
            self.store
                .write(|tx| tx.set_meta(links::REPO_KEY, name.as_bytes()))?;
        }
        // Line provenance: whatever an earlier run left out first, so that the history stage
        // can add it with the commits it stores; then the HEAD `lore blame` defaults to.
        let mut provenance = match options.git.provenance {
            true if !provenance::in_sync(&self.store.read()?)? => {
                Some(provenance::run(&self.store, repo, progress)?)
            }
            true => Some(ProvenanceReport::default()),
            false => None,
        };
        let mut git = git::ingest(&self.store, repo, &options.git, progress)?;
        if let Some(p) = provenance.as_mut() {
            if let Some(inline) = git.provenance.take() {
                p.add(&inline);
            }
            p.add(&provenance::run(&self.store, repo, progress)?);
        }
        let code = match &options.code {
            Some(o) => Some(code::ingest(&self.store, repo, o, progress)?),
            None => None,
        };
        // The indexes hold commits, issues, files and symbols, which the links stage does not
        // change (a stub issue it adds has no text to index): their documents are read, and
        // the built-in embedder learned when it is due, on a second thread while links are
        // derived. The indexes are written after the links, as before, so the file's pages
        // are laid out in the same order.
        // Opening the indexes creates their tables in a new file: done here, before the links
        // stage writes, so that the order of writes does not depend on the threads' timing.
        if options.index {
            self.indexes()?;
        }
        let (links, planned) = std::thread::scope(|s| {
            let planning = options.index.then(|| {
                s.spawn(|| -> Result<_> {
                    let plan = self.indexes()?.plan(&self.store)?;
                    let trained = plan.train();
                    Ok((plan, trained))
                })
            });
            let links = options
                .links
                .then(|| links::after_ingest(&self.store, repo, options.szz, progress))
                .transpose();
            let planned = planning.map(|handle| {
                crate::progress::join_showing(handle, "preparing the indexes", progress)
            });
            (links, planned)
        });
        let links = links?;
        let index = match planned {
            Some(planned) => {
                let (plan, trained) = planned?;
                Some(self.indexes()?.update_planned(plan, trained, progress)?)
            }
            None => None,
        };
        Ok(IngestReport {
            git,
            provenance,
            code,
            links,
            index,
        })
    }

    /// Import an issue dump and link it; then update the indexes when `index` is set.
    pub fn import_issues(
        &self,
        dump: &Path,
        options: &ImportOptions,
        index: bool,
        progress: &dyn Progress,
    ) -> Result<IssueImportReport> {
        if let Some(name) = &options.repo {
            check_repo_name(name)?;
        }
        let import = issues::import(&self.store, dump, options, progress)?;
        let index = if index {
            Some(self.update_indexes(progress)?)
        } else {
            None
        };
        Ok(IssueImportReport { import, index })
    }

    /// Bring the full-text and vector indexes up to date with the store.
    pub fn update_indexes(&self, progress: &dyn Progress) -> Result<IndexReport> {
        let indexes = self.indexes()?;
        Ok(indexes.update(&self.store, progress)?)
    }

    /// Run one query on a fresh snapshot.
    pub fn query(&self, text: &str) -> Result<Rows, QueryError> {
        self.query_with(text, &mut query::Cache::default(), RunOptions::default())
    }

    /// Run one query on a fresh snapshot, reusing what earlier queries of a session left in
    /// `cache` (the REPL and scripts of queries keep one), with `options` (the naive plan for
    /// comparisons, another row cap). The search indexes are opened for the first query that
    /// needs them.
    pub fn query_with(
        &self,
        text: &str,
        cache: &mut query::Cache,
        options: RunOptions,
    ) -> Result<Rows, QueryError> {
        // Mistakes in the query are reported before the file or the indexes are touched.
        let parsed = query::parser::parse(text)?;
        let logical = query::bind::bind(text, &parsed)?;
        let search = if parsed.needs_indexes() {
            let indexes = self
                .indexes()
                .map_err(|source| QueryError::search(text, source))?;
            Some(indexes as &dyn query::SearchProvider)
        } else {
            None
        };
        let read = self.store.read()?;
        query::run_bound(&read, search, text, logical, cache, options)
    }

    /// The files and symbols issue `number` concerns, ranked from what existed when it was
    /// opened (or from everything, with `options.now`).
    pub fn locate(&self, number: u64, options: &LocateOptions) -> Result<Location> {
        let read = self.store.read()?;
        let id = read
            .find_issue(number)?
            .ok_or_else(|| KbError::NoSuchIssue {
                number,
                path: self.path().to_path_buf(),
            })?;
        let issue = read.issue(id)?;
        if issue.stub {
            return Err(KbError::StubIssue { number }.into());
        }
        let as_of = if options.now { None } else { issue.created_at };
        let locator = Locator::new(&read, self.indexes()?)?;
        let files = locator.locate(
            &issue_text(&issue),
            as_of.unwrap_or(i64::MAX),
            Some(id),
            options.ranker,
            options.limit,
        )?;
        Ok(Location {
            number,
            title: issue.title,
            as_of,
            ranker: options.ranker,
            files,
        })
    }
}

/// What the file records of the last export of a name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportRecord {
    pub query: String,
    pub template: String,
    /// The newest input time among everything exported under this name so far.
    pub watermark: Option<i64>,
    pub examples: u64,
}

impl Kb {
    fn export_key(name: &str) -> String {
        format!("export.{name}")
    }

    /// The last export recorded under `name`.
    pub fn last_export(&self, name: &str) -> Result<Option<ExportRecord>> {
        let read = self.store.read()?;
        Ok(read
            .meta(&Kb::export_key(name))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Export the rows of `query` as training examples through `template` (see
    /// [`crate::export`]). With `new_since_last`, only examples newer than the last export of
    /// the same name; a real export (not a dry run) is recorded in the file.
    pub fn export(
        &self,
        query: &str,
        template: &Template,
        options: &ExportOptions,
        new_since_last: bool,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
        let rows = self.query(query)?;
        let mut options = options.clone();
        let last = self.last_export(&options.name)?;
        if new_since_last {
            options.newer_than = last.as_ref().and_then(|r| r.watermark);
        }
        let needs_indexes = matches!(options.context, export::Context::Locate { .. })
            || template.builder == export::templates::Builder::Duplicate;
        let indexes = if needs_indexes {
            Some(self.indexes()?)
        } else {
            None
        };
        let read = self.store.read()?;
        let report = export::export(
            &read,
            indexes,
            query,
            &rows.nodes,
            template,
            &options,
            progress,
        )?;
        drop(read);
        if !options.dry_run {
            let m = &report.manifest;
            let record = ExportRecord {
                query: query.to_string(),
                template: template.name.clone(),
                watermark: m.watermark.max(last.and_then(|r| r.watermark)),
                examples: m.counts.train + m.counts.val,
            };
            let bytes = serde_json::to_vec(&record).expect("an export record serializes");
            self.store
                .write(|tx| tx.set_meta(&Kb::export_key(&options.name), &bytes))?;
        }
        Ok(report)
    }
}

fn check_repo_name(repo: &str) -> Result<(), KbError> {
    if repo.split('/').count() != 2 || repo.starts_with('/') || repo.ends_with('/') {
        return Err(KbError::BadRepoName {
            repo: repo.to_string(),
        });
    }
    Ok(())
}

impl From<KbError> for Error {
    fn from(e: KbError) -> Error {
        Error::Kb(e)
    }
}
