//! Incremental ingest: re-ingest is a no-op, new commits are added exactly once, rewritten and
//! deleted refs are handled.

use std::fs;

use lore::ingest::git::{self, GitIngestOptions, RefUpdate};
use lore::progress::Silent;
use lore::store::Store;

use crate::common::*;

#[test]
fn reingest_is_a_no_op() {
    let fx = Fixture::build();
    ingest(&fx.kb(), &fx.repo());
    let before = content_counts(&stats_json(&fx.kb()));
    let again = ingest(&fx.kb(), &fx.repo());
    assert_eq!(again.commits_added, 0);
    assert_eq!(again.touches_added, 0);
    assert!(
        again.refs.iter().all(|r| r.update == RefUpdate::Unchanged),
        "{:?}",
        again.refs
    );
    assert_eq!(content_counts(&stats_json(&fx.kb())), before);
}

#[test]
fn three_new_commits_add_exactly_three() {
    let fx = Fixture::build();
    ingest(&fx.kb(), &fx.repo());
    for i in 0..3 {
        fs::write(
            fx.repo().join(format!("minillm/extra_{i}.py")),
            format!("X = {i}\n"),
        )
        .unwrap();
        fx.git(&["add", "-A"]);
        fx.git(&["commit", "-q", "-m", &format!("Add extra module {i}")]);
    }
    let report = ingest(&fx.kb(), &fx.repo());
    assert_eq!(report.commits_added, 3);
    assert_eq!(report.touches_added, 3);
    let main = report
        .refs
        .iter()
        .find(|r| r.name == "refs/heads/main")
        .unwrap();
    assert_eq!(main.update, RefUpdate::FastForward);
    let stats = stats_json(&fx.kb());
    assert_eq!(stats["nodes"]["commits"], 35);
    assert_eq!(stats["nodes"]["files"], 23);
    assert_eq!(stats["edges"]["parent"], 35);
}

#[test]
fn rewritten_branch_finds_the_merge_base_and_adds_only_new_commits() {
    let fx = Fixture::build();
    ingest(&fx.kb(), &fx.repo());
    let base = fx
        .git(&["rev-parse", "feature/kv-cache~1"])
        .trim()
        .to_string();
    let old_tip = fx
        .git(&["rev-parse", "feature/kv-cache"])
        .trim()
        .to_string();
    // Force-push style rewrite: drop the branch's last commit and commit something else.
    rewrite_feature_branch(&fx);

    let report = ingest(&fx.kb(), &fx.repo());
    assert_eq!(report.commits_added, 1);
    let feature = report
        .refs
        .iter()
        .find(|r| r.name == "refs/heads/feature/kv-cache")
        .unwrap();
    assert_eq!(
        feature.update,
        RefUpdate::Rewritten {
            old: old_tip,
            merge_base: Some(base)
        }
    );
    let stats = stats_json(&fx.kb());
    assert_eq!(
        stats["nodes"]["commits"], 33,
        "old commits stay, nothing is duplicated"
    );
    assert_eq!(
        stats["watermarks"]["git:refs/heads/feature/kv-cache"],
        fx.git(&["rev-parse", "feature/kv-cache"]).trim()
    );
    // Ingesting once more changes nothing.
    assert_eq!(ingest(&fx.kb(), &fx.repo()).commits_added, 0);
}

#[test]
fn deleted_branch_drops_its_watermark() {
    let fx = Fixture::build();
    ingest(&fx.kb(), &fx.repo());
    fx.git(&["branch", "-q", "-D", "feature/kv-cache"]);
    let report = ingest(&fx.kb(), &fx.repo());
    assert_eq!(
        report.vanished_refs,
        vec!["refs/heads/feature/kv-cache".to_string()]
    );
    let stats = stats_json(&fx.kb());
    assert!(stats["watermarks"]
        .get("git:refs/heads/feature/kv-cache")
        .is_none());
    assert_eq!(stats["nodes"]["commits"], 32);
}

#[test]
fn selected_refs_limit_the_walk() {
    let fx = Fixture::build();
    let (store, _) = Store::open_or_create(&fx.kb()).unwrap();
    let options = GitIngestOptions {
        refs: vec!["v0.1.0".into()],
        ..Default::default()
    };
    let report = git::ingest(&store, &fx.repo(), &options, &Silent).unwrap();
    let expected: u64 = fx
        .git(&["rev-list", "--count", "v0.1.0"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(report.commits_added, expected);
    assert_eq!(report.refs.len(), 1);
    assert_eq!(report.refs[0].name, "refs/tags/v0.1.0");

    let glob = GitIngestOptions {
        refs: vec!["refs/heads/*".into()],
        ..Default::default()
    };
    let report = git::ingest(&store, &fx.repo(), &glob, &Silent).unwrap();
    assert_eq!(report.refs.len(), 2);
    assert_eq!(report.commits_added, 32 - expected);
}

#[test]
fn incremental_ingests_match_git_numstat_and_a_fresh_file_edge_for_edge() {
    use crate::ingest_fixture::{git_numstat, lore_numstat};
    use lore::kb::{IngestOptions, Kb};
    let fx = Fixture::build();
    let kb_path = fx.kb();
    let everything = IngestOptions::default();
    // First the tag, then everything: history, code and links arrive in two steps.
    let (kb, _) = Kb::open_or_create(&kb_path).unwrap();
    let tag_only = IngestOptions {
        git: lore::ingest::git::GitIngestOptions {
            refs: vec!["v0.1.0".into()],
            ..Default::default()
        },
        ..IngestOptions::default()
    };
    let first = kb.ingest(&fx.repo(), &tag_only, &Silent).unwrap();
    assert!(first.git.commits_added < 32, "the tag is older than main");
    kb.ingest(&fx.repo(), &everything, &Silent).unwrap();
    drop(kb);
    // git is the oracle for every commit's line stats.
    assert_eq!(lore_numstat(&kb_path), git_numstat(&fx));
    // The same file as one ingest of everything.
    let fresh = fx.dir.path().join("fresh.lore");
    Kb::open_or_create(&fresh)
        .unwrap()
        .0
        .ingest(&fx.repo(), &everything, &Silent)
        .unwrap();
    assert_eq!(link_lines(&kb_path), link_lines(&fresh));
    let (a, b) = (stats_json(&kb_path), stats_json(&fresh));
    assert_eq!(a["nodes"], b["nodes"]);
    assert_eq!(a["edges"], b["edges"]);

    // A rewritten branch: the new commit's stats agree with git too. (The commit dropped from
    // the branch is still reachable through main's merge of it, so git lists it as well.)
    rewrite_feature_branch(&fx);
    Kb::open(&kb_path)
        .unwrap()
        .ingest(&fx.repo(), &everything, &Silent)
        .unwrap();
    let theirs = git_numstat(&fx);
    assert_eq!(theirs.len(), 33);
    assert_eq!(lore_numstat(&kb_path), theirs);
}

/// Force-push style: drop `feature/kv-cache`'s last commit and commit something else on it.
fn rewrite_feature_branch(fx: &Fixture) {
    fx.git(&["checkout", "-q", "feature/kv-cache"]);
    fx.git(&["reset", "-q", "--hard", "HEAD~1"]);
    fs::write(
        fx.repo().join("minillm/worker/worker.py"),
        "class Worker:\n    pass\n",
    )
    .unwrap();
    fx.git(&["add", "-A"]);
    fx.git(&["commit", "-q", "-m", "Rewrite the worker"]);
    fx.git(&["checkout", "-q", "main"]);
}
