//! Bad input: not a repository, shallow clones, missing objects, unknown refs.

use std::fs;

use lore::ingest::git::{self, GitIngestOptions};
use lore::progress::Silent;
use lore::store::Store;

use crate::common::*;

#[test]
fn a_directory_that_is_not_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("x.lore");
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "ingest",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is not a git repository"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!kb.exists(), "a failed first ingest leaves no file behind");
}

#[test]
fn a_missing_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let kb = dir.path().join("x.lore");
    let out = lore(&["--kb", kb.to_str().unwrap(), "ingest", "/no/such/repo"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read /no/such/repo"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_ref_is_named() {
    let fx = Fixture::build();
    let out = lore(&[
        "--kb",
        fx.kb().to_str().unwrap(),
        "ingest",
        fx.repo().to_str().unwrap(),
        "--refs",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ref `nope` not found"),
        "{}",
        stderr(&out)
    );
    assert!(
        !fx.kb().exists(),
        "nothing was ingested, so no file was left"
    );
}

#[test]
fn shallow_clone_ingests_what_exists_and_says_so() {
    let fx = Fixture::build();
    let shallow = fx.dir.path().join("shallow");
    let url = format!("file://{}", fx.repo().display());
    git_in(
        fx.dir.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "5",
            &url,
            shallow.to_str().unwrap(),
        ],
    );
    let report = ingest(&fx.kb(), &shallow);
    assert!(report.shallow);
    let present: u64 = git_in(&shallow, &["rev-list", "--count", "--all"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(report.commits_added, present);

    let out = lore(&[
        "--kb",
        fx.dir.path().join("s2.lore").to_str().unwrap(),
        "ingest",
        shallow.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("shallow"), "{}", stdout(&out));
}

#[test]
fn missing_blobs_give_unknown_stats_and_a_count() {
    let fx = Fixture::build();
    // The fixture's objects are loose: delete the blob the bug-introducing commit wrote.
    let bad = fx.git(&[
        "log",
        "--format=%H",
        "-1",
        "--grep=Speed up free_blocks",
        "main",
    ]);
    let blob = fx.git(&[
        "rev-parse",
        &format!("{}:minillm/worker/memory_utils.py", bad.trim()),
    ]);
    let blob = blob.trim();
    let path = fx
        .repo()
        .join(".git/objects")
        .join(&blob[..2])
        .join(&blob[2..]);
    fs::remove_file(&path).expect("blob is a loose object");

    let report = ingest(&fx.kb(), &fx.repo());
    assert_eq!(report.commits_added, 32, "every commit is still ingested");
    // The commit that wrote the blob and the one that replaced it.
    assert_eq!(report.stats_unknown, 2);
    let stats = stats_json(&fx.kb());
    assert_eq!(stats["counters"]["ingest.stats_unknown"], 2);
    assert_eq!(stats["edges"]["touches"], 39);

    let out = lore(&[
        "--kb",
        fx.kb().to_str().unwrap(),
        "show",
        "commit",
        &bad.trim()[..10],
    ]);
    assert!(
        stdout(&out).contains("1 with unknown stats"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_tag_of_a_blob_is_skipped_not_fatal() {
    let fx = Fixture::build();
    let blob = fx.git(&["rev-parse", "main:README.md"]);
    fx.git(&["tag", "readme-blob", blob.trim()]);
    let (store, _) = Store::open_or_create(&fx.kb()).unwrap();
    let report = git::ingest(&store, &fx.repo(), &GitIngestOptions::default(), &Silent).unwrap();
    assert_eq!(report.commits_added, 32);
    assert_eq!(report.skipped_refs.len(), 1);
    assert!(
        report.skipped_refs[0].starts_with("refs/tags/readme-blob"),
        "{:?}",
        report.skipped_refs
    );
}

#[test]
fn a_kb_path_that_cannot_be_created_is_named() {
    let fx = Fixture::build();
    let kb = fx.dir.path().join("no/such/dir/x.lore");
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "ingest",
        fx.repo().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot open or create") && err.contains("no/such/dir/x.lore"),
        "{err}"
    );
}
