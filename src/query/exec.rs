//! Planning and execution.
//!
//! A query is a chain of sets joined by relations. The plan picks an **anchor**: the set that
//! is cheapest to list (an item or a name pattern beats a whole table; a smaller table beats a
//! bigger one). The anchor is listed, the chain is walked from it outwards along stored edges
//! (backwards to the left through the reverse edge table, forwards to the right), every reached
//! node is checked against its set's kind, pattern and filters, and two pruning passes keep only
//! members on a complete path. The naive plan anchors at the first set (a scan of its table),
//! which `explain` and the benchmark compare against.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use regex::Regex;

use super::ast::*;
use super::schema::{self, Kind, Relation, EDGE_FIELDS};
use super::search;
use super::{QueryError, QueryResult};
use crate::index::Indexes;
use crate::store::records::{EdgeMeta, IssueRecord, SymbolKind};
use crate::store::{hex, NodeId, NodeKind, ReadTx, StoreError};

/// Unix seconds of a `YYYY-MM-DD` date (UTC midnight) or an RFC 3339 time.
pub fn parse_date(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    let d = s.parse::<jiff::civil::Date>().ok()?;
    Some(
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// A field's value on one node (or on the edge that reached it).
#[derive(Debug, Clone, PartialEq)]
enum FVal {
    Null,
    Num(f64),
    Time(i64),
    Text(String),
    List(Vec<String>),
    Bool(bool),
}

impl FVal {
    fn display(&self) -> serde_json::Value {
        match self {
            FVal::Null => serde_json::Value::Null,
            FVal::Num(n) if n.fract() == 0.0 => serde_json::json!(*n as i64),
            FVal::Num(n) => serde_json::json!(n),
            FVal::Time(t) => serde_json::json!(jiff::Timestamp::from_second(*t)
                .map(|t| t.strftime("%Y-%m-%d").to_string())
                .unwrap_or_default()),
            FVal::Text(s) => serde_json::json!(s),
            FVal::List(v) => serde_json::json!(v.join(", ")),
            FVal::Bool(b) => serde_json::json!(b),
        }
    }

    /// Sort key text and number.
    fn sort_key(&self) -> (f64, String) {
        match self {
            FVal::Null => (f64::MIN, String::new()),
            FVal::Num(n) => (*n, String::new()),
            FVal::Time(t) => (*t as f64, String::new()),
            FVal::Text(s) => (0.0, s.to_ascii_lowercase()),
            FVal::List(v) => (0.0, v.join(",").to_ascii_lowercase()),
            FVal::Bool(b) => (f64::from(u8::from(*b)), String::new()),
        }
    }
}

/// A compiled comparison.
enum Test {
    Or(Box<Test>, Box<Test>),
    And(Box<Test>, Box<Test>),
    Not(Box<Test>),
    Cmp {
        field: String,
        op: CmpOp,
        text: String,
        num: Option<f64>,
        time: Option<i64>,
        regex: Option<Regex>,
    },
}

fn compile(text: &str, e: &Expr, kind: Option<Kind>, edge_ok: bool) -> Result<Test, QueryError> {
    Ok(match e {
        Expr::Or(a, b) => Test::Or(
            Box::new(compile(text, a, kind, edge_ok)?),
            Box::new(compile(text, b, kind, edge_ok)?),
        ),
        Expr::And(a, b) => Test::And(
            Box::new(compile(text, a, kind, edge_ok)?),
            Box::new(compile(text, b, kind, edge_ok)?),
        ),
        Expr::Not(a) => Test::Not(Box::new(compile(text, a, kind, edge_ok)?)),
        Expr::Compare {
            field,
            op,
            value,
            span,
        } => {
            let known: Vec<&str> = match kind {
                Some(k) => k.fields().to_vec(),
                None => Kind::ALL
                    .iter()
                    .flat_map(|k| k.fields().iter().copied())
                    .collect(),
            };
            let is_edge = EDGE_FIELDS.contains(&field.as_str());
            if is_edge && !edge_ok {
                return Err(QueryError::at(
                    text,
                    span.0,
                    span.0 + field.len(),
                    format!("`{field}` is a field of links: use it in the `where` after a relation step"),
                ));
            }
            if !is_edge && !known.contains(&field.as_str()) {
                let kind_name = kind.map_or("this set", Kind::name);
                let mut message = format!(
                    "{kind_name} have no field `{field}`; fields: {}",
                    known.join(", ")
                );
                if let Some(near) = schema::nearest(field, known.iter().copied().chain(EDGE_FIELDS))
                {
                    message.push_str(&format!(" (did you mean `{near}`?)"));
                }
                return Err(QueryError::at(text, span.0, span.0 + field.len(), message));
            }
            let (vtext, num) = match value {
                Value::Text { text, .. } => (text.clone(), None),
                Value::Number(n) => (value.to_string(), Some(*n)),
            };
            let regex = if *op == CmpOp::Regex {
                Some(Regex::new(&vtext).map_err(|e| {
                    // The regex crate's message spans lines; its last line says what is wrong.
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim_start_matches("error: ")
                        .to_string();
                    QueryError::at(
                        text,
                        span.0,
                        span.1,
                        format!("bad regular expression `{vtext}`: {why}"),
                    )
                })?)
            } else {
                None
            };
            Test::Cmp {
                field: field.clone(),
                op: *op,
                time: parse_date(&vtext),
                text: vtext,
                num,
                regex,
            }
        }
    })
}

fn cmp_one(
    op: CmpOp,
    v: &FVal,
    text: &str,
    num: Option<f64>,
    time: Option<i64>,
    regex: &Option<Regex>,
) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match v {
        FVal::Null => None,
        FVal::Num(n) => num
            .or_else(|| text.parse().ok())
            .and_then(|x| n.partial_cmp(&x)),
        FVal::Time(t) => match op {
            // A date compares by day: `created = 2024-01-11` is any time that day.
            CmpOp::Eq | CmpOp::Ne if time.is_some() && text.len() == 10 => {
                let day = time.expect("checked");
                Some(if *t < day {
                    Ordering::Less
                } else if *t >= day + 86_400 {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                })
            }
            _ => time.map(|x| t.cmp(&x)),
        },
        FVal::Text(s) => Some(s.to_ascii_lowercase().cmp(&text.to_ascii_lowercase())),
        FVal::Bool(b) => {
            let want = matches!(text.to_ascii_lowercase().as_str(), "true" | "yes" | "1");
            Some(b.cmp(&want))
        }
        FVal::List(items) => {
            return match op {
                CmpOp::Ne => !items.iter().any(|i| i.eq_ignore_ascii_case(text)),
                _ => items
                    .iter()
                    .any(|i| cmp_one(op, &FVal::Text(i.clone()), text, num, time, regex)),
            }
        }
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Regex => match v {
            FVal::Text(s) => regex.as_ref().is_some_and(|r| r.is_match(s)),
            FVal::Num(_) | FVal::Time(_) | FVal::Bool(_) => regex
                .as_ref()
                .is_some_and(|r| r.is_match(v.display().to_string().trim_matches('"'))),
            _ => false,
        },
        CmpOp::Contains => match v {
            FVal::Text(s) => s.to_ascii_lowercase().contains(&text.to_ascii_lowercase()),
            _ => false,
        },
    }
}

/// One set of the chain, ready to test nodes.
struct Set {
    kind: Option<Kind>,
    /// Node kinds allowed (from the kind word, or the relation's destinations).
    node_kinds: Vec<NodeKind>,
    pattern: Option<Pattern>,
    tests: Vec<Test>,
    since: Option<i64>,
    until: Option<i64>,
    /// The filters use edge fields: the set cannot anchor the plan.
    uses_edge: bool,
    name: String,
    /// `matching` or `similar to`: the set is what the indexes find.
    search: Option<Filter>,
    /// The nodes the search found, with their scores (filled in before the run).
    hits: Option<HashMap<NodeId, f32>>,
}

fn uses_edge(t: &Test) -> bool {
    match t {
        Test::Or(a, b) | Test::And(a, b) => uses_edge(a) || uses_edge(b),
        Test::Not(a) => uses_edge(a),
        Test::Cmp { field, .. } => EDGE_FIELDS.contains(&field.as_str()),
    }
}

/// Record caches for one query run.
pub struct Ctx<'r> {
    read: &'r ReadTx,
    issues: HashMap<NodeId, IssueRecord>,
    strings: HashMap<NodeId, (String, String, Option<SymbolKind>)>,
    cache: &'r mut Cache,
    /// Search scores, for the `score` field.
    scores: HashMap<NodeId, f32>,
}

