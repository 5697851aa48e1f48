//! `lore index`, `lore embed`, `lore search`, `lore duplicates`, `lore locate` and
//! `lore eval locate`: the commands of the index stage.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use lore::index::duplicates::{self, DuplicateOptions};
use lore::index::embed::{BertEmbedder, CooccurrenceEmbedder, Device, Embedder, EmbedderSpec};
use lore::index::eval::{eval_locate, EvalOptions};
use lore::index::locate::{issue_text, Locator, Ranker};
use lore::index::{train_builtin, IndexReport, Indexes};
use lore::ingest::Progress;
use lore::store::Store;

use super::progress::Bar;

/// Adapts the index stage's `(phase, done, total)` reports to a progress bar.
pub struct IndexProgress<'a> {
    bar: &'a Bar,
    state: Mutex<(String, u64)>,
}

impl<'a> IndexProgress<'a> {
    pub fn new(bar: &'a Bar) -> IndexProgress<'a> {
        IndexProgress {
            bar,
            state: Mutex::new((String::new(), 0)),
        }
    }

    pub fn report(&self, phase: &str, done: u64, total: u64) {
        let mut state = self.state.lock().expect("progress lock");
        if state.0 != phase {
            self.bar.phase(phase, Some(total));
            *state = (phase.to_string(), 0);
        }
        if done > state.1 {
            self.bar.advance(done - state.1);
            state.1 = done;
        }
        if done >= total {
            self.bar.done();
            state.0.clear();
        }
    }
}

/// Bring the indexes of `store` up to date, with progress, and say what changed.
pub fn update_indexes(store: &Store, bar: &Bar, quiet: bool) -> anyhow::Result<IndexReport> {
    let indexes = Indexes::open(store)?;
    let progress = IndexProgress::new(bar);
    let report = indexes.update(store, &|p, d, t| progress.report(p, d, t))?;
    bar.done();
    if !quiet {
        print_index_report(&report);
    }
    Ok(report)
}

pub fn print_index_report(report: &IndexReport) {
    let t = &report.text;
    println!(
        "index: text {} added, {} changed, {} removed, {} unchanged",
        t.added, t.changed, t.removed, t.unchanged
    );
    match (&report.vectors, &report.vectors_skipped) {
        (Some(v), _) => println!(
            "index: vectors ({}) {} embedded, {} unchanged, {} removed{}",
            v.model,
            v.embedded,
            v.unchanged,
            v.removed,
            if v.graphs_rebuilt > 0 {
                format!(", {} graphs rebuilt", v.graphs_rebuilt)
            } else {
                String::new()
            }
        ),
        (None, Some(why)) => println!("index: no vectors yet: {why}"),
        (None, None) => {}
    }
}

#[derive(Args)]
pub struct IndexArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_index(kb: &Path, quiet: bool, args: IndexArgs) -> anyhow::Result<()> {
    let store = Store::open(kb)?;
    let bar = Bar::new(quiet || args.json);
    let report = update_indexes(&store, &bar, quiet || args.json)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

#[derive(Args)]
pub struct EmbedArgs {
    /// A Hugging Face model directory with config.json, tokenizer.json and model.safetensors
    /// (a BERT-family sentence encoder such as all-MiniLM-L6-v2 or bge-small-en).
    #[arg(long, value_name = "DIR", conflicts_with = "retrain")]
    model: Option<PathBuf>,
    /// Learn the built-in embedder again from the file's current text.
    #[arg(long)]
    retrain: bool,
    /// cpu or cuda (builds with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => Ok(Device::Cuda),
        other => bail!("unknown device `{other}` (expected cpu or cuda)"),
    }
}

pub fn run_embed(kb: &Path, quiet: bool, args: EmbedArgs) -> anyhow::Result<()> {
    let store = Store::open(kb)?;
    let device = parse_device(&args.device)?;
    let indexes = Indexes::open_on(&store, device)?;
    let bar = Bar::new(quiet || args.json);
    let progress = IndexProgress::new(&bar);
    let report_progress = |p: &str, d, t| progress.report(p, d, t);
    let (embedder, spec): (Box<dyn Embedder>, EmbedderSpec) = match (&args.model, args.retrain) {
        (Some(dir), _) => {
            let dir = dir
                .canonicalize()
                .map_err(|e| anyhow!("{}: {e}", dir.display()))?;
            let e = BertEmbedder::load(&dir, device)?;
            let spec = EmbedderSpec::Bert {
                dir: dir.to_string_lossy().into_owned(),
            };
            (Box::new(e), spec)
        }
        (None, true) => {
            let e: CooccurrenceEmbedder = train_builtin(&store, &report_progress)?;
            let spec = EmbedderSpec::Cooccurrence(e.to_bytes());
            (Box::new(e), spec)
        }
        (None, false) => {
            bail!("say which embedder: --model DIR, or --retrain for the built-in one")
        }
    };
    let started = std::time::Instant::now();
    let report = indexes
        .vectors
        .update(&store, embedder.as_ref(), &spec, &report_progress)?;
    bar.done();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        println!(
            "{}: {} texts embedded ({} unchanged) in {secs:.1}s ({:.0} texts/s); queries now use this model",
            report.model,
            report.embedded,
            report.unchanged,
            report.embedded as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct LocateArgs {
    /// The issue number.
    issue: u64,
    /// bm25, vector or hybrid.
    #[arg(long, default_value = "hybrid")]
    ranker: String,
    /// How many files to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Use everything the file knows now, not only what existed when the issue was opened.
    #[arg(long)]
    now: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_locate(kb: &Path, args: LocateArgs) -> anyhow::Result<()> {
    let ranker = Ranker::parse(&args.ranker)
        .ok_or_else(|| anyhow!("unknown ranker `{}` (bm25, vector or hybrid)", args.ranker))?;
    let store = Store::open(kb)?;
    let indexes = Indexes::open(&store)?;
    let read = store.read()?;
    let id = read
        .issue_by_number(args.issue)?
        .ok_or_else(|| anyhow!("there is no issue #{} in {}", args.issue, kb.display()))?;
    let issue = read.issue(id)?;
    if issue.stub {
        bail!(
            "#{} was referenced but never imported, so lore has no text for it",
            args.issue
        );
    }
    let before = match (args.now, issue.created_at) {
        (false, Some(t)) => t,
        _ => i64::MAX,
    };
    let locator = Locator::new(&read, &indexes)?;
    let found = locator.locate(&issue_text(&issue), before, Some(id), ranker, args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    println!(
        "#{} {}\nfiles ranked by {} using what existed {}:",
        issue.number,
        issue.title,
        ranker.name(),
        if before == i64::MAX {
            "now".to_string()
        } else {
            "when it was opened".to_string()
        }
    );
    if found.is_empty() {
        println!("  (nothing: no file shares a word, a vector neighbour or a mention with it)");
    }
    for (i, f) in found.iter().enumerate() {
        let signals: Vec<String> = f
            .signals
            .iter()
            .map(|(name, rank)| format!("{name} #{rank}"))
            .collect();
        println!("{:>3}. {}  [{}]", i + 1, f.path, signals.join(", "));
        if !f.symbols.is_empty() {
            println!("       {}", f.symbols.join(", "));
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum EvalWhat {
    /// Replay history: rank files for every issue with a fix, as of when it was opened, and
    /// score the rankers against the files the fix touched.
    #[command(after_help = "Examples:
  lore eval locate
  lore eval locate --since 2024-01-01 --max-issues 200 --json")]
    Locate(EvalLocateArgs),
}

#[derive(Args)]
pub struct EvalLocateArgs {
    /// Only issues opened on or after this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// At most this many issues (the most recent).
    #[arg(long, value_name = "N")]
    max_issues: Option<usize>,
    /// Print JSON (with each issue's ranks).
    #[arg(long)]
    json: bool,
}

pub fn run_eval(kb: &Path, quiet: bool, what: EvalWhat) -> anyhow::Result<()> {
    let EvalWhat::Locate(args) = what;
    let since = match &args.since {
        Some(d) => Some(
            lore::query::exec::parse_date(d)
                .ok_or_else(|| anyhow!("--since `{d}` is not a date (YYYY-MM-DD)"))?,
        ),
        None => None,
    };
    let store = Store::open(kb)?;
    let indexes = Indexes::open(&store)?;
    let read = store.read()?;
    let bar = Bar::new(quiet || args.json);
    let progress = IndexProgress::new(&bar);
    let opts = EvalOptions {
        since,
        max_issues: args.max_issues,
    };
    let report = eval_locate(&read, &indexes, &opts, &|p, d, t| progress.report(p, d, t))?;
    bar.done();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} issues with a fix; {} scored ({} without a creation time, {} whose fixes only added files)",
        report.candidates, report.scored, report.skipped_no_time, report.skipped_new_files_only
    );
    if report.scored == 0 {
        println!(
            "nothing to score: no issue has a fix commit lore linked to it (import issues, and \
             check `lore query 'issues fixed_by commit count'`)"
        );
        return Ok(());
    }
    println!("{:<8} {:>7} {:>7} {:>7}", "ranker", "top-1", "top-5", "MRR");
    for s in &report.scores {
        println!(
            "{:<8} {:>7.3} {:>7.3} {:>7.3}",
            s.ranker.name(),
            s.top1,
            s.top5,
            s.mrr
        );
    }
    println!("each signal alone:");
    for s in &report.signals {
        println!(
            "  {:<16} {:>7.3} {:>7.3} {:>7.3}",
            s.signal, s.top1, s.top5, s.mrr
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct DuplicatesArgs {
    /// Only candidates of this issue (shown whatever their similarity).
    #[arg(long, value_name = "N")]
    of: Option<u64>,
    /// Smallest cosine similarity to propose.
    #[arg(long, default_value_t = 0.8, value_name = "X")]
    min_similarity: f32,
    /// Only look at open issues.
    #[arg(long)]
    open: bool,
    /// Most pairs to show.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Accept a pair: `N:M` records that #N duplicates #M (repeatable).
    #[arg(long, value_name = "N:M")]
    accept: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_duplicates(kb: &Path, quiet: bool, args: DuplicatesArgs) -> anyhow::Result<()> {
    let store = Store::open(kb)?;
    let indexes = Indexes::open(&store)?;
    if !args.accept.is_empty() {
        let mut pairs = Vec::new();
        for a in &args.accept {
            let parsed = a.split_once(':').and_then(|(x, y)| {
                Some((
                    x.trim().trim_start_matches('#').parse::<u64>().ok()?,
                    y.trim().trim_start_matches('#').parse::<u64>().ok()?,
                ))
            });
            pairs.push(parsed.ok_or_else(|| {
                anyhow!("--accept `{a}` is not of the form N:M (issue N duplicates issue M)")
            })?);
        }
        for (n, m) in pairs {
            let c = duplicates::accept(&store, &indexes, n, m)?;
            if !quiet {
                println!(
                    "#{} duplicate_of #{} (similarity {:.3}) recorded",
                    c.number, c.of_number, c.similarity
                );
            }
        }
        return Ok(());
    }
    let read = store.read()?;
    let bar = Bar::new(quiet || args.json);
    let progress = IndexProgress::new(&bar);
    let opts = DuplicateOptions {
        min_similarity: args.min_similarity,
        open_only: args.open,
        of: args.of,
        ..DuplicateOptions::default()
    };
    let mut found =
        duplicates::propose(&read, &indexes, &opts, &|p, d, t| progress.report(p, d, t))?;
    bar.done();
    found.truncate(args.limit);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    if found.is_empty() {
        println!(
            "no likely duplicates at similarity ≥ {}",
            args.min_similarity
        );
        return Ok(());
    }
    println!(
        "{:>8} {:>8} {:>6} {:>5}  titles",
        "issue", "of", "sim", "text"
    );
    for c in &found {
        println!(
            "{:>8} {:>8} {:>6.3} {:>5}  {} | {}{}",
            format!("#{}", c.number),
            format!("#{}", c.of_number),
            c.similarity,
            c.text_rank.map_or("-".to_string(), |r| format!("#{r}")),
            c.title,
            c.of_title,
            if c.linked { "  (already linked)" } else { "" }
        );
    }
    println!("accept one with: lore duplicates --accept N:M");
    Ok(())
}
