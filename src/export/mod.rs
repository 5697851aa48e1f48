//! Export: the rows of a query become training examples. For each result node a builder
//! gathers what existed when the example's input did (`examples.rs`), a template renders a
//! prompt and a completion (`templates.rs`), examples are scored, deduplicated and split by
//! time without leakage (`quality.rs`, `select.rs`), and written as JSONL and, with a
//! tokenizer, as packed token shards (`shards.rs`) with a `manifest.json`.
//!
//! ```text
//! nodes ─examples→ drafts ─templates→ rendered ─select→ kept, split ─shards→ files
//! ```
//!
//! The same lore file, query, options and seed give the same bytes.

mod chat;
pub mod context;
pub mod examples;
pub mod quality;
pub mod select;
pub mod shards;
pub mod source;
pub mod templates;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::index::{IndexError, Indexes};
use crate::progress::Progress;
use crate::store::{NodeId, NodeKind, ReadTx, StoreError};

pub use context::Context;
pub use select::Split;
pub use templates::{Takes, Template};

/// Why an export failed. Nothing is written when it does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("unknown template `{name}` (built in: {known}; or --template-file FILE)")]
    UnknownTemplate { name: String, known: String },
    #[error("template {name}")]
    Template {
        name: String,
        #[source]
        source: Box<minijinja::Error>,
    },
    #[error("template {name} needs {detail}")]
    TemplateBlocks { name: String, detail: String },
    #[error("template `{template}` takes {takes}, but the query gives {got}; {hint}")]
    WrongKind {
        template: String,
        takes: &'static str,
        got: &'static str,
        hint: String,
    },
    #[error("the query gave no rows, so there is nothing to export")]
    NoRows,
    #[error("{} exists and is not empty; pass --force to replace it", path.display())]
    OutputExists { path: PathBuf },
    #[error("{}: {detail}", path.display())]
    Tokenizer { path: PathBuf, detail: String },
    #[error("tokenizing: {detail}")]
    Tokenize { detail: String },
    #[error("writing {}: {detail}", path.display())]
    Shard { path: PathBuf, detail: String },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("this lore file does not say which repository it was ingested from (run `lore ingest` first)")]
    NoRepository,
    #[error("cannot open the repository {}", path.display())]
    Repository {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("--context locate needs the search indexes")]
    LocateNeedsIndexes,
    #[error("the duplicate template needs the vector index (run `lore index`)")]
    DuplicateNeedsIndexes,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] Box<IndexError>),
}

impl From<IndexError> for ExportError {
    fn from(e: IndexError) -> ExportError {
        ExportError::Index(Box::new(e))
    }
}

/// How to export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportOptions {
    /// The name exports are recorded under (`--new-since-last` compares with the last export
    /// of this name).
    pub name: String,
    /// Where to write (not in the manifest: the same export written elsewhere is the same).
    #[serde(skip)]
    pub out: PathBuf,
    /// Replace a non-empty `out`.
    #[serde(skip)]
    pub force: bool,
    pub tokenizer: Option<PathBuf>,
    pub seq_len: usize,
    pub split: Split,
    pub context: Context,
    pub min_quality: f32,
    /// Only examples whose input is newer than this (the last export's watermark).
    pub newer_than: Option<i64>,
    pub dry_run: bool,
    pub seed: u64,
    /// Also write `swebench.jsonl` (issue_fix only).
    pub swebench: bool,
}

/// What an export did; also written as `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub name: String,
    pub query: String,
    pub template: String,
    pub takes: Takes,
    pub options: ExportOptions,
    /// The newest input time among the exported examples (unix seconds); the next
    /// `--new-since-last` starts after it.
    pub watermark: Option<i64>,
    pub repository: String,
    /// What the lore file held: its commit and issue counts and each ref's ingested tip.
    pub kb: KbState,
    pub tokenizer: Option<TokenizerInfo>,
    pub counts: Counts,
    pub tokens: Option<TokenCounts>,
    pub examples: Vec<ExampleEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KbState {
    pub commits: u64,
    pub issues: u64,
    /// Ref name → the tip last ingested (hex).
    pub refs: BTreeMap<String, String>,
}