/// What a session (the REPL, a script of queries) keeps between queries on one lore file:
/// the list of file paths, which every name pattern on files scans. Files are never removed,
/// so the list is still right while the file count is unchanged.
#[derive(Default)]
pub struct Cache {
    /// File count when listed, and the list.
    files: Option<(u64, Paths)>,
}

type Paths = std::sync::Arc<Vec<(NodeId, String)>>;

impl Cache {
    fn files(
        &mut self,
        read: &ReadTx,
    ) -> Result<std::sync::Arc<Vec<(NodeId, String)>>, StoreError> {
        let count = read.node_count(NodeKind::File)?;
        match &self.files {
            Some((n, list)) if *n == count => Ok(list.clone()),
            _ => {
                let list = std::sync::Arc::new(read.all_files()?);
                self.files = Some((count, list.clone()));
                Ok(list)
            }
        }
    }
}

impl<'r> Ctx<'r> {
    pub fn new(read: &'r ReadTx, cache: &'r mut Cache) -> Ctx<'r> {
        Ctx {
            read,
            issues: HashMap::new(),
            strings: HashMap::new(),
            cache,
            scores: HashMap::new(),
        }
    }

    fn issue(&mut self, id: NodeId) -> Result<&IssueRecord, StoreError> {
        if !self.issues.contains_key(&id) {
            let r = self.read.issue(id)?;
            self.issues.insert(id, r);
        }
        Ok(&self.issues[&id])
    }

    /// (path, qualified name, kind) of a symbol, or (path, "", None) of a file.
    fn names(&mut self, id: NodeId) -> Result<&(String, String, Option<SymbolKind>), StoreError> {
        if !self.strings.contains_key(&id) {
            let v = match id.kind() {
                Some(NodeKind::File) => (
                    self.read.string(self.read.file(id)?.path)?,
                    String::new(),
                    None,
                ),
                Some(NodeKind::Symbol) => {
                    let s = self.read.symbol(id)?;
                    (
                        self.read.string(self.read.file(s.file)?.path)?,
                        self.read.string(s.qualified_name)?,
                        Some(s.kind),
                    )
                }
                _ => (String::new(), String::new(), None),
            };
            self.strings.insert(id, v);
        }
        Ok(&self.strings[&id])
    }

    fn field(
        &mut self,
        id: NodeId,
        field: &str,
        edge: Option<&EdgeMeta>,
    ) -> Result<FVal, StoreError> {
        match field {
            "provenance" => {
                return Ok(edge.map_or(FVal::Null, |e| FVal::Text(e.provenance.name().into())))
            }
            // Stored as f32: compare at the precision it was written with (0.9, not 0.8999…).
            "confidence" => {
                return Ok(edge.map_or(FVal::Null, |e| {
                    FVal::Num((e.confidence as f64 * 1e6).round() / 1e6)
                }))
            }
            "evidence" => {
                return Ok(edge
                    .and_then(|e| e.evidence.clone())
                    .map_or(FVal::Null, FVal::Text))
            }
            "score" => {
                return Ok(self.scores.get(&id).map_or(FVal::Null, |s| {
                    FVal::Num((f64::from(*s) * 1e4).round() / 1e4)
                }))
            }
            _ => {}
        }
        let read = self.read;
        Ok(match id.kind() {
            Some(NodeKind::Issue) => {
                let i = self.issue(id)?;
                let opt_time = |t: Option<i64>| t.map_or(FVal::Null, FVal::Time);
                let env = |k: &str| {
                    i.facets
                        .environment
                        .iter()
                        .find(|(key, _)| key == k)
                        .map_or(FVal::Null, |(_, v)| FVal::Text(v.clone()))
                };
                match field {
                    "number" => FVal::Num(i.number as f64),
                    "title" => FVal::Text(i.title.clone()),
                    "body" => FVal::Text(i.body.clone()),
                    "state" => FVal::Text(i.state.name().into()),
                    "reason" => i.state_reason.clone().map_or(FVal::Null, FVal::Text),
                    "author" => i.author.clone().map_or(FVal::Null, FVal::Text),
                    "label" => FVal::List(i.labels.clone()),
                    "created" => opt_time(i.created_at),
                    "updated" => opt_time(i.updated_at),
                    "closed" => opt_time(i.closed_at),
                    "merged" => opt_time(i.merged_at),
                    "comments" => FVal::Num(i.comments.len() as f64),
                    "error" => FVal::List(i.facets.error_types.clone()),
                    "model" => FVal::List(i.facets.models.clone()),
                    "gpu" | "cuda" | "driver" | "python" | "torch" => env(field),
                    "stub" => FVal::Bool(i.stub),
                    "pr" => FVal::Bool(i.is_pr),
                    _ => FVal::Null,
                }
            }
            Some(NodeKind::Commit) => {
                let c = read.commit(id)?;
                match field {
                    "sha" => FVal::Text(hex(&c.sha)),
                    "subject" => FVal::Text(c.message.lines().next().unwrap_or("").to_string()),
                    "message" => FVal::Text(c.message.clone()),
                    "author" | "email" | "bot" => {
                        let author = read.edges_from(id, crate::store::Rel::AuthoredBy)?;
                        match author.first() {
                            Some(e) => {
                                let a = read.author(e.dst)?;
                                match field {
                                    "author" => FVal::Text(read.string(a.name)?),
                                    "email" => FVal::Text(read.string(a.email)?),
                                    _ => FVal::Bool(a.is_bot),
                                }
                            }
                            None => FVal::Null,
                        }
                    }
                    "date" => FVal::Time(c.author.time),
                    "merge" => FVal::Bool(c.is_merge),
                    "size" => FVal::Num((c.lines_added + c.lines_removed) as f64),
                    "added" => FVal::Num(c.lines_added as f64),
                    "removed" => FVal::Num(c.lines_removed as f64),
                    "files" => FVal::Num(c.files_changed as f64),
                    "class" | "error" => match read.commit_facets(id)? {
                        Some(f) if field == "class" => FVal::Text(f.class.name().into()),
                        Some(f) => FVal::List(f.text.error_types),
                        None => FVal::Null,
                    },
                    _ => FVal::Null,
                }
            }
            Some(NodeKind::File) => {
                let (path, _, _) = self.names(id)?.clone();
                match field {
                    "path" => FVal::Text(path.clone()),
                    "name" => FVal::Text(path.rsplit('/').next().unwrap_or("").to_string()),
                    "ext" => FVal::Text(
                        path.rsplit('/')
                            .next()
                            .and_then(|n| n.rsplit_once('.'))
                            .map_or("", |(_, e)| e)
                            .to_string(),
                    ),
                    _ => FVal::Null,
                }
            }
            Some(NodeKind::Symbol) => {
                let (path, qname, kind) = self.names(id)?.clone();
                match field {
                    "name" => FVal::Text(qname.rsplit(['.', ':']).next().unwrap_or("").to_string()),
                    "module" => FVal::Text(module_qualified(&path, &qname)),
                    "qname" => FVal::Text(qname),
                    "kind" => FVal::Text(kind.map_or("", |k| k.name()).to_string()),
                    "path" => FVal::Text(path),
                    "line" => {
                        let file = read.symbol(id)?.file;
                        let mut line = FVal::Null;
                        if let Some(blob) = read.head_blob(file)? {
                            if let Some(s) = read
                                .blob(blob)?
                                .symbols
                                .iter()
                                .find(|s| s.qualified_name == qname)
                            {
                                line = FVal::Num(s.start_line as f64);
                            }
                        }
                        line
                    }
                    _ => FVal::Null,
                }
            }
            Some(NodeKind::Author) => {
                let a = read.author(id)?;
                match field {
                    "name" => FVal::Text(read.string(a.name)?),
                    "email" => FVal::Text(read.string(a.email)?),
                    "bot" => FVal::Bool(a.is_bot),
                    _ => FVal::Null,
                }
            }
            _ => FVal::Null,
        })
    }

    fn test(&mut self, t: &Test, id: NodeId, edge: Option<&EdgeMeta>) -> Result<bool, StoreError> {
        Ok(match t {
            Test::Or(a, b) => self.test(a, id, edge)? || self.test(b, id, edge)?,
            Test::And(a, b) => self.test(a, id, edge)? && self.test(b, id, edge)?,
            Test::Not(a) => !self.test(a, id, edge)?,
            Test::Cmp {
                field,
                op,
                text,
                num,
                time,
                regex,
            } => {
                let v = self.field(id, field, edge)?;
                cmp_one(*op, &v, text, *num, *time, regex)
            }
        })
    }
}

