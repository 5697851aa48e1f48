//! Ingest benchmark: lore's full ingest of a repository against `git log --numstat` on the same
//! repository, in the same run, plus file size and a one-commit incremental ingest.
//!
//! ```text
//! cargo bench --bench ingest                                   # the bundled fixture
//! LORE_BENCH_REPO=/path/to/repo.git cargo bench --bench ingest  # a real repository
//! ```
//!
//! `LORE_BENCH_RUNS` (default 3) repeats the two full runs and reports the best of each. Both
//! are run once untimed first, so both read a warm page cache, and the order alternates from
//! run to run. lore diffs on every core (`--threads 0`); `git log` uses one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lore::ingest::git::numstat::{self, Numstat};
use lore::ingest::git::{self, GitIngestOptions};
use lore::progress::Silent;
use lore::store::records::EdgeDetail;
use lore::store::Store;
use lore::store::{hex, Rel};

fn main() {
    // As the `lore` binary does: tree-sitter on mimalloc.
    lore::allocator::route_tree_sitter();
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
        .unwrap_or(3)
        .max(1);
    let git_dir = git_dir(&repo);
    println!("repository: {}", repo.display());

    let git_log = || {
        let t = Instant::now();
        let status = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["log", "--numstat", "--branches", "--tags"])
            .stdout(Stdio::null())
            .status()
            .expect("git log");
        assert!(status.success(), "git log --numstat failed");
        t.elapsed()
    };
    let lore_ingest = |kb: &Path| {
        let t = Instant::now();
        let store = Store::create(kb).expect("create kb");
        let report =
            git::ingest(&store, &repo, &GitIngestOptions::default(), &Silent).expect("ingest");
        drop(store);
        (t.elapsed(), report)
    };
    // Warm both: the first of each reads the repository from disk.
    git_log();
    lore_ingest(&tmp.path().join("warm.lore"));

    let mut git_best = Duration::MAX;
    let mut lore_best = Duration::MAX;
    let mut kb_size = 0;
    let mut commits = 0;
    for run in 0..runs {
        let kb = tmp.path().join(format!("bench-{run}.lore"));
        let git_first = run % 2 == 0;
        let mut git_time = Duration::MAX;
        if git_first {
            git_time = git_log();
        }
        let (lore_time, report) = lore_ingest(&kb);
        if !git_first {
            git_time = git_log();
        }
        git_best = git_best.min(git_time);
        lore_best = lore_best.min(lore_time);
        kb_size = std::fs::metadata(&kb).expect("kb").len();
        commits = report.commits_added;
        println!(
            "run {} ({} first): git log --numstat {:.2}s, lore ingest {:.2}s ({} commits, {} file changes, {} unknown stats)",
            run + 1,
            if git_first { "git" } else { "lore" },
            git_time.as_secs_f64(),
            lore_time.as_secs_f64(),
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
    drop(store);

    let agreement = numstat_agreement(
        &git_dir,
        &tmp.path().join(format!("bench-{}.lore", runs - 1)),
    );

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
        "ratio lore / git            {:.2} (both warm, order alternating, best of {runs}; lore on {} threads, git on 1)",
        lore_best.as_secs_f64() / git_best.as_secs_f64(),
        rayon::current_num_threads()
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
    println!("{agreement}");
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

/// Compare every non-merge commit's file stats with `git log --numstat -M` (untimed).
fn numstat_agreement(git_dir: &Path, kb: &Path) -> String {
    let mut args = vec![
        "--git-dir",
        path_str(git_dir),
        "log",
        "--branches",
        "--tags",
        "--no-merges",
    ];
    args.extend_from_slice(numstat::GIT_LOG_ARGS);
    let out = Command::new("git").args(&args).output().expect("git log");
    let expected = numstat::parse(&String::from_utf8_lossy(&out.stdout));

    let store = Store::open(kb).expect("open kb");
    let read = store.read().expect("read");
    let mut actual = Numstat::new();
    for sha in read.all_commit_shas().expect("shas") {
        let id = read.commit_by_sha(&sha).expect("lookup").expect("stored");
        if read.commit(id).expect("commit").is_merge {
            continue;
        }
        let mut files = Vec::new();
        for edge in read.edges_from(id, Rel::Touches).expect("edges") {
            let path = read
                .string(read.file(edge.dst).expect("file").path)
                .expect("path");
            if let EdgeDetail::Touch(t) = edge.meta.detail {
                let old = t.old_path.map(|s| read.string(s).expect("old path"));
                files.push((path, old, t.added, t.removed));
            }
        }
        files.sort();
        actual.insert(hex(&sha), files);
    }
    let mut same_commits = 0;
    let (mut entries, mut same_entries, mut git_renames, mut lore_renames) = (0, 0, 0, 0);
    let mut examples = Vec::new();
    for (sha, want) in &expected {
        let got = actual.get(sha).cloned().unwrap_or_default();
        git_renames += want.iter().filter(|e| e.1.is_some()).count();
        lore_renames += got.iter().filter(|e| e.1.is_some()).count();
        entries += want.len();
        same_entries += want.iter().filter(|e| got.contains(e)).count();
        if &got == want {
            same_commits += 1;
        } else if examples.len() < 3 {
            let only_git: Vec<_> = want.iter().filter(|e| !got.contains(e)).take(2).collect();
            let only_lore: Vec<_> = got.iter().filter(|e| !want.contains(e)).take(2).collect();
            examples.push(format!("  {sha}: git {only_git:?} lore {only_lore:?}"));
        }
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    format!(
        "numstat agreement          {:.2}% of {} non-merge commits identical, {:.2}% of {} file entries; renames git {} lore {}\n{}",
        pct(same_commits, expected.len()),
        expected.len(),
        pct(same_entries, entries),
        entries,
        git_renames,
        lore_renames,
        examples.join("\n")
    )
}
