//! The records stored as node values and edge metadata. Fields are only ever appended, and a
//! change of layout bumps [`super::codec::RECORD_VERSION`].

use serde::{Deserialize, Serialize};

use super::StrId;

/// A person as recorded in a commit header (before mailmap), with the time of the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub name: StrId,
    pub email: StrId,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Offset from UTC in seconds, as written in the commit.
    pub tz_offset: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Raw object id bytes (20 for SHA-1).
    pub sha: Vec<u8>,
    pub tree: Vec<u8>,
    /// Parent ids in order, including parents missing from the repository (shallow clones).
    pub parents: Vec<Vec<u8>>,
    pub author: Signature,
    pub committer: Signature,
    pub message: String,
    pub is_merge: bool,
    /// The commit's parents are not in the repository (shallow boundary); it was diffed as a root.
    pub shallow_boundary: bool,
    pub files_changed: u32,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Files whose line stats could not be computed because objects are missing.
    pub stats_unknown: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: StrId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorRecord {
    /// Canonical name and email after `.mailmap`.
    pub name: StrId,
    pub email: StrId,
    pub is_bot: bool,
}

/// Which rule produced an edge. Appending variants keeps old files readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Provenance {
    /// A parent line in the commit object.
    GitParent,
    /// A tree diff against the first parent.
    GitDiff,
    /// The commit's author header, resolved through `.mailmap`.
    GitAuthor,
    /// Rename detection in the tree diff (similarity ≥ 50%).
    GitRename,
    /// A tree-sitter parse of the file at the head of the default branch.
    TreeSitter,
    /// Diff hunks mapped onto the symbols of the old and new file versions.
    DiffHunks,
    /// A GitHub closing keyword (`Fixes #7`, `closes owner/repo#7`, `Resolves: GH-7`) in a
    /// commit message.
    ClosingKeywordCommit,
    /// A closing keyword in a pull request's title or body.
    ClosingKeywordPr,
    /// A squash-merge title ending in `(#N)`.
    SquashTitle,
    /// `Merge pull request #N from …`.
    MergeCommit,
    /// Issue → commit, through the pull request that fixed the issue and the commit that
    /// landed it.
    ViaPullRequest,
    /// A plain `#N` mention.
    Mention,
    /// "Duplicate of #N" in an issue or one of its comments.
    DuplicateText,
    /// A Python traceback frame (`File "…", line N, in f`).
    Traceback,
    /// A Rust panic location (`panicked at src/x.rs:12:5`).
    RustPanic,
    /// A C/C++/CUDA compiler diagnostic (`csrc/x.cu:42:10: error:`).
    CompilerError,
    /// A repository path written in the text.
    PathInText,
    /// A backticked identifier that names a symbol.
    Identifier,
    /// SZZ: blame of the lines a fix deleted or changed.
    Szz,
    /// Text and vector similarity, accepted by a user (`lore duplicates --accept`).
    Similarity,
    /// A closing keyword with a hedge before it (`Should fix #7`, `Partly resolves #7`): the
    /// evidence line names the hedge.
    HedgedClosing,
    /// A closing keyword that is denied (`Does not fix #7`): a reference, not a fix.
    NegatedClosing,
    /// GitHub's own record: a `closed` event of the issue that names the commit that closed it.
    GithubClosedEvent,
    /// GitHub's own record: a merged pull request's `merge_commit_sha`.
    GithubPullRequest,
}

impl Provenance {
    pub fn name(self) -> &'static str {
        match self {
            Provenance::GitParent => "git-parent",
            Provenance::GitDiff => "git-diff",
            Provenance::GitAuthor => "git-author",
            Provenance::GitRename => "git-rename",
            Provenance::TreeSitter => "tree-sitter",
            Provenance::DiffHunks => "diff-hunks",
            Provenance::ClosingKeywordCommit => "closing-keyword-commit",
            Provenance::ClosingKeywordPr => "closing-keyword-pr",
            Provenance::SquashTitle => "squash-title",
            Provenance::MergeCommit => "merge-commit",
            Provenance::ViaPullRequest => "via-pull-request",
            Provenance::Mention => "mention",
            Provenance::DuplicateText => "duplicate-text",
            Provenance::Traceback => "traceback",
            Provenance::RustPanic => "rust-panic",
            Provenance::CompilerError => "compiler-error",
            Provenance::PathInText => "path-in-text",
            Provenance::Identifier => "identifier",
            Provenance::Szz => "szz",
            Provenance::Similarity => "similarity",
            Provenance::HedgedClosing => "hedged-closing-keyword",
            Provenance::NegatedClosing => "negated-closing-keyword",
            Provenance::GithubClosedEvent => "github-closed-event",
            Provenance::GithubPullRequest => "github-pull-request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'M',
            ChangeKind::Deleted => 'D',
            ChangeKind::Renamed => 'R',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
        }
    }
}

