//! `lore watch`: a local bare remote gets new commits and one pass ingests exactly them; an
//! adapter is trained when enough is new; a pass with nothing new says so; one watcher per file.

use std::path::Path;

use lore::kb::Kb;
use serde_json::Value;

use crate::common::{git_in, lore, stderr, stdout, Fixture};

fn watch_once(kb: &Path, mirror: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "--kb",
        kb.to_str().unwrap(),
        "-q",
        "watch",
        mirror.to_str().unwrap(),
        "--once",
    ];
    args.extend_from_slice(extra);
    let out = lore(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    serde_json::from_str(line.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn commit(repo: &Path, file: &str, text: &str, message: &str) {
    std::fs::write(repo.join(file), text).unwrap();
    git_in(repo, &["add", "."]);
    git_in(repo, &["commit", "-q", "-m", message]);
}

#[test]
fn watch_once_ingests_exactly_the_new_commits_of_the_remote() {
    let fixture = Fixture::build();
    let mirror = fixture.mirror();
    let kb = fixture.dir.path().join("watched.lore");
    let first = watch_once(&kb, &mirror, &[]);
    let all = crate::common::stats_json(&kb)["nodes"]["commits"]
        .as_u64()
        .unwrap();
    assert_eq!(first["commits_added"].as_u64(), Some(all));
    assert!(first["fetch_ms"].is_u64());

    git_in(&fixture.repo(), &["checkout", "-q", "main"]);
    commit(&fixture.repo(), "NOTES.md", "one\n", "Add notes");
    commit(&fixture.repo(), "NOTES.md", "one\ntwo\n", "More notes");
    let second = watch_once(&kb, &mirror, &[]);
    assert_eq!(second["commits_added"], 2);
    assert_eq!(
        crate::common::stats_json(&kb)["nodes"]["commits"].as_u64(),
        Some(all + 2)
    );
    let third = watch_once(&kb, &mirror, &[]);
    assert_eq!(third["commits_added"], 0);
    let skipped: Vec<&str> = third["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(skipped.contains(&"ingest: no new commits"), "{skipped:?}");
}

#[test]
fn a_second_watcher_on_the_same_file_refuses() {
    let fixture = Fixture::build();
    let kb = fixture.dir.path().join("watched.lore");
    let _first = lore::watch::WatchLock::acquire(&kb).unwrap();
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "watch",
        fixture.repo().to_str().unwrap(),
        "--once",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another lore watch is running"),
        "{}",
        stderr(&out)
    );
    assert!(!kb.exists(), "the refused watcher created nothing");
}

#[test]
fn an_adapter_is_trained_when_enough_is_new_and_not_otherwise() {
    let fixture = Fixture::build();
    let mirror = fixture.mirror();
    let kb = fixture.dir.path().join("watched.lore");
    assert_eq!(
        watch_once(&kb, &mirror, &[])["commits_added"]
            .as_u64()
            .map(|n| n > 0),
        Some(true)
    );
    let model = fixture.dir.path().join("model");
    {
        Kb::open(&kb)
            .unwrap()
            .init_tiny_model(&model, &crate::adapt::tiny_shape(), 1)
            .unwrap();
    }
    let work = fixture.dir.path().join("work");
    let adapt_args = |min_new: &'static str| -> Vec<String> {
        [
            "--min-new",
            min_new,
            "--",
            "--model",
            model.to_str().unwrap(),
            "--query",
            "commits where merge = false",
            "-t",
            "commit_message",
            "--seq-len",
            "256",
            "--max-steps",
            "2",
            "--batch",
            "2",
            "--rank",
            "4",
            "--eval-every",
            "1000",
            "--work-dir",
            work.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |min_new: &'static str| {
        let args = adapt_args(min_new);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        watch_once(&kb, &mirror, &refs)
    };
    // Too few new examples for the threshold: no training.
    let held = run("100000");
    assert!(held["new_examples"].as_u64().unwrap() > 0);
    assert!(held["adapter"].is_null());
    // Enough: adapter 1 is trained on them.
    let trained = run("1");
    assert_eq!(trained["adapter"], 1, "{trained}");
    // Nothing new since: the pass says so and trains nothing.
    let idle = run("1");
    assert_eq!(idle["new_examples"], 0);
    assert!(idle["adapter"].is_null());
    let skipped = idle["skipped"].to_string();
    assert!(skipped.contains("0 new examples"), "{skipped}");
}
