//! Bad issue dumps: clear errors that name the file, line and column, or counted skips, and
//! never a half-imported dump.

use std::path::{Path, PathBuf};

use lore::ingest::issues::{self, Format, ImportOptions, ImportReport, IssueError};
use lore::progress::Silent;
use lore::store::Store;

use crate::common::{content_counts, fixture_with_links, stats_json, Fixture};

fn options(format: Format, repo: Option<&str>) -> ImportOptions {
    ImportOptions {
        format,
        repo: repo.map(str::to_string),
        comments: None,
        git: None,
        szz: true,
    }
}

fn try_import(kb: &Path, file: &Path, options: &ImportOptions) -> Result<ImportReport, IssueError> {
    let store = Store::open(kb).expect("open kb");
    issues::import(&store, file, options, &Silent)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn malformed_json_names_file_line_and_column_and_writes_nothing() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let before = content_counts(&stats_json(&kb));
    let dir = fixture.dir.path();

    let file = write(
        dir,
        "broken.json",
        "[\n  {\"number\": 1, \"title\": \"a\"},\n  {\"number\": 2, \"title\": }\n]\n",
    );
    let err = try_import(&kb, &file, &options(Format::Auto, None)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}:3:", file.display())), "{msg}");
    assert!(msg.contains("malformed JSON"), "{msg}");

    let file = write(
        dir,
        "broken.jsonl",
        "{\"number\": 1, \"title\": \"a\"}\n{\"number\": 2, \"title\": \"b\"}\n{\"number\": 3, \"title\": \"c\n",
    );
    let err = try_import(&kb, &file, &options(Format::Jsonl, None)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3:", file.display())),
        "{err}"
    );

    let file = write(dir, "notes.txt", "these are not issues\n");
    let err = try_import(&kb, &file, &options(Format::Auto, None)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:1:", file.display())),
        "{err}"
    );

    assert_eq!(
        content_counts(&stats_json(&kb)),
        before,
        "nothing was written"
    );
}

#[test]
fn unknown_format_is_refused_with_the_keys_seen() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let file = write(
        fixture.dir.path(),
        "odd.json",
        "[{\"id\": 1, \"headline\": \"x\"}]",
    );
    let err = try_import(&kb, &file, &options(Format::Auto, None)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cannot tell the format"), "{msg}");
    assert!(
        msg.contains("headline") && msg.contains("--format"),
        "{msg}"
    );
}

#[test]
fn missing_fields_huge_bodies_and_bad_dates_are_counted() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let huge = "x".repeat(3 << 20);
    let lines = [
        serde_json::json!({"title": "no number"}).to_string(),
        serde_json::json!({"number": 101, "title": "huge", "body": huge, "created_at": "2024-02-01T00:00:00Z"}).to_string(),
        serde_json::json!({"number": 102, "title": "bad date", "created_at": "yesterday-ish"}).to_string(),
        serde_json::json!({"number": 103}).to_string(),
        serde_json::json!({"number": "104", "title": "number as a string", "state": "closed"}).to_string(),
    ];
    let file = write(fixture.dir.path(), "odd.jsonl", &(lines.join("\n") + "\n"));
    let report = try_import(&kb, &file, &options(Format::Jsonl, None)).expect("import");
    assert_eq!(report.records, 5);
    assert_eq!(report.created, 4);
    let skipped = &report.skipped.0;
    assert_eq!(skipped.get("missing_number"), Some(&1));
    assert_eq!(skipped.get("truncated_text"), Some(&1));
    assert_eq!(skipped.get("invalid_date"), Some(&1));
    let store = Store::open(&kb).unwrap();
    let read = store.read().unwrap();
    let get = |n| {
        read.issue(read.issue_by_number(n).unwrap().unwrap())
            .unwrap()
    };
    assert_eq!(get(101).body.len(), 1 << 20);
    assert_eq!(get(102).created_at, None);
    assert_eq!(get(103).title, "");
    assert_eq!(get(104).state.name(), "closed");
}

