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