/// How a commit changed one file. `added`/`removed` are `None` for binary files and for files
/// whose objects are missing (then `binary` is false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TouchStats {
    pub change: ChangeKind,
    pub added: Option<u32>,
    pub removed: Option<u32>,
    pub binary: bool,
    /// The path before a rename.
    pub old_path: Option<StrId>,
    /// Blob ids of the file before and after (absent for an added or deleted side).
    pub old_blob: Option<Vec<u8>>,
    pub new_blob: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EdgeDetail {
    None,
    Parent {
        position: u16,
    },
    Touch(TouchStats),
    Modify {
        change: SymbolChange,
    },
    /// SZZ: how many of the fix's blamed lines this commit last touched, out of how many.
    Szz {
        lines: u32,
        of_lines: u32,
        variant: String,
    },
}

/// How a commit changed a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SymbolChange {
    Added,
    Changed,
    Removed,
}

impl SymbolChange {
    pub fn name(self) -> &'static str {
        match self {
            SymbolChange::Added => "added",
            SymbolChange::Changed => "changed",
            SymbolChange::Removed => "removed",
        }
    }
}

/// One definition inside a blob, as parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolRecord {
    pub kind: SymbolKind,
    pub name: String,
    pub qualified_name: String,
    pub start_byte: u32,
    pub end_byte: u32,
    pub start_line: u32,
    pub end_line: u32,
    pub signature: String,
    pub doc: Option<String>,
    /// First line of the doc comments and attributes above the definition.
    pub leading_line: u32,
    /// Index of the enclosing symbol in the same blob.
    pub parent: Option<u32>,
}

/// Whether a blob was parsed, and if not why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobStatus {
    Parsed { error_bytes: u32 },
    Skipped { reason: String },
}

/// A parsed file version, as callers see it. Content-addressed: a blob is parsed once,
/// whatever its paths. Stored as a [`StoredBlob`], whose strings are interned, so the many
/// versions of a file share the text of the symbols they have in common.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub sha: Vec<u8>,
    pub lang: Option<String>,
    pub status: BlobStatus,
    pub symbols: Vec<SymbolRecord>,
    pub imports: Vec<String>,
}

impl BlobRecord {
    /// The definition a qualified name stands for in this version. Several definitions can
    /// share one (Python `@overload` stubs before the implementation, C++ overloads): the
    /// one with the longest span is the implementation (a stub's body is `...`), the later
    /// one on a tie (the one Python binds last).
    pub fn definition(&self, qualified_name: &str) -> Option<&SymbolRecord> {
        self.symbols
            .iter()
            .filter(|s| s.qualified_name == qualified_name)
            .max_by_key(|s| s.end_line.saturating_sub(s.start_line))
    }
}

/// A symbol node: a qualified name in a file, stable across the file's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolNode {
    pub file: super::NodeId,
    pub qualified_name: StrId,
    pub name: StrId,
    pub kind: SymbolKind,
}

/// Metadata on every edge: where it came from, how sure we are, and the text that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeMeta {
    pub provenance: Provenance,
    pub confidence: f32,
    pub evidence: Option<String>,
    pub detail: EdgeDetail,
}

impl EdgeMeta {
    /// A fact read straight from git: confidence 1.
    pub fn certain(provenance: Provenance, detail: EdgeDetail) -> EdgeMeta {
        EdgeMeta {
            provenance,
            confidence: 1.0,
            evidence: None,
            detail,
        }
    }
}

/// Where ingest of one ref stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub sha: Vec<u8>,
    /// Unix seconds when it was recorded.
    pub recorded_at: i64,
}

/// What a code symbol is. Appending variants keeps old files readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SymbolKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    /// A Rust trait, a Go or TypeScript interface.
    Trait,
    /// A Rust `impl` block.
    Impl,
    /// A module-level constant (Python ALL_CAPS assignments, `const`, `static`, `#define`).
    Constant,
    /// A Rust `mod`, a C++ namespace.
    Module,
}

