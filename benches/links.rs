//! Link derivation benchmark: lore's links stage (closing keywords, squash titles, merges and
//! mentions in every commit message, commit facets, and SZZ blame of every fix commit) against
//! `git blame` run from the command line on exactly the lines lore blames, in the same run, with
//! the same parallelism (lore's SZZ blames on every core; the `git blame` calls run on as many
//! threads). git's answers are also the oracle: for every fix commit, the commits it blames and
//! how many lines each must be the ones lore found.
//!
//! ```text
//! cargo bench --bench links                                          # the bundled fixture
//! LORE_BENCH_REPO=/path/to/repo.git LORE_BENCH_GITHUB=owner/name cargo bench --bench links
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lore::ingest::git::{self, linediff::LineCounter, GitIngestOptions};
use lore::ingest::links::{self, szz, LinkReport, REPO_KEY};
use lore::progress::Silent;
use lore::store::{hex, NodeId, NodeKind, Store};

fn main() {
    // As the `lore` binary does: tree-sitter on mimalloc.
    lore::allocator::route_tree_sitter();
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
    // History without provenance: the provenance pass is timed on its own below.
    let history = GitIngestOptions {
        provenance: false,
        ..GitIngestOptions::default()
    };
    git::ingest(&store, &repo_path, &history, &Silent).expect("ingest");
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
    let provenance =
        lore::ingest::provenance::run(&store, &repo_path, &Silent).expect("provenance");
    let provenance_time = t.elapsed();
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
        for f in target.files {
            lines_total += f.lines.len();
            jobs.push((*fix, parent.to_string(), f.path, szz::line_ranges(&f.lines)));
        }
    }
    let ignore = szz::ignore_revs(&repo);
    let ignore_file = tmp.path().join("ignore-revs");
    std::fs::write(
        &ignore_file,
        ignore.iter().map(|i| format!("{i}\n")).collect::<String>(),
    )
    .expect("write ignore file");
    let threads = rayon::current_num_threads();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    let outputs: Vec<(usize, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((_, parent, path, ranges)) = jobs.get(i) else {
                            break;
                        };
                        done.push((
                            i,
                            blame(&repo_path, &ignore, &ignore_file, parent, path, ranges),
                        ));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let git_time = t.elapsed();

    // The oracle: per fix commit, blamed commit -> lines, from git and from lore.
    let mut git_counts: BTreeMap<NodeId, BTreeMap<String, u32>> = BTreeMap::new();
    for (i, out) in &outputs {
        let per_fix = git_counts.entry(jobs[*i].0).or_default();
        for line in out.lines() {
            let mut words = line.split(' ');
            let (Some(sha), Some(orig), Some(_)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            if sha.len() == 40
                && sha.bytes().all(|b| b.is_ascii_hexdigit())
                && orig.parse::<u32>().is_ok()
            {
                *per_fix.entry(sha.to_string()).or_default() += 1;
            }
        }
    }
    let (mut same_fixes, mut agreeing_lines, mut git_lines) = (0usize, 0u64, 0u64);
    // The same, for fix commits none of whose lines lore carried past an ignored revision
    // (`git blame --ignore-revs-file` matches lines there by similarity, lore by position).
    let (mut plain_fixes, mut plain_same, mut plain_agree, mut plain_lines) =
        (0usize, 0usize, 0u64, 0u64);
    for (fix, theirs) in &git_counts {
        let mut ours: BTreeMap<String, u32> = BTreeMap::new();
        let record = read.szz_blame(*fix).expect("szz record");
        let plain = record.as_ref().is_some_and(|b| b.ignored_revs == 0);
        if let Some(blame) = record {
            for (local, lines, _) in &blame.candidates {
                let sha = hex(&read
                    .commit(NodeId::new(NodeKind::Commit, *local))
                    .expect("commit")
                    .sha);
                ours.insert(sha, *lines);
            }
        }
        // A fix's own lines blamed on itself do not happen: blame runs in its parent.
        if &ours == theirs {
            same_fixes += 1;
            plain_same += usize::from(plain);
        }
        plain_fixes += usize::from(plain);
        for (sha, n) in theirs {
            let agree = u64::from((*n).min(ours.get(sha).copied().unwrap_or(0)));
            git_lines += u64::from(*n);
            agreeing_lines += agree;
            if plain {
                plain_lines += u64::from(*n);
                plain_agree += agree;
            }
        }
    }

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
        "lore provenance pass         {:.3} s  ({} commits, {} file versions; part of every ingest)",
        provenance_time.as_secs_f64(),
        provenance.commits,
        provenance.versions + provenance.shared
    );
    println!(
        "lore SZZ (lookups + edges)   {:.3} s",
        szz_time.as_secs_f64()
    );
    println!(
        "lore links stage total       {:.3} s  {:.0} links/s",
        total.as_secs_f64(),
        report.edges_added as f64 / total.as_secs_f64()
    );
    println!(
        "git blame, same lines        {:.3} s  ({} invocations on {threads} threads)",
        git_time.as_secs_f64(),
        jobs.len()
    );
    println!(
        "ratio lore SZZ / git blame   {:.4}x (both on {threads} threads); with the provenance pass {:.4}x",
        szz_time.as_secs_f64() / git_time.as_secs_f64(),
        (szz_time + provenance_time).as_secs_f64() / git_time.as_secs_f64()
    );
    println!(
        "oracle: {same_fixes} of {} fix commits blame exactly git's commits and line counts; {agreeing_lines} of {git_lines} blamed lines ({:.2}%) agree",
        git_counts.len(),
        100.0 * agreeing_lines as f64 / git_lines.max(1) as f64
    );
    println!(
        "        without ignored revisions on the way: {plain_same} of {plain_fixes} fix commits exact; {plain_agree} of {plain_lines} lines ({:.2}%) agree",
        100.0 * plain_agree as f64 / plain_lines.max(1) as f64
    );
}

/// `git blame --porcelain` of `ranges` of `path` in `parent`, following the ignore-revs file.
fn blame(
    repo: &Path,
    ignore: &std::collections::HashSet<gix::ObjectId>,
    ignore_file: &Path,
    parent: &str,
    path: &str,
    ranges: &[std::ops::RangeInclusive<u32>],
) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).arg("blame").arg("--porcelain");
    if !ignore.is_empty() {
        cmd.arg("--ignore-revs-file").arg(ignore_file);
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}
