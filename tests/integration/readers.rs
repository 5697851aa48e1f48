//! Many readers, one writer: read commands open the lore file read-only, write nothing, run
//! side by side with each other and with a writer, and read a file they may not write.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lore::kb::Kb;
use lore::store::{Store, StoreError};
use sha2::{Digest, Sha256};

use crate::common::{lore, stderr, stdout, Fixture};
use crate::queries::{fixture_kb, fixture_kb_in};
use crate::repl::Session;

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn spawn_query(kb: &Path, query: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lore"))
        .env_remove("LORE_KB")
        .args([
            "--kb",
            kb.to_str().unwrap(),
            "query",
            "--format",
            "csv",
            query,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lore")
}

fn count(kb: &Path, query: &str) -> u64 {
    let csv = crate::common::query_csv(kb, query);
    csv.lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn eight_concurrent_queries_on_one_file_all_succeed() {
    let (_fixture, kb) = fixture_kb();
    let expected = (count(&kb, "issues count"), count(&kb, "commits count"));
    for round in 0..3 {
        let children: Vec<Child> = (0..8)
            .map(|i| {
                let q = if i % 2 == 0 {
                    "issues count"
                } else {
                    "commits count"
                };
                spawn_query(&kb, q)
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}, query {i}: {}",
                stderr(&out)
            );
            let n: u64 = stdout(&out).lines().nth(1).unwrap().trim().parse().unwrap();
            assert_eq!(n, if i % 2 == 0 { expected.0 } else { expected.1 });
        }
    }
}

#[test]
fn a_repl_open_while_lore_query_runs() {
    let (fixture, kb) = fixture_kb();
    let mut repl = Session::start(&kb, &fixture.dir.path().join("history"));
    let at = repl.wait_for("lore> ", 0);
    repl.send("issues count\r");
    let at = repl.wait_for("(1 row)", at);
    // The REPL holds the file open; other readers still run, and so does `stats`.
    assert_eq!(count(&kb, "issues count"), 13);
    let out = lore(&["--kb", kb.to_str().unwrap(), "stats", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let at = repl.wait_for("lore> ", at);
    repl.send("commits count\r");
    repl.wait_for("(1 row)", at);
    repl.send(".quit\r");
    let deadline = Instant::now() + Duration::from_secs(10);
    while repl.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the REPL did not leave on .quit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The documented behaviour: a reader beside a writer reads the writer's last commit, at once,
/// and sees each later commit in its next read.
#[test]
fn a_query_while_a_writer_holds_the_file_reads_the_last_commit() {
    let (_fixture, kb) = fixture_kb();
    let writer = Kb::open(&kb).unwrap();
    let issues_before = count(&kb, "issues count");
    // Inside an open write transaction that adds an issue, a reader sees the file without it.
    let issue = serde_json::json!([{
        "number": 90, "title": "Added while readers read", "body": "", "state": "open",
        "created_at": "2025-02-01T00:00:00Z", "user": {"login": "x"}, "labels": []
    }]);
    let dump = kb.with_file_name("one-issue.json");
    std::fs::write(&dump, issue.to_string()).unwrap();
    let seen_during = writer
        .store()
        .write(|_tx| -> Result<u64, StoreError> { Ok(count(&kb, "issues count")) })
        .unwrap();
    assert_eq!(seen_during, issues_before);
    let options = lore::ingest::issues::ImportOptions {
        format: lore::ingest::issues::Format::Github,
        repo: Some("minillm/minillm".into()),
        comments: None,
        git: None,
        szz: false,
    };
    writer
        .import_issues(&dump, &options, false, &lore::progress::Silent)
        .unwrap();
    // The writer is still open; the next read sees its commit.
    assert_eq!(count(&kb, "issues count"), issues_before + 1);
    assert_eq!(count(&kb, "issues where number = 90 count"), 1);
}

#[test]
fn queries_while_lore_ingest_writes_all_succeed() {
    let fixture = Fixture::build();
    let kb = fixture.kb();
    // A file with the history only; the ingest below adds code, SZZ links and indexes.
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "-q",
        "ingest",
        fixture.repo().to_str().unwrap(),
        "--no-code",
        "--no-szz",
        "--no-index",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let commits = count(&kb, "commits count");
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_lore"))
        .env_remove("LORE_KB")
        .args(["--kb", kb.to_str().unwrap(), "-q", "ingest"])
        .arg(fixture.repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut during = 0;
    let mut symbols_seen = Vec::new();
    loop {
        let running = ingest.try_wait().unwrap().is_none();
        assert_eq!(count(&kb, "commits count"), commits);
        symbols_seen.push(count(&kb, "symbols count"));
        let still_running = ingest.try_wait().unwrap().is_none();
        if running && still_running {
            during += 1;
        }
        if !still_running {
            break;
        }
    }
    let status = ingest.wait().unwrap();
    assert!(status.success(), "the ingest beside the readers failed");
    assert!(during > 0, "no query ran while the ingest wrote");
    // What readers saw only grew, commit by commit, to the final state.
    assert!(
        symbols_seen.windows(2).all(|w| w[0] <= w[1]),
        "{symbols_seen:?}"
    );
    assert_eq!(*symbols_seen.last().unwrap(), count(&kb, "symbols count"));
}

#[test]
fn read_commands_leave_the_files_bytes_unchanged() {
    let (_fixture, kb) = fixture_kb();
    let k = kb.to_str().unwrap();
    let before = sha256(&kb);
    for args in [
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["query", "issues fixed_by commit touching memory_utils"],
        vec!["query", "issues matching \"free\" using hybrid"],
        vec!["show", "issue", "7"],
        vec!["locate", "7"],
        vec!["eval", "locate"],
        vec!["duplicates"],
        vec!["adapters"],
    ] {
        let mut full = vec!["--kb", k, "-q"];
        full.extend(&args);
        let out = lore(&full);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(
            sha256(&kb),
            before,
            "`lore {}` changed the file",
            args.join(" ")
        );
    }
}

#[test]
fn a_second_writer_is_refused_clearly_while_readers_are_not() {
    let (_fixture, kb) = fixture_kb();
    let _writer = Store::open(&kb).unwrap();
    assert_eq!(count(&kb, "issues count"), 13);
    let out = lore(&["--kb", kb.to_str().unwrap(), "index"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is being written by another lore process"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_mode_444_file_is_queryable_by_an_unprivileged_user() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = Fixture::build();
    let kb = fixture_kb_in(&fixture);
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = shared.path().join("shared.lore");
    std::fs::copy(&kb, &ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let bin = env!("CARGO_BIN_EXE_lore");
    let args = [
        "--kb",
        ro.to_str().unwrap(),
        "query",
        "--format",
        "csv",
        "issues count",
    ];
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let out = if root {
        // Root may write any file; the test runs lore as `nobody`, who may not.
        let Ok(out) = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
            .args(args)
            .output()
        else {
            eprintln!("skipped: running as root without setpriv to drop privileges");
            return;
        };
        if stderr(&out).starts_with("setpriv:") {
            eprintln!(
                "skipped: setpriv cannot drop privileges here: {}",
                stderr(&out)
            );
            return;
        }
        out
    } else {
        Command::new(bin).args(args).output().unwrap()
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().nth(1), Some("13"));
    // Writing is refused with the file system's word, not a redb panic.
    let writer = Store::open(&ro);
    if !root {
        assert!(matches!(writer, Err(StoreError::Io { .. })));
    }
}
