//! Issue import on the fixture: the exact link set, the same result from every dump format,
//! idempotent re-import, updates, stubs, state history, facets and SZZ.

use std::path::{Path, PathBuf};

use lore::ingest::issues::{self, Format, ImportOptions, ImportReport};
use lore::progress::Silent;
use lore::store::records::{CommitClass, IssueRecord, IssueState};
use lore::store::{Rel, Store};

use crate::common::{fixture_with_links, fixtures_dir, link_lines, Fixture};

fn dump(name: &str) -> PathBuf {
    fixtures_dir().join("issues").join(name)
}

fn options(format: Format) -> ImportOptions {
    ImportOptions {
        format,
        repo: Some("minillm/minillm".into()),
        comments: None,
        git: None,
        szz: true,
    }
}

fn import(kb: &Path, file: &Path, options: &ImportOptions) -> ImportReport {
    let store = Store::open(kb).expect("open kb");
    issues::import(&store, file, options, &Silent).expect("import")
}

/// Import one format into a fresh fixture file.
fn imported(format: &str) -> (Fixture, PathBuf, ImportReport) {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let (file, mut opts) = match format {
        "github" => (dump("github.json"), options(Format::Auto)),
        "gh" => (dump("gh.json"), options(Format::Auto)),
        "jira" => (dump("jira.json"), options(Format::Auto)),
        "jsonl" => (dump("issues.jsonl"), options(Format::Auto)),
        other => panic!("unknown format {other}"),
    };
    if format == "github" {
        opts.comments = Some(dump("github-comments.json"));
    }
    let report = import(&kb, &file, &opts);
    assert_eq!(report.format, format);
    (fixture, kb, report)
}

fn records(kb: &Path) -> Vec<IssueRecord> {
    let store = Store::open(kb).unwrap();
    let read = store.read().unwrap();
    read.issues().unwrap().into_iter().map(|(_, r)| r).collect()
}

/// What every format must agree on: everything but the importer's name, the URL, the Jira
/// key, and the state history (`gh … list` has none).
fn comparable(mut r: IssueRecord) -> IssueRecord {
    r.source = String::new();
    r.url = None;
    r.key = None;
    r.state_history.clear();
    r
}