/// A symbol's name with its module path, in its language's notation:
/// `minillm.worker.memory_utils.BlockAllocator.free_blocks` for Python,
/// `worker::memory_utils::free_blocks` for `src/worker/memory_utils.rs` (crate-relative, no
/// `mod`/`lib`/`main`), the path's directories joined with `::` for C and C++.
fn module_qualified(path: &str, qname: &str) -> String {
    let (stem, ext) = path.rsplit_once('.').unwrap_or((path, ""));
    let (module, sep) = match ext {
        "rs" => {
            let rel = stem.rsplit_once("src/").map_or(stem, |(_, r)| r);
            let mut parts: Vec<&str> = rel.split('/').collect();
            if matches!(parts.last(), Some(&("mod" | "lib" | "main"))) {
                parts.pop();
            }
            (parts.join("::"), "::")
        }
        "py" | "pyi" => {
            let mut parts: Vec<&str> = stem.split('/').collect();
            if parts.last() == Some(&"__init__") {
                parts.pop();
            }
            (parts.join("."), ".")
        }
        "c" | "cc" | "cpp" | "cxx" | "h" | "hh" | "hpp" | "cu" | "cuh" => {
            (stem.replace('/', "::"), "::")
        }
        _ => (stem.replace('/', "."), "."),
    };
    if module.is_empty() {
        qname.to_string()
    } else {
        format!("{module}{sep}{qname}")
    }
}

/// Whether `pattern` names the symbol `qname` in `path`: its name, its qualified name, or its
/// module-qualified name or any trailing part of it (`memory_utils.BlockAllocator.free_blocks`,
/// `worker::memory_utils::free_blocks`), globs allowed.
fn symbol_matches(pattern: &str, path: &str, qname: &str) -> bool {
    let name = qname.rsplit(['.', ':']).next().unwrap_or("");
    if glob(pattern, qname) || glob(pattern, name) {
        return true;
    }
    if !pattern.contains(['.', ':']) {
        return false;
    }
    let full = module_qualified(path, qname);
    full == pattern
        || full.ends_with(&format!(".{pattern}"))
        || full.ends_with(&format!("::{pattern}"))
        || glob(pattern, &full)
        || glob(&format!("*.{pattern}"), &full)
        || glob(&format!("*::{pattern}"), &full)
}

