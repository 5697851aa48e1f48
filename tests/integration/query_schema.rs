//! The query schema against the data and the grammar: every field reads a value somewhere on
//! the fixture, the grammar names exactly the schema's relations, every fixture query gives the
//! same rows under the naive and the optimized plan, and `return` projects fields.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use lore::kb::Kb;
use lore::query::schema::{edge_field_names, Kind, RELATIONS};
use lore::query::{Cache, QueryError, RunOptions};

use crate::common::fixtures_dir;
use crate::queries::{fixture_kb, lq_queries};

#[test]
fn every_field_reads_a_value_on_some_fixture_entity() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    // A field is read from its node kind's record, so a value on any kind over the same
    // records counts (`merged` is null on issues and set on pull requests).
    let mut seen: BTreeMap<(&str, &str), bool> = BTreeMap::new();
    for kind in Kind::ALL {
        let (plural, singular) = kind.words();
        let record = format!("{:?}", kind.node_kind());
        let record: &'static str = Box::leak(record.into_boxed_str());
        for field in kind.field_names() {
            // `score` exists on searched sets only.
            let source = if field == "score" {
                format!("{plural} matching \"memory\"")
            } else {
                plural.to_string()
            };
            let q = format!("{source} return {singular}.{field}");
            let rows = kb.query(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(rows.columns, vec![field.to_string()], "{q}");
            let found = rows.rows.iter().any(|r| !r[0].is_null());
            *seen.entry((record, field)).or_default() |= found;
        }
    }
    let mut null_everywhere: Vec<String> = seen
        .iter()
        .filter(|(_, found)| !**found)
        .map(|((record, field), _)| format!("{record}.{field}"))
        .collect();
    for field in edge_field_names() {
        let q = format!("issues fixed_by commit where {field} ~ \".\" count");
        let rows = kb.query(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        if rows.rows[0][0] == serde_json::json!(0) {
            null_everywhere.push(q);
        }
    }
    assert!(
        null_everywhere.is_empty(),
        "fields that read null on every fixture entity:\n{}",
        null_everywhere.join("\n")
    );
    assert_eq!(
        seen.len(),
        21 + 14 + 3 + 6 + 3 + 4,
        "every field of every record was read"
    );
}

#[test]
fn the_grammar_names_exactly_the_schema_relations() {
    let grammar = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grammar/lore.ebnf"),
    )
    .unwrap();
    let start = grammar.find("relation    =").expect("a relation rule");
    let rule = &grammar[start..start + grammar[start..].find(';').unwrap()];
    // The quoted words of the rule, comments left out.
    let mut named = BTreeSet::new();
    for line in rule.lines() {
        let code = line.split("(*").next().unwrap();
        for (i, part) in code.split('"').enumerate() {
            if i % 2 == 1 {
                named.insert(part.to_string());
            }
        }
    }
    let schema: BTreeSet<String> = RELATIONS.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(named, schema);
}

#[test]
fn every_fixture_query_gives_the_same_rows_under_the_naive_plan() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let naive = RunOptions {
        naive: true,
        ..RunOptions::default()
    };
    let mut cache = Cache::default();
    let (mut compared, mut anchored_elsewhere) = (0, 0);
    for query in lq_queries(&fixtures_dir().join("queries")) {
        let optimized = kb.query_with(&query, &mut cache, RunOptions::default());
        let scanned = kb.query_with(&query, &mut cache, naive);
        match (optimized, scanned) {
            (Ok(a), Ok(b)) => {
                if query.starts_with("explain") {
                    continue; // explain describes the plan, which differs by design
                }
                assert_eq!(a.columns, b.columns, "{query}");
                assert_eq!(a.rows, b.rows, "{query}: the plans disagree");
                compared += 1;
                anchored_elsewhere += usize::from(a.anchor != 0);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{query}"),
            (a, b) => panic!("{query}: optimized {:?}, naive {:?}", a.err(), b.err()),
        }
    }
    assert!(compared >= 80, "only {compared} queries compared");
    // The comparison means something only where the optimizer chose another anchor.
    assert!(
        anchored_elsewhere >= 20,
        "only {anchored_elsewhere} anchored past the source"
    );
}

#[test]
fn return_projects_fields_of_several_sets() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let rows = kb
        .query("issues fixed_by commit touching memory_utils return issue.number, commit.sha")
        .unwrap();
    assert_eq!(rows.columns, vec!["issue.number", "commit.sha"]);
    assert!(!rows.rows.is_empty());
    for r in &rows.rows {
        assert!(r[0].is_u64(), "a number, not a label: {r:?}");
        assert_eq!(r[1].as_str().unwrap().len(), 40, "the whole sha: {r:?}");
    }
    let rows = kb
        .query("symbol free_blocks return symbol.path, symbol.line")
        .unwrap();
    assert_eq!(rows.columns, vec!["path", "line"]);
    assert!(rows.rows.iter().all(|r| r[1].is_u64()), "{:?}", rows.rows);
}

#[test]
fn a_result_past_the_row_cap_is_an_error_that_names_the_cap() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let capped = RunOptions {
        max_rows: 3,
        ..RunOptions::default()
    };
    let err = kb
        .query_with("commits", &mut Cache::default(), capped)
        .unwrap_err();
    assert!(matches!(err, QueryError::TooManyRows { cap: 3 }), "{err}");
    assert!(err.to_string().contains("--max-rows"), "{err}");
    let ok = kb.query_with(
        "commits limit 2",
        &mut Cache::default(),
        RunOptions::default(),
    );
    assert_eq!(ok.unwrap().rows.len(), 2);
}

#[test]
fn schema_errors_come_before_any_search() {
    // A field error on a searched set is reported at the field, even without indexes.
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let err = kb
        .query("issues matching \"oom\" where colour = red")
        .unwrap_err();
    let d = err.diagnostic().expect("a diagnostic");
    assert!(matches!(err, QueryError::Schema(_)), "{err}");
    assert_eq!(&d.text[d.start..d.end], "colour");
}