#[test]
fn fixture_links_match_the_expected_set_in_every_format() {
    let expected_path = dump("expected-links.txt");
    let (_f, kb, report) = imported("github");
    assert_eq!(
        (
            report.records,
            report.created,
            report.updated,
            report.issues,
            report.pull_requests
        ),
        (15, 7, 8, 12, 3),
        "{report:?}"
    );
    assert_eq!(
        report.stubs_filled, 8,
        "numbers referenced by commits before the import"
    );
    let lines = link_lines(&kb);
    let text = lines.join("\n") + "\n";
    if std::env::var_os("LORE_BLESS").is_some() {
        std::fs::write(&expected_path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).expect("expected-links.txt");
    assert_eq!(
        text, expected,
        "links differ from fixtures/issues/expected-links.txt (LORE_BLESS=1 to rewrite)"
    );
    let github_records: Vec<IssueRecord> = records(&kb).into_iter().map(comparable).collect();
    for format in ["gh", "jira", "jsonl"] {
        let (_f, kb, _) = imported(format);
        assert_eq!(
            link_lines(&kb),
            lines,
            "{format}: links differ from the github import"
        );
        let got: Vec<IssueRecord> = records(&kb).into_iter().map(comparable).collect();
        for (a, b) in github_records.iter().zip(&got) {
            assert_eq!(
                a, b,
                "{format}: issue #{} differs from the github import",
                a.number
            );
        }
        assert_eq!(github_records.len(), got.len());
    }
}

#[test]
fn key_links_of_the_fixture() {
    let (_f, kb, _) = imported("jsonl");
    let lines = link_lines(&kb);
    let has = |needle: &str| lines.iter().any(|l| l.starts_with(needle));
    // Closing keywords in commit messages.
    assert!(has("#7 -fixed_by-> 70a12a0 Fix double free in free_blocks [closing-keyword-commit 1.00] Fixes #7"));
    assert!(has(
        "#12 -fixed_by-> 9be6158 scheduler: handle an empty waiting queue [closing-keyword-commit"
    ));
    assert!(has("#20 -fixed_by-> 54ca553 Fix CUDA out of memory when the block table grows [closing-keyword-commit 1.00] Resolves: #20"));
    assert!(has("#24 -fixed_by-> 0ead1d3 Fix panic on empty input in the tokenizer (fixes #24) [closing-keyword-commit"));
    // A PR that fixes two issues, landed by a merge commit: both issues reach the commit.
    assert!(has(
        "#16 -fixed_by-> PR #18 [closing-keyword-pr 0.90] Closes #16 and fixes #17."
    ));
    assert!(has(
        "#17 -fixed_by-> PR #18 [closing-keyword-pr 0.90] Closes #16 and fixes #17."
    ));
    assert!(has("PR #18 -merged_as-> 622a505 Merge pull request #18 from dave/feature/kv-cache [merge-commit 1.00]"));
    assert!(has("#16 -fixed_by-> 622a505 Merge pull request #18 from dave/feature/kv-cache [via-pull-request 0.90] via #18"));
    assert!(has("#17 -fixed_by-> 622a505 Merge pull request #18 from dave/feature/kv-cache [via-pull-request 0.90] via #18"));
    // Squash titles.
    assert!(has("PR #15 -merged_as-> c9a24ed Support head size 256 in paged attention (#15) [squash-title 0.90]"));
    assert!(has("#14 -fixed_by-> c9a24ed Support head size 256 in paged attention (#15) [via-pull-request 0.90] via #15"));
    assert!(has("#19 -fixed_by-> 3a3d96c feat: add ALiBi slopes to paged attention (#21) [via-pull-request 0.90] via #21"));
    // Duplicates, references, a referenced issue that was never imported.
    assert!(has(
        "#22 -duplicate_of-> #7 [duplicate-text 1.00] Duplicate of #7"
    ));
    assert!(has(
        "#20 -references-> #3 (stub) [mention 0.50] Possibly related to #3."
    ));
    assert!(has("0e454a7 Revert \"refactor: split schedule() into prefill and decode phases\" -references-> #26 [mention 0.50]"));
    // Mentions from a traceback, a Rust panic, an nvcc error, paths and identifiers.
    assert!(has("#7 -mentions-> BlockAllocator.free_blocks in minillm/worker/memory_utils.py [traceback 0.90]"));
    assert!(has(
        "#24 -mentions-> rust/src/tokenizer.rs [rust-panic 0.90]"
    ));
    assert!(has(
        "#24 -mentions-> pre_tokenize in rust/src/tokenizer.rs [rust-panic 0.80]"
    ));
    assert!(has(
        "#25 -mentions-> csrc/attention.cu [compiler-error 0.90]"
    ));
    assert!(has(
        "#26 -mentions-> Scheduler.preempt in minillm/engine/scheduler.py [identifier 0.80]"
    ));
    assert!(has(
        "#17 -mentions-> minillm/worker/worker.py [path-in-text 0.80]"
    ));
    // SZZ: the fix of #7 blames the commit that dropped the refcount check.
    assert!(has("70a12a0 Fix double free in free_blocks -introduced_by-> 4f6d089 Speed up free_blocks by skipping the refcount check [szz 1.00] minillm/worker/memory_utils.py:30-31"));
    assert!(has("9be6158 scheduler: handle an empty waiting queue -introduced_by-> 0ffb021 Add FCFS scheduler [szz 1.00]"));
    assert!(has("0ead1d3 Fix panic on empty input in the tokenizer (fixes #24) -introduced_by-> 86e61ff Add Rust tokenizer helper [szz 1.00]"));
    // The fix of #20 only added lines: nothing to blame.
    assert!(!lines
        .iter()
        .any(|l| l.starts_with("54ca553") && l.contains("-introduced_by->")));
}

#[test]
fn reimport_changes_nothing_and_an_update_rederives_links() {
    let (f, kb, _) = imported("jsonl");
    let before = link_lines(&kb);
    let again = import(&kb, &dump("issues.jsonl"), &options(Format::Jsonl));
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 15));
    assert_eq!(link_lines(&kb), before);

    // #22 edited later: the duplicate comment is gone and a path appears.
    let text = std::fs::read_to_string(dump("issues.jsonl")).unwrap();
    let edited: String = text
        .lines()
        .filter(|l| l.contains("\"number\": 22"))
        .map(|l| {
            l.replace("Duplicate of #7", "Not a duplicate after all")
                .replace(
                    "2024-01-13T08:00:00Z\", \"closed_at",
                    "2024-02-01T08:00:00Z\", \"closed_at",
                )
                .replace(
                    "corrupts the free list.",
                    "corrupts the free list in minillm/worker/memory_utils.py.",
                )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = f.dir.path().join("update.jsonl");
    std::fs::write(&file, edited + "\n").unwrap();
    let report = import(&kb, &file, &options(Format::Jsonl));
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (0, 1, 0)
    );
    let after = link_lines(&kb);
    assert!(!after.iter().any(|l| l.starts_with("#22 -duplicate_of->")));
    assert!(after
        .iter()
        .any(|l| l.starts_with("#22 -mentions-> minillm/worker/memory_utils.py [path-in-text")));
    // Nothing else moved.
    let others = |v: &[String]| {
        v.iter()
            .filter(|l| !l.starts_with("#22 "))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&after), others(&before));
}

