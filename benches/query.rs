//! Query latency: representative queries on a lore file, p50 and p99 with the optimized plan,
//! and the same queries with the naive plan (a scan from the first set), in the same run.
//!
//! ```text
//! LORE_BENCH_KB=cargo.lore cargo bench --bench query                 # the built-in query set
//! LORE_BENCH_KB=cargo.lore LORE_BENCH_QUERIES=queries.txt cargo bench --bench query
//! ```
//!
//! Without `LORE_BENCH_KB` it builds the fixture (history, code, links, GitHub issue dump).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lore::ingest::issues::{Format, ImportOptions};
use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;
use lore::query::{Cache, RunOptions};

const DEFAULT_QUERIES: &[&str] = &[
    "issues fixed_by commit touching memory_utils",
    "commits touching \"minillm/worker/memory_utils.py\" since 2024-01-10",
    "commits modifies symbol free_blocks",
    "issue #7 fixed_by commit",
    "files touched_by commit 70a12a0",
    "commits fixes issues count",
    "symbols defined_in file scheduler",
    "commits authored_by author carol count",
    "issues where label = bug count by state",
    "issues fixed_by commit introduced_by commit return issue, commit",
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn fixture_kb(dir: &Path) -> PathBuf {
    let repo = dir.join("fixture");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-repo.sh");
    assert!(Command::new("bash")
        .arg(script)
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let path = dir.join("fixture.lore");
    let kb = Kb::create(&path).unwrap();
    let options = IngestOptions {
        index: false,
        ..IngestOptions::default()
    };
    kb.ingest(&repo, &options, &Silent).unwrap();
    let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/issues");
    let options = ImportOptions {
        format: Format::Github,
        repo: None,
        comments: Some(dump.join("github-comments.json")),
        git: None,
        szz: true,
    };
    kb.import_issues(&dump.join("github.json"), &options, false, &Silent)
        .unwrap();
    path
}

/// Rows in a canonical order, to compare two plans' answers as sets of rows.
fn sorted(rows: &[Vec<serde_json::Value>]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    out.sort();
    out
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = match std::env::var_os("LORE_BENCH_KB") {
        Some(p) => PathBuf::from(p),
        None => fixture_kb(tmp.path()),
    };
    let queries: Vec<String> = match std::env::var_os("LORE_BENCH_QUERIES") {
        Some(p) => std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("--"))
            .map(str::to_string)
            .collect(),
        None => DEFAULT_QUERIES.iter().map(|q| q.to_string()).collect(),
    };
    let runs: usize = std::env::var("LORE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let path = kb;
    let kb = Kb::open(&path).expect("open kb");
    // One cache for the run, as a REPL session keeps; the first query fills it.
    let mut cache = Cache::default();
    let optimized = RunOptions::default();
    let naive_plan = RunOptions {
        naive: true,
        ..RunOptions::default()
    };
    let t = Instant::now();
    kb.query_with("files where path = \"\" count", &mut cache, optimized)
        .unwrap();
    println!("lore file: {}", path.display());
    println!(
        "path list cached in {:.2} ms (once per session)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "{:<72} {:>6} {:>9} {:>9} {:>10} {:>7}",
        "query", "rows", "p50 ms", "p99 ms", "naive p50", "ratio"
    );
    for q in &queries {
        let mut times = Vec::with_capacity(runs);
        let mut rows = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let r = kb
                .query_with(q, &mut cache, optimized)
                .unwrap_or_else(|e| panic!("{q}: {e}"));
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            rows = r.rows;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let naive_runs = (runs / 10).max(3);
        let mut naive = Vec::with_capacity(naive_runs);
        for _ in 0..naive_runs {
            let t = Instant::now();
            let r = kb.query_with(q, &mut cache, naive_plan).unwrap();
            naive.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(
                sorted(&r.rows),
                sorted(&rows),
                "{q}: the naive plan disagrees"
            );
        }
        naive.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (p50, p99, n50) = (
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&naive, 0.5),
        );
        let shown: String = q.chars().take(72).collect();
        let rows = rows.len();
        println!(
            "{shown:<72} {rows:>6} {p50:>9.2} {p99:>9.2} {n50:>10.2} {:>6.1}x",
            n50 / p50
        );
    }
}
