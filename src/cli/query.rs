//! `lore query`: run queries from the command line or from stdin.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::anyhow;
use clap::Args;
use lore::index::Indexes;
use lore::store::Store;

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
}

pub fn run(kb: &Path, args: QueryArgs) -> anyhow::Result<()> {
    let format = OutputFormat::from_name(&args.format).ok_or_else(|| {
        anyhow!(
            "unknown format `{}` (expected table, json, jsonl or csv)",
            args.format
        )
    })?;
    let store = Store::open(kb)?;
    let read = store.read()?;
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
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    let mut cache = lore::query::Cache::default();
    let mut indexes = None;
    for q in &queries {
        let result = if args.naive {
            lore::query::run_naive(&read, q, &mut cache)
        } else {
            // The indexes are opened for the first query that searches.
            if indexes.is_none() && lore::query::parser::parse(q).is_ok_and(|p| p.needs_indexes()) {
                indexes = Some(Indexes::open(&store)?);
            }
            lore::query::run_cached(&read, indexes.as_ref(), q, &mut cache)
        };
        match result {
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
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(anyhow!("{failed} of {} queries failed", queries.len()));
    }
    Ok(())
}
