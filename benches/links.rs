//! Link derivation benchmark: lore's links stage (closing keywords, squash titles, merges and
//! mentions in every commit message, commit facets, and SZZ blame of every fix commit) against
//! `git blame` run from the command line on exactly the lines lore blames, in the same run.
//!
//! ```text
//! cargo bench --bench links                                          # the bundled fixture
//! LORE_BENCH_REPO=/path/to/repo.git LORE_BENCH_GITHUB=owner/name cargo bench --bench links
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lore::ingest::git::{self, linediff::LineCounter, GitIngestOptions};
use lore::ingest::links::{self, szz, LinkReport, REPO_KEY};
use lore::progress::Silent;
use lore::store::Store;

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_path = match std::env::var_os("LORE_BENCH_REPO") {
        Some(p) => PathBuf::from(p),
        None => {
            let out = tmp.path().join("fixture");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-repo.sh");
            assert!(Command::new("bash")
                .arg(script)
                .arg(&out)
                .status()
                .expect("make-repo.sh")
                .success());
            out
        }
    };
    let kb = tmp.path().join("links.lore");
    let store = Store::create(&kb).expect("kb");
    let t = Instant::now();
    git::ingest(&store, &repo_path, &GitIngestOptions::default(), &Silent).expect("ingest");
    println!("repository: {}", repo_path.display());
    println!(
        "history ingest (not part of the comparison): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    if let Ok(github) = std::env::var("LORE_BENCH_GITHUB") {
        store
            .write(|tx| tx.set_meta(REPO_KEY, github.as_bytes()))
            .expect("set repo");
    }

    let mut report = LinkReport::default();
    let t = Instant::now();
    links::link_commits(&store, &Silent, &mut report).expect("link commits");
    let commit_links = t.elapsed();
    let t = Instant::now();
    links::szz(&store, &repo_path, &Silent, &mut report).expect("szz");
    let szz_time = t.elapsed();
    let total = commit_links + szz_time;

    // The same lines, blamed by git: one `git blame` per file of each fix commit's parent,
    // with every range as its own -L (as lore asks gix for all of them at once).
    let repo = gix::open(&repo_path).expect("open");
    let read = store.read().expect("read");
    let fixes = links::fixes(&read).expect("fixes");
    let mut counter = LineCounter::default();
    let mut jobs = Vec::new();
    let mut lines_total = 0usize;
    for fix in fixes.keys() {
        let target = szz::fix_lines(&repo, &read, *fix, &mut counter).expect("fix lines");
        let Some(parent) = target.parent else {
            continue;
        };
        for (path, lines) in target.files {
            lines_total += lines.len();
            jobs.push((parent.to_string(), path, szz::line_ranges(&lines)));
        }
    }
    let ignore = szz::ignore_revs(&repo);
    let ignore_file = tmp.path().join("ignore-revs");
    std::fs::write(
        &ignore_file,
        ignore.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .expect("write ignore file");
    let t = Instant::now();
    for (parent, path, ranges) in &jobs {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&repo_path)
            .arg("blame")
            .arg("--porcelain");
        if !ignore.is_empty() {
            cmd.arg("--ignore-revs-file").arg(&ignore_file);
        }
        for r in ranges {
            cmd.arg("-L").arg(format!("{},{}", r.start(), r.end()));
        }
        let out = cmd
            .arg(parent)
            .arg("--")
            .arg(path)
            .output()
            .expect("git blame");
        assert!(
            out.status.success(),
            "git blame {parent} -- {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let git_time = t.elapsed();

    println!(
        "commits scanned: {}, fix commits: {}, files blamed: {}, lines blamed: {}",
        report.commits_scanned,
        fixes.len(),
        jobs.len(),
        lines_total
    );
    println!(
        "links added: {} (introduced_by: {}), blame errors: {}",
        report.edges_added, report.introduced_by, report.blame_errors
    );
    println!(
        "lore commit links + facets   {:.3} s",
        commit_links.as_secs_f64()
    );
    println!(
        "lore SZZ (blame + edges)     {:.3} s",
        szz_time.as_secs_f64()
    );
    println!(
        "lore links stage total       {:.3} s  {:.0} links/s",
        total.as_secs_f64(),
        report.edges_added as f64 / total.as_secs_f64()
    );
    println!(
        "git blame, same lines        {:.3} s  ({} invocations)",
        git_time.as_secs_f64(),
        jobs.len()
    );
    println!(
        "ratio lore SZZ / git blame   {:.2}x",
        szz_time.as_secs_f64() / git_time.as_secs_f64()
    );
}
