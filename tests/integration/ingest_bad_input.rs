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

#[test]
fn an_unrelated_repository_is_refused_and_a_clone_is_not() {
    let fixture = Fixture::build();
    let kb = fixture.kb();
    let kb_arg = kb.to_str().unwrap();
    let out = crate::common::lore(&[
        "--kb",
        kb_arg,
        "-q",
        "ingest",
        fixture.repo().to_str().unwrap(),
        "--no-index",
    ]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let before = crate::common::content_counts(&crate::common::stats_json(&kb));

    // Another project, with a history of its own.
    let other = fixture.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    crate::common::git_in(&other, &["init", "-q", "-b", "main"]);
    std::fs::write(other.join("a.txt"), "a\n").unwrap();
    crate::common::git_in(&other, &["add", "."]);
    crate::common::git_in(&other, &["commit", "-q", "-m", "unrelated"]);
    let out = crate::common::lore(&["--kb", kb_arg, "-q", "ingest", other.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = crate::common::stderr(&out);
    assert!(err.contains("is not the repository"), "{err}");
    assert!(err.contains("use another --kb"), "{err}");
    let after = crate::common::content_counts(&crate::common::stats_json(&kb));
    assert_eq!(after, before, "the refusal wrote nothing");

    // A clone of the same project is the same project.
    let clone = fixture.mirror();
    let out = crate::common::lore(&[
        "--kb",
        kb_arg,
        "-q",
        "ingest",
        clone.to_str().unwrap(),
        "--no-index",
    ]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
}

#[test]
fn paths_that_differ_only_in_invalid_utf8_bytes_stay_apart() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    crate::common::git_in(&repo, &["init", "-q", "-b", "main"]);
    let name = |b: &[u8]| repo.join(std::ffi::OsStr::from_bytes(b));
    std::fs::write(name(b"x\xff.py"), "def from_ff():\n    return 1\n").unwrap();
    std::fs::write(name(b"x\xfe.py"), "def from_fe():\n    return 2\n").unwrap();
    std::fs::write(
        name(b"back\\slash.py"),
        "def from_backslash():\n    return 3\n",
    )
    .unwrap();
    crate::common::git_in(&repo, &["add", "."]);
    crate::common::git_in(&repo, &["commit", "-q", "-m", "odd names"]);
    let kb = dir.path().join("odd.lore");
    let k = kb.to_str().unwrap();
    let out = crate::common::lore(&[
        "--kb",
        k,
        "-q",
        "ingest",
        repo.to_str().unwrap(),
        "--no-index",
    ]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let symbols = |path: &str| {
        let q = format!("symbols where path = \"{}\"", path.replace('\\', "\\\\"));
        let out = crate::common::lore(&["--kb", k, "query", "--format", "csv", &q]);
        assert!(out.status.success(), "{q}: {}", crate::common::stderr(&out));
        crate::common::stdout(&out)
    };
    let ff = symbols("x\\xff.py");
    let fe = symbols("x\\xfe.py");
    assert!(ff.contains("from_ff") && !ff.contains("from_fe"), "{ff}");
    assert!(fe.contains("from_fe") && !fe.contains("from_ff"), "{fe}");
    let back = symbols("back\\\\slash.py");
    assert!(back.contains("from_backslash"), "{back}");
    let files = crate::common::stats_json(&kb)["nodes"]["files"]
        .as_u64()
        .unwrap();
    assert_eq!(files, 3);
    // The stored names give back git's bytes.
    assert_eq!(&*lore::store::paths::to_git("x\\xff.py"), b"x\xff.py");
}

#[test]
fn the_link_report_counts_what_stats_stores_even_for_a_huge_message() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    crate::common::git_in(&repo, &["init", "-q", "-b", "main"]);
    for name in ["alloc.py", "sched.py", "cache.py"] {
        std::fs::write(repo.join("src").join(name), "def f():\n    return 1\n").unwrap();
    }
    crate::common::git_in(&repo, &["add", "."]);
    crate::common::git_in(&repo, &["commit", "-q", "-m", "start"]);
    std::fs::write(repo.join("src/alloc.py"), "def f():\n    return 2\n").unwrap();
    crate::common::git_in(&repo, &["add", "."]);
    // A 2 MB message: one closing reference, the same paths and issue numbers again and again.
    let mut message = String::from("Fixes #1\n\n");
    while message.len() < 2 << 20 {
        message.push_str("see src/alloc.py and src/sched.py, as in #2 and #3; src/cache.py too\n");
    }
    let msg_file = dir.path().join("message.txt");
    std::fs::write(&msg_file, &message).unwrap();
    crate::common::git_in(&repo, &["commit", "-q", "-F", msg_file.to_str().unwrap()]);
    let kb = dir.path().join("huge.lore");
    let out = crate::common::lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "-q",
        "ingest",
        repo.to_str().unwrap(),
        "--no-index",
        "--json",
    ]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let added = report["links"]["added_by_relation"]
        .as_object()
        .unwrap()
        .clone();
    let stats = crate::common::stats_json(&kb);
    let mut total = 0;
    for (rel, n) in &added {
        assert_eq!(
            &stats["edges"][rel], n,
            "{rel}: report {n}, stats {}",
            stats["edges"][rel]
        );
        total += n.as_u64().unwrap();
    }
    assert_eq!(report["links"]["edges_added"].as_u64(), Some(total));
    assert_eq!(added["fixed_by"], 1);
    assert_eq!(
        added["references"], 2,
        "#2 and #3, once each however often they are named"
    );
}
