//! From result nodes to example contexts, one builder per kind of example. Each context holds
//! only what existed when the example's input did: an issue as it was opened, the comments
//! written before its fix's first commit, and code as it stood at the fix's parent.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::context::{cut_around, Context};
use super::quality::Quality;
use super::source::{FileDiff, GitSource};
use super::templates::Builder;
use super::ExportError;
use crate::index::locate::{issue_text, Locator, Ranker};
use crate::index::Indexes;
use crate::store::records::{CommitRecord, IssueRecord};
use crate::store::{hex, NodeId, NodeKind, ReadTx, Rel};

/// One example before rendering: its context, and what export needs to know about it.
#[derive(Debug, Clone)]
pub struct Draft {
    /// `issue#7`, `commit:<sha>`, `symbol:<path>::<qname>`.
    pub id: String,
    /// When the example's input existed (an issue's creation, a commit's author time).
    pub created_at: i64,
    /// Every node the example was made from, as ids like `issue#7`, `commit:<sha>`, `file:<path>`.
    pub sources: BTreeSet<String>,
    /// Examples of one group land on the same side of a split (an issue and its duplicates).
    pub group: String,
    pub context: Value,
    pub quality: Quality,
    /// SWE-bench's fields, for `issue_fix`.
    pub swebench: Option<Value>,
}

/// Why a node gave no example (counted in the manifest).
pub type Skip = &'static str;

/// Builds drafts for one template over one snapshot.
pub struct Drafter<'a> {
    pub read: &'a ReadTx,
    pub git: &'a GitSource,
    pub repo: String,
    pub context: Context,
    pub indexes: Option<&'a Indexes>,
}

/// A fix commit of an issue with the confidence of the link that named it.
struct Fix {
    id: NodeId,
    record: CommitRecord,
    confidence: f32,
}

