//! `lore import issues`

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use lore::ingest::issues::{Format, ImportOptions};
use lore::kb::{IssueImportReport, Kb};

use super::progress::Bar;
use lore::progress::Progress;

#[derive(Subcommand)]
pub enum ImportWhat {
    /// Issues and pull requests from a dump; links them to commits, files and symbols.
    #[command(after_help = "Formats (auto-detected from the first record):
  github  GitHub REST API objects: a JSON array, or one object per line
  gh      `gh issue list --json number,title,body,state,author,labels,createdAt,updatedAt,closedAt,comments,url`
          (and `gh pr list --json …,mergedAt`)
  jira    a Jira JSON export: {\"issues\": [{\"key\": \"PROJ-7\", \"fields\": {…}, \"changelog\": …}]}
  jsonl   lore's generic JSON lines (docs/issues.md)

Examples:
  lore import issues issues.json --repo vllm-project/vllm
  lore import issues issues.json --comments comments.json
  gh issue list --state all --limit 5000 --json number,title,body,state,author,labels,createdAt,updatedAt,closedAt,comments,url > gh.json
  lore import issues gh.json
  lore import issues export.json --format jira --json

Re-importing is safe: issues are updated when the dump is newer, never duplicated.")]
    Issues(IssuesArgs),
}

#[derive(Args)]
pub struct IssuesArgs {
    /// The dump file.
    file: PathBuf,
    /// auto, github, gh, jira or jsonl.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    format: String,
    /// The project's repository (owner/name); records of another repository are reported.
    #[arg(long, value_name = "OWNER/NAME")]
    repo: Option<String>,
    /// A separate dump of GitHub issue comments (matched by issue_url).
    #[arg(long, value_name = "FILE")]
    comments: Option<PathBuf>,
    /// The git repository, for SZZ (default: the one last ingested).
    #[arg(long, value_name = "PATH")]
    git: Option<PathBuf>,
    /// Skip SZZ; a later import or ingest without this flag does it.
    #[arg(long)]
    no_szz: bool,
    /// Skip updating the full-text and vector indexes (`lore index` does it later).
    #[arg(long)]
    no_index: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(kb: &Kb, quiet: bool, what: ImportWhat) -> anyhow::Result<()> {
    let ImportWhat::Issues(args) = what;
    let format = Format::from_name(&args.format).ok_or_else(|| {
        anyhow!(
            "unknown format `{}` (expected one of: auto, github, gh, jira, jsonl)",
            args.format
        )
    })?;
    let options = ImportOptions {
        format,
        repo: args.repo,
        comments: args.comments,
        git: args.git,
        szz: !args.no_szz,
    };
    let progress = Bar::new(quiet || args.json);
    let both = kb.import_issues(&args.file, &options, !args.no_index, &progress)?;
    progress.done();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&both)?);
        return Ok(());
    }
    let IssueImportReport {
        import: report,
        index,
    } = both;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if quiet {
        return Ok(());
    }
    println!(
        "{}: {} records ({} format): {} new, {} updated ({} were stubs), {} unchanged; {} issues, {} pull requests",
        args.file.display(),
        report.records,
        report.format,
        report.created,
        report.updated,
        report.stubs_filled,
        report.unchanged,
        report.issues,
        report.pull_requests
    );
    print_skipped(&report.skipped);
    let l = &report.links;
    println!(
        "links: {} added{}, {} replaced; {} fix commits blamed, {} introduced_by edges in {:.2}s",
        l.edges_added,
        super::ingest::by_relation(l),
        l.edges_removed,
        l.fix_commits_blamed,
        l.introduced_by,
        report.elapsed_ms as f64 / 1000.0
    );
    if let Some(index) = &index {
        super::search::print_index_report(index);
    }
    Ok(())
}

/// `skipped or repaired: invalid_date 2, wrong_type:title 1` (nothing when nothing was).
pub fn print_skipped(skipped: &lore::ingest::issues::Skips) {
    if !skipped.0.is_empty() {
        let parts: Vec<String> = skipped.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("skipped or repaired: {}", parts.join(", "));
    }
}
