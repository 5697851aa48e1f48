//! Code parsing benchmark, two parts in one run, single-threaded:
//!
//! 1. every source file at HEAD: lore's parse + symbol extraction (+ storage), against a bare
//!    tree-sitter parse loop over the same files;
//! 2. every version of every source file in the history (non-merge commits, oldest first, as
//!    the code stage sees them): a bare tree-sitter parse of each version, lore's parse of each
//!    version from scratch, and lore's parse of each version from the one before (what the
//!    code stage does). The last two must give the same symbols and imports for every
//!    version; the bench counts and prints every difference.
//!
//! ```text
//! cargo bench --bench code                                   # the bundled fixture
//! LORE_BENCH_REPO=/path/to/repo.git cargo bench --bench code  # a real repository
//! LORE_BENCH_HISTORY=0 ...                                    # HEAD only
//! LORE_BENCH_ONLY=src/lib.rs ...                              # histories of matching paths only
//! LORE_BENCH_CHAINED_ONLY=1 ...    # only the chained parse (no oracle): to profile where it goes
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lore::ingest::code::{is_vendored, CodeParser, Lang, ParseLimits};
use lore::store::records::{BlobRecord, BlobStatus};
use lore::store::Store;

fn main() {
    // As the `lore` binary does: tree-sitter on mimalloc.
    lore::allocator::route_tree_sitter();
    let (repo_path, _tmp) = repository();
    head_files(&repo_path);
    if std::env::var("LORE_BENCH_HISTORY").as_deref() != Ok("0") {
        history(&repo_path);
    }
}

/// The repository to read: `LORE_BENCH_REPO`, or the fixture built in a temporary directory.
fn repository() -> (PathBuf, tempfile::TempDir) {
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
    (repo_path, tmp)
}

fn head_files(repo_path: &Path) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = gix::open(repo_path).expect("open repository");
    let tree = repo.head_commit().expect("HEAD").tree().expect("tree");
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .expect("traverse");
    let limits = ParseLimits::default();
    let mut files: Vec<(String, Lang, Vec<u8>)> = Vec::new();
    for entry in recorder.records.into_iter().filter(|e| e.mode.is_blob()) {
        let path = entry.filepath.to_string();
        let Some(lang) = Lang::detect(&path, b"") else {
            continue;
        };
        if is_vendored(&path) {
            continue;
        }
        let Ok(Some(obj)) = repo.try_find_object(entry.oid) else {
            continue;
        };
        if obj.data.len() <= limits.max_bytes {
            files.push((path, lang, obj.detach().data));
        }
    }
    let bytes: usize = files.iter().map(|f| f.2.len()).sum();
    println!("repository: {}", repo_path.display());
    println!(
        "source files at HEAD: {} ({:.1} MiB)",
        files.len(),
        bytes as f64 / 1048576.0
    );

    let runs = 3;
    let mut bare = Duration::MAX;
    let mut extract = Duration::MAX;
    let mut stored = Duration::MAX;
    let mut symbols = 0;
    for run in 0..runs {
        // Bare: tree-sitter parse only, one parser per language, no queries.
        let t = Instant::now();
        let mut parsers = std::collections::HashMap::new();
        for (_, lang, data) in &files {
            let parser = parsers.entry(*lang).or_insert_with(|| {
                let mut p = tree_sitter::Parser::new();
                p.set_language(&lang.grammar()).expect("grammar");
                p
            });
            std::hint::black_box(parser.parse(data, None));
        }
        bare = bare.min(t.elapsed());

        // lore: parse + extraction (+ CUDA blanking and limits).
        let t = Instant::now();
        let mut parser = CodeParser::new(limits.clone());
        let mut records = Vec::with_capacity(files.len());
        for (i, (path, _, data)) in files.iter().enumerate() {
            if let Ok(parsed) = parser.parse(path, data) {
                records.push((i, parsed));
            }
        }
        extract = extract.min(t.elapsed());
        symbols = records.iter().map(|r| r.1.symbols.len()).sum::<usize>();

        // lore: parse + extraction + storage in a new file.
        let kb = tmp.path().join(format!("code-{run}.lore"));
        let t = Instant::now();
        let mut parser = CodeParser::new(limits.clone());
        let store = Store::create(&kb).expect("kb");
        store
            .write(|tx| -> Result<(), lore::store::StoreError> {
                for (i, (path, _, data)) in files.iter().enumerate() {
                    let Ok(parsed) = parser.parse(path, data) else {
                        continue;
                    };
                    let mut sha = (i as u64).to_le_bytes().to_vec();
                    sha.resize(20, 0);
                    tx.insert_blob(
                        &BlobRecord {
                            sha,
                            lang: Some(parsed.lang.name().into()),
                            status: BlobStatus::Parsed {
                                error_bytes: parsed.error_bytes,
                            },
                            symbols: parsed.symbols,
                            imports: parsed.imports,
                        },
                        None,
                    )?;
                }
                Ok(())
            })
            .expect("store");
        stored = stored.min(t.elapsed());
    }
    let mbps = |d: Duration| bytes as f64 / 1048576.0 / d.as_secs_f64();
    let fps = |d: Duration| files.len() as f64 / d.as_secs_f64();
    println!("symbols extracted: {symbols}");
    println!(
        "bare tree-sitter parse       {:.3} s  {:.1} MiB/s  {:.0} files/s",
        bare.as_secs_f64(),
        mbps(bare),
        fps(bare)
    );
    println!(
        "parse + extract              {:.3} s  {:.1} MiB/s  {:.0} files/s",
        extract.as_secs_f64(),
        mbps(extract),
        fps(extract)
    );
    println!(
        "parse + extract + store      {:.3} s  {:.1} MiB/s  {:.0} files/s",
        stored.as_secs_f64(),
        mbps(stored),
        fps(stored)
    );
    println!(
        "ratio extract / bare         {:.2}",
        extract.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "ratio extract+store / bare   {:.2}",
        stored.as_secs_f64() / bare.as_secs_f64()
    );
}