impl SymbolKind {
    pub fn name(self) -> &'static str {
        match self {
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Trait => "trait",
            SymbolKind::Impl => "impl",
            SymbolKind::Constant => "constant",
            SymbolKind::Module => "module",
        }
    }

    /// The kind named by a query capture `def.<name>`.
    pub fn from_capture(name: &str) -> Option<SymbolKind> {
        Some(match name {
            "function" => SymbolKind::Function,
            "method" => SymbolKind::Method,
            "class" => SymbolKind::Class,
            "struct" => SymbolKind::Struct,
            "enum" => SymbolKind::Enum,
            "trait" => SymbolKind::Trait,
            "impl" => SymbolKind::Impl,
            "constant" => SymbolKind::Constant,
            "module" => SymbolKind::Module,
            _ => return None,
        })
    }
}

/// [`SymbolRecord`] as stored: every string interned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSymbol {
    pub kind: SymbolKind,
    pub name: StrId,
    pub qualified_name: StrId,
    pub start_byte: u32,
    pub end_byte: u32,
    pub start_line: u32,
    pub end_line: u32,
    pub signature: StrId,
    pub doc: Option<StrId>,
    pub leading_line: u32,
    pub parent: Option<u32>,
}

/// [`BlobRecord`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    pub sha: Vec<u8>,
    pub lang: Option<StrId>,
    pub status: BlobStatus,
    pub symbols: Vec<StoredSymbol>,
    pub imports: Vec<StrId>,
}

impl StoredBlob {
    /// Turn interned strings back into text with `string`.
    pub fn resolve<E>(
        self,
        mut string: impl FnMut(StrId) -> Result<String, E>,
    ) -> Result<BlobRecord, E> {
        let mut symbols = Vec::with_capacity(self.symbols.len());
        for s in self.symbols {
            symbols.push(SymbolRecord {
                kind: s.kind,
                name: string(s.name)?,
                qualified_name: string(s.qualified_name)?,
                start_byte: s.start_byte,
                end_byte: s.end_byte,
                start_line: s.start_line,
                end_line: s.end_line,
                signature: string(s.signature)?,
                doc: s.doc.map(&mut string).transpose()?,
                leading_line: s.leading_line,
                parent: s.parent,
            });
        }
        Ok(BlobRecord {
            sha: self.sha,
            lang: self.lang.map(&mut string).transpose()?,
            status: self.status,
            symbols,
            imports: self
                .imports
                .into_iter()
                .map(string)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Open or closed, as the tracker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssueState {
    Open,
    Closed,
    /// A pull request that was merged.
    Merged,
}

impl IssueState {
    pub fn name(self) -> &'static str {
        match self {
            IssueState::Open => "open",
            IssueState::Closed => "closed",
            IssueState::Merged => "merged",
        }
    }
}

/// One comment on an issue or pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub author: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    pub body: String,
}

/// A state change (`closed`, `reopened`, `merged`) with when and who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    pub event: String,
    pub at: i64,
    pub actor: Option<String>,
}

/// Facts extracted from text: error types, model ids and environment (GPU, CUDA, versions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFacets {
    pub error_types: Vec<String>,
    pub models: Vec<String>,
    /// `gpu`, `cuda`, `driver`, `python`, `torch`, `os`, and `pkg:<name>` for pinned packages.
    pub environment: Vec<(String, String)>,
}

/// An issue or pull request. A `stub` was referenced (by a commit or another issue) but never
/// imported: it holds its number only, so the link is kept until the dump brings it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRecord {
    pub number: u64,
    pub is_pr: bool,
    pub stub: bool,
    pub title: String,
    pub body: String,
    pub state: IssueState,
    /// GitHub's `state_reason` (`completed`, `not_planned`, `duplicate`), Jira's resolution.
    pub state_reason: Option<String>,
    pub author: Option<String>,
    pub labels: Vec<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub merged_at: Option<i64>,
    pub url: Option<String>,
    /// The tracker's own key where it is not `#N` (Jira's `MINI-7`).
    pub key: Option<String>,
    /// Which importer read it: `github`, `gh`, `jira`, `jsonl`.
    pub source: String,
    pub comments: Vec<Comment>,
    pub state_history: Vec<StateEvent>,
    pub facets: TextFacets,
}

impl IssueRecord {
    pub fn stub(number: u64, is_pr: bool) -> IssueRecord {
        IssueRecord {
            number,
            is_pr,
            stub: true,
            title: String::new(),
            body: String::new(),
            state: IssueState::Open,
            state_reason: None,
            author: None,
            labels: Vec::new(),
            created_at: None,
            updated_at: None,
            closed_at: None,
            merged_at: None,
            url: None,
            key: None,
            source: String::new(),
            comments: Vec::new(),
            state_history: Vec::new(),
            facets: TextFacets::default(),
        }
    }
}