/// Glob match with `*` and `?`.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A path matches a name if a component or its stem does (`memory_utils`, `memory_*`,
/// `memory_utils.py`), or the path ends with it (`worker/memory_utils.py`).
fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains(['*', '?', '/']) {
        // The common case, without glob machinery: a component or a component's stem.
        return path
            .split('/')
            .any(|c| c == pattern || c.rsplit_once('.').is_some_and(|(stem, _)| stem == pattern));
    }
    if pattern.contains('/') {
        return glob(pattern, path)
            || path.ends_with(pattern)
            || glob(&format!("*{pattern}"), path);
    }
    path.split('/').any(|c| {
        glob(pattern, c)
            || c.rsplit_once('.')
                .is_some_and(|(stem, _)| glob(pattern, stem))
    })
}

impl Set {
    fn from_binding(
        text: &str,
        b: &Binding,
        incoming: Option<&Relation>,
    ) -> Result<Set, QueryError> {
        let node_kinds = match (b.kind, incoming) {
            (Some(k), Some(r)) => {
                if !r.to.contains(&k.node_kind()) {
                    let to: Vec<&str> = r.to.iter().map(|k| k.plural()).collect();
                    return Err(QueryError::at(
                        text,
                        b.span.0,
                        b.span.1,
                        format!(
                            "`{}` leads to {}, not to {}",
                            r.name,
                            to.join(" or "),
                            k.name()
                        ),
                    ));
                }
                vec![k.node_kind()]
            }
            (Some(k), None) => vec![k.node_kind()],
            (None, Some(r)) => r.to.to_vec(),
            (None, None) => unreachable!("the source always has a kind"),
        };
        let kind = b.kind.or_else(|| Kind::implied_by(&node_kinds));
        let mut tests = Vec::new();
        let (mut since, mut until) = (None, None);
        let mut search = None;
        for f in &b.filters {
            match f {
                Filter::Matching { .. } | Filter::Similar(_) | Filter::Concerning(_) => {
                    let (searchable, word): (&[NodeKind], &str) = match f {
                        Filter::Matching { .. } => (
                            &[
                                NodeKind::Issue,
                                NodeKind::Commit,
                                NodeKind::Symbol,
                                NodeKind::File,
                            ],
                            "`matching` applies to issues, prs, commits, symbols and files",
                        ),
                        Filter::Similar(_) => (
                            &[NodeKind::Issue, NodeKind::Commit, NodeKind::Symbol],
                            "`similar to` applies to issues, prs, commits and symbols",
                        ),
                        _ => (
                            &[NodeKind::File, NodeKind::Symbol],
                            "`concerning #N` applies to files and symbols",
                        ),
                    };
                    if !node_kinds.iter().any(|k| searchable.contains(k)) {
                        return Err(QueryError::at(text, b.span.0, b.span.1, word.to_string()));
                    }
                    if search.is_some() {
                        return Err(QueryError::at(
                            text,
                            b.span.0,
                            b.span.1,
                            "one set takes one `matching`, `similar to` or `concerning`"
                                .to_string(),
                        ));
                    }
                    search = Some(f.clone());
                }
                Filter::Where(e) => tests.push(compile(text, e, kind, incoming.is_some())?),
                Filter::Since(d) | Filter::Until(d) => {
                    if kind.and_then(Kind::date_field).is_none() {
                        return Err(QueryError::at(
                            text,
                            b.span.0,
                            b.span.1,
                            "`since` and `until` apply to issues, prs and commits".to_string(),
                        ));
                    }
                    let t = parse_date(d).expect("checked by the parser");
                    if matches!(f, Filter::Since(_)) {
                        since = Some(t);
                    } else {
                        until = Some(t);
                    }
                }
            }
        }
        let name = kind.map_or_else(|| "issue".to_string(), |k| k.words().1.to_string());
        Ok(Set {
            kind,
            node_kinds,
            pattern: b.pattern.clone(),
            uses_edge: tests.iter().any(uses_edge),
            tests,
            since,
            until,
            name,
            search,
            hits: None,
        })
    }

    /// Kind and pattern only (cheap checks, before filters).
    fn admits(&self, ctx: &mut Ctx<'_>, id: NodeId) -> Result<bool, StoreError> {
        let Some(nk) = id.kind() else {
            return Ok(false);
        };
        if !self.node_kinds.contains(&nk) {
            return Ok(false);
        }
        if let Some(hits) = &self.hits {
            if !hits.contains_key(&id) {
                return Ok(false);
            }
        }
        match (self.kind, nk) {
            (Some(Kind::Issues), NodeKind::Issue) if ctx.issue(id)?.is_pr => return Ok(false),
            (Some(Kind::Prs), NodeKind::Issue) if !ctx.issue(id)?.is_pr => return Ok(false),
            (Some(k @ (Kind::Functions | Kind::Classes | Kind::Methods)), NodeKind::Symbol) => {
                let sk = ctx.names(id)?.2;
                let ok = match k {
                    Kind::Functions => {
                        matches!(sk, Some(SymbolKind::Function | SymbolKind::Method))
                    }
                    Kind::Classes => matches!(sk, Some(SymbolKind::Class | SymbolKind::Struct)),
                    _ => sk == Some(SymbolKind::Method),
                };
                if !ok {
                    return Ok(false);
                }
            }
            _ => {}
        }
        let Some(pattern) = &self.pattern else {
            return Ok(true);
        };
        Ok(match (pattern, nk) {
            (Pattern::Number(n), NodeKind::Issue) => ctx.issue(id)?.number == *n,
            (Pattern::Number(_), _) => false,
            (Pattern::Text { text, .. }, NodeKind::Issue) => ctx
                .issue(id)?
                .title
                .to_ascii_lowercase()
                .contains(&text.to_ascii_lowercase()),
            (Pattern::Text { text, .. }, NodeKind::Commit) => {
                let sha = hex(&ctx.read.commit(id)?.sha);
                sha.starts_with(&text.to_ascii_lowercase())
            }
            (Pattern::Text { text, .. }, NodeKind::File) => path_matches(text, &ctx.names(id)?.0),
            (Pattern::Text { text, .. }, NodeKind::Symbol) => {
                let (path, qname, _) = ctx.names(id)?;
                symbol_matches(text, path, qname)
            }
            (Pattern::Text { text, .. }, NodeKind::Author) => {
                let a = ctx.read.author(id)?;
                let (name, email) = (ctx.read.string(a.name)?, ctx.read.string(a.email)?);
                glob(text, &name)
                    || glob(text, &email)
                    || name
                        .to_ascii_lowercase()
                        .contains(&text.to_ascii_lowercase())
            }
            _ => false,
        })
    }

