//! Ingest benchmark: lore's full ingest of a repository against `git log --numstat` on the same
//! repository, in the same run, plus file size and a one-commit incremental ingest.
//!
//! ```text
//! cargo bench --bench ingest                                   # the bundled fixture
//! LORE_BENCH_REPO=/path/to/repo.git cargo bench --bench ingest  # a real repository
//! ```
//!
//! `LORE_BENCH_RUNS` (default 1) repeats the two full runs and reports the best of each.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lore::ingest::git::{self, GitIngestOptions};
use lore::ingest::Silent;
use lore::store::Store;

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = match std::env::var_os("LORE_BENCH_REPO") {
        Some(p) => PathBuf::from(p),
        None => {
            let out = tmp.path().join("fixture");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-repo.sh");
            let ok = Command::new("bash")
                .arg(script)
                .arg(&out)
                .status()
                .expect("make-repo.sh");
            assert!(ok.success());
            out
        }
    };
    let runs: usize = std::env::var("LORE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let git_dir = git_dir(&repo);
    println!("repository: {}", repo.display());

    let mut git_best = Duration::MAX;
    let mut lore_best = Duration::MAX;
    let mut kb_size = 0;
    let mut commits = 0;
    for run in 0..runs {
        let t = Instant::now();
        let status = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["log", "--numstat", "--branches", "--tags"])
            .stdout(Stdio::null())
            .status()
            .expect("git log");
        assert!(status.success(), "git log --numstat failed");
        git_best = git_best.min(t.elapsed());

        let kb = tmp.path().join(format!("bench-{run}.lore"));
        let t = Instant::now();
        let store = Store::create(&kb).expect("create kb");
        let report =
            git::ingest(&store, &repo, &GitIngestOptions::default(), &Silent).expect("ingest");
        drop(store);
        lore_best = lore_best.min(t.elapsed());
        kb_size = std::fs::metadata(&kb).expect("kb").len();
        commits = report.commits_added;
        println!(
            "run {}: git log --numstat {:.2}s, lore ingest {:.2}s ({} commits, {} file changes, {} unknown stats)",
            run + 1,
            git_best.as_secs_f64(),
            t.elapsed().as_secs_f64(),
            report.commits_added,
            report.touches_added,
            report.stats_unknown
        );
    }
    let repo_size = dir_size(&git_dir);

    // Incremental: a shared clone (objects through alternates) with one extra commit.
    let clone = tmp.path().join("clone.git");
    run_git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            "--shared",
            path_str(&git_dir),
            path_str(&clone),
        ],
    );
    let head = run_git(&clone, &["rev-parse", "HEAD"]);
    let tree = run_git(&clone, &["rev-parse", "HEAD^{tree}"]);
    let commit = run_git(
        &clone,
        &[
            "commit-tree",
            "-p",
            head.trim(),
            "-m",
            "bench: one more commit",
            tree.trim(),
        ],
    );
    let branch = run_git(&clone, &["symbolic-ref", "HEAD"]);
    run_git(&clone, &["update-ref", branch.trim(), commit.trim()]);
    let kb = tmp.path().join(format!("bench-{}.lore", runs - 1));
    let store = Store::open(&kb).expect("open kb");
    let t = Instant::now();
    let report = git::ingest(&store, &clone, &GitIngestOptions::default(), &Silent)
        .expect("incremental ingest");
    let incremental = t.elapsed();

    println!();
    println!("commits                     {commits}");
    println!(
        "git log --numstat (best)    {:.3} s",
        git_best.as_secs_f64()
    );
    println!(
        "lore ingest (best)          {:.3} s",
        lore_best.as_secs_f64()
    );
    println!(
        "ratio lore / git            {:.2}",
        lore_best.as_secs_f64() / git_best.as_secs_f64()
    );
    println!(
        "repository size             {:.1} MiB",
        repo_size as f64 / 1048576.0
    );
    println!(
        "KB size                     {:.1} MiB",
        kb_size as f64 / 1048576.0
    );
    println!(
        "ratio KB / repository       {:.2}",
        kb_size as f64 / repo_size as f64
    );
    println!(
        "incremental, 1 new commit   {:.3} s ({} commit added)",
        incremental.as_secs_f64(),
        report.commits_added
    );
}

fn git_dir(repo: &Path) -> PathBuf {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() {
        dot_git
    } else {
        repo.to_path_buf()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                total += dir_size(&entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}
