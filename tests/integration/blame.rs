//! Line provenance and `lore blame`: git blame is the oracle, line for line; a pass killed
//! mid-way resumes to the same runs; one new commit adds its versions.

use std::process::{Command, Stdio};
use std::time::Duration;

use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;

use crate::common::*;

/// Per final line: (commit, line in that commit, path there), from porcelain output.
fn porcelain_lines(text: &[u8]) -> Vec<(String, u32, u32, String)> {
    let mut out = Vec::new();
    let mut path_of = std::collections::HashMap::new();
    for raw in text.split(|&b| b == b'\n') {
        if raw.starts_with(b"\t") {
            continue;
        }
        let line = String::from_utf8_lossy(raw);
        let words: Vec<&str> = line.split(' ').collect();
        if words.len() >= 3
            && words[0].len() == 40
            && words[1].parse::<u32>().is_ok()
            && words[2].parse::<u32>().is_ok()
        {
            out.push((
                words[0].to_string(),
                words[1].parse().unwrap(),
                words[2].parse().unwrap(),
                path_of.get(words[0]).cloned().unwrap_or_default(),
            ));
        } else if let Some(path) = line.strip_prefix("filename ") {
            let last = out.last_mut().expect("filename after a header");
            path_of.insert(last.0.clone(), path.to_string());
            last.3 = path.to_string();
        }
    }
    out
}

/// The output of `command`, which must succeed.
fn succeeding(command: &mut Command) -> Vec<u8> {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `git blame --porcelain [-L RANGE] COMMIT -- PATH`, without the `previous` lines (lore does
/// not print them).
fn git_porcelain_of(
    repo: &std::path::Path,
    commit: &str,
    path: &str,
    range: Option<&str>,
) -> Vec<u8> {
    let mut args = vec!["blame", "--porcelain"];
    if let Some(range) = range {
        args.extend(["-L", range]);
    }
    args.extend([commit, "--", path]);
    succeeding(Command::new("git").current_dir(repo).args(&args))
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"previous "))
        .flatten()
        .copied()
        .collect()
}

fn git_porcelain(repo: &std::path::Path, commit: &str, path: &str) -> Vec<u8> {
    git_porcelain_of(repo, commit, path, None)
}

/// The library's blame as porcelain-like tuples.
fn lore_lines(kb: &Kb, path: &str, commit: &str) -> Vec<(String, u32, u32, String)> {
    let blame = kb.blame(path, Some(commit)).unwrap();
    let mut out = Vec::new();
    for h in &blame.hunks {
        for i in 0..h.len {
            out.push((
                h.commit.clone(),
                h.orig_line + i,
                h.final_line + i,
                h.orig_path.clone(),
            ));
        }
    }
    out
}

#[test]
fn blame_agrees_with_git_on_every_file_of_every_fixture_commit() {
    let fixture = Fixture::build();
    let repo = fixture.repo();
    ingest_stages(&fixture.kb(), &repo, false, false);
    let kb = Kb::open_read_only(&fixture.kb()).unwrap();
    let commits = fixture.git(&["rev-list", "--branches", "--tags"]);
    let mut pairs = 0;
    let mut merges = 0;
    for commit in commits.lines() {
        let parents = fixture.git(&["rev-list", "--parents", "-n1", commit]);
        merges += usize::from(parents.split_whitespace().count() > 2);
        for path in fixture
            .git(&["ls-tree", "-r", "--name-only", commit])
            .lines()
        {
            let theirs = git_porcelain(&repo, commit, path);
            match kb.blame(path, Some(commit)) {
                Ok(_) => {}
                Err(e) => {
                    // Only binary files have no line origins.
                    assert!(e.to_string().contains("binary"), "{commit} {path}: {e}");
                    continue;
                }
            }
            // Each line's commit and line there; and the path there, which the porcelain
            // gives once per commit.
            let ours = lore_lines(&kb, path, commit);
            let theirs = porcelain_lines(&theirs);
            assert_eq!(ours.len(), theirs.len(), "{commit} {path}");
            for (o, t) in ours.iter().zip(&theirs) {
                assert_eq!(
                    (&o.0, o.1, o.2),
                    (&t.0, t.1, t.2),
                    "{commit} {path} line {}",
                    t.2
                );
                if !t.3.is_empty() {
                    assert_eq!(o.3, t.3, "{commit} {path} line {}", t.2);
                }
            }
            pairs += 1;
        }
    }
    assert!(pairs > 400, "{pairs} pairs");
    assert!(merges >= 1, "the fixture has a merge");
}

