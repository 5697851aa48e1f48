//! Code parsing benchmark: lore's parse + symbol extraction + storage of every source file at
//! HEAD, against a bare tree-sitter parse loop over the same files, in the same run.
//!
//! ```text
//! cargo bench --bench code                                   # the bundled fixture
//! LORE_BENCH_REPO=/path/to/repo.git cargo bench --bench code  # a real repository
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lore::ingest::code::{is_vendored, CodeParser, Lang, ParseLimits};
use lore::store::records::{BlobRecord, BlobStatus};
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
    let repo = gix::open(&repo_path).expect("open repository");
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
                    tx.insert_blob(&BlobRecord {
                        sha,
                        lang: Some(parsed.lang.name().into()),
                        status: BlobStatus::Parsed {
                            error_bytes: parsed.error_bytes,
                        },
                        symbols: parsed.symbols,
                        imports: parsed.imports,
                    })?;
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
