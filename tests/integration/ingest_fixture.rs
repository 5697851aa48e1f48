//! Ingest of the fixture repository: exact counts, and every diff stat checked against git.

use lore::ingest::git::numstat::{self, Numstat};
use lore::store::records::EdgeDetail;
use lore::store::{hex, Rel, Store};

use crate::common::*;

#[test]
fn fixture_is_deterministic() {
    let fx = Fixture::build();
    assert_eq!(fx.git(&["rev-parse", "main"]).trim(), FIXTURE_HEAD);
}

#[test]
fn fixture_ingest_gives_exact_counts() {
    let fx = Fixture::build();
    let report = ingest(&fx.kb(), &fx.repo());
    assert_eq!(report.commits_added, 32);
    assert_eq!(report.merges_added, 1);
    assert_eq!(report.touches_added, 39);
    assert_eq!(report.stats_unknown, 0);
    assert!(!report.shallow);

    let stats = stats_json(&fx.kb());
    assert_eq!(stats["schema_version"], lore::store::SCHEMA_VERSION);
    assert_eq!(stats["nodes"]["commits"], 32);
    assert_eq!(stats["nodes"]["files"], 20);
    // Alice's two addresses are one person through .mailmap.
    assert_eq!(stats["nodes"]["authors"], 5);
    assert_eq!(stats["edges"]["parent"], 32);
    assert_eq!(stats["edges"]["touches"], 39);
    assert_eq!(stats["edges"]["authored_by"], 32);
    assert_eq!(stats["edges"]["renamed_from"], 1);
    assert_eq!(stats["counters"]["git.merge_commits"], 1);
    let marks = stats["watermarks"].as_object().unwrap();
    assert_eq!(marks.len(), 4, "{marks:?}");
    assert_eq!(marks["git:refs/heads/main"], FIXTURE_HEAD);
    assert!(marks.contains_key("git:refs/tags/v0.1.0"));
}

pub fn git_numstat(fx: &Fixture) -> Numstat {
    let mut args = vec!["log", "--branches", "--tags", "--diff-merges=first-parent"];
    args.extend_from_slice(numstat::GIT_LOG_ARGS);
    numstat::parse(&fx.git(&args))
}

#[test]
fn every_diff_stat_matches_git_numstat() {
    let fx = Fixture::build();
    ingest(&fx.kb(), &fx.repo());
    let expected = git_numstat(&fx);
    assert_eq!(expected.len(), 32);

    assert_eq!(lore_numstat(&fx.kb()), expected);
}

/// Per commit, the files lore stored with their line stats, as `git log --numstat` gives them.
pub fn lore_numstat(kb: &std::path::Path) -> Numstat {
    let store = Store::open(kb).unwrap();
    let read = store.read().unwrap();
    let mut actual = Numstat::new();
    for sha in read.all_commit_shas().unwrap() {
        let id = read.commit_by_sha(&sha).unwrap().unwrap();
        let mut files = Vec::new();
        for edge in read.edges_from(id, Rel::Touches).unwrap() {
            let path = read.string(read.file(edge.dst).unwrap().path).unwrap();
            let EdgeDetail::Touch(t) = edge.meta.detail else {
                panic!("touch without stats")
            };
            let old = t.old_path.map(|s| read.string(s).unwrap());
            files.push((path, old, t.added, t.removed));
        }
        files.sort();
        actual.insert(hex(&sha), files);
    }
    actual
}

#[test]
fn binary_bot_and_non_utf8_files_are_recorded() {
    let fx = Fixture::build();
    ingest(&fx.kb(), &fx.repo());
    let store = Store::open(&fx.kb()).unwrap();
    let read = store.read().unwrap();

    let logo = read
        .file_by_path("docs/logo.png")
        .unwrap()
        .expect("logo file node");
    let touches = read.edges_to(logo, Rel::Touches).unwrap();
    assert_eq!(touches.len(), 1);
    let EdgeDetail::Touch(t) = &touches[0].meta.detail else {
        panic!()
    };
    assert!(t.binary);
    assert_eq!((t.added, t.removed), (None, None));

    let notes = read
        .file_by_path("docs/legacy_notes.txt")
        .unwrap()
        .expect("latin-1 file");
    let EdgeDetail::Touch(t) = &read.edges_to(notes, Rel::Touches).unwrap()[0].meta.detail else {
        panic!()
    };
    assert_eq!((t.added, t.removed, t.binary), (Some(3), Some(0), false));

    let bump = fx.git(&["log", "--format=%H", "-1", "--author=dependabot", "main"]);
    let sha = sha_bytes(&bump);
    let commit = read.commit_by_sha(&sha).unwrap().unwrap();
    let author = read.edges_from(commit, Rel::AuthoredBy).unwrap()[0].dst;
    let record = read.author(author).unwrap();
    assert!(record.is_bot);
    assert_eq!(read.string(record.name).unwrap(), "dependabot[bot]");

    // The first commit was made with Alice's old address; .mailmap maps it to the new one.
    let first = fx.git(&["rev-list", "--max-parents=0", "main"]);
    let sha = sha_bytes(&first);
    let commit = read.commit_by_sha(&sha).unwrap().unwrap();
    let author = read
        .author(read.edges_from(commit, Rel::AuthoredBy).unwrap()[0].dst)
        .unwrap();
    assert_eq!(read.string(author.email).unwrap(), "alice@minillm.dev");
    let raw = read.commit(commit).unwrap().author;
    assert_eq!(read.string(raw.email).unwrap(), "alice@old-corp.example");
}

#[test]
fn show_commit_prints_rename_and_stats() {
    let fx = Fixture::build();
    let kb = fx.kb();
    let kb = kb.to_str().unwrap();
    let out = lore(&["--kb", kb, "-q", "ingest", fx.repo().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let rename = fx.git(&[
        "log",
        "--format=%h",
        "-1",
        "--grep=Move shared helpers",
        "main",
    ]);
    let out = lore(&["--kb", kb, "show", "commit", rename.trim()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Move shared helpers into minillm.common"),
        "{text}"
    );
    assert!(
        text.contains("R     +1     -1  minillm/utils.py => minillm/common/utils.py"),
        "{text}"
    );
    assert!(text.contains("2 files changed, +2 -1"), "{text}");

    let out = lore(&["--kb", kb, "show", "commit", rename.trim(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"][1]["change"], "renamed");
    assert_eq!(v["files"][1]["old_path"], "minillm/utils.py");

    let out = lore(&["--kb", kb, "show", "commit", "ffffffff"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no commit ffffffff"),
        "{}",
        stderr(&out)
    );

    let out = lore(&["--kb", kb, "show", "commit", "zz"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a commit sha prefix"),
        "{}",
        stderr(&out)
    );
}
