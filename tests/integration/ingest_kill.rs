//! Killing `lore ingest` with SIGKILL at any moment leaves a file that opens, and resuming
//! gives exactly what a clean run gives.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A repository of `n` linear commits, each changing one of 20 files, built with fast-import.
pub fn big_repo(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    fast_import_repo(dir, "big", n, |i| {
        (
            format!("commit {i}\n"),
            format!("src/file_{}.txt", i % 20),
            format!("line {i}\n").repeat(1 + i % 7),
        )
    })
}

#[test]
fn kill_during_ingest_then_resume_matches_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let repo = big_repo(dir.path(), 3000);
    let repo_arg = repo.to_str().unwrap();

    let clean = dir.path().join("clean.lore");
    let out = lore(&["--kb", clean.to_str().unwrap(), "-q", "ingest", repo_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = content_counts(&stats_json(&clean));
    assert_eq!(expected["nodes"]["commits"], 3000);

    let mut saw_partial = false;
    for (attempt, delay_ms) in [40u64, 80, 120, 200, 300, 450, 700, 1000]
        .into_iter()
        .enumerate()
    {
        let kb = dir.path().join(format!("killed-{attempt}.lore"));
        let kb_arg = kb.to_str().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
            .args([
                "--kb",
                kb_arg,
                "-q",
                "ingest",
                repo_arg,
                "--batch-size",
                "25",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        if !kb.exists() {
            continue;
        }
        // Readers refuse the file a killed writer left, and say how to recover it; `lore
        // check` shows on a copy that recovery works, and `--repair` recovers it.
        let out = lore(&["--kb", kb_arg, "stats"]);
        if !out.status.success() {
            assert!(
                stderr(&out).contains("lore check --repair"),
                "{}",
                stderr(&out)
            );
            let check = lore(&["--kb", kb_arg, "check"]);
            assert_eq!(check.status.code(), Some(3), "{}", stdout(&check));
            let repair = lore(&["--kb", kb_arg, "check", "--repair"]);
            assert!(repair.status.success(), "{}", stdout(&repair));
        }
        // The file opens, and holds whole batches only.
        let partial = stats_json(&kb);
        let commits = partial["nodes"]["commits"].as_u64().unwrap();
        assert_eq!(partial["edges"]["touches"].as_u64().unwrap(), commits);
        if commits > 0 && commits < 3000 {
            saw_partial = true;
            assert!(partial["watermarks"].as_object().unwrap().is_empty());
        }
        let out = lore(&["--kb", kb_arg, "-q", "ingest", repo_arg]);
        assert!(out.status.success(), "resume failed: {}", stderr(&out));
        assert_eq!(
            content_counts(&stats_json(&kb)),
            expected,
            "after kill at {delay_ms} ms"
        );
        if saw_partial {
            // git is the oracle for every resumed commit's line stats.
            let mut args = vec!["log", "--branches", "--tags", "--diff-merges=first-parent"];
            args.extend_from_slice(lore::ingest::git::numstat::GIT_LOG_ARGS);
            let git = lore::ingest::git::numstat::parse(&git_in(&repo, &args));
            assert_eq!(git.len(), 3000);
            assert_eq!(
                crate::ingest_fixture::lore_numstat(&kb),
                git,
                "after kill at {delay_ms} ms"
            );
            break;
        }
    }
    assert!(saw_partial, "no kill landed in the middle of an ingest");
}