#[test]
fn state_history_facets_and_commit_classes() {
    let (_f, kb, _) = imported("github");
    let store = Store::open(&kb).unwrap();
    let read = store.read().unwrap();
    let issue = |n| {
        read.issue(read.issue_by_number(n).unwrap().unwrap())
            .unwrap()
    };
    let i20 = issue(20);
    let events: Vec<&str> = i20.state_history.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["closed", "reopened", "closed"]);
    assert_eq!(i20.comments.len(), 2);
    assert_eq!(i20.comments[1].author.as_deref(), Some("frank"));
    assert_eq!(
        i20.facets.error_types,
        ["CUDA out of memory", "RuntimeError"]
    );
    assert_eq!(i20.facets.models, ["meta-llama/Llama-3-8B"]);
    let env: std::collections::BTreeMap<_, _> = i20.facets.environment.iter().cloned().collect();
    assert_eq!(env.get("gpu").map(String::as_str), Some("NVIDIA H100 PCIe"));
    assert_eq!(env.get("cuda").map(String::as_str), Some("12.2"));
    assert_eq!(env.get("torch").map(String::as_str), Some("2.2.0"));
    assert_eq!(
        issue(16).facets.error_types,
        ["OutOfMemoryError", "CUDA out of memory"]
    );
    assert_eq!(issue(30).facets.error_types, ["ModuleNotFoundError"]);
    assert_eq!(issue(18).state, IssueState::Merged);
    assert!(issue(18).is_pr);
    assert_eq!(issue(22).state_reason.as_deref(), Some("duplicate"));
    assert!(issue(3).stub, "#3 is referenced but not in the dump");

    let classes: Vec<(String, CommitClass, bool)> = (0..read.commit_count().unwrap())
        .map(|local| {
            let id = lore::store::NodeId::new(lore::store::NodeKind::Commit, local);
            let c = read.commit(id).unwrap();
            let f = read
                .commit_facets(id)
                .unwrap()
                .expect("facets for every commit");
            (
                c.message.lines().next().unwrap().to_string(),
                f.class,
                f.is_bot,
            )
        })
        .collect();
    let class_of = |subject: &str| classes.iter().find(|c| c.0 == subject).unwrap().1;
    assert_eq!(class_of("Fix double free in free_blocks"), CommitClass::Fix);
    assert_eq!(class_of("Add FCFS scheduler"), CommitClass::Feature);
    assert_eq!(
        class_of("Add tests for the block allocator"),
        CommitClass::Test
    );
    assert_eq!(
        class_of("Document the scheduler in the README"),
        CommitClass::Docs
    );
    assert_eq!(
        class_of("Bump torch from 2.1.0 to 2.2.0"),
        CommitClass::Deps
    );
    assert_eq!(
        class_of("Move shared helpers into minillm.common"),
        CommitClass::Refactor
    );
    assert_eq!(
        class_of("refactor: split schedule() into prefill and decode phases"),
        CommitClass::Refactor
    );
    assert_eq!(
        class_of("Revert \"refactor: split schedule() into prefill and decode phases\""),
        CommitClass::Revert
    );
    assert!(
        classes
            .iter()
            .find(|c| c.0.starts_with("Bump torch"))
            .unwrap()
            .2,
        "dependabot is a bot"
    );
    // Every FixedBy edge from an issue to a commit is visible from the commit's side too.
    for (id, _) in read.issues().unwrap() {
        for e in read.edges_from(id, Rel::FixedBy).unwrap() {
            assert!(read
                .edges_to(e.dst, Rel::FixedBy)
                .unwrap()
                .iter()
                .any(|r| r.src == id));
        }
    }
}

