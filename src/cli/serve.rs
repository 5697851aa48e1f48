//! `lore serve`

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lore::kb::Kb;
use lore::serve::{ServeOptions, Server};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, default_value = "127.0.0.1:7700", value_name = "HOST:PORT")]
    addr: String,
    /// A file holding the GitHub webhook secret (or LORE_WEBHOOK_SECRET); without one,
    /// POST /github is refused.
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// A file holding a bearer token that /query requires (or LORE_QUERY_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The project's GitHub repository (owner/name) for issue references in webhooks.
    #[arg(long = "repo", value_name = "OWNER/NAME")]
    github: Option<String>,
    /// The git repository a `push` webhook ingests.
    #[arg(long, value_name = "DIR")]
    repo_path: Option<PathBuf>,
    /// Seconds a query may run before it is answered with 503.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    query_timeout: f64,
    /// Threads answering requests.
    #[arg(long, default_value_t = 4, value_name = "N")]
    threads: usize,
}

fn secret(file: Option<&Path>, env: &str) -> anyhow::Result<Option<String>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let text = text.trim().to_string();
        anyhow::ensure!(!text.is_empty(), "{} is empty", file.display());
        return Ok(Some(text));
    }
    Ok(std::env::var(env).ok().filter(|s| !s.is_empty()))
}

pub fn run(kb: Kb, args: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.query_timeout > 0.0 && args.query_timeout.is_finite(),
        "--query-timeout must be a positive number of seconds"
    );
    let options = ServeOptions {
        addr: args.addr,
        webhook_secret: secret(args.webhook_secret_file.as_deref(), "LORE_WEBHOOK_SECRET")?
            .map(String::into_bytes),
        token: secret(args.token_file.as_deref(), "LORE_QUERY_TOKEN")?,
        github_repo: args.github,
        repo_path: args.repo_path,
        query_timeout: Duration::try_from_secs_f64(args.query_timeout)
            .map_err(|_| anyhow::anyhow!("--query-timeout {} is too large", args.query_timeout))?,
        threads: args.threads,
    };
    let webhooks = options.webhook_secret.is_some();
    let path = kb.path().to_path_buf();
    let server = Server::bind(kb, options)?;
    let addr = server
        .local_addr()
        .map_or_else(|| "?".to_string(), |a| a.to_string());
    // One line on stdout, so scripts and tests learn the port.
    println!("lore serve: {} on http://{addr}", path.display());
    eprintln!(
        "GET /health, GET|POST /query{}",
        if webhooks {
            ", POST /github (signed webhooks)"
        } else {
            "; webhooks off (no secret)"
        }
    );
    server.run();
    Ok(())
}
