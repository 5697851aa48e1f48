//! `lore index`, `lore embed`, `lore duplicates`, `lore locate` and `lore eval locate`: the
//! commands of the index stage.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use lore::index::duplicates::{self, DuplicateOptions};
use lore::index::embed::{BertEmbedder, CooccurrenceEmbedder, Device, Embedder, EmbedderSpec};
use lore::index::eval::{eval_locate, EvalOptions};
use lore::index::locate::Ranker;
use lore::index::{train_builtin, IndexReport};
use lore::kb::{Kb, LocateOptions};
use lore::progress::Progress;

use super::progress::Bar;

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

pub fn run_index(kb: &Kb, quiet: bool, args: IndexArgs) -> anyhow::Result<()> {
    let bar = Bar::new(quiet || args.json);
    let report = kb.update_indexes(&bar)?;
    bar.done();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        print_index_report(&report);
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

pub fn run_embed(kb_path: &Path, quiet: bool, args: EmbedArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let kb = Kb::open(kb_path)?.with_device(device);
    let indexes = kb.indexes()?;
    let bar = Bar::new(quiet || args.json);
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
            let e: CooccurrenceEmbedder = train_builtin(kb.store(), &bar)?;
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
        .update(kb.store(), embedder.as_ref(), &spec, &bar)?;
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

pub fn run_locate(kb: &Kb, args: LocateArgs) -> anyhow::Result<()> {
    let ranker = Ranker::parse(&args.ranker)
        .ok_or_else(|| anyhow!("unknown ranker `{}` (bm25, vector or hybrid)", args.ranker))?;
    let options = LocateOptions {
        ranker,
        limit: args.limit,
        now: args.now,
    };
    let location = kb.locate(args.issue, &options)?;
    let found = location.files;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    println!(
        "#{} {}\nfiles ranked by {} using what existed {}:",
        location.number,
        location.title,
        ranker.name(),
        if location.as_of.is_none() {
            "now"
        } else {
            "when it was opened"
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

pub fn run_eval(kb: &Kb, quiet: bool, what: EvalWhat) -> anyhow::Result<()> {
    let EvalWhat::Locate(args) = what;
    let since = match &args.since {
        Some(d) => Some(
            lore::query::dates::parse_date(d)
                .ok_or_else(|| anyhow!("--since `{d}` is not a date (YYYY-MM-DD)"))?,
        ),
        None => None,
    };
    let read = kb.read()?;
    let bar = Bar::new(quiet || args.json);
    let opts = EvalOptions {
        since,
        max_issues: args.max_issues,
    };
    let report = eval_locate(&read, kb.indexes()?, &opts, &bar)?;
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
    pub accept: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_duplicates(kb: &Kb, quiet: bool, args: DuplicatesArgs) -> anyhow::Result<()> {
    let indexes = kb.indexes()?;
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
            let c = duplicates::accept(kb.store(), indexes, n, m)?;
            if !quiet {
                println!(
                    "#{} duplicate_of #{} (similarity {:.3}) recorded",
                    c.number, c.of_number, c.similarity
                );
            }
        }
        return Ok(());
    }
    let read = kb.read()?;
    let bar = Bar::new(quiet || args.json);
    let opts = DuplicateOptions {
        min_similarity: args.min_similarity,
        open_only: args.open,
        of: args.of,
        ..DuplicateOptions::default()
    };
    let mut found = duplicates::propose(&read, indexes, &opts, &bar)?;
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
