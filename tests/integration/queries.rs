//! `fixtures/queries/*.lq`: every query with its exact answer on the fixture, run through
//! `lore query --format csv`; and every query that parses prints back to the same AST.

use std::path::{Path, PathBuf};

use lore::ingest::issues::{Format, ImportOptions};
use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;

use crate::common::{fixtures_dir, lore, Fixture};

/// One block of a `.lq` file.
struct Case {
    query: String,
    expected: Vec<String>,
}

fn parse_lq(text: &str) -> (String, Vec<Case>) {
    let mut header = String::new();
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(q) = line.strip_prefix("query: ") {
            cases.push(Case {
                query: q.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(case) = cases.last_mut() {
            if !line.is_empty() {
                case.expected.push(line.trim_end().to_string());
            }
        } else {
            header.push_str(line);
            header.push('\n');
        }
    }
    (header, cases)
}

/// The fixture with history, code, links, the GitHub issue dump and the indexes, built through
/// [`Kb`] as `lore ingest` and `lore import issues` do.
pub fn fixture_kb() -> (Fixture, PathBuf) {
    let fixture = Fixture::build();
    let path = fixture_kb_in(&fixture);
    (fixture, path)
}

/// [`fixture_kb`]'s file for a fixture already built.
pub fn fixture_kb_in(fixture: &Fixture) -> PathBuf {
    let path = fixture.kb();
    let (kb, _) = Kb::open_or_create(&path).unwrap();
    kb.ingest(&fixture.repo(), &IngestOptions::default(), &Silent)
        .expect("ingest");
    let dump = fixtures_dir().join("issues");
    let options = ImportOptions {
        format: Format::Github,
        repo: Some("minillm/minillm".into()),
        comments: Some(dump.join("github-comments.json")),
        git: None,
        szz: true,
    };
    kb.import_issues(&dump.join("github.json"), &options, true, &Silent)
        .expect("import");
    path
}

fn answer(kb: &Path, query: &str) -> Vec<String> {
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "query",
        "--format",
        "csv",
        query,
    ]);
    if out.status.success() {
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    } else {
        // The message and the query with a caret under the token, as the user sees them.
        String::from_utf8(out.stderr)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("queries failed"))
            .map(|l| l.trim_end().to_string())
            .collect()
    }
}

#[test]
fn fixture_queries_give_their_expected_answers() {
    let (_fixture, kb) = fixture_kb();
    let dir = fixtures_dir().join("queries");
    let bless = std::env::var_os("LORE_BLESS").is_some();
    let mut total = 0;
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lq"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let (header, cases) = parse_lq(&text);
        let mut rewritten = header.clone();
        for case in &cases {
            total += 1;
            let got = answer(&kb, &case.query);
            if got != case.expected {
                failures.push(format!(
                    "{}: {}\n  expected: {:?}\n  got:      {:?}",
                    file.file_name().unwrap().to_string_lossy(),
                    case.query,
                    case.expected,
                    got
                ));
            }
            rewritten.push_str(&format!("query: {}\n", case.query));
            for line in &got {
                rewritten.push_str(line);
                rewritten.push('\n');
            }
            rewritten.push('\n');
        }
        if bless {
            std::fs::write(&file, rewritten.trim_end().to_string() + "\n").unwrap();
        }
    }
    assert!(total >= 40, "only {total} fixture queries");
    assert!(
        failures.is_empty(),
        "{} of {total} queries differ (LORE_BLESS=1 rewrites):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every query of the `.lq` files in `dir`.
pub fn lq_queries(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lq"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| parse_lq(&std::fs::read_to_string(f).unwrap()).1)
        .map(|case| case.query)
        .collect()
}

#[test]
fn every_fixture_query_round_trips_through_its_printed_form() {
    let dir = fixtures_dir().join("queries");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "lq") {
            continue;
        }
        let (_, cases) = parse_lq(&std::fs::read_to_string(&path).unwrap());
        for case in cases {
            let Ok(q) = lore::query::parser::parse(&case.query) else {
                continue;
            };
            let printed = q.to_string();
            let again = lore::query::parser::parse(&printed)
                .unwrap_or_else(|e| panic!("{} printed as {printed}: {e}", case.query));
            assert_eq!(again.to_string(), printed, "{}", case.query);
            parsed += 1;
        }
    }
    assert!(parsed >= 40, "only {parsed} queries parsed");
}
