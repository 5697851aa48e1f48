//! Closing references as people write them, on a repository of commits whose messages hold
//! each form: the exact links, and links derived by older rules derived again on re-ingest.

use std::path::Path;

use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;
use lore::store::records::{EdgeDetail, EdgeMeta, Provenance};
use lore::store::Rel;

use crate::common::{git_in, link_lines, sha_bytes};

/// Messages and what lore must link from them (`[provenance confidence]`).
const MESSAGES: [&str; 9] = [
    "Track blocks\n\nFixes\r\nhttps://github.com/owner/repo/issues/361\r\n",
    "Batch fixes\n\nClose #589 #602",
    "More fixes\n\nCloses #307, #308 and #309",
    "Two keywords\n\nFixes #1, fixes #2",
    "A step\n\nDoes not fix #826 but it's a step.",
    "Maybe\n\nShould fix:\n#40",
    "Half\n\nThis does not fully resolve #41",
    "Part\n\nfixes part of #42",
    "Around\n\nRelated to #43",
];

fn repo_with_messages(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_in(&repo, &["init", "-q", "-b", "main"]);
    git_in(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/owner/repo.git",
        ],
    );
    for (i, message) in MESSAGES.iter().enumerate() {
        std::fs::write(repo.join("file.txt"), format!("version {i}\n")).unwrap();
        git_in(&repo, &["add", "-A"]);
        git_in(&repo, &["commit", "-q", "-m", message]);
    }
    repo
}

fn options() -> IngestOptions {
    IngestOptions {
        code: None,
        szz: false,
        index: false,
        ..IngestOptions::default()
    }
}

/// The link lines of one relation, without commit shas.
fn lines_of(kb: &Path, rel: &str) -> Vec<String> {
    let sha = regex::Regex::new(r"\b[0-9a-f]{7} ").unwrap();
    link_lines(kb)
        .into_iter()
        .filter(|l| l.contains(&format!("-{rel}->")))
        .map(|l| sha.replace_all(&l, "").into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn closing_references_as_people_write_them_give_exact_links() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_messages(dir.path());
    let kb_path = dir.path().join("k.lore");
    let (kb, _) = Kb::open_or_create(&kb_path).unwrap();
    kb.ingest(&repo, &options(), &Silent).unwrap();
    drop(kb);
    let fixed: Vec<String> = lines_of(&kb_path, "fixed_by");
    let want = [
        "#1 (stub) -fixed_by-> Two keywords [closing-keyword-commit 1.00] Fixes #1, fixes #2",
        "#2 (stub) -fixed_by-> Two keywords [closing-keyword-commit 1.00] Fixes #1, fixes #2",
        "#307 (stub) -fixed_by-> More fixes [closing-keyword-commit 1.00] Closes #307, #308 and #309",
        "#308 (stub) -fixed_by-> More fixes [closing-keyword-commit 1.00] Closes #307, #308 and #309",
        "#309 (stub) -fixed_by-> More fixes [closing-keyword-commit 1.00] Closes #307, #308 and #309",
        "#361 (stub) -fixed_by-> Track blocks [closing-keyword-commit 1.00] Fixes https://github.com/owner/repo/issues/361",
        "#40 (stub) -fixed_by-> Maybe [hedged-closing-keyword 0.60] [should] Should fix: #40",
        "#41 (stub) -fixed_by-> Half [hedged-closing-keyword 0.60] [partial] This does not fully resolve #41",
        "#42 (stub) -fixed_by-> Part [hedged-closing-keyword 0.60] [partial] fixes part of #42",
        "#589 (stub) -fixed_by-> Batch fixes [closing-keyword-commit 1.00] Close #589 #602",
        "#602 (stub) -fixed_by-> Batch fixes [closing-keyword-commit 1.00] Close #589 #602",
    ];
    assert_eq!(fixed, want);
    let references = lines_of(&kb_path, "references");
    assert_eq!(
        references,
        [
            "A step -references-> #826 (stub) [negated-closing-keyword 0.50] Does not fix #826 but it's a step.",
            "Around -references-> #43 (stub) [mention 0.50] Related to #43",
        ]
    );
}

#[test]
fn links_from_older_rules_are_derived_again() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_messages(dir.path());
    let fresh = dir.path().join("fresh.lore");
    let (kb, _) = Kb::open_or_create(&fresh).unwrap();
    kb.ingest(&repo, &options(), &Silent).unwrap();
    drop(kb);

    // A file as older rules left it: "Does not fix #826" linked as a fix, no list links, and
    // the rules version it was derived with.
    let old = dir.path().join("old.lore");
    std::fs::copy(&fresh, &old).unwrap();
    let kb = Kb::open(&old).unwrap();
    let step = git_in(&repo, &["log", "--format=%H", "-1", "--grep=A step"]);
    let batch = git_in(&repo, &["log", "--format=%H", "-1", "--grep=Batch fixes"]);
    kb.store()
        .write(|tx| -> Result<(), lore::store::StoreError> {
            let step = tx.commit_id(&sha_bytes(&step))?.unwrap();
            let batch = tx.commit_id(&sha_bytes(&batch))?.unwrap();
            let issue = tx.issue_or_stub(826, false)?;
            tx.remove_edge(step, Rel::References, issue)?;
            let claimed = EdgeMeta {
                provenance: Provenance::ClosingKeywordCommit,
                confidence: 1.0,
                evidence: Some("Does not fix #826 but it's a step.".into()),
                detail: EdgeDetail::None,
            };
            tx.add_edge(issue, Rel::FixedBy, step, &claimed)?;
            let second = tx.issue_or_stub(602, false)?;
            tx.remove_edge(second, Rel::FixedBy, batch)?;
            tx.set_meta("links.rules", &1u32.to_le_bytes())
        })
        .unwrap();
    drop(kb);
    assert_ne!(link_lines(&old), link_lines(&fresh));
    let expected = link_lines(&fresh);
    // The next import derives every text link again, commit messages' too.
    let by_import = dir.path().join("by-import.lore");
    std::fs::copy(&old, &by_import).unwrap();
    let dump = dir.path().join("one.jsonl");
    std::fs::write(
        &dump,
        "{\"number\": 43, \"title\": \"Around\", \"created_at\": \"2024-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let import = lore::ingest::issues::ImportOptions {
        format: lore::ingest::issues::Format::Jsonl,
        repo: None,
        comments: None,
        git: None,
        szz: false,
    };
    for file in [&fresh, &by_import] {
        let kb = Kb::open(file).unwrap();
        kb.import_issues(&dump, &import, false, &Silent).unwrap();
    }
    assert_eq!(link_lines(&by_import), link_lines(&fresh));
    // And so does the next ingest (nothing new in git).
    let kb = Kb::open(&old).unwrap();
    kb.ingest(&repo, &options(), &Silent).unwrap();
    drop(kb);
    assert_eq!(link_lines(&old), expected);
}

#[test]
fn a_link_written_twice_is_counted_once() {
    // One message claims #5 twice and mentions #6 twice: two edges, and the report says two.
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_in(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.txt"), "a\n").unwrap();
    git_in(&repo, &["add", "-A"]);
    git_in(
        &repo,
        &[
            "commit",
            "-q",
            "-m",
            "Fix it\n\nFixes #5\nAlso fixes #5, see #6 and #6",
        ],
    );
    let (kb, _) = Kb::open_or_create(&dir.path().join("k.lore")).unwrap();
    let report = kb.ingest(&repo, &options(), &Silent).unwrap();
    assert_eq!(report.links.unwrap().edges_added, 2);
}
