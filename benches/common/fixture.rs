//! The fixture's lore file (history, code, links, the GitHub issues), built in a directory, for
//! the benchmarks that run on it.

use std::path::Path;
use std::process::Command;

use lore::ingest::issues::{Format, ImportOptions};
use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;

/// Build the fixture repository under `dir`, ingest it and import its issues.
pub fn fixture_kb(dir: &Path) -> Kb {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = dir.join("repo");
    let status = Command::new("bash")
        .arg(root.join("fixtures/make-repo.sh"))
        .arg(&repo)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run make-repo.sh");
    assert!(status.success());
    let (kb, _) = Kb::open_or_create(&dir.join("fixture.lore")).unwrap();
    kb.ingest(&repo, &IngestOptions::default(), &Silent)
        .unwrap();
    kb.import_issues(
        &root.join("fixtures/issues/github.json"),
        &github_import(),
        true,
        &Silent,
    )
    .unwrap();
    kb
}

/// A GitHub issue import for the fixture's project.
pub fn github_import() -> ImportOptions {
    ImportOptions {
        format: Format::Github,
        repo: Some("minillm/minillm".into()),
        comments: None,
        git: None,
        szz: true,
    }
}