    /// Everything: kind, pattern, dates, filters (with the edge that reached the node).
    fn accepts(
        &self,
        ctx: &mut Ctx<'_>,
        id: NodeId,
        edge: Option<&EdgeMeta>,
    ) -> Result<bool, StoreError> {
        if !self.admits(ctx, id)? {
            return Ok(false);
        }
        if self.since.is_some() || self.until.is_some() {
            let field = self.kind.and_then(Kind::date_field).unwrap_or("date");
            let t = match ctx.field(id, field, None)? {
                FVal::Time(t) => t,
                _ => return Ok(false),
            };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u + 86_400) {
                return Ok(false);
            }
        }
        for t in &self.tests {
            if !ctx.test(t, id, edge)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Candidates when this set anchors the plan: a lookup for items and patterns, else a scan.
    fn list(&self, ctx: &mut Ctx<'_>) -> Result<Vec<NodeId>, StoreError> {
        let read = ctx.read;
        let mut ids = Vec::new();
        if let Some(hits) = &self.hits {
            let mut found: Vec<(NodeId, f32)> = hits.iter().map(|(n, s)| (*n, *s)).collect();
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            return Ok(found.into_iter().map(|(n, _)| n).collect());
        }
        for nk in &self.node_kinds {
            match (nk, &self.pattern) {
                (NodeKind::Issue, Some(Pattern::Number(n))) => {
                    ids.extend(read.issue_by_number(*n)?)
                }
                (NodeKind::Issue, _) => ids.extend(read.issues()?.into_iter().map(|(id, r)| {
                    ctx.issues.insert(id, r);
                    id
                })),
                (NodeKind::Commit, Some(Pattern::Text { text, .. }))
                    if text.len() >= 4 && text.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    ids.extend(read.commits_by_hex_prefix(text, usize::MAX)?)
                }
                (NodeKind::Commit, _) => {
                    ids.extend((0..read.commit_count()?).map(|l| NodeId::new(NodeKind::Commit, l)))
                }
                // A path that names a file exactly is that file; otherwise scan the paths.
                (NodeKind::File, Some(Pattern::Text { text, .. }))
                    if text.contains('/')
                        && !text.contains(['*', '?'])
                        && read.file_by_path(text)?.is_some() =>
                {
                    ids.extend(read.file_by_path(text)?)
                }
                // A plain name (no glob) compares interned ids instead of reading every name.
                (NodeKind::Symbol, Some(Pattern::Text { text, .. }))
                    if !text.contains(['*', '?']) =>
                {
                    let mut found = read.symbols_named(text)?;
                    if found.is_empty() {
                        // `worker::memory_utils::free_blocks`: look up the trailing parts that
                        // can be a name or a qualified name; the module part is checked
                        // against each symbol's file.
                        let segments: Vec<&str> =
                            text.split(['.', ':']).filter(|s| !s.is_empty()).collect();
                        for n in 1..segments.len() {
                            let tail = &segments[segments.len() - n..];
                            found.extend(read.symbols_named(&tail.join("."))?);
                            if n > 1 {
                                found.extend(read.symbols_named(&tail.join("::"))?);
                            }
                        }
                    }
                    ids.extend(found.into_iter().map(|(id, _)| id))
                }
                (NodeKind::File, pattern) => {
                    let files = ctx.cache.files(read)?;
                    for (id, path) in files.iter() {
                        // Test the pattern here, on the cached list, and keep only matches.
                        if let Some(Pattern::Text { text, .. }) = pattern {
                            if !path_matches(text, path) {
                                continue;
                            }
                        }
                        ctx.strings.insert(*id, (path.clone(), String::new(), None));
                        ids.push(*id);
                    }
                }
                (NodeKind::Symbol, _) => {
                    ids.extend(read.all_symbols()?.into_iter().map(|(id, _)| id));
                }
                (NodeKind::Author, _) => ids.extend(read.all_authors()?),
                _ => {}
            }
        }
        Ok(ids)
    }

    /// A guess at how many nodes `list` returns, to choose the anchor.
    fn estimate(&self, read: &ReadTx) -> Result<u64, StoreError> {
        let table: u64 = self
            .node_kinds
            .iter()
            .map(|k| read.node_count(*k))
            .sum::<Result<u64, _>>()?;
        if self.search.is_some() {
            return Ok(SEARCH_ESTIMATE);
        }
        Ok(match &self.pattern {
            Some(Pattern::Number(_)) => 1,
            Some(Pattern::Text { .. }) => (table / 100).max(1),
            None => table,
        })
    }
}

/// What a `matching`/`similar to` set is assumed to hold when choosing the anchor.
const SEARCH_ESTIMATE: u64 = 20;

/// Neighbours of `id` along `relation`, walked forwards or (`reverse`) backwards, with the
/// edge metadata only when `with_meta` (filters on links need it; reading it costs a lookup
/// and a decode per edge).
fn neighbours(
    read: &ReadTx,
    id: NodeId,
    relation: &Relation,
    reverse: bool,
    with_meta: bool,
) -> Result<Vec<(NodeId, Option<EdgeMeta>)>, StoreError> {
    let along_stored = relation.forward != reverse;
    Ok(match (along_stored, with_meta) {
        (true, true) => read
            .edges_from(id, relation.rel)?
            .into_iter()
            .map(|e| (e.dst, Some(e.meta)))
            .collect(),
        (false, true) => read
            .edges_to(id, relation.rel)?
            .into_iter()
            .map(|e| (e.src, Some(e.meta)))
            .collect(),
        (true, false) => read
            .targets_of(id, relation.rel)?
            .into_iter()
            .map(|n| (n, None))
            .collect(),
        (false, false) => read
            .sources_of(id, relation.rel)?
            .into_iter()
            .map(|n| (n, None))
            .collect(),
    })
}

/// How a query was executed, for `explain` and the benchmark.
#[derive(Debug, Clone)]
pub struct PlanInfo {
    pub anchor: usize,
    pub estimates: Vec<u64>,
    pub sizes: Vec<usize>,
}

pub struct Plan {
    sets: Vec<Set>,
    relations: Vec<&'static Relation>,
    anchor: usize,
    estimates: Vec<u64>,
}

