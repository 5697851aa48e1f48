//! Reading fields: the value of a [`Field`] on one node (or on the link that reached it), with
//! the records a query run reads more than once cached in a [`Ctx`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::code::module_qualified;
use crate::store::records::{EdgeMeta, IssueRecord, SymbolKind};
use crate::store::{hex, NodeId, NodeKind, ReadTx, Rel, StoreError};

use super::fields::{
    AuthorField, CommitField, EdgeField, Field, FieldRef, FileField, IssueField, SymbolField,
};

/// A field's value on one node (or on the edge that reached it).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Num(f64),
    Time(i64),
    Text(String),
    List(Vec<String>),
    Bool(bool),
}

impl Val {
    pub fn display(&self) -> serde_json::Value {
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Num(n) if n.fract() == 0.0 => serde_json::json!(*n as i64),
            Val::Num(n) => serde_json::json!(n),
            Val::Time(t) => serde_json::json!(jiff::Timestamp::from_second(*t)
                .map(|t| t.strftime("%Y-%m-%d").to_string())
                .unwrap_or_default()),
            Val::Text(s) => serde_json::json!(s),
            Val::List(v) => serde_json::json!(v.join(", ")),
            Val::Bool(b) => serde_json::json!(b),
        }
    }

    /// Sort key: a number, then lowercase text.
    pub fn sort_key(&self) -> (f64, String) {
        match self {
            Val::Null => (f64::MIN, String::new()),
            Val::Num(n) => (*n, String::new()),
            Val::Time(t) => (*t as f64, String::new()),
            Val::Text(s) => (0.0, s.to_ascii_lowercase()),
            Val::List(v) => (0.0, v.join(",").to_ascii_lowercase()),
            Val::Bool(b) => (f64::from(u8::from(*b)), String::new()),
        }
    }
}

/// What a session (the REPL, a script of queries) keeps between queries on one snapshot:
/// the list of file paths, which every name pattern on files scans. Files are never removed,
/// so the list is still right while the file count is unchanged.
#[derive(Default)]
pub struct Cache {
    /// File count when listed, and the list.
    files: Option<(u64, Paths)>,
}

pub(super) type Paths = Arc<Vec<(NodeId, String)>>;

impl Cache {
    pub(super) fn files(&mut self, read: &ReadTx) -> Result<Paths, StoreError> {
        let count = read.node_count(NodeKind::File)?;
        match &self.files {
            Some((n, list)) if *n == count => Ok(list.clone()),
            _ => {
                let list = Arc::new(read.all_files()?);
                self.files = Some((count, list.clone()));
                Ok(list)
            }
        }
    }
}

/// (path, qualified name, kind) of a symbol, or (path, "", None) of a file.
pub(super) type Names = (String, String, Option<SymbolKind>);

/// Record caches for one query run.
pub struct Ctx<'r> {
    pub(super) read: &'r ReadTx,
    issues: HashMap<NodeId, IssueRecord>,
    names: HashMap<NodeId, Names>,
    pub(super) cache: &'r mut Cache,
    /// Search scores, for the `score` field.
    pub(super) scores: HashMap<NodeId, f32>,
}

impl<'r> Ctx<'r> {
    pub fn new(read: &'r ReadTx, cache: &'r mut Cache) -> Ctx<'r> {
        Ctx {
            read,
            issues: HashMap::new(),
            names: HashMap::new(),
            cache,
            scores: HashMap::new(),
        }
    }

    pub(super) fn remember_issue(&mut self, id: NodeId, record: IssueRecord) {
        self.issues.insert(id, record);
    }

    pub(super) fn remember_path(&mut self, id: NodeId, path: String) {
        self.names.insert(id, (path, String::new(), None));
    }

    pub(super) fn issue(&mut self, id: NodeId) -> Result<&IssueRecord, StoreError> {
        if !self.issues.contains_key(&id) {
            let r = self.read.issue(id)?;
            self.issues.insert(id, r);
        }
        Ok(&self.issues[&id])
    }

    pub(super) fn names(&mut self, id: NodeId) -> Result<&Names, StoreError> {
        if !self.names.contains_key(&id) {
            let read = self.read;
            let v = match id.kind() {
                Some(NodeKind::File) => (read.string(read.file(id)?.path)?, String::new(), None),
                Some(NodeKind::Symbol) => {
                    let s = read.symbol(id)?;
                    (
                        read.string(read.file(s.file)?.path)?,
                        read.string(s.qualified_name)?,
                        Some(s.kind),
                    )
                }
                _ => (String::new(), String::new(), None),
            };
            self.names.insert(id, v);
        }
        Ok(&self.names[&id])
    }

    /// The value of `field` on node `id` (reached through `edge`, for edge fields); null
    /// where the node has no such field.
    pub(super) fn value(
        &mut self,
        id: NodeId,
        field: &FieldRef,
        edge: Option<&EdgeMeta>,
    ) -> Result<Val, StoreError> {
        match field.on(id.kind()) {
            Some(f) => self.field(id, f, edge),
            None => Ok(Val::Null),
        }
    }

    pub(super) fn field(
        &mut self,
        id: NodeId,
        field: Field,
        edge: Option<&EdgeMeta>,
    ) -> Result<Val, StoreError> {
        Ok(match field {
            Field::Edge(f) => edge.map_or(Val::Null, |e| edge_value(e, f)),
            Field::Score => self
                .scores
                .get(&id)
                .map_or(Val::Null, |s| Val::Num((f64::from(*s) * 1e4).round() / 1e4)),
            Field::Issue(f) => issue_value(self.issue(id)?, f),
            Field::Commit(f) => commit_value(self.read, id, f)?,
            Field::File(f) => file_value(&self.names(id)?.0, f),
            Field::Symbol(f) => {
                let (path, qname, kind) = self.names(id)?.clone();
                symbol_value(self.read, id, &path, qname, kind, f)?
            }
            Field::Author(f) => author_value(self.read, id, f)?,
        })
    }
}

