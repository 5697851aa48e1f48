//! `lore sync github OWNER/NAME`

use std::time::Duration;

use clap::{Args, Subcommand};
use lore::kb::Kb;
use lore::progress::Progress;
use lore::sync::{sync, SyncOptions};

use super::progress::Bar;

#[derive(Subcommand)]
pub enum SyncWhat {
    /// Issues, pull requests, comments and closing events from the GitHub REST API.
    #[command(after_help = "Examples:
  GITHUB_TOKEN=... lore sync github vllm-project/vllm
  lore sync github acme/tool --api-url https://github.example.com/api/v3   # GitHub Enterprise
  lore sync github vllm-project/vllm --max-wait 0 --json                  # never wait for the rate limit

The token comes from GITHUB_TOKEN or GH_TOKEN; it is sent, never printed or stored. Each run
continues from where the last one ended; unchanged pages cost no rate limit (ETags).")]
    Github(GithubArgs),
}

#[derive(Args)]
pub struct GithubArgs {
    /// The repository, owner/name.
    repo: String,
    /// The API's base URL.
    #[arg(long, default_value = "https://api.github.com", value_name = "URL")]
    api_url: String,
    /// The longest to wait for a rate limit to reset before stopping (seconds).
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    max_wait: u64,
    /// Skip the events of closed issues (one request per closed issue).
    #[arg(long)]
    no_events: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(kb: &Kb, quiet: bool, what: SyncWhat) -> anyhow::Result<()> {
    let SyncWhat::Github(args) = what;
    let token = ["GITHUB_TOKEN", "GH_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|t| !t.is_empty()));
    let options = SyncOptions {
        api_url: args.api_url,
        token,
        max_wait: Duration::from_secs(args.max_wait),
        closing_events: !args.no_events,
        ..SyncOptions::new(&args.repo)
    };
    let bar = Bar::new(quiet || args.json);
    let report = sync(kb, &options, &bar)?;
    bar.done();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{}: {} records in {} pages ({} created, {} updated, {} unchanged), {} comments, {} closing commits from GitHub's events; {} requests, {} unchanged (304), {} retries, {} rate-limit waits in {:.1}s",
        options.repo,
        report.records,
        report.pages,
        report.created,
        report.updated,
        report.unchanged,
        report.comments,
        report.closed_by_commit,
        report.requests,
        report.not_modified,
        report.retries,
        report.rate_limit_waits,
        report.elapsed_ms as f64 / 1000.0
    );
    super::import::print_skipped(&report.skipped);
    Ok(())
}