impl Drafter<'_> {
    /// The drafts of one node: one example, or (for `duplicate`) one per pair.
    pub fn draft(
        &self,
        builder: Builder,
        node: NodeId,
    ) -> Result<Result<Vec<Draft>, Skip>, ExportError> {
        let one = match builder {
            Builder::IssueFix => self.issue_fix(node)?,
            Builder::IssueAnswer => self.issue_answer(node)?,
            Builder::ClassifyIssue => self.classify_issue(node)?,
            Builder::CommitMessage => self.commit_message(node)?,
            Builder::CodeQa => self.code_qa(node)?,
            Builder::Duplicate => return self.duplicate_pairs(node),
        };
        Ok(one.map(|d| vec![d]))
    }

    /// An issue with each issue it duplicates ("yes"), and as many hard negatives ("no"): the
    /// nearest issues by vector that were opened before it and are not in its duplicate group.
    fn duplicate_pairs(&self, node: NodeId) -> Result<Result<Vec<Draft>, Skip>, ExportError> {
        let (issue, created) = match self.open_issue(node)? {
            Ok(v) => v,
            Err(skip) => return Ok(Err(skip)),
        };
        let mut originals = Vec::new();
        for d in self.read.targets_of(node, Rel::DuplicateOf)? {
            let other = self.read.issue(d)?;
            if !other.stub {
                originals.push(other);
            }
        }
        if originals.is_empty() {
            return Ok(Err("issue marked a duplicate of no imported issue"));
        }
        let indexes = self.indexes.ok_or(ExportError::DuplicateNeedsIndexes)?;
        let group = self.group_members(node)?;
        let Some(vector) = indexes.vector_of(node)? else {
            return Ok(Err("issue without a vector (run `lore index`)"));
        };
        let read = self.read;
        let mut accept = |n: NodeId| {
            !group.contains(&n)
                && read
                    .issue(n)
                    .is_ok_and(|i| !i.stub && i.created_at.is_some_and(|t| t < created))
        };
        let near = indexes.nearest(NodeKind::Issue, &vector, originals.len(), &mut accept)?;
        let mut pairs: Vec<(IssueRecord, bool)> =
            originals.into_iter().map(|o| (o, true)).collect();
        for (n, _) in near {
            pairs.push((self.read.issue(n)?, false));
        }
        let group_name = self.group_of(node, issue.number)?;
        let quality = self.issue_quality(&issue);
        let drafts = pairs
            .into_iter()
            .map(|(other, duplicate)| Draft {
                id: format!("pair:#{}:#{}", issue.number, other.number),
                created_at: created,
                sources: BTreeSet::from([
                    format!("issue#{}", issue.number),
                    format!("issue#{}", other.number),
                ]),
                group: group_name.clone(),
                context: json!({
                    "repo": self.repo,
                    "issue": self.issue_json(&issue),
                    "other": self.issue_json(&other),
                    "duplicate": duplicate,
                }),
                quality,
                swebench: None,
            })
            .collect();
        Ok(Ok(drafts))
    }

    /// The issue and every issue linked to it by `duplicate_of`, either way, transitively.
    fn group_members(&self, node: NodeId) -> Result<BTreeSet<NodeId>, ExportError> {
        let mut seen = BTreeSet::from([node]);
        let mut todo = vec![node];
        while let Some(n) = todo.pop() {
            let linked = self
                .read
                .targets_of(n, Rel::DuplicateOf)?
                .into_iter()
                .chain(self.read.sources_of(n, Rel::DuplicateOf)?);
            for m in linked {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        Ok(seen)
    }

    /// The commits that fixed `issue` (directly, or as the merge of a fixing pull request),
    /// oldest first.
    fn fixes(&self, issue: NodeId) -> Result<Vec<Fix>, ExportError> {
        let mut fixes: Vec<Fix> = Vec::new();
        for e in self.read.edges_from(issue, Rel::FixedBy)? {
            let commits = match e.dst.kind() {
                Some(NodeKind::Commit) => vec![e.dst],
                Some(NodeKind::Issue) => self.read.targets_of(e.dst, Rel::MergedAs)?,
                _ => Vec::new(),
            };
            for c in commits {
                if fixes.iter().any(|f| f.id == c) {
                    continue;
                }
                let record = self.read.commit(c)?;
                if record.is_merge {
                    continue;
                }
                fixes.push(Fix {
                    id: c,
                    record,
                    confidence: e.meta.confidence,
                });
            }
        }
        fixes.sort_by_key(|f| (f.record.author.time, f.record.sha.clone()));
        Ok(fixes)
    }

    fn issue_json(&self, i: &IssueRecord) -> Value {
        json!({
            "number": i.number,
            "title": i.title,
            "body": i.body,
            "labels": i.labels,
            "errors": i.facets.error_types,
            "author": i.author,
            "created": i.created_at,
        })
    }

    /// An issue with text, and its creation time.
    fn open_issue(&self, node: NodeId) -> Result<Result<(IssueRecord, i64), Skip>, ExportError> {
        let issue = self.read.issue(node)?;
        if issue.stub {
            return Ok(Err("issue never imported (no text)"));
        }
        Ok(match issue.created_at {
            Some(t) => Ok((issue, t)),
            None => Err("issue without a creation time"),
        })
    }

    fn issue_fix(&self, node: NodeId) -> Result<Result<Draft, Skip>, ExportError> {
        let (issue, created) = match self.open_issue(node)? {
            Ok(v) => v,
            Err(skip) => return Ok(Err(skip)),
        };
        let fixes = self.fixes(node)?;
        let Some(first) = fixes.first() else {
            return Ok(Err("issue without a fix commit (other than merges)"));
        };
        let fixed_at = first.record.author.time;
        // SWE-bench's hints rule: only what was said before the fix's first commit.
        let comments: Vec<Value> = issue
            .comments
            .iter()
            .filter(|c| c.created_at.is_some_and(|t| t < fixed_at))
            .map(|c| json!({ "author": c.author, "body": c.body }))
            .collect();
        let mut changes: Vec<FileDiff> = Vec::new();
        let mut symbols = BTreeSet::new();
        let mut sources = BTreeSet::from([format!("issue#{}", issue.number)]);
        for f in &fixes {
            sources.insert(format!("commit:{}", hex(&f.record.sha)));
            changes.extend(self.git.changes(self.read, f.id)?);
            for s in self.read.targets_of(f.id, Rel::Modifies)? {
                let symbol = self.read.symbol(s)?;
                let path = self.read.string(self.read.file(symbol.file)?.path)?;
                // Tests are the test patch's, not the fix's.
                if !super::source::is_test_path(&path) {
                    symbols.insert(self.read.string(symbol.qualified_name)?);
                }
            }
        }
        let (tests, code): (Vec<&FileDiff>, Vec<&FileDiff>) =
            changes.iter().partition(|c| c.is_test);
        if code.is_empty() {
            return Ok(Err("fix changes only test files"));
        }
        let patch: String = code.iter().map(|c| c.patch.as_str()).collect();
        let test_patch: String = tests.iter().map(|c| c.patch.as_str()).collect();
        let files: Vec<&str> = code.iter().map(|c| c.path.as_str()).collect();
        for f in &files {
            sources.insert(format!("file:{f}"));
        }
        let base = first.record.parents.first().cloned();
        let context = self.code_context(&issue, node, created, base.as_deref(), &code)?;
        let changed: u32 = code.iter().map(|c| c.added + c.removed).sum();
        let quality = Quality::measure(
            &issue.body,
            true,
            self.issue_author_is_bot(&issue),
            Some(changed),
            fixes.iter().map(|f| f.confidence).fold(1.0, f32::min),
        );
        let swebench = json!({
            "instance_id": format!("{}-{}", self.repo.replace('/', "__"), issue.number),
            "repo": self.repo,
            "base_commit": base.as_deref().map(hex),
            "problem_statement": format!("{}\n{}", issue.title, issue.body),
            "hints_text": comments.iter().map(|c| c["body"].as_str().unwrap_or("")).collect::<Vec<_>>().join("\n"),
            "created_at": jiff::Timestamp::from_second(created).map(|t| t.to_string()).unwrap_or_default(),
            "patch": patch,
            "test_patch": test_patch,
        });
        let context = json!({
            "repo": self.repo,
            "issue": self.issue_json(&issue),
            "comments": comments,
            "context": context,
            "fix": {
                "commits": fixes.iter().map(|f| hex(&f.record.sha)[..10].to_string()).collect::<Vec<_>>(),
                "files": files,
                "symbols": symbols,
                "patch": patch,
                "test_patch": test_patch,
            },
        });
        Ok(Ok(Draft {
            id: format!("issue#{}", issue.number),
            created_at: created,
            group: self.group_of(node, issue.number)?,
            sources,
            context,
            quality,
            swebench: Some(swebench),
        }))
    }

    /// Code shown with an issue, per `--context`: the files the fix touched, or the files
    /// `locate` ranks from what existed when the issue was opened; both as they stood at the
    /// fix's parent, cut around the changed lines to the budget.
    fn code_context(
        &self,
        issue: &IssueRecord,
        node: NodeId,
        created: i64,
        base: Option<&[u8]>,
        code: &[&FileDiff],
    ) -> Result<Vec<Value>, ExportError> {
        let Some(base) = base else {
            return Ok(Vec::new());
        };
        let per_file = self.context.budget_chars() / code.len().max(1);
        let mut out = Vec::new();
        match self.context {
            Context::None { .. } => {}
            Context::Oracle { .. } => {
                for c in code {
                    if let Some(old) = &c.old {
                        let changed =
                            super::source::changed_lines(old, c.new.as_deref().unwrap_or(""));
                        out.push(json!({ "path": c.old_path.as_deref().unwrap_or(&c.path), "text": cut_around(old, &changed, per_file) }));
                    }
                }
            }
            Context::Locate { files, .. } => {
                let indexes = self.indexes.ok_or(ExportError::LocateNeedsIndexes)?;
                let locator = Locator::new(self.read, indexes)?;
                let ranker = if indexes.vectors.active_model()?.is_some() {
                    Ranker::Hybrid
                } else {
                    Ranker::Bm25
                };
                let found =
                    locator.locate(&issue_text(issue), created, Some(node), ranker, files)?;
                let per_file = self.context.budget_chars() / found.len().max(1);
                for f in found {
                    if let Some(text) = self.git.file_at(base, &f.path) {
                        out.push(
                            json!({ "path": f.path, "text": cut_around(&text, &[], per_file) }),
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// The smallest issue number among the issue and its duplicates (both directions).
    fn group_of(&self, node: NodeId, number: u64) -> Result<String, ExportError> {
        let mut least = number;
        for m in self.group_members(node)? {
            least = least.min(self.read.issue(m)?.number);
        }
        Ok(format!("issue#{least}"))
    }

    /// The quality of an example made from an issue alone (no change, no link to doubt).
    fn issue_quality(&self, issue: &IssueRecord) -> Quality {
        Quality::measure(
            &issue.body,
            true,
            self.issue_author_is_bot(issue),
            None,
            1.0,
        )
    }

    fn issue_author_is_bot(&self, issue: &IssueRecord) -> bool {
        issue
            .author
            .as_deref()
            .is_some_and(|a| a.ends_with("[bot]") || a.ends_with("-bot"))
    }

    fn issue_answer(&self, node: NodeId) -> Result<Result<Draft, Skip>, ExportError> {
        let (issue, created) = match self.open_issue(node)? {
            Ok(v) => v,
            Err(skip) => return Ok(Err(skip)),
        };
        let fixes = self.fixes(node)?;
        let mut sources = BTreeSet::from([format!("issue#{}", issue.number)]);
        let answer = if let Some(first) = fixes.first() {
            let mut files = BTreeSet::new();
            for f in &fixes {
                sources.insert(format!("commit:{}", hex(&f.record.sha)));
                for c in self.git.changes(self.read, f.id)? {
                    if !c.is_test {
                        files.insert(c.path);
                    }
                }
            }
            json!({
                "comment": null,
                "commits": fixes.iter().map(|f| hex(&f.record.sha)[..10].to_string()).collect::<Vec<_>>(),
                "summary": first.record.message.lines().next().unwrap_or(""),
                "files": files,
            })
        } else {
            // The last comment before the issue was closed, by someone other than its author.
            let closed = issue.closed_at.unwrap_or(i64::MIN);
            let answer =
                issue.comments.iter().rev().find(|c| {
                    c.created_at.is_some_and(|t| t <= closed) && c.author != issue.author
                });
            match answer {
                Some(c) => json!({ "comment": c.body, "commits": [], "summary": "", "files": [] }),
                None => return Ok(Err("issue without a fix or a resolving comment")),
            }
        };
        let quality = Quality::measure(
            &issue.body,
            true,
            self.issue_author_is_bot(&issue),
            None,
            fixes.iter().map(|f| f.confidence).fold(1.0, f32::min),
        );
        Ok(Ok(Draft {
            id: format!("issue#{}", issue.number),
            created_at: created,
            group: self.group_of(node, issue.number)?,
            sources,
            context: json!({ "repo": self.repo, "issue": self.issue_json(&issue), "answer": answer }),
            quality,
            swebench: None,
        }))
    }

    fn classify_issue(&self, node: NodeId) -> Result<Result<Draft, Skip>, ExportError> {
        let (issue, created) = match self.open_issue(node)? {
            Ok(v) => v,
            Err(skip) => return Ok(Err(skip)),
        };
        if issue.labels.is_empty() && issue.facets.error_types.is_empty() {
            return Ok(Err("issue without labels or error types"));
        }
        // The component: the directory holding most of the files its fixes changed, else most
        // of the files it mentions.
        let mut dirs: Vec<String> = Vec::new();
        for f in self.fixes(node)? {
            for c in self.git.changes(self.read, f.id)? {
                if !c.is_test {
                    dirs.push(directory(&c.path));
                }
            }
        }
        if dirs.is_empty() {
            for m in self.read.targets_of(node, Rel::Mentions)? {
                let file = match m.kind() {
                    Some(NodeKind::Symbol) => self.read.symbol(m)?.file,
                    _ => m,
                };
                dirs.push(directory(&self.read.string(self.read.file(file)?.path)?));
            }
        }
        let component = most_common(&dirs);
        let quality = self.issue_quality(&issue);
        Ok(Ok(Draft {
            id: format!("issue#{}", issue.number),
            created_at: created,
            group: self.group_of(node, issue.number)?,
            sources: BTreeSet::from([format!("issue#{}", issue.number)]),
            context: json!({ "repo": self.repo, "issue": self.issue_json(&issue), "component": component }),
            quality,
            swebench: None,
        }))
    }

    fn commit_message(&self, node: NodeId) -> Result<Result<Draft, Skip>, ExportError> {
        let c = self.read.commit(node)?;
        if c.is_merge {
            return Ok(Err("merge commit"));
        }
        let changes = self.git.changes(self.read, node)?;
        let patch: String = changes.iter().map(|c| c.patch.as_str()).collect();
        if patch.is_empty() {
            return Ok(Err("commit without a readable diff"));
        }
        let sha = hex(&c.sha);
        let bot = match self.read.targets_of(node, Rel::AuthoredBy)?.first() {
            Some(a) => self.read.author(*a)?.is_bot,
            None => false,
        };
        let changed: u32 = changes.iter().map(|c| c.added + c.removed).sum();
        let quality = Quality::measure(&c.message, true, bot, Some(changed), 1.0);
        let mut sources = BTreeSet::from([format!("commit:{sha}")]);
        sources.extend(changes.iter().map(|c| format!("file:{}", c.path)));
        Ok(Ok(Draft {
            id: format!("commit:{sha}"),
            created_at: c.author.time,
            group: format!("commit:{sha}"),
            sources,
            context: json!({
                "repo": self.repo,
                "commit": {
                    "sha": sha,
                    "message": c.message.trim(),
                    "patch": patch,
                    "files": changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
                },
            }),
            quality,
            swebench: None,
        }))
    }

    fn code_qa(&self, node: NodeId) -> Result<Result<Draft, Skip>, ExportError> {
        let read = self.read;
        let sym = read.symbol(node)?;
        let path = read.string(read.file(sym.file)?.path)?;
        let qname = read.string(sym.qualified_name)?;
        let Some(blob) = read.head_blob(sym.file)? else {
            return Ok(Err("symbol not in the code head"));
        };
        let blob = read.blob(blob)?;
        let Some(record) = blob.definition(&qname) else {
            return Ok(Err("symbol not in the code head"));
        };
        let Some(text) = self.git.text(&blob.sha) else {
            return Ok(Err("file unreadable in the repository"));
        };
        let body = text
            .get(record.start_byte as usize..record.end_byte as usize)
            .unwrap_or("")
            .to_string();
        let mut commits: Vec<(i64, String)> = Vec::new();
        for c in read.sources_of(node, Rel::Modifies)? {
            let c = read.commit(c)?;
            let subject = c.message.lines().next().unwrap_or("").to_string();
            commits.push((c.author.time, format!("{} {subject}", &hex(&c.sha)[..10])));
        }
        commits.sort();
        let created = commits.first().map_or(0, |c| c.0);
        let commits: Vec<String> = commits.into_iter().rev().take(5).map(|c| c.1).collect();
        let mut used_in: Vec<String> = Vec::new();
        for f in read.sources_of(sym.file, Rel::Imports)? {
            used_in.push(read.string(read.file(f)?.path)?);
        }
        used_in.sort();
        let quality = Quality::measure(&body, true, false, None, 1.0);
        Ok(Ok(Draft {
            id: format!("symbol:{path}::{qname}"),
            created_at: created,
            group: format!("file:{path}"),
            sources: BTreeSet::from([format!("symbol:{path}::{qname}"), format!("file:{path}")]),
            context: json!({
                "repo": self.repo,
                "symbol": {
                    "qname": qname,
                    "kind": record.kind.name(),
                    "path": path,
                    "signature": record.signature,
                    "doc": record.doc,
                    "body": cut_around(&body, &[], self.context.budget_chars()),
                    "used_in": used_in,
                    "commits": commits,
                },
            }),
            quality,
            swebench: None,
        }))
    }
}

/// A path's directory (`.` for a top-level file).
fn directory(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(".".to_string(), |(d, _)| d.to_string())
}

/// The most frequent item (the first in order on ties).
fn most_common(items: &[String]) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k.to_string())
}
