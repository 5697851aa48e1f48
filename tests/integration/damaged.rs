//! Damaged files: for seeded random corruptions of a fixture file (random pages, truncations,
//! zeroed ranges), every command exits with a clear one-line error or with the output of the
//! undamaged file, never a panic or an abort, and `lore check` reports every file whose
//! answers changed.

use std::path::Path;
use std::process::Output;

use crate::common::{lore, stderr, stdout};
use crate::queries::fixture_kb;

const PAGE: u64 = 4096;

/// xorshift64*: the corruptions are the same on every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One corruption of `bytes`, described for the failure message.
fn corrupt(bytes: &mut Vec<u8>, rng: &mut Seeded) -> String {
    let len = bytes.len() as u64;
    match rng.below(3) {
        0 => {
            let page = rng.below(len / PAGE);
            let start = (page * PAGE) as usize;
            for b in &mut bytes[start..start + PAGE as usize] {
                *b = rng.next() as u8;
            }
            format!("page {page} overwritten with random bytes")
        }
        1 => {
            let at = rng.below(len);
            bytes.truncate(at as usize);
            format!("truncated to {at} bytes")
        }
        _ => {
            let start = rng.below(len);
            let n = 1 + rng.below(3 * PAGE);
            let end = (start + n).min(len);
            bytes[start as usize..end as usize].fill(0);
            format!("bytes {start}..{end} zeroed")
        }
    }
}

const COMMANDS: &[&[&str]] = &[
    &["stats", "--json"],
    &[
        "query",
        "--format",
        "csv",
        "issues fixed_by commit touching memory_utils",
    ],
    &[
        "query",
        "--format",
        "csv",
        "commits where merge = false order by date desc limit 5",
    ],
    &[
        "query",
        "--format",
        "csv",
        "issues matching \"free\" using hybrid",
    ],
    &["show", "issue", "7"],
    &["locate", "7"],
];

fn run(kb: &Path, args: &[&str]) -> Output {
    let mut full = vec!["--kb", kb.to_str().unwrap(), "-q"];
    full.extend_from_slice(args);
    lore(&full)
}

/// A clear error: exit status 1 and an `error:` line, not a panic, an abort or a signal.
fn assert_clear_failure(out: &Output, what: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit {:?}\n{err}",
        out.status
    );
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(
        err.contains("lore check"),
        "{what}: the error does not name `lore check`: {err}"
    );
}

fn stats_without_size(out: &Output) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object_mut().unwrap().remove("file");
    v
}

#[test]
fn two_hundred_seeded_corruptions_give_clear_errors_or_true_answers() {
    let (fixture, kb) = fixture_kb();
    let pristine_bytes = std::fs::read(&kb).unwrap();
    let pristine: Vec<Output> = COMMANDS.iter().map(|c| run(&kb, c)).collect();
    for (c, out) in COMMANDS.iter().zip(&pristine) {
        assert!(
            out.status.success(),
            "{c:?} on the good file: {}",
            stderr(out)
        );
    }
    let check = run(&kb, &["check", "--json"]);
    assert!(
        check.status.success(),
        "the good file checks whole: {}",
        stdout(&check)
    );

    let mut rng = Seeded(SEED);
    let damaged = fixture.dir.path().join("damaged.lore");
    let (mut reported, mut answered_wrong, mut harmless) = (0, 0, 0);
    for case in 0..200 {
        let mut bytes = pristine_bytes.clone();
        let what = corrupt(&mut bytes, &mut rng);
        std::fs::write(&damaged, &bytes).unwrap();
        let check = run(&damaged, &["check", "--json"]);
        let check_says_damaged = match check.status.code() {
            Some(0) => false,
            Some(1) => true,
            other => panic!(
                "case {case} ({what}): check exited {other:?}: {}",
                stderr(&check)
            ),
        };
        if check_says_damaged {
            reported += 1;
        }
        let mut wrong = false;
        for (c, good) in COMMANDS.iter().zip(&pristine) {
            let out = run(&damaged, c);
            let label = format!("case {case} ({what}), lore {}", c.join(" "));
            if out.status.success() {
                let same = if c[0] == "stats" {
                    stats_without_size(&out) == stats_without_size(good)
                } else {
                    out.stdout == good.stdout
                };
                wrong |= !same;
            } else {
                assert_clear_failure(&out, &label);
                wrong = true;
            }
        }
        // No read command changed the damaged file.
        assert_eq!(
            std::fs::read(&damaged).unwrap(),
            bytes,
            "case {case} ({what}) was written to"
        );
        if wrong {
            answered_wrong += 1;
            assert!(
                check_says_damaged,
                "case {case} ({what}): commands failed or answered differently, but check says whole:\n{}",
                stdout(&check)
            );
        } else if !check_says_damaged {
            harmless += 1;
        }
    }
    eprintln!(
        "{reported} reported damaged, {answered_wrong} changed an answer, {harmless} harmless"
    );
    assert!(
        reported >= 100,
        "most corruptions of a 1 MiB file must be found: {reported}"
    );
}

const SEED: u64 = 0x1085_2026;

#[test]
fn a_text_index_that_reads_empty_after_being_built_names_lore_check() {
    let (_fixture, kb) = fixture_kb();
    // Damage that leaves the index's files unreadable while its records of what it indexed
    // remain: the segment files are gone.
    {
        let db = redb::Database::open(&kb).unwrap();
        let txn = db.begin_write().unwrap();
        let files: redb::TableDefinition<&str, &[u8]> =
            redb::TableDefinition::new("text_index_files");
        txn.delete_table(files).unwrap();
        let parts: redb::TableDefinition<(&str, u32), &[u8]> =
            redb::TableDefinition::new("text_index_file_parts");
        assert!(txn.delete_table(parts).unwrap());
        txn.commit().unwrap();
    }
    let out = run(
        &kb,
        &[
            "query",
            "--format",
            "csv",
            "issues matching \"free\" using hybrid",
        ],
    );
    assert_clear_failure(&out, "a text index that reads empty");
    assert!(stderr(&out).contains("records"), "{}", stderr(&out));
}

#[test]
fn an_issue_missing_from_the_number_index_is_damage_not_absence() {
    let (_fixture, kb) = fixture_kb();
    {
        let db = redb::Database::open(&kb).unwrap();
        let txn = db.begin_write().unwrap();
        let numbers: redb::TableDefinition<u64, u64> =
            redb::TableDefinition::new("issue_by_number");
        assert!(txn
            .open_table(numbers)
            .unwrap()
            .remove(7)
            .unwrap()
            .is_some());
        txn.commit().unwrap();
    }
    for args in [&["show", "issue", "7"][..], &["locate", "7"][..]] {
        let out = run(&kb, args);
        assert_clear_failure(&out, &args.join(" "));
        assert!(stderr(&out).contains("#7"), "{}", stderr(&out));
    }
    // The check the error points to finds the same damage.
    let check = run(&kb, &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("issue #7 is missing from the number lookup"),
        "{}",
        stdout(&check)
    );
    // A number that was never there is still an absent issue.
    let out = run(&kb, &["show", "issue", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no issue or pull request #999"),
        "{}",
        stderr(&out)
    );
}