#[test]
fn cli_porcelain_is_gits_byte_for_byte() {
    let fixture = Fixture::build();
    let repo = fixture.repo();
    ingest_stages(&fixture.kb(), &repo, false, false);
    let kb = fixture.kb();
    let kb_arg = kb.to_str().unwrap();
    // memory_utils.py went through a rename and a merge; legacy_notes.txt is not UTF-8.
    for path in [
        "minillm/worker/memory_utils.py",
        "docs/legacy_notes.txt",
        "minillm/engine/scheduler.py",
        "README.md",
    ] {
        let out = lore(&["--kb", kb_arg, "blame", path, "--porcelain"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let theirs = git_porcelain(&repo, FIXTURE_HEAD, path);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&theirs),
            "{path}"
        );
    }
    // A range, byte for byte too; as JSON, with the details of exactly the commits its hunks
    // name; the human format; and clear errors.
    let path = "minillm/worker/memory_utils.py";
    let out = lore(&["--kb", kb_arg, "blame", path, "-L", "25,50", "--porcelain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs = git_porcelain_of(&repo, FIXTURE_HEAD, path, Some("25,50"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&theirs)
    );
    let out = lore(&["--kb", kb_arg, "blame", path, "-L", "25,50", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let named: std::collections::BTreeSet<&str> = json["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["commit"].as_str().unwrap())
        .collect();
    let described: std::collections::BTreeSet<&str> = json["commits"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(named, described);
    assert!(named.len() > 1, "{named:?}");
    for commit in json["commits"].as_object().unwrap().values() {
        assert!(
            commit["author_mail"].as_str().unwrap().contains('@'),
            "{commit}"
        );
    }
    let lines: u64 = json["hunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["len"].as_u64().unwrap())
        .sum();
    assert_eq!(lines, 26);
    let out = lore(&["--kb", kb_arg, "blame", "README.md", "-L", "2,3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    for (args, says) in [
        (
            vec!["blame", "no/such/file.py"],
            "no file `no/such/file.py`",
        ),
        (vec!["blame", "docs/logo.png"], "binary"),
        // Renamed to minillm/common/utils.py: the old path is gone at HEAD.
        (vec!["blame", "minillm/utils.py"], "does not exist at"),
        (
            vec!["blame", "README.md", "--at", "zzzz"],
            "unknown revision `zzzz`",
        ),
        (
            vec!["blame", "README.md", "-L", "9,2"],
            "START is after END",
        ),
        (vec!["blame", "README.md", "-L", "x"], "give START,END"),
    ] {
        let mut full = vec!["--kb", kb_arg];
        full.extend(args);
        let out = lore(&full);
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        assert!(stderr(&out).contains(says), "{full:?}: {}", stderr(&out));
    }
}

/// `git` in `repo` as `author` (name, email), committed by `committer`.
fn git_as(repo: &std::path::Path, author: (&str, &str), committer: (&str, &str), args: &[&str]) {
    let mut git = Command::new("git");
    git.current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", author.0)
        .env("GIT_AUTHOR_EMAIL", author.1)
        .env("GIT_COMMITTER_NAME", committer.0)
        .env("GIT_COMMITTER_EMAIL", committer.1)
        .env("GIT_AUTHOR_DATE", "@1735689600 +0100")
        .env("GIT_COMMITTER_DATE", "@1735693200 -0230")
        .args(args);
    succeeding(&mut git);
}

#[test]
fn people_are_shown_as_git_blame_shows_them() {
    // One address under two names that the mailmap does not cover (git shows each commit's
    // own name), an address it maps, and committers who are not the author.
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("people");
    std::fs::create_dir(&repo).unwrap();
    git_in(&repo, &["init", "-q", "-b", "main"]);
    let mut text = String::new();
    for (line, author, committer) in [
        (
            "one",
            ("ehuss", "eric@huss.org"),
            ("ehuss", "eric@huss.org"),
        ),
        (
            "two",
            ("Eric Huss", "eric@huss.org"),
            ("Eric Huss", "eric@huss.org"),
        ),
        (
            "three",
            ("Old Alias", "old@corp.example"),
            ("Bot", "bot@example.com"),
        ),
        (
            "four",
            ("ehuss", "eric@huss.org"),
            ("Old Alias", "OLD@corp.example"),
        ),
    ] {
        text.push_str(line);
        text.push('\n');
        std::fs::write(repo.join("a.txt"), &text).unwrap();
        git_as(&repo, author, committer, &["add", "a.txt"]);
        git_as(&repo, author, committer, &["commit", "-q", "-m", line]);
    }
    std::fs::write(
        repo.join(".mailmap"),
        "New Name <new@example.com> <old@corp.example>\n",
    )
    .unwrap();
    let someone = ("Someone", "someone@example.com");
    git_as(&repo, someone, someone, &["add", ".mailmap"]);
    git_as(&repo, someone, someone, &["commit", "-q", "-m", "mailmap"]);
    let kb = dir.path().join("people.lore");
    ingest_stages(&kb, &repo, false, false);
    let porcelain = || {
        lore(&[
            "--kb",
            kb.to_str().unwrap(),
            "blame",
            "a.txt",
            "--porcelain",
        ])
    };
    let out = porcelain();
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs = git_porcelain(&repo, "HEAD", "a.txt");
    let ours = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ours, String::from_utf8_lossy(&theirs));
    for shown in [
        "author ehuss",
        "author Eric Huss",
        "author New Name",
        "committer New Name",
    ] {
        assert!(ours.contains(&format!("{shown}\n")), "{shown}: {ours}");
    }
    // A file from before lore kept the mailmap shows people as earlier versions did: authors
    // as their author nodes (mapped, one name per address), committers the same when they
    // signed as the author and as the commits name them otherwise. The next ingest records
    // the mailmap.
    let store = lore::store::Store::open(&kb).unwrap();
    store
        .write(|tx| tx.remove_meta("git.mailmap").map(|had| assert!(had)))
        .unwrap();
    drop(store);
    let older = porcelain();
    let older = String::from_utf8_lossy(&older.stdout).into_owned();
    let people: Vec<&str> = older
        .lines()
        .filter(|l| l.starts_with("author ") || l.starts_with("committer "))
        .collect();
    assert_eq!(
        people,
        [
            "author ehuss",
            "committer ehuss",
            "author ehuss",
            "committer ehuss",
            "author New Name",
            "committer Bot",
            "author ehuss",
            "committer Old Alias",
        ]
    );
    ingest_stages(&kb, &repo, false, false);
    let again = porcelain();
    assert_eq!(String::from_utf8_lossy(&again.stdout), ours);
}

/// The runs of every file at the head and at one older commit, as JSON, for comparing files.
fn runs_of(kb_path: &std::path::Path, repo: &std::path::Path, older: &str) -> Vec<String> {
    let kb = Kb::open_read_only(kb_path).unwrap();
    let mut out = Vec::new();
    for at in ["HEAD", older] {
        let commit = git_in(repo, &["rev-parse", at]).trim().to_string();
        for path in git_in(repo, &["ls-tree", "-r", "--name-only", &commit]).lines() {
            let blame = kb.blame(path, Some(&commit)).unwrap();
            out.push(serde_json::to_string(&blame.hunks).unwrap());
        }
    }
    out
}

#[test]
fn killed_provenance_pass_resumes_to_the_same_runs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::ingest_kill::big_repo(dir.path(), 3000);
    let repo_arg = repo.to_str().unwrap();
    let older = git_in(&repo, &["rev-list", "--skip=1700", "-n1", "HEAD"])
        .trim()
        .to_string();
    let history_only = [
        "-q",
        "ingest",
        repo_arg,
        "--no-code",
        "--no-szz",
        "--no-index",
    ];

    let clean = dir.path().join("clean.lore");
    let out = lore(&[&["--kb", clean.to_str().unwrap()][..], &history_only[..]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = runs_of(&clean, &repo, &older);

    let mut landed = false;
    for attempt in 0..6 {
        let kb = dir.path().join(format!("killed-{attempt}.lore"));
        let kb_arg = kb.to_str().unwrap();
        let out = lore(
            &[
                &["--kb", kb_arg][..],
                &history_only[..],
                &["--no-provenance"],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let log = dir.path().join(format!("progress-{attempt}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
            .args([&["--kb", kb_arg][..], &history_only[..]].concat())
            .env("LORE_PROGRESS_LOG", &log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once a later batch is under way: the first 512 commits are committed or about
        // to be.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut finished = false;
        loop {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let mid = said.lines().any(|l| {
                l.strip_prefix("line provenance ")
                    .and_then(|r| r.split_once('/'))
                    .and_then(|(d, t)| Some((d.parse::<u64>().ok()?, t.parse::<u64>().ok()?)))
                    .is_some_and(|(d, t)| d >= 600 + 300 * attempt && d < t)
            });
            if mid {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{said:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
        if finished {
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // A writer recovers the file; how far the pass got is in its meta.
        let done = {
            let store = lore::store::Store::open(&kb).unwrap();
            let read = store.read().unwrap();
            read.meta(lore::ingest::provenance::DONE_KEY)
                .unwrap()
                .map(|v| u64::from_le_bytes(v.try_into().unwrap()))
                .unwrap_or(0)
        };
        assert_eq!(done % 512, 0, "whole batches only: {done}");
        let out = lore(&[&["--kb", kb_arg][..], &history_only[..]].concat());
        assert!(out.status.success(), "resume failed: {}", stderr(&out));
        assert_eq!(runs_of(&kb, &repo, &older), expected, "killed at {done}");
        if done > 0 && done < 3000 {
            landed = true;
            break;
        }
    }
    assert!(landed, "no kill landed between two provenance batches");
}

#[test]
fn one_new_commit_adds_only_its_own_versions() {
    let fixture = Fixture::build();
    let repo = fixture.repo();
    let kb_path = fixture.kb();
    let (kb, _) = Kb::open_or_create(&kb_path).unwrap();
    let options = IngestOptions {
        index: false,
        ..IngestOptions::default()
    };
    kb.ingest(&repo, &options, &Silent).unwrap();
    let before = kb.blame("minillm/engine/scheduler.py", None).unwrap();
    std::fs::write(
        repo.join("minillm/engine/scheduler.py"),
        std::fs::read_to_string(repo.join("minillm/engine/scheduler.py")).unwrap()
            + "\n# one more line\n",
    )
    .unwrap();
    fixture.git(&["commit", "-q", "-am", "scheduler: a note"]);
    let report = kb.ingest(&repo, &options, &Silent).unwrap();
    // SZZ rewrites the fixes' introduced_by edges from their blames: nothing changed, so
    // nothing is reported added or removed.
    let links = report.links.unwrap();
    assert_eq!(
        (links.introduced_by, links.edges_removed),
        (0, 0),
        "{links:?}"
    );
    let provenance = report.provenance.unwrap();
    assert_eq!(provenance.commits, 1);
    assert_eq!(provenance.versions, 1);
    let after = kb.blame("minillm/engine/scheduler.py", None).unwrap();
    assert_eq!(after.lines, before.lines + 2);
    let head = fixture.git(&["rev-parse", "HEAD"]).trim().to_string();
    let last = after.hunks.last().unwrap();
    assert_eq!((last.commit.as_str(), last.len), (head.as_str(), 2));
    // Every line before is blamed as it was.
    let lines = |b: &lore::kb::blame::Blame| -> Vec<(String, u32)> {
        b.hunks
            .iter()
            .flat_map(|h| (0..h.len).map(|i| (h.commit.clone(), h.orig_line + i)))
            .collect()
    };
    assert_eq!(lines(&after)[..before.lines as usize], lines(&before)[..]);
}