impl KbState {
    fn of(read: &ReadTx) -> Result<KbState, StoreError> {
        Ok(KbState {
            commits: read.commit_count()?,
            issues: read.node_count(NodeKind::Issue)?,
            refs: read
                .watermarks()?
                .into_iter()
                .map(|(name, w)| (name, crate::store::hex(&w.sha)))
                .collect(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenizerInfo {
    pub path: String,
    pub sha256: String,
    pub chat_template: bool,
}

/// How many examples each step kept or removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub rows: u64,
    pub drafted: u64,
    /// Rows that gave no example, by reason.
    pub skipped: BTreeMap<String, u64>,
    pub not_new: u64,
    pub below_quality: u64,
    pub exact_duplicates: u64,
    pub near_duplicates: u64,
    pub train: u64,
    pub val: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenCounts {
    pub train_tokens: u64,
    pub val_tokens: u64,
    pub train_rows: u64,
    pub val_rows: u64,
    pub truncated: u64,
    pub dropped: u64,
    pub shards: Vec<String>,
}

/// One exported example in the manifest: where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleEntry {
    pub id: String,
    pub split: &'static str,
    /// When the example's input existed (unix seconds); `lore adapt` splits new from old by it.
    pub created_at: i64,
    pub sources: Vec<String>,
}

/// One rendered example, as written to `train.jsonl`/`val.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub id: String,
    pub split: &'static str,
    pub created_at: i64,
    pub sources: Vec<String>,
    pub quality: f32,
    pub prompt: String,
    pub completion: String,
    #[serde(skip)]
    pub group: String,
    #[serde(skip)]
    pub swebench: Option<serde_json::Value>,
}

/// The result of an export: the manifest, and (for `--dry-run`) examples to show.
pub struct ExportReport {
    pub manifest: Manifest,
    pub shown: Vec<Example>,
}

/// The node kind a template takes.
fn node_kind(takes: Takes) -> NodeKind {
    match takes {
        Takes::Issues => NodeKind::Issue,
        Takes::Commits => NodeKind::Commit,
        Takes::Symbols => NodeKind::Symbol,
    }
}

fn kind_name(kind: Option<NodeKind>) -> &'static str {
    match kind {
        Some(NodeKind::Issue) => "issues",
        Some(NodeKind::Commit) => "commits",
        Some(NodeKind::Symbol) => "symbols",
        Some(NodeKind::File) => "files",
        Some(NodeKind::Author) => "authors",
        Some(NodeKind::Blob) | None => "something else",
    }
}

/// Check that the query's nodes are what the template takes.
pub fn check_kind(template: &Template, nodes: &[NodeId]) -> Result<(), ExportError> {
    if nodes.is_empty() {
        return Err(ExportError::NoRows);
    }
    let want = node_kind(template.takes);
    if let Some(other) = nodes.iter().find(|n| n.kind() != Some(want)) {
        return Err(ExportError::WrongKind {
            template: template.name.clone(),
            takes: template.takes.name(),
            got: kind_name(other.kind()),
            hint: format!(
                "start the query with {} (or `return` them)",
                template.takes.name()
            ),
        });
    }
    Ok(())
}

/// Export the examples of `nodes` (the rows of `query`).
pub fn export(
    read: &ReadTx,
    indexes: Option<&Indexes>,
    query: &str,
    nodes: &[NodeId],
    template: &Template,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportReport, ExportError> {
    check_kind(template, nodes)?;
    if !options.dry_run {
        write::check_out_dir(&options.out, options.force)?;
    }
    let git = source::GitSource::of_store(read)?;
    let repo = crate::ingest::links::repo_name(read)?.unwrap_or_else(|| {
        git.path()
            .file_name()
            .map_or("repository".into(), |n| n.to_string_lossy().into_owned())
    });
    let drafter = examples::Drafter {
        read,
        git: &git,
        repo: repo.clone(),
        context: options.context,
        indexes,
    };
    let mut counts = Counts {
        rows: nodes.len() as u64,
        ..Counts::default()
    };
    let examples = draft_and_select(&drafter, template, nodes, options, &mut counts, progress)?;
    let mut manifest = Manifest {
        name: options.name.clone(),
        query: query.to_string(),
        template: template.name.clone(),
        takes: template.takes,
        options: options.clone(),
        watermark: examples.iter().map(|e| e.created_at).max(),
        repository: repo,
        kb: KbState::of(read)?,
        tokenizer: None,
        counts,
        tokens: None,
        examples: examples
            .iter()
            .map(|e| ExampleEntry {
                id: e.id.clone(),
                split: e.split,
                created_at: e.created_at,
                sources: e.sources.clone(),
            })
            .collect(),
    };
    if options.dry_run {
        if let Some(dir) = &options.tokenizer {
            let tok = shards::TokenizerDir::load(dir)?;
            manifest.tokens = Some(write::token_counts(
                &tok,
                &examples,
                options.seq_len,
                progress,
            )?);
        }
        let shown = examples.into_iter().take(3).collect();
        return Ok(ExportReport { manifest, shown });
    }
    write::write_all(&examples, &mut manifest, options, progress)?;
    Ok(ExportReport {
        manifest,
        shown: Vec::new(),
    })
}

/// Draft, render, filter, dedupe and split; examples in output order.
fn draft_and_select(
    drafter: &examples::Drafter<'_>,
    template: &Template,
    nodes: &[NodeId],
    options: &ExportOptions,
    counts: &mut Counts,
    progress: &dyn Progress,
) -> Result<Vec<Example>, ExportError> {
    progress.phase("drafting examples", Some(nodes.len() as u64));
    let mut rendered = Vec::new();
    for &node in nodes {
        progress.advance(1);
        let drafts = match drafter.draft(template.builder, node)? {
            Ok(d) => d,
            Err(skip) => {
                *counts.skipped.entry(skip.to_string()).or_default() += 1;
                continue;
            }
        };
        for draft in drafts {
            counts.drafted += 1;
            if options.newer_than.is_some_and(|t| draft.created_at <= t) {
                counts.not_new += 1;
                continue;
            }
            if draft.quality.score() < options.min_quality {
                counts.below_quality += 1;
                continue;
            }
            let r = template.render(&draft.context)?;
            rendered.push((draft, r));
        }
    }
    progress.done();
    // Oldest first, so dedupe keeps the earliest of near-identical examples.
    rendered.sort_by(|a, b| (a.0.created_at, &a.0.id).cmp(&(b.0.created_at, &b.0.id)));
    let texts: Vec<String> = rendered
        .iter()
        .map(|(_, r)| format!("{}\n{}", r.prompt, r.completion))
        .collect();
    let (kept, removed) = select::dedupe(&texts);
    counts.exact_duplicates = removed.exact_duplicates;
    counts.near_duplicates = removed.near_duplicates;
    let kept: Vec<&(examples::Draft, templates::Rendered)> =
        kept.into_iter().map(|i| &rendered[i]).collect();
    let groups: Vec<(&str, i64)> = kept
        .iter()
        .map(|(d, _)| (d.group.as_str(), d.created_at))
        .collect();
    let val = select::split(&groups, options.split);
    let mut out: Vec<Example> = kept
        .iter()
        .zip(val)
        .map(|((d, r), val)| Example {
            id: d.id.clone(),
            split: if val { "val" } else { "train" },
            created_at: d.created_at,
            sources: d.sources.iter().cloned().collect(),
            quality: d.quality.score(),
            prompt: r.prompt.clone(),
            completion: r.completion.clone(),
            group: d.group.clone(),
            swebench: d.swebench.clone(),
        })
        .collect();
    counts.val = out.iter().filter(|e| e.split == "val").count() as u64;
    counts.train = out.len() as u64 - counts.val;
    // Training order: shuffled by the seed, the same for the same seed.
    out.sort_by_key(|e| (e.split, write::seeded_rank(&e.id, options.seed)));
    Ok(out)
}
