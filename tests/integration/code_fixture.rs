//! The code stage on the fixture: symbols at HEAD, which commits modified which symbols, symbol
//! history across a rename, and content addressing.

use std::collections::BTreeSet;
use std::fs;

use lore::store::records::{EdgeDetail, SymbolChange};
use lore::store::{NodeId, ReadTx, Rel, Store};

use crate::common::*;

fn sha_bytes(hex: &str) -> Vec<u8> {
    (0..40)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `(file, qualified name, change)` of every `modifies` edge of a commit.
fn modified(read: &ReadTx, fx: &Fixture, grep: &str) -> BTreeSet<(String, String, &'static str)> {
    let sha = fx.git(&[
        "log",
        "--format=%H",
        "-1",
        &format!("--grep={grep}"),
        "main",
    ]);
    let commit = read.commit_by_sha(&sha_bytes(sha.trim())).unwrap().unwrap();
    read.edges_from(commit, Rel::Modifies)
        .unwrap()
        .into_iter()
        .map(|e| {
            let node = read.symbol(e.dst).unwrap();
            let change = match e.meta.detail {
                EdgeDetail::Modify { change } => change.name(),
                _ => panic!("modifies edge without detail"),
            };
            let file = read.string(read.file(node.file).unwrap().path).unwrap();
            (file, read.string(node.qualified_name).unwrap(), change)
        })
        .collect()
}

fn set(items: &[(&str, &str, &'static str)]) -> BTreeSet<(String, String, &'static str)> {
    items
        .iter()
        .map(|(f, s, c)| (f.to_string(), s.to_string(), *c))
        .collect()
}

#[test]
fn fix_and_bug_commits_modify_exactly_the_functions_they_changed() {
    let fx = Fixture::build();
    ingest_with_code(&fx.kb(), &fx.repo());
    let store = Store::open(&fx.kb()).unwrap();
    let read = store.read().unwrap();
    const MEM: &str = "minillm/worker/memory_utils.py";
    assert_eq!(
        modified(&read, &fx, "Speed up free_blocks"),
        set(&[(MEM, "BlockAllocator.free_blocks", "changed")])
    );
    assert_eq!(
        modified(&read, &fx, "Fix double free"),
        set(&[
            (MEM, "BlockAllocator.free_blocks", "changed"),
            (
                "tests/test_memory_utils.py",
                "test_forked_block_is_not_freed_twice",
                "added"
            ),
        ])
    );
    assert_eq!(
        modified(&read, &fx, "Fix CUDA out of memory"),
        set(&[
            (MEM, "BlockAllocator.allocate_table", "added"),
            (MEM, "BlockAllocator.free_table", "added"),
        ])
    );
    assert_eq!(
        modified(&read, &fx, "handle an empty waiting queue"),
        set(&[(
            "minillm/engine/scheduler.py",
            "Scheduler.schedule",
            "changed"
        )])
    );
    assert_eq!(
        modified(&read, &fx, "Fix panic on empty input"),
        set(&[("rust/src/tokenizer.rs", "pre_tokenize", "changed")])
    );
    assert_eq!(
        modified(&read, &fx, "add ALiBi slopes"),
        set(&[("csrc/attention.cu", "minillm::alibi_slope", "added")])
    );
    // The refactor split one method into three; the revert removed two again.
    assert_eq!(
        modified(&read, &fx, "Revert"),
        set(&[
            (
                "minillm/engine/scheduler.py",
                "Scheduler._schedule_decode",
                "removed"
            ),
            (
                "minillm/engine/scheduler.py",
                "Scheduler._schedule_prefill",
                "removed"
            ),
            (
                "minillm/engine/scheduler.py",
                "Scheduler.schedule",
                "changed"
            ),
        ])
    );
}

#[test]
fn head_symbols_and_defines_edges() {
    let fx = Fixture::build();
    let report = ingest_with_code(&fx.kb(), &fx.repo());
    assert_eq!(report.head_files, 12);
    assert_eq!(report.head_symbols, 32);
    let stats = stats_json(&fx.kb());
    assert_eq!(stats["edges"]["defines"], 32);

    let out = lore(&[
        "--kb",
        fx.kb().to_str().unwrap(),
        "show",
        "file",
        "minillm/worker/memory_utils.py",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "    6-54    class     class BlockAllocator",
        "   27-34    method      def free_blocks(self, blocks: List[int]) -> None",
        "   51-54    method      def reset(self) -> None",
        "imports: typing",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}

#[test]
fn symbol_history_follows_renames() {
    let fx = Fixture::build();
    ingest_with_code(&fx.kb(), &fx.repo());
    let out = lore(&[
        "--kb",
        fx.kb().to_str().unwrap(),
        "show",
        "symbol",
        "cdiv",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "one symbol across the rename: {v}"
    );
    assert_eq!(v[0]["file"], "minillm/common/utils.py");
    assert_eq!(v[0]["history"][0]["title"], "Add shared helpers");
    assert_eq!(v[0]["history"][0]["change"], "added");

    let out = lore(&[
        "--kb",
        fx.kb().to_str().unwrap(),
        "show",
        "symbol",
        "free_blocks",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let titles: Vec<&str> = v[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        vec![
            "Add block allocator in memory_utils",
            "Speed up free_blocks by skipping the refcount check",
            "Fix double free in free_blocks"
        ]
    );
    assert_eq!(
        v[0]["definition"]["doc"],
        "Return blocks to the free list once nothing references them."
    );
}

#[test]
fn blobs_are_parsed_once_and_new_commits_parse_only_new_blobs() {
    let fx = Fixture::build();
    let first = ingest_with_code(&fx.kb(), &fx.repo());
    assert_eq!(first.blobs_parsed, 26);
    let again = ingest_with_code(&fx.kb(), &fx.repo());
    assert_eq!(
        (again.blobs_parsed, again.commits, again.modifies_added),
        (0, 0, 0)
    );

    fs::write(
        fx.repo().join("minillm/worker/memory_utils.py"),
        fs::read_to_string(fx.repo().join("minillm/worker/memory_utils.py")).unwrap()
            + "\n\ndef debug_dump(allocator):\n    \"\"\"Print the free list.\"\"\"\n    print(allocator.free_list)\n",
    )
    .unwrap();
    fx.git(&["commit", "-qam", "Add debug_dump"]);
    let third = ingest_with_code(&fx.kb(), &fx.repo());
    assert_eq!(
        third.blobs_parsed, 1,
        "only the new version of memory_utils.py"
    );
    assert_eq!(third.modifies_added, 1);
    let store = Store::open(&fx.kb()).unwrap();
    let read = store.read().unwrap();
    let found = read.symbols_named("debug_dump").unwrap();
    assert_eq!(found.len(), 1);
    let history = read.edges_to(found[0].0, Rel::Modifies).unwrap();
    assert!(matches!(
        history[0].meta.detail,
        EdgeDetail::Modify {
            change: SymbolChange::Added
        }
    ));
    let _: NodeId = found[0].0;
}

/// Every symbol of every code file at the fixture's HEAD, checked against
/// `fixtures/code/minillm-head.symbols` (regenerate with `LORE_BLESS=1`, then review the diff).
#[test]
fn every_fixture_file_has_exactly_the_expected_symbols() {
    let fx = Fixture::build();
    ingest_with_code(&fx.kb(), &fx.repo());
    let store = Store::open(&fx.kb()).unwrap();
    let read = store.read().unwrap();
    let files = fx.git(&["ls-files"]);
    let mut out = String::new();
    for path in files.lines() {
        let Some(file) = read.file_by_path(path).unwrap() else {
            continue;
        };
        let Some(blob) = read.head_blob(file).unwrap() else {
            continue;
        };
        let record = read.blob(blob).unwrap();
        out.push_str(&format!(
            "== {path} ({})\n",
            record.lang.as_deref().unwrap_or("?")
        ));
        if !record.imports.is_empty() {
            out.push_str(&format!("imports: {}\n", record.imports.join(", ")));
        }
        for s in &record.symbols {
            out.push_str(&format!(
                "{}-{} {} {}",
                s.start_line,
                s.end_line,
                s.kind.name(),
                s.qualified_name
            ));
            if let Some(doc) = &s.doc {
                out.push_str(&format!(" | {}", doc.replace('\n', " / ")));
            }
            out.push('\n');
        }
    }
    let snapshot = fixtures_dir().join("code/minillm-head.symbols");
    if std::env::var_os("LORE_BLESS").is_some() {
        fs::write(&snapshot, &out).unwrap();
    }
    assert_eq!(
        out,
        fs::read_to_string(&snapshot).expect("snapshot; run with LORE_BLESS=1")
    );
}

#[test]
fn imports_resolve_to_repository_files_at_head() {
    let fx = Fixture::build();
    let report = ingest_with_code(&fx.kb(), &fx.repo());
    let store = Store::open(&fx.kb()).unwrap();
    let read = store.read().unwrap();
    let mut edges = BTreeSet::new();
    for (file, _) in read.head_files().unwrap() {
        let from = read.string(read.file(file).unwrap().path).unwrap();
        for e in read.edges_from(file, Rel::Imports).unwrap() {
            let to = read.string(read.file(e.dst).unwrap().path).unwrap();
            edges.insert((from.clone(), to, e.meta.evidence.unwrap_or_default()));
        }
    }
    let expected: BTreeSet<(String, String, String)> = [
        (
            "minillm/engine/scheduler.py",
            "minillm/worker/memory_utils.py",
            "minillm.worker.memory_utils",
        ),
        (
            "minillm/worker/kv_cache.py",
            "minillm/worker/memory_utils.py",
            "minillm.worker.memory_utils",
        ),
        (
            "minillm/worker/worker.py",
            "minillm/worker/kv_cache.py",
            "minillm.worker.kv_cache",
        ),
        (
            "minillm/worker/worker.py",
            "minillm/worker/memory_utils.py",
            "minillm.worker.memory_utils",
        ),
        (
            "tests/test_memory_utils.py",
            "minillm/worker/memory_utils.py",
            "minillm.worker.memory_utils",
        ),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(edges, expected);
    assert_eq!(report.head_imports, 5);
    // Not in the repository: typing (three files), collections, cuda_runtime.h, and the
    // `import torch` inside minillm/common/utils.py.
    assert_eq!(report.unresolved_imports, 6, "{report:?}");
}

/// Every `imports` edge at HEAD, as (importer, imported) paths.
fn import_edges(kb: &std::path::Path) -> BTreeSet<(String, String)> {
    let store = Store::open(kb).unwrap();
    let read = store.read().unwrap();
    let mut edges = BTreeSet::new();
    for (file, _) in read.head_files().unwrap() {
        let from = read.string(read.file(file).unwrap().path).unwrap();
        for e in read.edges_from(file, Rel::Imports).unwrap() {
            edges.insert((
                from.clone(),
                read.string(read.file(e.dst).unwrap().path).unwrap(),
            ));
        }
    }
    edges
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// An ingest derives again the imports of the files that changed, and of every file when a
/// file was added or removed: a new module makes an unchanged file's import resolve, and a
/// removed one takes the edge away.
#[test]
fn imports_are_derived_again_where_a_commit_can_change_them() {
    let fx = Fixture::build();
    ingest_with_code(&fx.kb(), &fx.repo());
    let first = import_edges(&fx.kb());
    assert_eq!(first.len(), 5);

    // Nothing new: no file's imports are derived again, unless the file's imports were
    // resolved by other rules than this build's.
    assert_eq!(ingest_with_code(&fx.kb(), &fx.repo()).head_imports, 0);
    Store::open(&fx.kb())
        .unwrap()
        .write(|tx| tx.set_meta("code.import_rules", b"0"))
        .unwrap();
    assert_eq!(ingest_with_code(&fx.kb(), &fx.repo()).head_imports, 5);
    assert_eq!(import_edges(&fx.kb()), first);

    // One file gains an import; no file is added: only that file's imports are derived.
    let scheduler = fx.repo().join("minillm/engine/scheduler.py");
    let text = fs::read_to_string(&scheduler).unwrap();
    fs::write(
        &scheduler,
        format!("import minillm.worker.kv_cache\n{text}"),
    )
    .unwrap();
    fx.git(&["commit", "-qam", "scheduler: import kv_cache"]);
    let report = ingest_with_code(&fx.kb(), &fx.repo());
    let mut expected = first.clone();
    expected.insert(pair(
        "minillm/engine/scheduler.py",
        "minillm/worker/kv_cache.py",
    ));
    assert_eq!(import_edges(&fx.kb()), expected);
    assert_eq!(
        report.head_imports, 2,
        "only scheduler.py's imports (memory_utils, kv_cache) are derived again"
    );

    // A new module named by an import nothing resolved before (`import torch` in
    // minillm/common/utils.py, which does not change).
    fs::create_dir_all(fx.repo().join("torch")).unwrap();
    fs::write(
        fx.repo().join("torch/__init__.py"),
        "def tensor():\n    pass\n",
    )
    .unwrap();
    fx.git(&["add", "torch/__init__.py"]);
    fx.git(&["commit", "-qm", "a torch of our own"]);
    let report = ingest_with_code(&fx.kb(), &fx.repo());
    let mut with_torch = expected.clone();
    with_torch.insert(pair("minillm/common/utils.py", "torch/__init__.py"));
    assert_eq!(import_edges(&fx.kb()), with_torch);
    assert_eq!(
        report.head_imports, 7,
        "a file was added: every file's imports"
    );

    // Removed again: the edge goes with it.
    fx.git(&["rm", "-q", "torch/__init__.py"]);
    fx.git(&["commit", "-qm", "no torch of our own"]);
    ingest_with_code(&fx.kb(), &fx.repo());
    assert_eq!(import_edges(&fx.kb()), expected);
}

/// A [`lore::progress::Progress`] that stops the run (by panicking, as an interrupted process
/// would stop) once `batches` batches have been reported stored.
struct StopAfter(std::sync::atomic::AtomicU64);

impl lore::progress::Progress for StopAfter {
    fn advance(&self, _n: u64) {
        if self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            panic!("stopped after the last batch allowed");
        }
    }
}

#[test]
fn a_code_stage_stopped_between_batches_resumes_to_what_a_clean_run_stores() {
    let fx = Fixture::build();
    ingest_with_code(&fx.kb(), &fx.repo());
    let expected = content_counts(&stats_json(&fx.kb()));
    let modifies = expected["edges"]["modifies"].as_u64().unwrap();
    assert!(modifies > 0);

    for stop_after in [1, 4, 9] {
        let kb = fx.kb().with_file_name(format!("stopped-{stop_after}.lore"));
        ingest(&kb, &fx.repo());
        {
            // Batches of three commits, each parsed while the batch before it is written;
            // the run stops once `stop_after` batches are stored.
            let store = Store::open(&kb).unwrap();
            let options = lore::ingest::code::CodeIngestOptions {
                batch_size: 3,
                ..Default::default()
            };
            let stop = StopAfter(stop_after.into());
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lore::ingest::code::ingest(&store, &fx.repo(), &options, &stop)
            }));
            assert!(outcome.is_err(), "the run went on past its stop");
        }
        // Only whole batches are stored: some symbol changes, not all.
        let stored = stats_json(&kb)["edges"]["modifies"].as_u64().unwrap_or(0);
        assert!(
            stored < modifies,
            "{stored} of {modifies} modifies edges stored before the stop"
        );
        ingest_with_code(&kb, &fx.repo());
        assert_eq!(
            content_counts(&stats_json(&kb)),
            expected,
            "resumed after {stop_after} batches"
        );
    }
}