/// The versions of each source file, oldest first: the new blob of every change in a
/// non-merge commit, consecutive repeats dropped.
fn file_histories(repo_path: &Path) -> Vec<(String, Vec<gix::ObjectId>)> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo_path)
        .args([
            "log",
            "--reverse",
            "--no-merges",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--format=",
            "--branches",
            "--tags",
        ])
        .output()
        .expect("git log");
    assert!(out.status.success(), "git log failed");
    let mut order: Vec<String> = Vec::new();
    let mut chains: std::collections::HashMap<String, Vec<gix::ObjectId>> = Default::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((meta, path)) = line.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let (Some(new), Some(status)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        if status.starts_with('D') || Lang::detect(path, b"").is_none() || is_vendored(path) {
            continue;
        }
        let Ok(id) = gix::ObjectId::from_hex(new.as_bytes()) else {
            continue;
        };
        let chain = chains.entry(path.to_string()).or_insert_with(|| {
            order.push(path.to_string());
            Vec::new()
        });
        if chain.last() != Some(&id) {
            chain.push(id);
        }
    }
    order
        .into_iter()
        .map(|p| {
            let chain = chains.remove(&p).unwrap_or_default();
            (p, chain)
        })
        .collect()
}

fn history(repo_path: &Path) {
    let repo = gix::open(repo_path).expect("open repository");
    let limits = ParseLimits::default();
    let histories = file_histories(repo_path);
    let (mut bare, mut fresh, mut chained) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut versions, mut bytes, mut differ, mut reused) = (0usize, 0usize, 0usize, 0usize);
    let mut first_differences: Vec<String> = Vec::new();
    let mut parsers = std::collections::HashMap::new();
    let mut fresh_parser = CodeParser::new(limits.clone());
    let mut chain_parser = CodeParser::new(limits.clone());
    let only = std::env::var("LORE_BENCH_ONLY").ok();
    let chained_only = std::env::var("LORE_BENCH_CHAINED_ONLY").as_deref() == Ok("1");
    // (chained time, path, versions, bytes, versions parsed whole)
    let mut costliest: Vec<(Duration, &str, usize, usize, usize)> = Vec::new();
    for (path, ids) in &histories {
        if only.as_deref().is_some_and(|o| !path.contains(o)) {
            continue;
        }
        let Some(lang) = Lang::detect(path, b"") else {
            continue;
        };
        let data: Vec<Vec<u8>> = ids
            .iter()
            .filter_map(|id| repo.try_find_object(*id).ok().flatten())
            .map(|o| o.detach().data)
            .filter(|d| d.len() <= limits.max_bytes)
            .collect();
        versions += data.len();
        bytes += data.iter().map(Vec::len).sum::<usize>();

        let t = Instant::now();
        let parser = parsers.entry(lang).or_insert_with(|| {
            let mut p = tree_sitter::Parser::new();
            p.set_language(&lang.grammar()).expect("grammar");
            p
        });
        for d in data.iter().filter(|_| !chained_only) {
            std::hint::black_box(parser.parse(d, None));
        }
        bare += t.elapsed();

        let t = Instant::now();
        let want: Vec<_> = data
            .iter()
            .filter(|_| !chained_only)
            .map(|d| fresh_parser.parse(path, d))
            .collect();
        fresh += t.elapsed();

        let t = Instant::now();
        let mut base = None;
        let mut got = Vec::with_capacity(data.len());
        let mut whole = 0;
        for d in &data {
            let (parsed, next) = chain_parser.parse_from(path, d, base.take());
            whole += usize::from(next.as_ref().is_some_and(|b| !b.spliced()));
            reused += next.as_ref().map_or(0, |b| b.reused_units());
            got.push(parsed);
            base = next;
        }
        chained += t.elapsed();
        costliest.push((
            t.elapsed(),
            path,
            data.len(),
            data.iter().map(Vec::len).sum(),
            whole,
        ));

        for (k, (g, w)) in got.iter().zip(&want).enumerate().filter(|_| !chained_only) {
            if g != w {
                differ += 1;
                if first_differences.len() < 10 {
                    first_differences.push(format!(
                        "{path} version {k} ({}): {}",
                        ids[k],
                        first_difference(g, w)
                    ));
                }
            }
        }
    }
    let mbps = |d: Duration| bytes as f64 / 1048576.0 / d.as_secs_f64();
    println!(
        "history: {} files, {versions} versions ({:.1} MiB)",
        histories.len(),
        bytes as f64 / 1048576.0
    );
    println!(
        "bare tree-sitter parse of every version       {:.3} s  {:.1} MiB/s",
        bare.as_secs_f64(),
        mbps(bare)
    );
    println!(
        "lore, every version from scratch             {:.3} s  {:.1} MiB/s",
        fresh.as_secs_f64(),
        mbps(fresh)
    );
    println!(
        "lore, each version from the one before       {:.3} s  {:.1} MiB/s  ({reused} units kept)",
        chained.as_secs_f64(),
        mbps(chained)
    );
    println!(
        "ratio chained / bare                         {:.2}",
        chained.as_secs_f64() / bare.as_secs_f64()
    );
    costliest.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    let whole: usize = costliest.iter().map(|c| c.4).sum();
    println!("versions parsed whole in the chained run (the first of each file included): {whole}");
    println!("paths whose chained parses cost most:");
    for (time, path, versions, bytes, whole) in costliest.iter().take(10) {
        println!(
            "  {:>8.3} s  {path}  {versions} versions, {:.1} MiB, {whole} parsed whole",
            time.as_secs_f64(),
            *bytes as f64 / 1048576.0
        );
    }
    if chained_only {
        println!("(no fresh parse, so no comparison: LORE_BENCH_CHAINED_ONLY=1)");
        return;
    }
    println!("versions whose chained parse differs from a fresh one: {differ}");
    for d in &first_differences {
        println!("  {d}");
    }
}

/// Where a chained parse first differs from a fresh one, in words.
fn first_difference(
    got: &Result<lore::ingest::code::ParsedFile, lore::ingest::code::Skip>,
    want: &Result<lore::ingest::code::ParsedFile, lore::ingest::code::Skip>,
) -> String {
    let (Ok(got), Ok(want)) = (got, want) else {
        return format!(
            "chained {:?}, fresh {:?}",
            got.as_ref().err(),
            want.as_ref().err()
        );
    };
    if got.has_errors != want.has_errors || got.error_bytes != want.error_bytes {
        return format!(
            "errors: chained {} bytes (has_errors {}), fresh {} bytes (has_errors {})",
            got.error_bytes, got.has_errors, want.error_bytes, want.has_errors
        );
    }
    if got.imports != want.imports {
        return format!("imports {:?} against {:?}", got.imports, want.imports);
    }
    for (i, (g, w)) in got.symbols.iter().zip(&want.symbols).enumerate() {
        if g != w {
            return format!("symbol {i}: chained {g:?}, fresh {w:?}");
        }
    }
    format!(
        "{} symbols against {} (errors {} / {})",
        got.symbols.len(),
        want.symbols.len(),
        got.error_bytes,
        want.error_bytes
    )
}
