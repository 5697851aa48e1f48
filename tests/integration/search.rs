//! The index stage end to end on the fixture, through the `lore` binary: incremental updates,
//! nothing rebuilt on reopen, vectors of two embedders kept apart, locate's time travel, the
//! evaluation, duplicates, and SIGKILL during indexing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lore::index::Indexes;
use lore::store::{NodeKind, Store};

use crate::bert::tiny_bert;
use crate::common::*;
use crate::queries::fixture_kb;

fn kb_args(kb: &Path) -> Vec<String> {
    vec!["--kb".into(), kb.to_str().unwrap().into()]
}

fn run_ok(kb: &Path, args: &[&str]) -> String {
    let mut all = kb_args(kb);
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = lore(&refs);
    assert!(
        out.status.success(),
        "lore {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn json(kb: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run_ok(kb, args)).expect("JSON output")
}

fn csv_column(kb: &Path, query: &str) -> Vec<String> {
    run_ok(kb, &["query", "--format", "csv", query])
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn updates_are_incremental_and_reopening_rebuilds_nothing() {
    let fixture = Fixture::build();
    let kb = fixture.kb();
    let repo = fixture.repo();
    let ingest = json(&kb, &["ingest", repo.to_str().unwrap(), "--json"]);
    // 32 commits, the 12 files and 32 symbols at HEAD.
    assert_eq!(ingest["index"]["text"]["added"], 76);
    // A second process finds everything indexed.
    let again = json(&kb, &["index", "--json"]);
    assert_eq!(again["text"]["added"], 0);
    assert_eq!(again["text"]["changed"], 0);
    assert_eq!(again["vectors"]["embedded"], 0);

    // Importing issues indexes them; the next query sees them.
    let dump = fixtures_dir().join("issues");
    let import = json(
        &kb,
        &[
            "import",
            "issues",
            dump.join("github.json").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(import["index"]["text"]["added"], 15);
    assert_eq!(
        csv_column(&kb, "issues matching \"out of memory\" limit 1"),
        ["#20"]
    );

    // An edited issue is re-indexed, not duplicated.
    let edited = fixture.dir.path().join("edit.jsonl");
    std::fs::write(
        &edited,
        r#"{"number": 25, "kind": "issue", "title": "Build fails with nvcc 12.4 on zanzibar hosts", "body": "", "state": "open", "created_at": "2024-01-29T09:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "comments": []}"#,
    )
    .unwrap();
    let import = json(
        &kb,
        &["import", "issues", edited.to_str().unwrap(), "--json"],
    );
    assert_eq!(import["index"]["text"]["changed"], 1);
    assert_eq!(import["index"]["text"]["added"], 0);
    assert_eq!(csv_column(&kb, "issues matching \"zanzibar\""), ["#25"]);
    assert_eq!(
        csv_column(&kb, "issues matching \"nvcc\" count"),
        ["1"],
        "the old text of #25 is gone from the index"
    );
}

#[test]
fn vectors_of_two_embedders_are_never_compared() {
    let (fixture, kb) = fixture_kb();
    let builtin = {
        let store = Store::open(&kb).unwrap();
        let indexes = Indexes::open(&store).unwrap();
        indexes.vectors.active_model().unwrap().unwrap()
    };
    assert!(builtin.starts_with("lore-cooccurrence-"));
    let model_dir = fixture.dir.path().join("tiny-bert");
    tiny_bert(&model_dir, 2);
    let report = json(
        &kb,
        &["embed", "--model", model_dir.to_str().unwrap(), "--json"],
    );
    let bert = report["model"].as_str().unwrap().to_string();
    assert!(bert.starts_with("bert-tiny-bert-"), "{bert}");
    // 15 issues and pull requests with text, 32 commits, 32 symbols at HEAD.
    assert_eq!(report["embedded"], 79);

    let store = Store::open(&kb).unwrap();
    let indexes = Indexes::open(&store).unwrap();
    assert_eq!(indexes.vectors.active_model().unwrap().unwrap(), bert);
    // Both models' vectors are stored, each under its own id.
    assert_eq!(
        indexes.vectors.count(&builtin).unwrap(),
        indexes.vectors.count(&bert).unwrap()
    );
    // Queries use the active model only: its dimension, its vectors.
    let read = store.read().unwrap();
    let issue = read.issue_by_number(7).unwrap().unwrap();
    let v = indexes.vector_of(issue).unwrap().unwrap();
    assert_eq!(v.len(), 32);
    let old = indexes
        .vectors
        .kind(&builtin, NodeKind::Issue)
        .unwrap()
        .get(issue.0)
        .unwrap()
        .to_vec();
    let err = indexes
        .nearest(NodeKind::Issue, &old, 5, &mut |_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dimensions"), "{err}");
    drop((read, indexes, store));
    let rows = csv_column(&kb, "issues similar to #7 limit 3");
    assert_eq!(rows.len(), 3);
    assert!(!rows.contains(&"#7".to_string()));
}

#[test]
fn locate_sees_only_what_existed_when_the_issue_was_opened() {
    let (_fixture, kb) = fixture_kb();
    // #7's traceback names memory_utils.py; the file is first.
    let found = json(&kb, &["locate", "7", "--json"]);
    assert_eq!(found[0]["path"], "minillm/worker/memory_utils.py");
    assert_eq!(found[0]["symbols"][0], "BlockAllocator.free_blocks");
    // #17 was fixed by adding kv_cache.py, which did not exist when #17 was opened.
    let paths = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let then = paths(&json(&kb, &["locate", "17", "--limit", "50", "--json"]));
    assert!(
        !then.contains(&"minillm/worker/kv_cache.py".to_string()),
        "{then:?}"
    );
    let now = paths(&json(
        &kb,
        &["locate", "17", "--limit", "50", "--now", "--json"],
    ));
    assert!(
        now.contains(&"minillm/worker/kv_cache.py".to_string()),
        "{now:?}"
    );
}

#[test]
fn eval_locate_replays_the_fixture_history() {
    let (_fixture, kb) = fixture_kb();
    let report = json(&kb, &["eval", "locate", "--json"]);
    assert_eq!(report["candidates"], 8);
    assert_eq!(report["scored"], 6);
    assert_eq!(report["skipped_new_files_only"], 2);
    let scores = report["scores"].as_array().unwrap();
    let names: Vec<&str> = scores
        .iter()
        .map(|s| s["ranker"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bm25", "vector", "hybrid"]);
    // Six scored issues: bm25 and vector each rank one fix's file second (top-1 5/6, MRR
    // (5 + 1/2)/6); hybrid ranks every one first.
    let exact: Vec<(f64, f64, f64)> = scores
        .iter()
        .map(|s| {
            (
                s["top1"].as_f64().unwrap(),
                s["top5"].as_f64().unwrap(),
                s["mrr"].as_f64().unwrap(),
            )
        })
        .collect();
    let (five_sixths, mrr) = (5.0 / 6.0, 5.5 / 6.0);
    for (got, want) in exact.iter().zip([
        (five_sixths, 1.0, mrr),
        (five_sixths, 1.0, mrr),
        (1.0, 1.0, 1.0),
    ]) {
        assert!(
            (got.0 - want.0).abs() < 1e-9 && got.1 == want.1 && (got.2 - want.2).abs() < 1e-9,
            "{exact:?}"
        );
    }
    // --since keeps only later issues.
    let later = json(&kb, &["eval", "locate", "--since", "2024-01-20", "--json"]);
    assert_eq!(later["candidates"], 3);
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "eval",
        "locate",
        "--since",
        "soon",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`soon` is not a date"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn duplicates_are_proposed_and_accepted_links_survive_reimport() {
    let (_fixture, kb) = fixture_kb();
    // #22 already says it duplicates #7; the candidate list shows that pair first.
    let of = json(&kb, &["duplicates", "--of", "22", "--json"]);
    assert_eq!(of[0]["of_number"], 7);
    assert_eq!(of[0]["linked"], true);
    let out = run_ok(&kb, &["duplicates", "--accept", "20:16"]);
    assert!(out.contains("#20 duplicate_of #16"), "{out}");
    let q = "issues duplicate_of issue #16 where provenance = similarity";
    assert_eq!(csv_column(&kb, q), ["#20"]);
    // Re-deriving #20's links from its text (a newer dump) keeps the accepted link.
    let dump = fixtures_dir().join("issues").join("github.json");
    let mut issues: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    for i in issues.as_array_mut().unwrap() {
        if i["number"] == 20 {
            i["updated_at"] = "2025-06-01T00:00:00Z".into();
            i["body"] = "Edited body.".into();
        }
    }
    let newer = kb.with_extension("json");
    std::fs::write(&newer, issues.to_string()).unwrap();
    run_ok(&kb, &["import", "issues", newer.to_str().unwrap()]);
    assert_eq!(csv_column(&kb, q), ["#20"]);
    let bad = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "duplicates",
        "--accept",
        "20-16",
    ]);
    assert!(
        stderr(&bad).contains("not of the form N:M"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn killing_ingest_or_index_leaves_a_usable_index() {
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::ingest_kill::big_repo(dir.path(), 2000);
    let repo_arg = repo.to_str().unwrap();
    let clean = dir.path().join("clean.lore");
    run_ok(&clean, &["-q", "ingest", repo_arg]);
    let query = "commits matching \"commit 1234\" limit 3";
    let expected = csv_column(&clean, query);
    assert_eq!(expected[0].len(), 10);

    // Kill `lore index` (after an ingest without it), then kill `lore ingest` itself (which
    // indexes at its end); each time the next run finishes the job and the index is exact.
    for command in ["index", "ingest"] {
        let mut killed_midway = false;
        for (attempt, delay_ms) in [30u64, 100, 250, 500, 900, 1500].into_iter().enumerate() {
            let kb = dir.path().join(format!("killed-{command}-{attempt}.lore"));
            let kb_arg = kb.to_str().unwrap();
            let args: Vec<&str> = if command == "index" {
                run_ok(&kb, &["-q", "ingest", repo_arg, "--no-index"]);
                vec!["--kb", kb_arg, "-q", "index"]
            } else {
                vec![
                    "--kb",
                    kb_arg,
                    "-q",
                    "ingest",
                    repo_arg,
                    "--batch-size",
                    "100",
                ]
            };
            let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.kill().unwrap();
            let status = child.wait().unwrap();
            killed_midway |= !status.success();
            if !kb.exists() {
                continue;
            }
            let report = if command == "index" {
                json(&kb, &["index", "--json"])
            } else {
                json(&kb, &["ingest", repo_arg, "--json"])["index"].clone()
            };
            let t = &report["text"];
            let total = t["added"].as_u64().unwrap()
                + t["changed"].as_u64().unwrap()
                + t["unchanged"].as_u64().unwrap();
            let when = format!("after `lore {command}` was killed at {delay_ms} ms");
            assert_eq!(total, 2000, "{when}: {report}");
            assert_eq!(csv_column(&kb, query), expected, "{when}");
            assert_eq!(
                csv_column(&kb, "commits matching \"commit\" count"),
                ["2000"],
                "no document twice {when}"
            );
            if killed_midway && attempt >= 2 {
                break;
            }
        }
        assert!(killed_midway, "no kill landed during `lore {command}`");
    }
}

#[test]
fn a_kill_during_embedding_leaves_vectors_and_graphs_that_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    // More documents than one batch of vectors (4,096 with the built-in embedder).
    let repo = worded_repo(dir.path(), 9000);
    let repo_arg = repo.to_str().unwrap();
    let clean = dir.path().join("clean.lore");
    run_ok(&clean, &["-q", "ingest", repo_arg]);
    // Subjects and scores, not shas: many commits share a message, and equal scores may come
    // back in either order.
    let similar =
        "commits similar to \"free the cache blocks after a fork\" limit 5 return commit.subject";
    let scores =
        "commits similar to \"free the cache blocks after a fork\" limit 5 return commit.score";
    let expected = csv_column(&clean, similar);
    let expected_scores = csv_column(&clean, scores);
    assert_eq!(expected.len(), 5);

    // The kill waits until lore says some vectors are written: it lands in the index stage,
    // after the text index and the embedder, between two batches of vectors.
    let kb = dir.path().join("killed.lore");
    run_ok(&kb, &["-q", "ingest", repo_arg, "--no-index"]);
    let log = dir.path().join("progress.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
        .args(["--kb", kb.to_str().unwrap(), "-q", "index"])
        .env("LORE_PROGRESS_LOG", &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let partly = |l: &str| {
            l.strip_prefix("embedding ")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(done, total)| done != total)
        };
        if said.lines().any(partly) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lore never started embedding: {said:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "lore finished before embedding: {said:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the kill landed while lore was embedding"
    );
    let phases = std::fs::read_to_string(&log).unwrap();
    assert!(phases.contains("text index"), "{phases}");
    assert!(
        !phases.contains("embedding 3000/3000"),
        "killed before the last batch: {phases}"
    );

    // The next run finishes the vectors and the graphs; the answers are the clean file's.
    let report = json(&kb, &["index", "--json"]);
    let v = &report["vectors"];
    // Vector batches are committed without a sync until the run's last, durable commit, so a
    // kill loses them and this run embeds everything again; what must hold is the result.
    let vectors = v["embedded"].as_u64().unwrap() + v["unchanged"].as_u64().unwrap();
    let clean_vectors = json(&clean, &["stats", "--json"])["index"]["vectors"]
        .as_u64()
        .unwrap();
    assert_eq!(vectors, clean_vectors, "{report}");
    assert_eq!(
        json(&kb, &["stats", "--json"])["index"]["vectors"],
        clean_vectors
    );
    assert_eq!(csv_column(&kb, similar), expected);
    assert_eq!(csv_column(&kb, scores), expected_scores);
    // Nothing left to do.
    let again = json(&kb, &["index", "--json"]);
    assert_eq!(again["vectors"]["embedded"], 0, "{again}");
}

/// A history of `n` commits whose messages are sentences over a small vocabulary, enough text
/// for the built-in embedder to learn from.
fn worded_repo(dir: &Path, n: usize) -> std::path::PathBuf {
    const WORDS: [&str; 24] = [
        "cache",
        "block",
        "scheduler",
        "fork",
        "free",
        "allocate",
        "kernel",
        "attention",
        "tokenizer",
        "prompt",
        "batch",
        "queue",
        "memory",
        "worker",
        "sequence",
        "decode",
        "prefill",
        "table",
        "page",
        "logits",
        "sampler",
        "stream",
        "engine",
        "config",
    ];
    fast_import_repo(dir, "worded", n, |i| {
        let w = |k: usize| WORDS[(i * 7 + k * 11 + i / 5) % WORDS.len()];
        (
            format!(
                "Fix the {} {} when the {} {}s the {}\n",
                w(0),
                w(1),
                w(2),
                w(3),
                w(4)
            ),
            format!("src/{}.txt", w(6)),
            format!("{} {}\n", w(5), i),
        )
    })
}
