//! `lore watch`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser};
use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;
use lore::watch::{pass, WatchConfig, WatchLock};

use super::adapt::AdaptArgs;

#[derive(Args)]
pub struct WatchArgs {
    /// The git repository to keep current (a mirror clone, `git clone --mirror URL`, so that
    /// `git fetch` moves its branches).
    repo: PathBuf,
    /// One pass, then exit (for cron).
    #[arg(long)]
    once: bool,
    /// Seconds between passes.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    interval: u64,
    /// Do not run `git fetch` (the repository is updated by something else).
    #[arg(long)]
    no_fetch: bool,
    /// Train an adapter when at least this many examples are new (needs the adapt
    /// arguments after `--`).
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_new: u64,
    /// Also sync issues and pull requests from this GitHub repository (owner/name; the token
    /// from GITHUB_TOKEN or GH_TOKEN).
    #[arg(long = "github", value_name = "OWNER/NAME")]
    github: Option<String>,
    /// The GitHub API's base URL (GitHub Enterprise).
    #[arg(long, default_value = "https://api.github.com", value_name = "URL")]
    api_url: String,
    /// Append each pass's JSON line to this file too.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// `lore adapt` arguments for the adapter to keep training: `-- --model DIR --query Q -t T`.
    #[arg(last = true, value_name = "ADAPT ARGS")]
    adapt: Vec<String>,
}

#[derive(Parser)]
#[command(name = "lore watch --")]
struct AdaptCli {
    #[command(flatten)]
    args: AdaptArgs,
}

pub fn run(kb_path: &Path, args: WatchArgs) -> anyhow::Result<()> {
    // Take the lock before the file: a second watcher says so instead of "being written".
    let _lock = WatchLock::acquire(kb_path)?;
    let (mut kb, _) = Kb::open_or_create(kb_path)?;
    let adapt = if args.adapt.is_empty() {
        None
    } else {
        let parsed = AdaptCli::try_parse_from(
            std::iter::once("lore watch --".to_string()).chain(args.adapt.iter().cloned()),
        )
        .map_err(|e| {
            let text = e.to_string();
            anyhow::anyhow!(
                "the adapt arguments after `--`: {}",
                text.trim().trim_start_matches("error: ")
            )
        })?;
        Some(super::adapt::watch_adapt(&kb, &parsed.args, args.min_new)?)
    };
    if args.interval == 0 && !args.once {
        bail!("--interval must be at least 1 second");
    }
    let config = WatchConfig {
        repo: args.repo.clone(),
        fetch: !args.no_fetch,
        ingest: IngestOptions::default(),
        sync: args.github.as_deref().map(|repo| lore::sync::SyncOptions {
            api_url: args.api_url.clone(),
            token: ["GITHUB_TOKEN", "GH_TOKEN"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|t| !t.is_empty())),
            ..lore::sync::SyncOptions::new(repo)
        }),
        adapt,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if !args.once {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    let mut number = 0u64;
    loop {
        number += 1;
        let started = jiff::Timestamp::now();
        let bytes_before = super::ingest::file_len(kb_path);
        let mut line = match pass(&kb, &config, &Silent) {
            Ok(report) => {
                let mut v = serde_json::to_value(&report)?;
                v["pass"] = number.into();
                v["started"] = started.to_string().into();
                v
            }
            Err(e) => serde_json::json!({
                "pass": number,
                "started": started.to_string(),
                "error": super::error_chain(&e),
            }),
        };
        // The store doubles a file whose free space ran out: the pass ends with a compaction
        // then, as `lore ingest` does.
        if super::ingest::grown_by_half(bytes_before, super::ingest::file_len(kb_path)) {
            drop(kb);
            match Kb::compact(kb_path) {
                Ok(report) => line["compact"] = serde_json::to_value(&report)?,
                Err(e) => line["compact_error"] = super::error_chain(&e).into(),
            }
            kb = Kb::open(kb_path)?;
        }
        let text = serde_json::to_string(&line)?;
        println!("{text}");
        if let Some(log) = &args.log {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            writeln!(f, "{text}")?;
        }
        if args.once {
            if line.get("error").is_some() {
                bail!("the pass failed: {}", line["error"].as_str().unwrap_or(""));
            }
            return Ok(());
        }
        for _ in 0..args.interval {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}
