//! `lore blame FILE [--at REV]`

use std::io::Write;

use anyhow::bail;
use clap::Args;
use lore::kb::blame::Blame;
use lore::kb::Kb;

#[derive(Args)]
pub struct BlameArgs {
    /// The file's path in the repository.
    path: String,
    /// The revision: a branch or tag that was ingested, HEAD (the default: HEAD at the last
    /// ingest), or a commit id or unique prefix of one.
    #[arg(long, value_name = "REV")]
    at: Option<String>,
    /// Only lines START to END (1-based, inclusive), as `git blame -L START,END`.
    #[arg(short = 'L', value_name = "START,END")]
    lines: Option<String>,
    /// `git blame --porcelain`'s format: a header per hunk, commit details on first use.
    #[arg(long, conflicts_with = "json")]
    porcelain: bool,
    /// The hunks as JSON.
    #[arg(long)]
    json: bool,
}

fn line_range(spec: &str, lines: u32) -> anyhow::Result<(u32, u32)> {
    let parse = |s: &str| -> anyhow::Result<u32> {
        match s.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => bail!("-L {spec}: `{s}` is not a line number (1 or more)"),
        }
    };
    let (start, end) = match spec.split_once(',') {
        Some((a, "")) => (parse(a)?, lines),
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => bail!("-L {spec}: give START,END (e.g. -L 10,40)"),
    };
    if start > end {
        bail!("-L {spec}: START is after END");
    }
    if start > lines {
        bail!("-L {spec}: the file has only {lines} lines");
    }
    Ok((start, end.min(lines)))
}

pub fn run(kb: &Kb, args: BlameArgs) -> anyhow::Result<()> {
    let blame = kb.blame(&args.path, args.at.as_deref())?;
    let (start, end) = match &args.lines {
        Some(spec) => line_range(spec, blame.lines)?,
        None => (1, blame.lines),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &clip(blame, start, end))?;
        writeln!(out)?;
    } else if args.porcelain {
        porcelain(&mut out, &clip(blame, start, end))?;
    } else {
        human(&mut out, &clip(blame, start, end))?;
    }
    out.flush()?;
    Ok(())
}

/// Keep the hunks' parts within lines `start..=end`.
fn clip(mut blame: Blame, start: u32, end: u32) -> Blame {
    let mut hunks = Vec::new();
    for mut h in blame.hunks.drain(..) {
        let (first, last) = (h.final_line.max(start), (h.final_line + h.len - 1).min(end));
        if first > last {
            continue;
        }
        h.orig_line += first - h.final_line;
        h.final_line = first;
        h.len = last - first + 1;
        hunks.push(h);
    }
    blame.hunks = hunks;
    blame
}

fn text(blame: &Blame, line: u32) -> &[u8] {
    blame
        .text
        .as_ref()
        .and_then(|t| t.get(line as usize - 1))
        .map_or(&b""[..], Vec::as_slice)
}

fn human(out: &mut impl Write, blame: &Blame) -> std::io::Result<()> {
    let width = blame.lines.to_string().len();
    let author_width = blame
        .hunks
        .iter()
        .map(|h| h.author.chars().count())
        .max()
        .unwrap_or(0)
        .min(20);
    for h in &blame.hunks {
        let date = super::render::time(h.author_time, h.author_tz);
        let date = date.get(..10).unwrap_or(&date);
        let author: String = h.author.chars().take(author_width).collect();
        for i in 0..h.len {
            let line = h.final_line + i;
            let sha = if h.boundary {
                format!("^{}", &h.commit[..7])
            } else {
                h.commit[..8].to_string()
            };
            write!(
                out,
                "{sha} ({author:<author_width$} {date} {line:>width$}) "
            )?;
            out.write_all(text(blame, line))?;
            writeln!(out)?;
        }
    }
    if blame.text.is_none() {
        writeln!(
            out,
            "(the repository is not readable where it was ingested from, so the lines' text is not shown)"
        )?;
    }
    Ok(())
}

fn tz(offset: i32) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let m = offset.unsigned_abs() / 60;
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

fn porcelain(out: &mut impl Write, blame: &Blame) -> std::io::Result<()> {
    // As git: a hunk names its file with the commit's details, or every time when the commit
    // wrote lines of this file under more than one path.
    let mut paths: std::collections::HashMap<&str, std::collections::HashSet<&str>> =
        Default::default();
    for h in &blame.hunks {
        paths.entry(&h.commit).or_default().insert(&h.orig_path);
    }
    let mut seen = std::collections::HashSet::new();
    for h in &blame.hunks {
        for i in 0..h.len {
            if i == 0 {
                writeln!(
                    out,
                    "{} {} {} {}",
                    h.commit, h.orig_line, h.final_line, h.len
                )?;
                let first = seen.insert(h.commit.clone());
                if first {
                    writeln!(out, "author {}", h.author)?;
                    writeln!(out, "author-mail <{}>", h.author_mail)?;
                    writeln!(out, "author-time {}", h.author_time)?;
                    writeln!(out, "author-tz {}", tz(h.author_tz))?;
                    writeln!(out, "committer {}", h.committer)?;
                    writeln!(out, "committer-mail <{}>", h.committer_mail)?;
                    writeln!(out, "committer-time {}", h.committer_time)?;
                    writeln!(out, "committer-tz {}", tz(h.committer_tz))?;
                    writeln!(out, "summary {}", h.summary)?;
                    if h.boundary {
                        writeln!(out, "boundary")?;
                    }
                }
                if first || paths[h.commit.as_str()].len() > 1 {
                    writeln!(out, "filename {}", h.orig_path)?;
                }
            } else {
                writeln!(out, "{} {} {}", h.commit, h.orig_line + i, h.final_line + i)?;
            }
            out.write_all(b"\t")?;
            out.write_all(text(blame, h.final_line + i))?;
            writeln!(out)?;
        }
    }
    Ok(())
}