/// Check a parsed query against the schema and choose the anchor (`naive`: always the first).
pub fn plan(text: &str, q: &Query, read: &ReadTx, naive: bool) -> Result<Plan, QueryError> {
    let q = &move_dates(q);
    let mut sets = vec![Set::from_binding(text, &q.source, None)?];
    let mut relations = Vec::new();
    for step in &q.steps {
        let prev = sets.last().expect("source");
        if !prev
            .node_kinds
            .iter()
            .any(|k| step.relation.from.contains(k))
        {
            let from: Vec<&str> = step.relation.from.iter().map(|k| k.plural()).collect();
            let valid: Vec<&str> = prev
                .node_kinds
                .iter()
                .flat_map(|k| schema::relations_from(*k))
                .collect();
            return Err(QueryError::at(
                text,
                step.span.0,
                step.span.1,
                format!(
                    "`{}` starts from {}, not from {}; relations from {}: {}",
                    step.relation.name,
                    from.join(" or "),
                    prev.kind.map_or("this set", Kind::name),
                    prev.kind.map_or("this set", Kind::name),
                    valid.join(", ")
                ),
            ));
        }
        sets.push(Set::from_binding(text, &step.target, Some(step.relation))?);
        relations.push(step.relation);
    }
    let mut estimates = Vec::new();
    for s in &sets {
        estimates.push(s.estimate(read).map_err(QueryError::store)?);
    }
    let anchor = if naive {
        0
    } else {
        (0..sets.len())
            .filter(|&i| i == 0 || !sets[i].uses_edge)
            .min_by_key(|&i| (estimates[i], i))
            .unwrap_or(0)
    };
    Ok(Plan {
        sets,
        relations,
        anchor,
        estimates,
    })
}

/// `since` and `until` written after a set without dates (`commits touching memory_utils since
/// 2024-01-10`) filter the nearest set to their left that has one.
fn move_dates(q: &Query) -> Query {
    let mut q = q.clone();
    let has_date = |b: &Binding, incoming: Option<&Relation>| {
        b.kind
            .or_else(|| incoming.and_then(|r| Kind::implied_by(r.to)))
            .and_then(Kind::date_field)
            .is_some()
    };
    let n = q.steps.len() + 1;
    for i in (1..n).rev() {
        let incoming = Some(q.steps[i - 1].relation);
        if has_date(&q.steps[i - 1].target, incoming) {
            continue;
        }
        let (dates, rest): (Vec<Filter>, Vec<Filter>) = q.steps[i - 1]
            .target
            .filters
            .drain(..)
            .partition(|f| matches!(f, Filter::Since(_) | Filter::Until(_)));
        q.steps[i - 1].target.filters = rest;
        if dates.is_empty() {
            continue;
        }
        // The nearest set to the left with a date.
        let mut j = i - 1;
        loop {
            let ok = if j == 0 {
                has_date(&q.source, None)
            } else {
                has_date(&q.steps[j - 1].target, Some(q.steps[j - 1].relation))
            };
            if ok || j == 0 {
                break;
            }
            j -= 1;
        }
        if j == 0 {
            q.source.filters.extend(dates);
        } else {
            q.steps[j - 1].target.filters.extend(dates);
        }
    }
    q
}

type Pairs = Vec<(NodeId, NodeId)>;

/// The members of each set that lie on a complete path, and the links between consecutive
/// sets.
pub struct Matches {
    pub members: Vec<Vec<NodeId>>,
    pub pairs: Vec<Pairs>,
    pub info: PlanInfo,
}

/// Run the plan.
pub fn run(plan: &Plan, ctx: &mut Ctx<'_>) -> Result<Matches, StoreError> {
    let n = plan.sets.len();
    let mut members: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    let mut pairs: Vec<Pairs> = vec![Vec::new(); n.saturating_sub(1)];
    let a = plan.anchor;
    let mut anchor = Vec::new();
    let mut listed = HashSet::new();
    for id in plan.sets[a].list(ctx)? {
        if listed.insert(id) && plan.sets[a].accepts(ctx, id, None)? {
            anchor.push(id);
        }
    }
    members[a] = anchor;
    // Left of the anchor: walk each relation backwards.
    for i in (0..a).rev() {
        let mut seen = HashSet::new();
        let mut p = Vec::new();
        let mut reached = Vec::new();
        for &y in &members[i + 1] {
            let with_meta = plan.sets[i + 1].uses_edge;
            for (x, meta) in neighbours(ctx.read, y, plan.relations[i], true, with_meta)? {
                // The edge belongs to set i+1's filters; x's own filters use its own edge later.
                if with_meta && !plan.sets[i + 1].accepts(ctx, y, meta.as_ref())? {
                    continue;
                }
                if !plan.sets[i].admits(ctx, x)? {
                    continue;
                }
                let ok = if plan.sets[i].uses_edge && i > 0 {
                    true // checked with its own incoming edge in the pruning pass
                } else {
                    plan.sets[i].accepts(ctx, x, None)?
                };
                if ok {
                    p.push((x, y));
                    if seen.insert(x) {
                        reached.push(x);
                    }
                }
            }
        }
        members[i] = reached;
        pairs[i] = p;
    }
    // Right of the anchor: walk each relation forwards.
    for i in a..n.saturating_sub(1) {
        let mut seen = HashSet::new();
        let mut p = Vec::new();
        let mut reached = Vec::new();
        for &x in &members[i] {
            let with_meta = plan.sets[i + 1].uses_edge;
            for (y, meta) in neighbours(ctx.read, x, plan.relations[i], false, with_meta)? {
                if plan.sets[i + 1].accepts(ctx, y, meta.as_ref())? {
                    p.push((x, y));
                    if seen.insert(y) {
                        reached.push(y);
                    }
                }
            }
        }
        members[i + 1] = reached;
        pairs[i] = p;
    }
    // Left sets with edge filters: keep only pairs whose edge passes (checked from the left).
    for i in 1..a.min(n) {
        if plan.sets[i].uses_edge {
            let mut keep = Vec::new();
            for &(x, y) in &pairs[i - 1] {
                let ok = neighbours(ctx.read, x, plan.relations[i - 1], false, true)?
                    .iter()
                    .filter(|(d, _)| *d == y)
                    .try_fold(false, |acc, (_, m)| -> Result<bool, StoreError> {
                        Ok(acc || plan.sets[i].accepts(ctx, y, m.as_ref())?)
                    })?;
                if ok {
                    keep.push((x, y));
                }
            }
            pairs[i - 1] = keep;
        }
    }
    // Prune to complete paths: right to left, left to right, right to left.
    for pass in 0..3 {
        if pass % 2 == 0 {
            for i in (0..n.saturating_sub(1)).rev() {
                let right: HashSet<NodeId> = members[i + 1].iter().copied().collect();
                pairs[i].retain(|(_, y)| right.contains(y));
                let left: HashSet<NodeId> = pairs[i].iter().map(|(x, _)| *x).collect();
                members[i].retain(|x| left.contains(x));
            }
        } else {
            for i in 0..n.saturating_sub(1) {
                let left: HashSet<NodeId> = members[i].iter().copied().collect();
                pairs[i].retain(|(x, _)| left.contains(x));
                let right: HashSet<NodeId> = pairs[i].iter().map(|(_, y)| *y).collect();
                members[i + 1].retain(|y| right.contains(y));
            }
        }
    }
    let info = PlanInfo {
        anchor: a,
        estimates: plan.estimates.clone(),
        sizes: members.iter().map(Vec::len).collect(),
    };
    Ok(Matches {
        members,
        pairs,
        info,
    })
}