#[test]
fn cli_import_and_show_issue() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let kb_s = kb.to_str().unwrap();
    let out = crate::common::lore(&[
        "--kb",
        kb_s,
        "--quiet",
        "import",
        "issues",
        dump("github.json").to_str().unwrap(),
        "--comments",
        dump("github-comments.json").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let out = crate::common::lore(&["--kb", kb_s, "show", "issue", "#7"]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let text = crate::common::stdout(&out);
    for needle in [
        "#7 Double free in free_blocks when sequences fork",
        "fixed by:",
        "commit 70a12a07e4 Fix double free in free_blocks  [closing-keyword-commit 1.00]",
        "\"Fixes #7\"",
        "duplicated by:",
        "#22 Blocks are freed twice after fork  [duplicate-text 1.00]",
        "introduced by (SZZ):",
        "commit 4f6d089a92 Speed up free_blocks by skipping the refcount check",
        "env:     cuda=12.1 gpu=NVIDIA A100-SXM4-80GB python=3.10.12 torch=2.1.0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let out = crate::common::lore(&["--kb", kb_s, "show", "issue", "99"]);
    assert!(!out.status.success());
    assert!(crate::common::stderr(&out).contains("no issue or pull request #99"));
    let out = crate::common::lore(&["--kb", kb_s, "show", "issue", "x7"]);
    assert!(crate::common::stderr(&out).contains("`x7` is not an issue number"));
}

/// A fix whose changed line was last touched by a reformatting commit listed in
/// `.git-blame-ignore-revs`: SZZ blames the commit before the reformat.
#[test]
fn szz_looks_through_ignored_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| crate::common::git_in(&repo, args);
    git(&["init", "-q", "-b", "main"]);
    let write = |text: &str| std::fs::write(repo.join("calc.py"), text).unwrap();
    write("def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s + 1\n");
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "Add total"]);
    let introduced = git(&["rev-parse", "HEAD"]).trim().to_string();
    // Reformat: every line's indentation changes, nothing else.
    write("def total(xs):\n  s = 0\n  for x in xs:\n    s += x\n  return s + 1\n");
    git(&["commit", "-q", "-am", "Reformat"]);
    let reformat = git(&["rev-parse", "HEAD"]).trim().to_string();
    std::fs::write(
        repo.join(".git-blame-ignore-revs"),
        format!("# formatting\n{reformat}\n"),
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "Ignore the reformat in blame"]);
    write("def total(xs):\n  s = 0\n  for x in xs:\n    s += x\n  return s\n");
    git(&["commit", "-q", "-am", "Fix off-by-one in total\n\nFixes #1"]);

    let kb = dir.path().join("t.lore");
    crate::common::ingest_stages(&kb, &repo, true, false);
    let lines = link_lines(&kb);
    let blamed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("-introduced_by->"))
        .collect();
    assert_eq!(blamed.len(), 1, "{lines:#?}");
    assert!(
        blamed[0].contains(&format!("-introduced_by-> {} Add total", &introduced[..7])),
        "{blamed:?}"
    );
    assert!(!blamed[0].contains(&reformat[..7]));
    assert!(
        blamed[0].contains("calc.py:5-5"),
        "the evidence names the line in the introducing commit: {blamed:?}"
    );
    let store = Store::open(&kb).unwrap();
    let read = store.read().unwrap();
    let fix = lore::store::NodeId::new(lore::store::NodeKind::Commit, 3);
    let blame = read.szz_blame(fix).unwrap().expect("the fix was blamed");
    assert_eq!((blame.blamed_lines, blame.ignored_revs), (1, 1));
}