/// What kind of change a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommitClass {
    Fix,
    Feature,
    Refactor,
    Docs,
    Test,
    Deps,
    Revert,
    Other,
}

impl CommitClass {
    pub fn name(self) -> &'static str {
        match self {
            CommitClass::Fix => "fix",
            CommitClass::Feature => "feature",
            CommitClass::Refactor => "refactor",
            CommitClass::Docs => "docs",
            CommitClass::Test => "test",
            CommitClass::Deps => "deps",
            CommitClass::Revert => "revert",
            CommitClass::Other => "other",
        }
    }
}

/// Facets derived for each commit by the links stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitFacets {
    pub class: CommitClass,
    pub is_bot: bool,
    pub is_merge: bool,
    /// Lines added plus removed (known stats only).
    pub diff_size: u64,
    pub text: TextFacets,
}

/// The SZZ blame of one fix commit, cached: the commits that last touched the lines it
/// deleted or changed, with how many lines each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SzzBlame {
    /// `(commit local id, lines, evidence "path:line-line")`.
    pub candidates: Vec<(u64, u32, String)>,
    pub blamed_lines: u32,
    /// Lines skipped as blank or comment-only.
    pub skipped_cosmetic: u32,
    /// Lines whose blame fell on an ignored revision and was carried to its parent.
    pub ignored_revs: u32,
}

/// `len` consecutive lines of a file version that commit `commit` introduced as lines
/// `line..line + len` (0-based) of file `file` (the path it had in that commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRun {
    pub commit: u64,
    pub file: u64,
    pub line: u32,
    pub len: u32,
}

/// `len` lines a version keeps from a parent's version: parent lines `old..old + len` are
/// the version's lines `new..new + len` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub old: u32,
    pub new: u32,
    pub len: u32,
}

/// A parent version a delta-coded version keeps lines from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentDelta {
    /// The stored version: file and commit.
    pub file: u64,
    pub commit: u64,
    pub blocks: Vec<Block>,
}

/// Where a file version's lines come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineOrigins {
    /// Every line, in order, as runs.
    Runs(Vec<OriginRun>),
    /// The same lines as the version of file `file` stored at commit `commit` (a merge that
    /// took a parent's version, a rename without edits): stored once, there.
    SameAs { file: u64, commit: u64 },
    /// Binary, unreadable or too large to diff: no line origins.
    Unknown,
    /// The commit deleted the file.
    Deleted,
    /// The lines kept from a parent version (lore writes one; the format allows several, in
    /// parent order); the rest are the commit's own (see [`crate::store::origins::assign`]).
    /// `depth`: how many deltas lie between this version and stored runs; past a limit a
    /// version is stored as `Runs` again.
    Delta {
        parents: Vec<ParentDelta>,
        depth: u32,
    },
}

/// A file as one commit left it, in the provenance table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    /// The blob id (absent for a deletion).
    pub blob: Option<Vec<u8>>,
    pub lines: u32,
    pub origins: LineOrigins,
}

/// A line as evidence: trimmed, at most 200 characters.
pub fn evidence(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(qualified_name: &str, start_line: u32, end_line: u32) -> SymbolRecord {
        SymbolRecord {
            kind: SymbolKind::Function,
            name: qualified_name.to_string(),
            qualified_name: qualified_name.to_string(),
            start_byte: 0,
            end_byte: 0,
            start_line,
            end_line,
            signature: String::new(),
            doc: None,
            leading_line: start_line,
            parent: None,
        }
    }

    #[test]
    fn overload_stubs_give_way_to_the_implementation() {
        let blob = BlobRecord {
            sha: vec![0; 20],
            lang: Some("python".into()),
            status: BlobStatus::Parsed { error_bytes: 0 },
            // Two `@overload` stubs, then the implementation, then another name.
            symbols: vec![
                def("get_peft_model", 49, 50),
                def("get_peft_model", 61, 62),
                def("get_peft_model", 105, 160),
                def("other", 161, 170),
            ],
            imports: Vec::new(),
        };
        assert_eq!(blob.definition("get_peft_model").unwrap().start_line, 105);
        assert_eq!(blob.definition("other").unwrap().start_line, 161);
        assert!(blob.definition("missing").is_none());
        // Equal spans: the later definition, the one Python binds.
        let mut twins = blob.clone();
        twins.symbols = vec![def("f", 1, 3), def("f", 5, 7)];
        assert_eq!(twins.definition("f").unwrap().start_line, 5);
    }
}
