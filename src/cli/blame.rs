//! `lore blame FILE [--at REV]`

use std::collections::{HashMap, HashSet};
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
    let blame = clip(blame, start, end);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut out, &blame)?;
        writeln!(out)?;
        out.flush()?;
    } else if args.porcelain {
        porcelain(&mut out, &blame)?;
        out.flush()?;
    } else {
        let mut out = std::io::BufWriter::new(out);
        human(&mut out, &blame)?;
        out.flush()?;
    }
    Ok(())
}

/// Keep the hunks' parts within lines `start..=end`, and the commits they name.
fn clip(mut blame: Blame, start: u32, end: u32) -> Blame {
    if (start, end) == (1, blame.lines) {
        return blame;
    }
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
    let named: HashSet<&str> = hunks.iter().map(|h| h.commit.as_str()).collect();
    blame.commits.retain(|sha, _| named.contains(sha.as_str()));
    blame.hunks = hunks;
    blame
}

fn text(blame: &Blame, line: u32) -> &[u8] {
    blame
        .text
        .as_ref()
        .and_then(|t| t.line(line as usize))
        .unwrap_or_default()
}

fn human(out: &mut impl Write, blame: &Blame) -> std::io::Result<()> {
    let width = blame.lines.to_string().len();
    let author_width = blame
        .commits
        .values()
        .map(|c| c.author.chars().count())
        .max()
        .unwrap_or(0)
        .min(20);
    for h in &blame.hunks {
        let commit = blame.commit_of(h);
        let date = super::render::time(commit.author_time, commit.author_tz);
        let date = date.get(..10).unwrap_or(&date);
        let author: String = commit.author.chars().take(author_width).collect();
        let sha = if commit.boundary {
            format!("^{}", &h.commit[..7])
        } else {
            h.commit[..8].to_string()
        };
        for i in 0..h.len {
            let line = h.final_line + i;
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

/// `+hhmm` or `-hhmm` for an offset in seconds east of UTC (as a signature records it).
fn push_tz(out: &mut Vec<u8>, offset: i32) {
    out.push(if offset < 0 { b'-' } else { b'+' });
    let m = offset.unsigned_abs() / 60;
    for digit in [m / 600 % 10, m / 60 % 10, m % 60 / 10, m % 10] {
        out.push(b'0' + digit as u8);
    }
}

/// A number in decimal.
fn push_number(out: &mut Vec<u8>, n: impl Into<i64>) {
    let n: i64 = n.into();
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `ROLE NAME`, `ROLE-mail <EMAIL>`, `ROLE-time SECONDS` and `ROLE-tz +HHMM` lines.
fn push_person(out: &mut Vec<u8>, role: &str, name: &str, mail: &str, time: i64, tz: i32) {
    let field = |out: &mut Vec<u8>, suffix: &[u8]| {
        out.extend_from_slice(role.as_bytes());
        out.extend_from_slice(suffix);
    };
    field(out, b" ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    field(out, b"-mail <");
    out.extend_from_slice(mail.as_bytes());
    out.extend_from_slice(b">\n");
    field(out, b"-time ");
    push_number(out, time);
    out.push(b'\n');
    field(out, b"-tz ");
    push_tz(out, tz);
    out.push(b'\n');
}

/// How much porcelain is built before it is written out.
const PORCELAIN_CHUNK: usize = 64 * 1024;

/// `git blame --porcelain`'s format: a header line per line, the commit's details and path
/// the first time a hunk names the commit.
fn porcelain(out_to: &mut impl Write, blame: &Blame) -> std::io::Result<()> {
    // As git: a hunk names its file with the commit's details, or every time when the commit
    // wrote lines of this file under more than one path.
    let mut paths: HashMap<&str, HashSet<&str>> = HashMap::new();
    for h in &blame.hunks {
        paths.entry(&h.commit).or_default().insert(&h.orig_path);
    }
    let mut out = Vec::with_capacity(PORCELAIN_CHUNK + 4096);
    let mut seen = HashSet::new();
    for h in &blame.hunks {
        for i in 0..h.len {
            out.extend_from_slice(h.commit.as_bytes());
            out.push(b' ');
            push_number(&mut out, h.orig_line + i);
            out.push(b' ');
            push_number(&mut out, h.final_line + i);
            if i == 0 {
                out.push(b' ');
                push_number(&mut out, h.len);
                out.push(b'\n');
                let first = seen.insert(h.commit.as_str());
                if first {
                    let c = blame.commit_of(h);
                    let (name, mail) = (&c.author, &c.author_mail);
                    push_person(&mut out, "author", name, mail, c.author_time, c.author_tz);
                    let (name, mail) = (&c.committer, &c.committer_mail);
                    let (time, tz) = (c.committer_time, c.committer_tz);
                    push_person(&mut out, "committer", name, mail, time, tz);
                    out.extend_from_slice(b"summary ");
                    out.extend_from_slice(c.summary.as_bytes());
                    out.push(b'\n');
                    if c.boundary {
                        out.extend_from_slice(b"boundary\n");
                    }
                }
                if first || paths[h.commit.as_str()].len() > 1 {
                    out.extend_from_slice(b"filename ");
                    out.extend_from_slice(h.orig_path.as_bytes());
                    out.push(b'\n');
                }
            } else {
                out.push(b'\n');
            }
            out.push(b'\t');
            out.extend_from_slice(text(blame, h.final_line + i));
            out.push(b'\n');
            if out.len() >= PORCELAIN_CHUNK {
                out_to.write_all(&out)?;
                out.clear();
            }
        }
    }
    out_to.write_all(&out)
}
