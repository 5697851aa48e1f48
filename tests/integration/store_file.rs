//! The lore file itself: creation, schema version checks, files that are not lore files.

use std::fs;

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
