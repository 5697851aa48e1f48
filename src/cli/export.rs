//! `lore export`

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::Args;
use lore::export::{Context, ExportOptions, Split, Template};
use lore::kb::Kb;
use lore::progress::Progress;

use super::progress::Bar;

#[derive(Args)]
pub struct ExportArgs {
    /// The query whose rows become examples (its first set, or the set `return` names).
    #[arg(long)]
    query: String,
    /// A built-in template: issue_fix, issue_answer, commit_message, classify_issue, code_qa,
    /// duplicate.
    #[arg(
        long,
        short,
        default_value = "issue_fix",
        conflicts_with = "template_file"
    )]
    template: String,
    /// A template file with `takes`, `prompt` and `completion` blocks (minijinja).
    #[arg(long, value_name = "FILE")]
    template_file: Option<PathBuf>,
    /// The output directory (train.jsonl, val.jsonl, shards, manifest.json).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Replace a non-empty output directory.
    #[arg(long)]
    force: bool,
    /// A Hugging Face tokenizer directory (tokenizer.json): also write packed token shards.
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
    /// Tokens per packed row.
    #[arg(long, default_value_t = 2048, value_name = "N")]
    seq_len: usize,
    /// The latest fraction of examples (by date, whole issue groups) for validation.
    #[arg(
        long,
        default_value_t = 0.05,
        value_name = "F",
        conflicts_with = "split_date"
    )]
    val: f64,
    /// Examples from this date on are validation (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    split_date: Option<String>,
    /// Code shown with an issue: oracle (files the fix touched), locate (lore's ranking as of
    /// the issue's creation) or none; always as of the fix's parent.
    #[arg(long, default_value = "oracle")]
    context: String,
    /// The code budget per example, in tokens (about four characters each).
    #[arg(long, default_value_t = 1536, value_name = "N")]
    context_tokens: usize,
    /// Drop examples whose quality score (0 to 1, see docs/export.md) is below this.
    #[arg(long, default_value_t = 0.0, value_name = "X")]
    min_quality: f32,
    /// Only examples newer than the last export of the same --name.
    #[arg(long)]
    new_since_last: bool,
    /// The name this export is recorded under (default: the template's name).
    #[arg(long)]
    name: Option<String>,
    /// Print counts, token totals and three rendered examples; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seed of the training order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// jsonl, or swebench: also write swebench.jsonl with SWE-bench's field names (issue_fix).
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(kb: &Kb, quiet: bool, args: ExportArgs) -> anyhow::Result<()> {
    let template = match &args.template_file {
        Some(file) => Template::from_file(file)?,
        None => Template::built_in(&args.template)?,
    };
    let split = match &args.split_date {
        Some(d) => Split::Date {
            at: lore::query::dates::parse_date(d)
                .ok_or_else(|| anyhow!("--split-date `{d}` is not a date (YYYY-MM-DD)"))?,
        },
        None if (0.0..1.0).contains(&args.val) => Split::Fraction { val: args.val },
        None => bail!("--val {} is not a fraction from 0 up to 1", args.val),
    };
    let context = Context::parse(&args.context, args.context_tokens).ok_or_else(|| {
        anyhow!(
            "--context `{}`: expected oracle, locate or none",
            args.context
        )
    })?;
    if args.seq_len < 64 {
        bail!(
            "--seq-len {} is too short to hold a prompt and an answer (at least 64)",
            args.seq_len
        );
    }
    let swebench = match args.format.as_str() {
        "jsonl" => false,
        "swebench" if template.builder == lore::export::templates::Builder::IssueFix => true,
        "swebench" => {
            bail!("--format swebench needs a template over issues with fixes (issue_fix)")
        }
        other => bail!("--format `{other}`: expected jsonl or swebench"),
    };
    let options = ExportOptions {
        name: args.name.clone().unwrap_or_else(|| template.name.clone()),
        out: args.out.clone(),
        force: args.force,
        tokenizer: args.tokenizer.clone(),
        seq_len: args.seq_len,
        split,
        context,
        min_quality: args.min_quality,
        newer_than: None,
        dry_run: args.dry_run,
        seed: args.seed,
        swebench,
    };
    let bar = Bar::new(quiet || args.json);
    let report = kb.export(&args.query, &template, &options, args.new_since_last, &bar)?;
    bar.done();
    let mut out = std::io::stdout().lock();
    let m = &report.manifest;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(m)?)?;
        return Ok(());
    }
    if quiet {
        return Ok(());
    }
    let c = &m.counts;
    let skipped: u64 = c.skipped.values().sum();
    writeln!(
        out,
        "{} rows: {} examples ({} train, {} val); removed: {} without an example, {} not new, {} below quality, {} exact and {} near duplicates",
        c.rows, c.train + c.val, c.train, c.val, skipped, c.not_new, c.below_quality, c.exact_duplicates, c.near_duplicates
    )?;
    for (why, n) in &c.skipped {
        writeln!(out, "  {n} {why}")?;
    }
    if let Some(t) = &m.tokens {
        writeln!(
            out,
            "tokens: {} train, {} val; {} truncated, {} dropped; {} rows of {}",
            t.train_tokens,
            t.val_tokens,
            t.truncated,
            t.dropped,
            t.train_rows + t.val_rows,
            args.seq_len
        )?;
    }
    if args.dry_run {
        for e in &report.shown {
            writeln!(
                out,
                "\n=== {} ({}, quality {:.2})\n--- prompt\n{}\n--- completion\n{}",
                e.id, e.split, e.quality, e.prompt, e.completion
            )?;
        }
    } else {
        writeln!(out, "wrote {}", args.out.display())?;
    }
    Ok(())
}
