//! `lore query`: run queries from the command line or from stdin.

use anyhow::anyhow;
use clap::Args;
use lore::kb::Kb;
use lore::query::{Cache, RunOptions, DEFAULT_MAX_ROWS};
use std::io::{BufRead, Write};

use super::table::{self, OutputFormat};

#[derive(Args)]
pub struct QueryArgs {
    /// The query. Without it, queries are read from stdin, one per line (or separated by `;`).
    query: Option<String>,
    /// table, json, jsonl or csv.
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: String,
    /// Run the naive plan (a scan from the first set) instead of the optimized one.
    #[arg(long, hide = true)]
    naive: bool,
    /// Print how long each query took (on stderr).
    #[arg(long)]
    timer: bool,
    /// The most rows a query may give (before `limit`); a query that would give more fails
    /// and says so.
    #[arg(long, default_value_t = DEFAULT_MAX_ROWS, value_name = "N")]
    max_rows: usize,
}

pub fn run(kb: &Kb, args: QueryArgs) -> anyhow::Result<()> {
    let format = OutputFormat::from_name(&args.format).ok_or_else(|| {
        anyhow!(
            "unknown format `{}` (expected table, json, jsonl or csv)",
            args.format
        )
    })?;
    let queries: Vec<String> = match args.query {
        Some(q) => vec![q],
        None => {
            let mut all = String::new();
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                all.push_str(&line);
                all.push('\n');
            }
            all.split([';', '\n'])
                .map(str::trim)
                .filter(|q| !q.is_empty() && !q.starts_with("--"))
                .map(str::to_string)
                .collect()
        }
    };
    let options = RunOptions {
        naive: args.naive,
        max_rows: args.max_rows,
    };
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    let mut cache = Cache::default();
    for q in &queries {
        match kb.query_with(q, &mut cache, options) {
            Ok(result) => {
                if queries.len() > 1 && format == OutputFormat::Table {
                    writeln!(out, "> {q}")?;
                }
                table::write(&mut out, &result, format, table::width())?;
                if args.timer {
                    eprintln!("{:.2} ms", result.elapsed_ms);
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}", super::error_chain(&e));
            }
        }
    }
    if failed > 0 {
        return Err(anyhow!("{failed} of {} queries failed", queries.len()));
    }
    Ok(())
}
