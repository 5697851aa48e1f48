//! Shared helpers: build the fixture repository, run the `lore` binary, read stats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lore::ingest::git::{self, GitIngestOptions, GitIngestReport};
use lore::kb::{IngestOptions, IngestReport, Kb};
use lore::progress::Silent;
use lore::store::Store;
use tempfile::TempDir;

/// The tip of `main` in the fixture repository. It only changes when the fixture script does.
pub const FIXTURE_HEAD: &str = "383ae8b52a2fff2e69546a11ca7f39931e6f995c";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fresh copy of the fixture repository in a temporary directory.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn build() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("bash")
            .arg(fixtures_dir().join("make-repo.sh"))
            .arg(dir.path().join("repo"))
            .status()
            .expect("run make-repo.sh");
        assert!(status.success(), "make-repo.sh failed");
        Fixture { dir }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn kb(&self) -> PathBuf {
        self.dir.path().join("test.lore")
    }

    /// A mirror clone of the fixture repository (what `lore watch` and `lore serve --repo-path`
    /// keep current), next to it.
    pub fn mirror(&self) -> PathBuf {
        let mirror = self.dir.path().join("mirror.git");
        let status = Command::new("git")
            .args(["clone", "-q", "--mirror"])
            .arg(self.repo())
            .arg(&mirror)
            .status()
            .expect("run git clone");
        assert!(status.success(), "git clone --mirror failed");
        mirror
    }

    /// Run git in the fixture repository with the fixture's isolated, fixed environment.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.repo(), args)
    }
}

pub fn git_in(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "@1735689600 +0000")
        .env("GIT_COMMITTER_DATE", "@1735689600 +0000")
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git output is UTF-8")
}

/// Ingest through the library with default options.
pub fn ingest(kb: &Path, repo: &Path) -> GitIngestReport {
    let (store, _) = Store::open_or_create(kb).expect("open kb");
    git::ingest(&store, repo, &GitIngestOptions::default(), &Silent).expect("ingest")
}

pub fn lore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lore"))
        .env_remove("LORE_KB")
        .args(args)
        .output()
        .expect("run lore")
}

/// `lore query --format csv QUERY` on `kb`, which must succeed; its output.
pub fn query_csv(kb: &Path, query: &str) -> String {
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "query",
        "--format",
        "csv",
        query,
    ]);
    assert!(out.status.success(), "{query}: {}", stderr(&out));
    stdout(&out)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `lore stats --json` of `kb`, parsed.
pub fn stats_json(kb: &Path) -> serde_json::Value {
    let out = lore(&["--kb", kb.to_str().unwrap(), "stats", "--json"]);
    assert!(out.status.success(), "lore stats failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("stats --json is JSON")
}

/// The parts of the stats that describe content (not size or watermark times).
pub fn content_counts(stats: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "nodes": stats["nodes"],
        "edges": stats["edges"],
        "counters": stats["counters"],
        "watermarks": stats["watermarks"],
    })
}

/// Ingest through [`Kb`] with the stages after history turned on or off.
pub fn ingest_stages(kb: &Path, repo: &Path, links: bool, index: bool) -> IngestReport {
    let (kb, _) = Kb::open_or_create(kb).expect("open kb");
    let options = IngestOptions {
        links,
        index,
        ..IngestOptions::default()
    };
    kb.ingest(repo, &options, &Silent).expect("ingest")
}

/// Ingest history and then code (no links, no indexes).
pub fn ingest_with_code(kb: &Path, repo: &Path) -> lore::ingest::code::CodeIngestReport {
    let report = ingest_stages(kb, repo, false, false);
    report.code.expect("the code stage ran")
}

/// Raw object id bytes from 40 hex digits.
pub fn sha_bytes(hex: &str) -> Vec<u8> {
    let hex = hex.trim();
    (0..40)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The fixture repository ingested with history, code and commit links, in a fresh file.
pub fn fixture_with_links(fixture: &Fixture) -> PathBuf {
    let kb = fixture.kb();
    ingest_stages(&kb, &fixture.repo(), true, false);
    kb
}

/// One line per node, as link listings name it.
pub fn node_label(read: &lore::store::ReadTx, id: lore::store::NodeId) -> String {
    use lore::store::{hex, NodeKind};
    match id.kind() {
        Some(NodeKind::Commit) => {
            let c = read.commit(id).unwrap();
            format!(
                "{} {}",
                &hex(&c.sha)[..7],
                c.message.lines().next().unwrap_or("")
            )
        }
        Some(NodeKind::Issue) => {
            let i = read.issue(id).unwrap();
            let stub = if i.stub { " (stub)" } else { "" };
            format!("{}#{}{stub}", if i.is_pr { "PR " } else { "" }, i.number)
        }
        Some(NodeKind::File) => read.string(read.file(id).unwrap().path).unwrap(),
        Some(NodeKind::Symbol) => {
            let s = read.symbol(id).unwrap();
            format!(
                "{} in {}",
                read.string(s.qualified_name).unwrap(),
                read.string(read.file(s.file).unwrap().path).unwrap()
            )
        }
        _ => id.to_string(),
    }
}

/// Every link the links stage derives (issue, PR and commit relations), one sorted line each:
/// `source -relation-> target [provenance confidence] evidence`.
pub fn link_lines(kb: &Path) -> Vec<String> {
    use lore::store::{NodeId, NodeKind, Rel};
    let store = Store::open(kb).expect("open kb");
    let read = store.read().unwrap();
    let mut sources: Vec<NodeId> = read
        .issues()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for local in 0..read.commit_count().unwrap() {
        sources.push(NodeId::new(NodeKind::Commit, local));
    }
    let mut out = Vec::new();
    for src in sources {
        for rel in [
            Rel::FixedBy,
            Rel::References,
            Rel::DuplicateOf,
            Rel::Mentions,
            Rel::MergedAs,
            Rel::IntroducedBy,
        ] {
            for e in read.edges_from(src, rel).unwrap() {
                out.push(format!(
                    "{} -{}-> {} [{} {:.2}] {}",
                    node_label(&read, src),
                    rel.name(),
                    node_label(&read, e.dst),
                    e.meta.provenance.name(),
                    e.meta.confidence,
                    e.meta.evidence.as_deref().unwrap_or("")
                ));
            }
        }
    }
    out.sort();
    out
}

/// A repository `name` in `dir` of `n` linear commits built with `git fast-import`: commit `i`
/// has the message, path and content `commit(i)` gives.
pub fn fast_import_repo(
    dir: &Path,
    name: &str,
    n: usize,
    commit: impl Fn(usize) -> (String, String, String),
) -> PathBuf {
    use std::io::Write;
    let repo = dir.join(name);
    std::fs::create_dir_all(&repo).unwrap();
    git_in(&repo, &["init", "-q", "-b", "main"]);
    let mut stream = String::new();
    for i in 0..n {
        let (message, path, content) = commit(i);
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{}\ncommitter T <t@example.com> {} +0000\ndata {}\n{message}",
            i + 1,
            1_700_000_000 + i,
            message.len()
        ));
        if i > 0 {
            stream.push_str(&format!("from :{i}\n"));
        }
        stream.push_str(&format!(
            "M 644 inline {path}\ndata {}\n{content}\n",
            content.len()
        ));
    }
    let mut child = Command::new("git")
        .current_dir(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    repo
}
