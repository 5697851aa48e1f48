//! The lore file itself: creation, schema version checks, files that are not lore files.

use std::fs;
use std::path::Path;

use lore::store::{Store, StoreError, SCHEMA_VERSION};

use crate::common::*;

#[test]
fn a_future_schema_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("future.lore");
    Store::create(&kb)
        .unwrap()
        .force_schema_version(SCHEMA_VERSION + 1)
        .unwrap();
    match Store::open(&kb) {
        Err(StoreError::NewerSchema {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a future schema opened"),
    }
    let out = lore(&["--kb", kb.to_str().unwrap(), "stats"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("written by a newer lore"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_file_that_is_not_a_lore_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    fs::write(&text, "hello, this is not a database\n".repeat(100)).unwrap();
    let before = fs::read(&text).unwrap();
    let out = lore(&["--kb", text.to_str().unwrap(), "stats"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a lore file"),
        "{}",
        stderr(&out)
    );
    // Ingest must not touch it either.
    let fx = Fixture::build();
    let out = lore(&[
        "--kb",
        text.to_str().unwrap(),
        "ingest",
        fx.repo().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(fs::read(&text).unwrap(), before, "the file was modified");
}

#[test]
fn a_redb_file_without_lore_tables_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("foreign");
        txn.open_table(def).unwrap().insert(1, 2).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let err = Store::open(&path).err().expect("must not open");
    assert!(err.to_string().contains("not a lore file"), "{err}");
}

#[test]
fn init_refuses_to_overwrite_and_stats_needs_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("p.lore");
    let out = lore(&["init", kb.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lore(&["init", kb.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"));

    let missing = dir.path().join("missing.lore");
    let out = lore(&["--kb", missing.to_str().unwrap(), "stats"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no lore file at"), "{}", stderr(&out));
    assert!(!missing.exists(), "stats must not create a file");
}

#[test]
fn a_file_in_use_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("p.lore");
    let _held = Store::create(&kb).unwrap();
    match Store::open(&kb) {
        Err(StoreError::Locked { .. }) => {}
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened twice"),
    }
}

#[test]
fn the_kb_env_var_names_the_default_file() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("env.lore");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lore"))
        .env("LORE_KB", &kb)
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(kb.exists());
}

#[test]
fn a_schema_2_file_is_upgraded_in_place_and_keeps_its_history() {
    use crate::common::{ingest, Fixture};
    let fixture = Fixture::build();
    let kb = fixture.kb();
    ingest(&kb, &fixture.repo());
    {
        let store = Store::open(&kb).unwrap();
        store.force_schema_version(2).unwrap();
    }
    let store = Store::open(&kb).expect("a v2 file opens");
    let read = store.read().unwrap();
    assert_eq!(read.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(read.commit_count().unwrap(), 32);
    assert!(read.issues().unwrap().is_empty());
    drop(read);
    // A file older than that is still refused.
    store.force_schema_version(1).unwrap();
    drop(store);
    assert!(matches!(
        Store::open(&kb),
        Err(StoreError::UnsupportedSchema { found: 1, .. })
    ));
}

#[test]
fn a_schema_version_of_zero_is_damage_not_an_earlier_lore() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("zeroed.lore");
    Store::create(&kb).unwrap().force_schema_version(0).unwrap();
    let err = Store::open(&kb).err().expect("a version of 0 is refused");
    assert!(matches!(err, StoreError::NotAKb { .. }), "{err}");
    assert!(err.to_string().contains("lore check"), "{err}");
}

/// Rewrite `kb` into an older layout: drop the tables `keep` does not list and the meta keys
/// later versions added, and label it `version`.
fn downgrade(kb: &std::path::Path, keep: &[&str], version: u32) {
    use redb::{ReadableDatabase, TableHandle};
    let db = redb::Database::open(kb).unwrap();
    let names: Vec<String> = {
        let read = db.begin_read().unwrap();
        read.list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect()
    };
    let write = db.begin_write().unwrap();
    for name in names.iter().filter(|n| !keep.contains(&n.as_str())) {
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(name);
        write.delete_table(def).unwrap();
    }
    {
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        let mut t = write.open_table(meta).unwrap();
        t.insert("schema_version", version.to_le_bytes().as_slice())
            .unwrap();
        t.remove("links.rules").unwrap();
        // Line provenance came with schema 6.
        t.remove("provenance.commits_done").unwrap();
        t.remove("provenance.head").unwrap();
    }
    write.commit().unwrap();
}

/// The tables of a schema 2 file (history and code, before issues and links).
const V2_TABLES: [&str; 19] = [
    "meta",
    "counters",
    "strings",
    "string_ids",
    "commits",
    "files",
    "authors",
    "commit_by_sha",
    "commit_by_time",
    "file_by_path",
    "author_by_email",
    "edges",
    "edges_rev",
    "blobs",
    "blob_by_sha",
    "symbols",
    "symbol_by_key",
    "head_blobs",
    "watermarks",
];

#[test]
fn a_real_schema_2_layout_is_upgraded_and_takes_issues_and_indexes() {
    use lore::kb::{IngestOptions, Kb};
    use lore::progress::Silent;
    let fixture = Fixture::build();
    let kb_path = fixture.kb();
    let history_and_code = IngestOptions {
        links: false,
        szz: false,
        index: false,
        ..IngestOptions::default()
    };
    Kb::open_or_create(&kb_path)
        .unwrap()
        .0
        .ingest(&fixture.repo(), &history_and_code, &Silent)
        .unwrap();
    let before = content_counts(&stats_json(&kb_path));
    downgrade(&kb_path, &V2_TABLES, 2);

    // It opens as schema 5, with its history and code intact, and then does what a new file does.
    let kb = Kb::open(&kb_path).expect("a v2 file opens");
    assert_eq!(kb.read().unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    drop(kb);
    assert_eq!(
        content_counts(&stats_json(&kb_path))["nodes"],
        before["nodes"]
    );
    let kb = Kb::open(&kb_path).unwrap();
    kb.ingest(&fixture.repo(), &IngestOptions::default(), &Silent)
        .unwrap();
    let dump = fixtures_dir().join("issues");
    let import = lore::ingest::issues::ImportOptions {
        format: lore::ingest::issues::Format::Github,
        repo: Some("minillm/minillm".into()),
        comments: Some(dump.join("github-comments.json")),
        git: None,
        szz: true,
    };
    kb.import_issues(&dump.join("github.json"), &import, true, &Silent)
        .unwrap();
    let rows = kb
        .query("issues fixed_by commit touching memory_utils")
        .unwrap();
    assert_eq!(rows.rows.len(), 2);
    let rows = kb.query("issues matching \"CUDA out of memory\"").unwrap();
    assert!(!rows.rows.is_empty());
    drop(kb);

    // Edge for edge what a file built new today holds.
    let fresh = fixture.dir.path().join("fresh.lore");
    let kb = Kb::open_or_create(&fresh).unwrap().0;
    kb.ingest(&fixture.repo(), &IngestOptions::default(), &Silent)
        .unwrap();
    kb.import_issues(&dump.join("github.json"), &import, true, &Silent)
        .unwrap();
    drop(kb);
    assert_eq!(link_lines(&kb_path), link_lines(&fresh));
}

#[test]
fn a_real_schema_3_layout_with_links_from_older_rules_is_upgraded_and_derived_again() {
    use lore::kb::{IngestOptions, Kb};
    use lore::progress::Silent;
    let fixture = Fixture::build();
    let kb_path = crate::queries::fixture_kb_in(&fixture);
    let expected = link_lines(&kb_path);
    let search = "issues matching \"double free\"";
    let found = Kb::open(&kb_path).unwrap().query(search).unwrap().rows;
    // Schema 3: issues and links, no indexes, and no record of the link rules.
    let mut v3: Vec<&str> = V2_TABLES.to_vec();
    v3.extend(["issues", "issue_by_number", "commit_facets", "szz_blame"]);
    downgrade(&kb_path, &v3, 3);
    let kb = Kb::open(&kb_path).expect("a v3 file opens");
    kb.ingest(&fixture.repo(), &IngestOptions::default(), &Silent)
        .unwrap();
    // The indexes the layout lacked are built again, and search answers as before.
    assert_eq!(kb.query(search).unwrap().rows, found);
    drop(kb);
    assert_eq!(link_lines(&kb_path), expected);
}

#[test]
fn storage_explains_the_file_size_and_compact_keeps_the_content() {
    let (_fixture, kb) = crate::queries::fixture_kb();
    let k = kb.to_str().unwrap();
    let out = crate::common::lore(&["--kb", k, "stats", "--storage", "--json"]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = v["tables"].as_array().unwrap();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    for table in [
        "commits",
        "edges",
        "edges_rev",
        "strings",
        "issues",
        "text_index_file_parts",
        "embedder_parts",
    ] {
        assert!(names.contains(&table), "{table} missing from {names:?}");
    }
    let edges = tables.iter().find(|t| t["table"] == "edges").unwrap();
    let stats = crate::common::stats_json(&kb);
    let edge_count: u64 = stats["edges"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(edges["entries"].as_u64(), Some(edge_count));
    let total: u64 = tables
        .iter()
        .map(|t| {
            ["stored_bytes", "metadata_bytes", "fragmented_bytes"]
                .iter()
                .map(|f| t[f].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum();
    let size = v["file_size"].as_u64().unwrap();
    assert!(
        total <= size,
        "tables take {total} bytes of a {size}-byte file"
    );
    assert_eq!(v["outside_tables"].as_u64().unwrap(), size - total);

    let before = crate::common::content_counts(&stats);
    let queries = [
        "issues fixed_by commit",
        "commits introduced_by commit limit 10",
        "symbols where kind = \"function\" limit 20",
        "commits matching \"cache\" limit 5",
        "issues similar to \"crash when the cache is full\" limit 3",
    ];
    let answers = |kb: &Path| -> Vec<String> {
        queries
            .iter()
            .map(|q| {
                let out = crate::common::lore(&["--kb", kb.to_str().unwrap(), "query", q]);
                crate::common::stdout(&out) + &crate::common::stderr(&out)
            })
            .collect()
    };
    let answers_before = answers(&kb);
    let out = crate::common::lore(&["--kb", k, "compact"]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert!(crate::common::stdout(&out).contains("rewritten in key order"));
    assert_eq!(
        crate::common::content_counts(&crate::common::stats_json(&kb)),
        before
    );
    assert_eq!(
        answers(&kb),
        answers_before,
        "the same answers after compaction"
    );
    // The free space left outside the tables is what the compaction keeps for later writes
    // (a thirty-second of its data, at least 256 KiB), and the file did not grow.
    let out = crate::common::lore(&["--kb", k, "stats", "--storage", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let compacted = v["file_size"].as_u64().unwrap();
    assert!(compacted <= size, "{compacted} bytes after, {size} before");
    let kept = (size / 32).max(256 << 10);
    assert!(
        v["outside_tables"].as_u64().unwrap() <= kept + (64 << 10),
        "{} bytes outside tables after compaction",
        v["outside_tables"]
    );
    let check = crate::common::lore(&["--kb", k, "check"]);
    assert!(check.status.success(), "{}", crate::common::stdout(&check));
    assert!(!kb.with_file_name("test.lore.compacting").exists());
}

#[test]
fn compact_refuses_a_file_with_a_table_it_does_not_know_and_leaves_it_as_it_was() {
    let (_fixture, kb) = crate::queries::fixture_kb();
    {
        let db = redb::Database::open(&kb).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> =
                redb::TableDefinition::new("from_the_future");
            txn.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let counts = crate::common::content_counts(&crate::common::stats_json(&kb));
    let out = crate::common::lore(&["--kb", kb.to_str().unwrap(), "compact"]);
    assert!(!out.status.success());
    let err = crate::common::stderr(&out);
    assert!(
        err.contains("from_the_future") && err.contains("unchanged"),
        "{err}"
    );
    // Everything is still there, the unknown table included.
    assert_eq!(
        crate::common::content_counts(&crate::common::stats_json(&kb)),
        counts
    );
    {
        let db = redb::Database::open(&kb).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("from_the_future");
        let table = txn.open_table(def).unwrap();
        assert_eq!(table.get(1).unwrap().map(|v| v.value()), Some(2));
    }
    let scratch = kb.with_file_name(format!(
        "{}.compacting",
        kb.file_name().unwrap().to_str().unwrap()
    ));
    assert!(!scratch.exists(), "no scratch copy is left behind");
}

/// Interning gives one id per distinct string, within a transaction (past the transaction's
/// cache of strings, which empties when full) and across transactions; an aborted
/// transaction's strings are gone.
#[test]
fn interned_strings_keep_one_id_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(&dir.path().join("strings.lore")).unwrap();
    let n = (1 << 18) + 100;
    let first = store
        .write(|tx| -> Result<_, StoreError> {
            let ids: Vec<_> = (0..n)
                .map(|i| tx.intern(&format!("s{i}")))
                .collect::<Result<_, _>>()?;
            // Again, after the cache was emptied: the same ids, nothing new.
            for (i, id) in ids.iter().enumerate().step_by(997) {
                assert_eq!(tx.intern(&format!("s{i}"))?, *id);
            }
            assert_eq!(tx.intern(&format!("s{}", n - 1))?, ids[n - 1]);
            Ok(ids)
        })
        .unwrap();
    let distinct: std::collections::HashSet<_> = first.iter().collect();
    assert_eq!(distinct.len(), n);
    let failed: Result<(), StoreError> = store.write(|tx| {
        tx.intern("only in an aborted transaction")?;
        Err(StoreError::Corrupt {
            what: "test",
            detail: "abort".into(),
        })
    });
    assert!(failed.is_err());
    let read = store.read().unwrap();
    assert_eq!(
        read.string_id("only in an aborted transaction").unwrap(),
        None
    );
    assert_eq!(read.string_id("s5").unwrap(), Some(first[5]));
    assert_eq!(read.string(first[n - 1]).unwrap(), format!("s{}", n - 1));
    drop(read);
    let again = store
        .write(|tx| -> Result<_, StoreError> { Ok((tx.intern("s7")?, tx.intern("new")?)) })
        .unwrap();
    assert_eq!(again.0, first[7]);
    assert!(!distinct.contains(&again.1));
}