#[test]
fn a_dump_of_another_repository_warns() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let dump = crate::common::fixtures_dir().join("issues/github.json");
    let report = try_import(&kb, &dump, &options(Format::Github, Some("someone/else"))).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("15 record(s)")
            && report.warnings[0].contains("minillm/minillm")
    );
    // The CLI prints it and still succeeds; a malformed --repo is refused.
    let kb_s = kb.to_str().unwrap();
    let out = crate::common::lore(&[
        "--kb",
        kb_s,
        "import",
        "issues",
        dump.to_str().unwrap(),
        "--repo",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(crate::common::stderr(&out).contains("--repo `nope` is not of the form owner/name"));
    let out = crate::common::lore(&[
        "--kb",
        kb_s,
        "import",
        "issues",
        dump.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(crate::common::stderr(&out).contains("unknown format `csv`"));
}

#[test]
fn wrong_types_unknown_states_and_invalid_numbers_are_counted_by_reason() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let dump = serde_json::json!([
        {"number": 3, "title": 5, "labels": "bug", "state": "weird", "user": {"login": "a"}},
        {"number": 0, "title": "zero"},
        {"number": -5, "title": "negative"},
        {"number": 1.5, "title": "fraction"},
        {"number": "abc", "title": "words"},
        {"number": 60, "title": "epoch seconds", "created_at": 1704067200, "labels": [7, "ok"]},
        {"number": 61, "title": "space-separated", "created_at": "2024-01-05 10:00:00", "body": ["not", "text"]},
        {"title": "no number at all"}
    ]);
    let file = write(fixture.dir.path(), "typed.json", &dump.to_string());
    let report = try_import(&kb, &file, &options(Format::Github, None)).expect("import");
    let skipped = &report.skipped.0;
    assert_eq!(skipped.get("wrong_type:title"), Some(&1), "{skipped:?}");
    assert_eq!(skipped.get("wrong_type:body"), Some(&1), "{skipped:?}");
    assert_eq!(skipped.get("wrong_type:labels"), Some(&2), "{skipped:?}");
    assert_eq!(skipped.get("unknown_state"), Some(&1), "{skipped:?}");
    assert_eq!(skipped.get("invalid_number"), Some(&4), "{skipped:?}");
    assert_eq!(skipped.get("missing_number"), Some(&1), "{skipped:?}");
    assert_eq!(skipped.get("invalid_date"), None, "{skipped:?}");
    assert_eq!(report.created, 3);
    let store = Store::open(&kb).unwrap();
    let read = store.read().unwrap();
    let get = |n| {
        read.issue(read.issue_by_number(n).unwrap().unwrap())
            .unwrap()
    };
    let three = get(3);
    assert_eq!(three.title, "");
    assert_eq!(three.labels, vec!["bug".to_string()]);
    assert_eq!(get(60).created_at, Some(1_704_067_200));
    assert_eq!(get(60).labels, vec!["ok".to_string()]);
    assert_eq!(
        get(61).created_at,
        Some(1_704_448_800),
        "10:00 UTC, not midnight"
    );
}

#[test]
fn a_byte_order_mark_is_removed_and_counted_and_bad_utf8_is_located() {
    let fixture = Fixture::build();
    let kb = fixture_with_links(&fixture);
    let dir = fixture.dir.path();
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(br#"[{"number": 70, "title": "saved by a Windows editor"}]"#);
    let file = dir.join("bom.json");
    std::fs::write(&file, &bom).unwrap();
    let report = try_import(&kb, &file, &options(Format::Github, None)).expect("import");
    assert_eq!(report.skipped.0.get("byte_order_mark"), Some(&1));
    assert_eq!(report.created, 1);

    let before = content_counts(&stats_json(&kb));
    let mut latin1 = br#"{"number": 71, "title": "ok"}"#.to_vec();
    latin1.extend_from_slice(b"\n{\"number\": 72, \"title\": \"caf\xE9\"}\n");
    let file = dir.join("latin1.jsonl");
    std::fs::write(&file, &latin1).unwrap();
    let err = try_import(&kb, &file, &options(Format::Jsonl, None)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:2:29: not UTF-8 (byte 58 is 0xe9)",
            file.display()
        )),
        "{msg}"
    );
    assert_eq!(content_counts(&stats_json(&kb)), before, "nothing imported");
}
