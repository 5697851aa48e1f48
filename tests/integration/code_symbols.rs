//! Symbol extraction: one snapshot per language on a small realistic file, and bad input.
//!
//! Snapshots are `fixtures/code/<file>.symbols`. After an intended change, regenerate them with
//! `LORE_BLESS=1 cargo test --test integration code_symbols` and review the diff.

use std::fs;
use std::path::Path;

use lore::ingest::code::{CodeParser, ParseLimits, ParsedFile, Skip};
use lore::store::records::SymbolKind;

use crate::common::fixtures_dir;

fn render(parsed: &ParsedFile) -> String {
    let mut out = format!(
        "lang: {}\nimports: {}\n",
        parsed.lang.name(),
        parsed.imports.join(", ")
    );
    for s in &parsed.symbols {
        out.push_str(&format!(
            "{}-{} {} {} | {}\n",
            s.start_line,
            s.end_line,
            s.kind.name(),
            s.qualified_name,
            s.signature
        ));
        if let Some(doc) = &s.doc {
            out.push_str(&format!("    doc: {}\n", doc.replace('\n', " / ")));
        }
    }
    out
}

fn check_snapshot(file: &str) {
    check_snapshot_of(&fixtures_dir().join("code").join(file), file);
}

/// Parse `source` as `file` and compare with `fixtures/code/<file>.symbols`.
fn check_snapshot_of(source: &Path, file: &str) {
    let dir = fixtures_dir().join("code");
    let source = fs::read(source).unwrap();
    let parsed = CodeParser::new(ParseLimits::default())
        .parse(file, &source)
        .unwrap_or_else(|skip| panic!("{file} skipped: {skip:?}"));
    assert_eq!(parsed.error_bytes, 0, "{file} has syntax errors");
    let actual = render(&parsed);
    let snapshot = dir.join(format!("{file}.symbols"));
    if std::env::var_os("LORE_BLESS").is_some() {
        fs::write(&snapshot, &actual).unwrap();
    }
    let expected = fs::read_to_string(&snapshot).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with LORE_BLESS=1",
            snapshot.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "snapshot {} differs",
        Path::new(file).display()
    );
}

#[test]
fn python_symbols() {
    check_snapshot("sampler.py");
}

#[test]
fn rust_symbols() {
    check_snapshot("block_table.rs");
}

#[test]
fn c_symbols() {
    check_snapshot("ring.c");
}

#[test]
fn cpp_symbols() {
    check_snapshot("cache_engine.cpp");
}

#[test]
fn cuda_symbols() {
    // The fixture repository's kernel, as of its last version.
    check_snapshot_of(
        &fixtures_dir().join("repo-src/attention.v3.cu"),
        "attention.cu",
    );
}

#[test]
fn go_symbols() {
    check_snapshot("router.go");
}

#[test]
fn javascript_symbols() {
    check_snapshot("client.js");
}

#[test]
fn typescript_symbols() {
    check_snapshot("metrics.ts");
}

#[test]
fn syntax_errors_keep_the_valid_symbols() {
    let source = b"def ok(a):\n    return a\n\ndef broken(:\n    pass\n\nclass Fine:\n    def m(self):\n        pass\n";
    let parsed = CodeParser::new(ParseLimits::default())
        .parse("x.py", source)
        .unwrap();
    assert!(parsed.has_errors);
    let names: Vec<&str> = parsed
        .symbols
        .iter()
        .map(|s| s.qualified_name.as_str())
        .collect();
    assert!(
        names.contains(&"ok") && names.contains(&"Fine.m"),
        "{names:?}"
    );
    assert_eq!(
        parsed.symbols.iter().find(|s| s.name == "m").unwrap().kind,
        SymbolKind::Method
    );
}

#[test]
fn bad_input_is_skipped_with_a_reason() {
    let mut parser = CodeParser::new(ParseLimits {
        max_bytes: 10_000,
        ..ParseLimits::default()
    });
    assert_eq!(
        parser.parse("notes.txt", b"hello").unwrap_err(),
        Skip::UnknownLanguage
    );
    let big = "x = 1\n".repeat(3000);
    assert_eq!(
        parser.parse("big.py", big.as_bytes()).unwrap_err(),
        Skip::TooLarge
    );
    let minified = format!("var a={};", "1+".repeat(15_000) + "1");
    let mut p2 = CodeParser::new(ParseLimits::default());
    assert_eq!(
        p2.parse("app.min.js", minified.as_bytes()).unwrap_err(),
        Skip::LongLines
    );
    let garbage = "@@@ ### ``` ??? \\\\ $$$\n".repeat(50);
    assert_eq!(
        p2.parse("bad.go", garbage.as_bytes()).unwrap_err(),
        Skip::MostlyErrors
    );
    // Latin-1 bytes: parsed, names read lossily, no panic.
    let latin1 = b"def caf\xe9():\n    pass\n\ndef ok():\n    pass\n";
    let parsed = p2.parse("legacy.py", latin1).unwrap();
    assert!(parsed.symbols.iter().any(|s| s.name == "ok"));
}

#[test]
fn from_package_import_module_resolves_to_the_module() {
    use lore::kb::{IngestOptions, Kb};
    use lore::progress::Silent;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let write = |path: &str, text: &str| {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    std::fs::create_dir_all(&repo).unwrap();
    crate::common::git_in(&repo, &["init", "-q", "-b", "main"]);
    write("minillm/__init__.py", "");
    write("minillm/worker/__init__.py", "from . import memory_utils\n");
    write(
        "minillm/worker/memory_utils.py",
        "class BlockAllocator:\n    pass\n",
    );
    write("minillm/worker/kv_cache.py", "def cache():\n    return 1\n");
    write(
        "minillm/engine/scheduler.py",
        "from typing import List\nfrom minillm.worker import memory_utils, kv_cache as kv\nfrom minillm.worker.memory_utils import BlockAllocator\n",
    );
    crate::common::git_in(&repo, &["add", "-A"]);
    crate::common::git_in(&repo, &["commit", "-q", "-m", "layout"]);
    let kb_path = dir.path().join("k.lore");
    let (kb, _) = Kb::open_or_create(&kb_path).unwrap();
    let options = IngestOptions {
        links: false,
        szz: false,
        index: false,
        ..IngestOptions::default()
    };
    let report = kb.ingest(&repo, &options, &Silent).unwrap();
    let code = report.code.unwrap();
    let rows = kb
        .query("files imported_by file scheduler return file.path")
        .unwrap();
    let mut imported: Vec<&str> = rows.rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    imported.sort();
    // The modules themselves, and the package whose __init__ runs first.
    assert_eq!(
        imported,
        [
            "minillm/worker/__init__.py",
            "minillm/worker/kv_cache.py",
            "minillm/worker/memory_utils.py"
        ]
    );
    let rows = kb
        .query("files imported_by file worker/__init__.py return file.path")
        .unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![serde_json::json!("minillm/worker/memory_utils.py")]]
    );
    // Only `typing` is counted unresolved; `from typing import List` names no module.
    assert_eq!(code.unresolved_imports, 1, "{code:?}");
}