fn edge_value(e: &EdgeMeta, f: EdgeField) -> Val {
    match f {
        EdgeField::Provenance => Val::Text(e.provenance.name().into()),
        // Stored as f32: compare at the precision it was written with (0.9, not 0.8999…).
        EdgeField::Confidence => Val::Num((e.confidence as f64 * 1e6).round() / 1e6),
        EdgeField::Evidence => e.evidence.clone().map_or(Val::Null, Val::Text),
    }
}

fn issue_value(i: &IssueRecord, f: IssueField) -> Val {
    let time = |t: Option<i64>| t.map_or(Val::Null, Val::Time);
    let text = |t: &Option<String>| t.clone().map_or(Val::Null, Val::Text);
    let env = |key: &str| {
        i.facets
            .environment
            .iter()
            .find(|(k, _)| k == key)
            .map_or(Val::Null, |(_, v)| Val::Text(v.clone()))
    };
    match f {
        IssueField::Number => Val::Num(i.number as f64),
        IssueField::Title => Val::Text(i.title.clone()),
        IssueField::Body => Val::Text(i.body.clone()),
        // A stub was only referenced: nobody told lore its state.
        IssueField::State if i.stub => Val::Text("unknown".into()),
        IssueField::State => Val::Text(i.state.name().into()),
        IssueField::Reason => text(&i.state_reason),
        IssueField::Author => text(&i.author),
        IssueField::Label => Val::List(i.labels.clone()),
        IssueField::Created => time(i.created_at),
        IssueField::Updated => time(i.updated_at),
        IssueField::Closed => time(i.closed_at),
        IssueField::Merged => time(i.merged_at),
        IssueField::Comments => Val::Num(i.comments.len() as f64),
        IssueField::Error => Val::List(i.facets.error_types.clone()),
        IssueField::Model => Val::List(i.facets.models.clone()),
        IssueField::Gpu
        | IssueField::Cuda
        | IssueField::Driver
        | IssueField::Python
        | IssueField::Torch => env(f.name()),
        IssueField::Stub => Val::Bool(i.stub),
        IssueField::Pr => Val::Bool(i.is_pr),
    }
}

fn commit_value(read: &ReadTx, id: NodeId, f: CommitField) -> Result<Val, StoreError> {
    let c = read.commit(id)?;
    Ok(match f {
        CommitField::Sha => Val::Text(hex(&c.sha)),
        CommitField::Subject => Val::Text(c.message.lines().next().unwrap_or("").to_string()),
        CommitField::Message => Val::Text(c.message.clone()),
        CommitField::Author | CommitField::Email | CommitField::Bot => {
            let author = read.edges_from(id, Rel::AuthoredBy)?;
            let Some(e) = author.first() else {
                return Ok(Val::Null);
            };
            let a = read.author(e.dst)?;
            match f {
                CommitField::Author => Val::Text(read.string(a.name)?),
                CommitField::Email => Val::Text(read.string(a.email)?),
                _ => Val::Bool(a.is_bot),
            }
        }
        CommitField::Date => Val::Time(c.author.time),
        CommitField::Merge => Val::Bool(c.is_merge),
        CommitField::Size => Val::Num((c.lines_added + c.lines_removed) as f64),
        CommitField::Added => Val::Num(c.lines_added as f64),
        CommitField::Removed => Val::Num(c.lines_removed as f64),
        CommitField::Files => Val::Num(c.files_changed as f64),
        CommitField::Class | CommitField::Error => match read.commit_facets(id)? {
            Some(facets) if f == CommitField::Class => Val::Text(facets.class.name().into()),
            Some(facets) => Val::List(facets.text.error_types),
            None => Val::Null,
        },
    })
}

fn file_value(path: &str, f: FileField) -> Val {
    let name = path.rsplit('/').next().unwrap_or("");
    match f {
        FileField::Path => Val::Text(path.to_string()),
        FileField::Name => Val::Text(name.to_string()),
        FileField::Ext => Val::Text(name.rsplit_once('.').map_or("", |(_, e)| e).to_string()),
    }
}

fn symbol_value(
    read: &ReadTx,
    id: NodeId,
    path: &str,
    qname: String,
    kind: Option<SymbolKind>,
    f: SymbolField,
) -> Result<Val, StoreError> {
    Ok(match f {
        SymbolField::Name => Val::Text(qname.rsplit(['.', ':']).next().unwrap_or("").to_string()),
        SymbolField::Module => Val::Text(module_qualified(path, &qname)),
        SymbolField::Qname => Val::Text(qname),
        SymbolField::Kind => Val::Text(kind.map_or("", |k| k.name()).to_string()),
        SymbolField::Path => Val::Text(path.to_string()),
        SymbolField::Line => {
            // The line at HEAD: the symbol as it stands in the file's HEAD version.
            let file = read.symbol(id)?.file;
            let Some(blob) = read.head_blob(file)? else {
                return Ok(Val::Null);
            };
            read.blob(blob)?
                .definition(&qname)
                .map_or(Val::Null, |s| Val::Num(s.start_line as f64))
        }
    })
}

fn author_value(read: &ReadTx, id: NodeId, f: AuthorField) -> Result<Val, StoreError> {
    let a = read.author(id)?;
    Ok(match f {
        AuthorField::Name => Val::Text(read.string(a.name)?),
        AuthorField::Email => Val::Text(read.string(a.email)?),
        AuthorField::Bot => Val::Bool(a.is_bot),
    })
}