/// Default columns of a node.
fn default_columns(kind: NodeKind) -> &'static [&'static str] {
    match kind {
        NodeKind::Issue => &["number", "state", "title"],
        NodeKind::Commit => &["sha", "date", "author", "subject"],
        NodeKind::File => &["path"],
        NodeKind::Symbol => &["qname", "kind", "path"],
        NodeKind::Author => &["name", "email"],
        NodeKind::Blob => &[],
    }
}

fn cell(ctx: &mut Ctx<'_>, id: NodeId, column: &str) -> Result<serde_json::Value, StoreError> {
    Ok(match (id.kind(), column) {
        (Some(NodeKind::Issue), "number") => {
            let i = ctx.issue(id)?;
            serde_json::json!(format!("{}#{}", if i.is_pr { "PR " } else { "" }, i.number))
        }
        (Some(NodeKind::Issue), "title") => {
            let i = ctx.issue(id)?;
            serde_json::json!(if i.stub {
                "(not imported)".to_string()
            } else {
                i.title.clone()
            })
        }
        (Some(NodeKind::Commit), "sha") => {
            serde_json::json!(hex(&ctx.read.commit(id)?.sha)[..10].to_string())
        }
        _ => ctx.field(id, column, None)?.display(),
    })
}

/// How many nearest neighbours `similar to` and vector `matching` return without a `limit`.
pub const DEFAULT_NEAREST: usize = 10;

