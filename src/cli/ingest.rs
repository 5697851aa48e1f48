//! `lore ingest`

use std::path::{Path, PathBuf};

use clap::Args;
use lore::ingest::code::{CodeIngestOptions, ParseLimits};
use lore::ingest::git::{GitIngestOptions, RefUpdate};
use lore::kb::{IngestOptions, IngestReport, Kb};

use super::progress::Bar;
use lore::progress::Progress;

#[derive(Args)]
pub struct IngestArgs {
    /// A git work tree or bare repository.
    repo: PathBuf,
    /// Refs to ingest (names or globs; repeatable). Default: all branches and tags.
    #[arg(long = "refs", value_name = "REF", num_args = 1..)]
    refs: Vec<String>,
    /// Commits per write transaction.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    batch_size: usize,
    /// Diff worker threads (0: one per core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Skip the code stage (symbols from tree-sitter, which commits modified which symbols).
    #[arg(long)]
    no_code: bool,
    /// Also parse vendored and generated paths (vendor/, third_party/, node_modules/, *.min.js).
    #[arg(long)]
    include_vendored: bool,
    /// Skip source files larger than this many bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_file_size: usize,
    /// Skip line provenance (each line's origin commit, for `lore blame`); SZZ still adds it
    /// when it has fix commits to blame, and a later ingest without the flag catches up.
    #[arg(long)]
    no_provenance: bool,
    /// Skip SZZ (the commits that introduced what each fix commit changed); a later ingest or
    /// import without this flag does it. SZZ reads the stored line provenance (running the
    /// provenance pass first when `--no-provenance` skipped it), so it costs seconds.
    #[arg(long)]
    no_szz: bool,
    /// The project's GitHub repository (owner/name): `owner/name#N` references in commit
    /// messages resolve to it. Default: the `origin` remote, when it is on github.com.
    #[arg(long = "repo", value_name = "OWNER/NAME")]
    github: Option<String>,
    /// Skip updating the full-text and vector indexes (`lore index` does it later).
    #[arg(long)]
    no_index: bool,
    /// Leave the file as the ingest wrote it. By default, an ingest that added 1,000 commits
    /// or more, and a quarter more than the file had (a first ingest, a large catch-up), or
    /// that grew the file by half (the store doubles a file when its free space runs out),
    /// ends by compacting it as `lore compact` does: every table rewritten in key order into a
    /// fresh file, without the free space many write transactions leave
    #[arg(long)]
    no_compact: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(kb_path: &Path, quiet: bool, args: IngestArgs) -> anyhow::Result<()> {
    let options = IngestOptions {
        git: GitIngestOptions {
            refs: args.refs,
            batch_size: args.batch_size,
            threads: args.threads,
            provenance: !args.no_provenance,
        },
        code: (!args.no_code).then(|| CodeIngestOptions {
            limits: ParseLimits {
                max_bytes: args.max_file_size,
                ..Default::default()
            },
            include_vendored: args.include_vendored,
            ..Default::default()
        }),
        links: true,
        szz: !args.no_szz,
        index: !args.no_index,
        github_repo: args.github,
    };
    let (kb, created) = Kb::open_or_create(kb_path)?;
    let commits_before = kb.read()?.commit_count()?;
    let bytes_before = file_len(kb_path);
    let progress = Bar::new(quiet || args.json);
    let report = match kb.ingest(&args.repo, &options, &progress) {
        Ok(report) => report,
        Err(e) => {
            if created {
                // Do not leave a file behind for a run that ingested nothing.
                drop(kb);
                let _ = std::fs::remove_file(kb_path);
            }
            return Err(e.into());
        }
    };
    progress.done();
    drop(kb);
    if created && !quiet && !args.json {
        eprintln!("created {}", kb_path.display());
    }
    let compact = if !args.no_compact
        && (worth_compacting(commits_before, report.git.commits_added)
            || grown_by_half(bytes_before, file_len(kb_path)))
    {
        progress.phase("compacting the file", None);
        let result = Kb::compact(kb_path);
        progress.done();
        match result {
            Ok(report) => Some(report),
            Err(e) => {
                // What the ingest wrote is committed; only the free space stays.
                eprintln!(
                    "warning: {} was not compacted ({e}); `lore compact` can do it later",
                    kb_path.display()
                );
                None
            }
        }
    } else {
        None
    };
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["compact"] = serde_json::to_value(&compact)?;
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if quiet {
        return Ok(());
    }
    print_report(kb_path, &report);
    if let Some(c) = &compact {
        print_compact(kb_path, c);
    }
    Ok(())
}

/// Whether an ingest that added `added` commits to `before` should compact the file: at least
/// 1,000 of them and a quarter more than there were (a first ingest, a large catch-up). A
/// small incremental ingest pays for one only when it made the file grow by half
/// ([`grown_by_half`]).
fn worth_compacting(before: u64, added: u64) -> bool {
    added >= 1000 && added * 4 >= before
}

/// Whether a file of `before` bytes that is `after` bytes now has grown by half or more: redb
/// grows a file under 4 GiB by doubling it when its free pages run out, so after a small
/// ingest that is mostly free space, which a compaction returns. Files under 4 MiB are left
/// alone.
pub(super) fn grown_by_half(before: u64, after: u64) -> bool {
    before >= 4 << 20 && after >= before + before / 2
}

pub(super) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// One line on what a compaction did.
pub fn print_compact(kb_path: &Path, c: &lore::store::compact::CompactReport) {
    let b = super::render::bytes;
    println!(
        "compacted {}: {} -> {}, {} of it kept free for later writes, in {:.2}s ({} tables, {} entries rewritten in key order)",
        kb_path.display(),
        b(c.bytes_before),
        b(c.bytes_after),
        b(c.bytes_kept_free),
        c.elapsed_ms as f64 / 1000.0,
        c.tables,
        c.entries
    );
}

fn print_report(kb_path: &Path, report: &IngestReport) {
    let IngestReport {
        git: report,
        provenance,
        code,
        links,
        index,
    } = report;
    let count = |u: fn(&RefUpdate) -> bool| report.refs.iter().filter(|r| u(&r.update)).count();
    println!(
        "{}: {} new commits ({} merges, {} file changes) in {:.2}s",
        kb_path.display(),
        report.commits_added,
        report.merges_added,
        report.touches_added,
        report.elapsed_ms as f64 / 1000.0
    );
    println!(
        "refs: {} new, {} moved, {} rewritten, {} unchanged{}",
        count(|u| *u == RefUpdate::New),
        count(|u| *u == RefUpdate::FastForward),
        count(|u| matches!(u, RefUpdate::Rewritten { .. })),
        count(|u| *u == RefUpdate::Unchanged),
        if report.vanished_refs.is_empty() {
            String::new()
        } else {
            format!(", {} gone", report.vanished_refs.len())
        }
    );
    if report.stats_unknown > 0 || report.diffs_failed > 0 {
        println!(
            "missing objects: {} file changes with unknown line stats, {} commits without a diff",
            report.stats_unknown, report.diffs_failed
        );
    }
    if let Some(p) = provenance.as_ref().filter(|p| p.commits > 0) {
        println!(
            "provenance: {} commits, {} file versions with line origins ({} shared with a parent, {} binary or unreadable) {}",
            p.commits,
            p.versions + p.shared,
            p.shared,
            p.unknown,
            match p.elapsed_ms {
                0 => "with the history".to_string(),
                ms => format!("in {:.2}s (a pass over commits stored before)", ms as f64 / 1000.0),
            }
        );
    }
    if let Some(code) = code {
        let skipped: u64 = code.skipped.values().sum();
        println!(
            "code: {} blobs parsed ({} reused), {} skipped, {} symbol changes, {} files / {} symbols at HEAD in {:.2}s",
            code.blobs_parsed,
            code.blobs_reused,
            skipped,
            code.modifies_added,
            code.head_files,
            code.head_symbols,
            code.elapsed_ms as f64 / 1000.0
        );
    }
    if let Some(links) = links {
        println!(
            "links: {} commits scanned, {} edges added{}, {} fix commits blamed, {} introduced_by in {:.2}s",
            links.commits_scanned,
            links.edges_added,
            by_relation(links),
            links.fix_commits_blamed,
            links.introduced_by,
            links.elapsed_ms as f64 / 1000.0
        );
    }
    if let Some(index) = index {
        super::search::print_index_report(index);
    }
    if report.shallow {
        println!("note: shallow repository; history stops at its boundary");
    }
}

/// ` (1 fixed_by, 5176 mentions)`: the added edges by relation, as `lore stats` counts them.
pub fn by_relation(links: &lore::ingest::links::LinkReport) -> String {
    if links.added_by_relation.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = links
        .added_by_relation
        .iter()
        .map(|(rel, n)| format!("{n} {rel}"))
        .collect();
    format!(" ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::worth_compacting;

    #[test]
    fn only_large_ingests_compact() {
        assert!(worth_compacting(0, 23_815), "a first ingest");
        assert!(worth_compacting(20_000, 5_000), "a quarter more");
        assert!(!worth_compacting(0, 999), "a small history");
        assert!(!worth_compacting(23_815, 1), "one new commit");
    }

    #[test]
    fn a_doubled_file_compacts() {
        use super::grown_by_half;
        let mib = 1 << 20;
        assert!(grown_by_half(105 * mib, 210 * mib), "redb doubled it");
        assert!(
            !grown_by_half(105 * mib, 106 * mib),
            "a small ingest into free space"
        );
        assert!(!grown_by_half(2 * mib, 4 * mib), "a small file");
        assert!(!grown_by_half(0, 300 * mib), "a new file");
        assert!(!worth_compacting(23_815, 4_000), "less than a quarter more");
    }
}
