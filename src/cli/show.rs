//! `lore show …`

use anyhow::bail;
use clap::Subcommand;
use lore::kb::Kb;
use lore::store::records::{EdgeDetail, TouchStats};
use lore::store::{hex, Rel};
use serde_json::json;

use super::render;

#[derive(Subcommand)]
pub enum ShowWhat {
    /// A commit: header, message and the files it touched with line stats.
    #[command(
        after_help = "Examples:\n  lore show commit 3fa9c1\n  lore show commit 3fa9c1 --json"
    )]
    Commit {
        /// A sha or a unique prefix of one (at least 4 hex digits).
        sha: String,
        #[arg(long)]
        json: bool,
    },
    /// A file at HEAD: its symbols with kinds and lines, and its imports.
    #[command(after_help = "Examples:\n  lore show file minillm/worker/memory_utils.py")]
    File {
        path: String,
        #[arg(long)]
        json: bool,
    },
    /// An issue or pull request: its state, facets, and links grouped by relation, each with
    /// provenance, confidence and evidence; and the commits SZZ blames for it.
    #[command(after_help = "Examples:\n  lore show issue 7\n  lore show issue '#18' --json")]
    Issue {
        /// The number (`7` or `#7`).
        number: String,
        #[arg(long)]
        json: bool,
    },
    /// A symbol: its definition at HEAD and the commits that modified it.
    #[command(
        after_help = "Examples:\n  lore show symbol free_blocks\n  lore show symbol Scheduler.schedule"
    )]
    Symbol {
        /// A name or a qualified name.
        name: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(kb: &Kb, what: ShowWhat) -> anyhow::Result<()> {
    match what {
        ShowWhat::Commit { sha, json } => commit(kb, &sha, json),
        ShowWhat::File { path, json } => super::show_code::file(kb, &path, json),
        ShowWhat::Symbol { name, json } => super::show_code::symbol(kb, &name, json),
        ShowWhat::Issue { number, json } => super::show_issue::issue(kb, &number, json),
    }
}

fn commit(kb: &Kb, prefix: &str, json_out: bool) -> anyhow::Result<()> {
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("`{prefix}` is not a commit sha prefix (need at least 4 hex digits)");
    }
    let read = kb.read()?;
    let ids = read.commits_by_hex_prefix(prefix, 10)?;
    let id = match ids.as_slice() {
        [] => bail!("no commit {prefix} in {}", kb.path().display()),
        [one] => *one,
        many => {
            let shas: Vec<String> = many
                .iter()
                .map(|id| read.commit(*id).map(|c| hex(&c.sha)[..12].to_string()))
                .collect::<Result<_, _>>()?;
            bail!("commit prefix {prefix} is ambiguous: {}", shas.join(", "))
        }
    };
    let c = read.commit(id)?;
    let author = (read.string(c.author.name)?, read.string(c.author.email)?);
    let committer = (
        read.string(c.committer.name)?,
        read.string(c.committer.email)?,
    );
    let mut files = Vec::new();
    for edge in read.edges_from(id, Rel::Touches)? {
        let path = read.string(read.file(edge.dst)?.path)?;
        if let EdgeDetail::Touch(stats) = edge.meta.detail {
            let old = stats.old_path.map(|s| read.string(s)).transpose()?;
            files.push((path, old, stats));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    if json_out {
        let value = json!({
            "sha": hex(&c.sha),
            "tree": hex(&c.tree),
            "parents": c.parents.iter().map(|p| hex(p)).collect::<Vec<_>>(),
            "author": {"name": author.0, "email": author.1, "time": c.author.time, "tz_offset": c.author.tz_offset},
            "committer": {"name": committer.0, "email": committer.1, "time": c.committer.time, "tz_offset": c.committer.tz_offset},
            "message": c.message,
            "is_merge": c.is_merge,
            "shallow_boundary": c.shallow_boundary,
            "lines_added": c.lines_added,
            "lines_removed": c.lines_removed,
            "stats_unknown": c.stats_unknown,
            "files": files.iter().map(|(path, old, s)| json!({
                "path": path, "old_path": old, "change": s.change.name(),
                "added": s.added, "removed": s.removed, "binary": s.binary,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }

    println!(
        "commit {}{}",
        hex(&c.sha),
        if c.is_merge { " (merge)" } else { "" }
    );
    for p in &c.parents {
        println!("parent {}", hex(p));
    }
    println!(
        "Author:    {} <{}>  {}",
        author.0,
        author.1,
        render::time(c.author.time, c.author.tz_offset)
    );
    println!(
        "Committer: {} <{}>  {}",
        committer.0,
        committer.1,
        render::time(c.committer.time, c.committer.tz_offset)
    );
    println!();
    for line in c.message.trim_end().lines() {
        println!("    {line}");
    }
    println!();
    for (path, old, s) in &files {
        println!(
            "{} {:>6} {:>6}  {}",
            s.change.letter(),
            num(s, true),
            num(s, false),
            display_path(path, old.as_deref())
        );
    }
    println!(
        "{} files changed, +{} -{}{}",
        files.len(),
        c.lines_added,
        c.lines_removed,
        if c.stats_unknown > 0 {
            format!(" ({} with unknown stats: objects missing)", c.stats_unknown)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn num(s: &TouchStats, added: bool) -> String {
    let n = if added { s.added } else { s.removed };
    match n {
        Some(n) if added => format!("+{n}"),
        Some(n) => format!("-{n}"),
        None if s.binary => "bin".into(),
        None => "?".into(),
    }
}

fn display_path(path: &str, old: Option<&str>) -> String {
    match old {
        Some(old) => format!("{old} => {path}"),
        None => path.to_string(),
    }
}