/// Execute `q` (already parsed) and shape the rows.
pub fn execute(
    text: &str,
    q: &Query,
    read: &ReadTx,
    indexes: Option<&Indexes>,
    naive: bool,
    cache: &mut Cache,
) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    let mut plan = plan(text, q, read, naive)?;
    let mut ctx = Ctx::new(read, cache);
    let k = q.tail.limit.unwrap_or(DEFAULT_NEAREST);
    for i in 0..plan.sets.len() {
        if plan.sets[i].search.is_none() {
            continue;
        }
        let indexes = indexes.ok_or_else(|| {
            QueryError::whole(
                text,
                "`matching` and `similar to` need the search indexes, which this caller did not open"
                    .to_string(),
            )
        })?;
        let set = &plan.sets[i];
        let read = ctx.read;
        let hits = search::search_hits(
            set.search.as_ref().expect("a search set"),
            &set.node_kinds,
            read,
            indexes,
            k,
            &mut |n| set.accepts(&mut ctx, n, None),
        )
        .map_err(|e| QueryError::whole(text, e.to_string()))?;
        for (n, s) in &hits {
            ctx.scores.insert(*n, *s);
        }
        plan.sets[i].hits = Some(hits);
    }
    // Which sets are returned.
    let mut returned: Vec<usize> = Vec::new();
    for name in &q.tail.returns {
        let idx = plan
            .sets
            .iter()
            .position(|s| {
                s.kind
                    .is_some_and(|k| k.words().0 == name || k.words().1 == name)
                    || s.name == *name
            })
            .ok_or_else(|| {
                let names: Vec<String> = plan
                    .sets
                    .iter()
                    .filter_map(|s| s.kind.map(|k| k.words().1.to_string()))
                    .collect();
                QueryError::whole(
                    text,
                    format!(
                        "`return {name}`: no set of that kind in the query; sets: {}",
                        names.join(", ")
                    ),
                )
            })?;
        returned.push(idx);
    }
    if returned.is_empty() {
        returned.push(0);
    }
    let primary = returned[0];
    for field in q
        .tail
        .order
        .iter()
        .map(|o| &o.0)
        .chain(q.tail.count.iter().flatten())
    {
        let kind = plan.sets[primary].kind;
        let known: Vec<&str> = kind.map_or_else(Vec::new, |k| k.fields().to_vec());
        if !known.contains(&field.as_str()) {
            let mut message = format!(
                "{} have no field `{field}`; fields: {}",
                kind.map_or("these", Kind::name),
                known.join(", ")
            );
            if let Some(near) = schema::nearest(field, known.iter().copied()) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            return Err(QueryError::whole(text, message));
        }
    }

    if q.explain {
        let Matches { members, info, .. } = run(&plan, &mut ctx).map_err(QueryError::store)?;
        let mut rows = Vec::new();
        for (i, set) in plan.sets.iter().enumerate() {
            let step = if i == 0 {
                "scan".to_string()
            } else {
                let r = plan.relations[i - 1];
                let dir = if i <= info.anchor {
                    "reverse edges"
                } else {
                    "edges"
                };
                format!("{} ({dir} of {})", r.name, r.rel.name())
            };
            let role = if i == info.anchor {
                "anchor: listed"
            } else {
                "reached"
            };
            rows.push(vec![
                serde_json::json!(i),
                serde_json::json!(set.kind.map_or("(any)", Kind::name)),
                serde_json::json!(if i == 0 { "source".into() } else { step }),
                serde_json::json!(role),
                serde_json::json!(info.estimates[i]),
                serde_json::json!(members[i].len()),
            ]);
        }
        return Ok(QueryResult {
            columns: ["set", "kind", "step", "plan", "estimate", "members"]
                .map(String::from)
                .to_vec(),
            rows,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            plan: Some(info),
        });
    }

    let Matches {
        members,
        pairs,
        info,
    } = run(&plan, &mut ctx).map_err(QueryError::store)?;
    // Tuples of returned sets along complete paths.
    let mut tuples: Vec<Vec<NodeId>> = Vec::new();
    if returned == [primary] {
        tuples = members[primary].iter().map(|id| vec![*id]).collect();
    } else {
        let last = *returned.iter().max().expect("not empty");
        let first = *returned.iter().min().expect("not empty");
        let mut next: Vec<HashMap<NodeId, Vec<NodeId>>> = Vec::new();
        for p in &pairs {
            let mut m: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
            for (x, y) in p {
                m.entry(*x).or_default().push(*y);
            }
            next.push(m);
        }
        let mut seen = HashSet::new();
        let mut stack: Vec<(usize, Vec<NodeId>)> =
            members[first].iter().map(|id| (first, vec![*id])).collect();
        while let Some((i, path)) = stack.pop() {
            if i == last {
                let tuple: Vec<NodeId> = returned.iter().map(|r| path[r - first]).collect();
                if seen.insert(tuple.clone()) {
                    tuples.push(tuple);
                }
                if tuples.len() >= 1_000_000 {
                    break;
                }
                continue;
            }
            let at = *path.last().expect("not empty");
            for y in next[i].get(&at).into_iter().flatten() {
                let mut p = path.clone();
                p.push(*y);
                stack.push((i + 1, p));
            }
        }
    }
    // Order: by the field asked for, else by search score, else a natural order per kind.
    let searched = plan.sets[primary].search.is_some();
    let sort_field = q.tail.order.clone().or_else(|| {
        if searched {
            return Some(("score".into(), true));
        }
        let kind = members[primary].first().and_then(|id| id.kind())?;
        Some(match kind {
            NodeKind::Issue => ("number".into(), false),
            NodeKind::Commit => ("date".into(), true),
            NodeKind::File => ("path".into(), false),
            NodeKind::Symbol => ("qname".into(), false),
            _ => ("name".into(), false),
        })
    });
    if let Some((field, desc)) = sort_field {
        let mut keyed = Vec::with_capacity(tuples.len());
        for t in tuples {
            let k = ctx
                .field(t[0], &field, None)
                .map_err(QueryError::store)?
                .sort_key();
            keyed.push((k, t));
        }
        keyed.sort_by(|a, b| {
            a.0 .0
                .partial_cmp(&b.0 .0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.0 .1.cmp(&b.0 .1))
        });
        if desc {
            keyed.reverse();
        }
        tuples = keyed.into_iter().map(|(_, t)| t).collect();
    }

    let (columns, mut rows) = match &q.tail.count {
        Some(None) => (
            vec!["count".to_string()],
            vec![vec![serde_json::json!(tuples.len())]],
        ),
        Some(Some(field)) => {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for t in &tuples {
                match ctx.field(t[0], field, None).map_err(QueryError::store)? {
                    FVal::List(items) if items.is_empty() => {
                        *counts.entry(String::new()).or_default() += 1
                    }
                    FVal::List(items) => {
                        for i in items {
                            *counts.entry(i).or_default() += 1;
                        }
                    }
                    v => {
                        let key = match v.display() {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Null => "(none)".to_string(),
                            other => other.to_string(),
                        };
                        *counts.entry(key).or_default() += 1;
                    }
                }
            }
            let mut v: Vec<(String, u64)> = counts.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (
                vec![field.clone(), "count".to_string()],
                v.into_iter()
                    .map(|(k, c)| vec![serde_json::json!(k), serde_json::json!(c)])
                    .collect(),
            )
        }
        None => {
            let mut columns = Vec::new();
            let kinds: Vec<NodeKind> = returned
                .iter()
                .map(|&r| {
                    tuples
                        .first()
                        .and_then(|t| t[returned.iter().position(|x| *x == r).unwrap_or(0)].kind())
                        .unwrap_or_else(|| plan.sets[r].node_kinds[0])
                })
                .collect();
            let columns_of = |j: usize, k: NodeKind| -> Vec<&'static str> {
                let mut c = default_columns(k).to_vec();
                if plan.sets[returned[j]].search.is_some() {
                    c.push("score");
                }
                c
            };
            for (j, k) in kinds.iter().enumerate() {
                for c in columns_of(j, *k) {
                    let name = if returned.len() > 1 {
                        format!("{}.{c}", plan.sets[returned[j]].name)
                    } else {
                        c.to_string()
                    };
                    columns.push(name);
                }
            }
            let mut rows = Vec::new();
            for t in &tuples {
                let mut row = Vec::new();
                for (j, id) in t.iter().enumerate() {
                    let kind = id.kind().unwrap_or(NodeKind::Blob);
                    for c in columns_of(j, kind) {
                        row.push(cell(&mut ctx, *id, c).map_err(QueryError::store)?);
                    }
                }
                rows.push(row);
            }
            (columns, rows)
        }
    };
    if let Some(limit) = q.tail.limit {
        rows.truncate(limit);
    }
    Ok(QueryResult {
        columns,
        rows,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        plan: Some(info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_paths() {
        assert!(glob("memory_*", "memory_utils"));
        assert!(glob("*utils*", "memory_utils.py"));
        assert!(!glob("memory_?", "memory_utils"));
        assert!(path_matches(
            "memory_utils",
            "minillm/worker/memory_utils.py"
        ));
        assert!(path_matches("memory_*", "minillm/worker/memory_utils.py"));
        assert!(path_matches(
            "worker/memory_utils.py",
            "minillm/worker/memory_utils.py"
        ));
        assert!(path_matches(
            "minillm/*/memory_utils.py",
            "minillm/worker/memory_utils.py"
        ));
        assert!(!path_matches("memory", "minillm/worker/memory_utils.py"));
        assert!(path_matches("worker", "minillm/worker/memory_utils.py"));
    }

    #[test]
    fn module_qualified_names() {
        let py = "minillm/worker/memory_utils.py";
        assert_eq!(
            module_qualified(py, "BlockAllocator.free_blocks"),
            "minillm.worker.memory_utils.BlockAllocator.free_blocks"
        );
        assert_eq!(
            module_qualified("minillm/common/__init__.py", "X"),
            "minillm.common.X"
        );
        assert_eq!(
            module_qualified("rust/src/worker/memory_utils.rs", "free_blocks"),
            "worker::memory_utils::free_blocks"
        );
        assert_eq!(
            module_qualified("rust/src/cache/mod.rs", "Block"),
            "cache::Block"
        );
        assert_eq!(module_qualified("rust/src/lib.rs", "run"), "run");
        assert!(symbol_matches(
            "memory_utils.BlockAllocator.free_blocks",
            py,
            "BlockAllocator.free_blocks"
        ));
        assert!(symbol_matches(
            "worker.memory_utils.BlockAllocator.free_blocks",
            py,
            "BlockAllocator.free_blocks"
        ));
        assert!(symbol_matches(
            "free_blocks",
            py,
            "BlockAllocator.free_blocks"
        ));
        assert!(!symbol_matches(
            "kv_cache.BlockAllocator.free_blocks",
            py,
            "BlockAllocator.free_blocks"
        ));
        assert!(symbol_matches(
            "worker::memory_utils::free_blocks",
            "rust/src/worker/memory_utils.rs",
            "free_blocks"
        ));
        assert!(!symbol_matches(
            "orker::memory_utils::free_blocks",
            "rust/src/worker/memory_utils.rs",
            "free_blocks"
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2024-01-01"), Some(1704067200));
        assert_eq!(parse_date("2024-01-01T10:00:00Z"), Some(1704103200));
        assert_eq!(parse_date("yesterday"), None);
    }
}
