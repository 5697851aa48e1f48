//! Fields: what `where`, `order by`, `count by` and `return` can name. Each entity kind has
//! its own enum, so reading a field is an exhaustive `match` (see `values.rs`) and the
//! compiler keeps the schema, the docs and the executor in step.

use crate::store::NodeKind;

use super::schema::Kind;

macro_rules! field_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every field, in the order errors and docs list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $word),* }
            }
        }
    };
}

field_enum!(
    /// Fields of issues and pull requests.
    IssueField {
        Number = "number", Title = "title", Body = "body", State = "state", Reason = "reason",
        Author = "author", Label = "label", Created = "created", Updated = "updated",
        Closed = "closed", Merged = "merged", Comments = "comments", Error = "error",
        Model = "model", Gpu = "gpu", Cuda = "cuda", Driver = "driver", Python = "python",
        Torch = "torch", Stub = "stub", Pr = "pr",
    }
);

field_enum!(
    /// Fields of commits.
    CommitField {
        Sha = "sha", Subject = "subject", Message = "message", Author = "author",
        Email = "email", Date = "date", Class = "class", Bot = "bot", Merge = "merge",
        Size = "size", Added = "added", Removed = "removed", Files = "files", Error = "error",
    }
);

field_enum!(
    /// Fields of files.
    FileField { Path = "path", Name = "name", Ext = "ext" }
);

field_enum!(
    /// Fields of symbols (functions, classes, methods, …).
    SymbolField {
        Name = "name", Qname = "qname", Module = "module", Kind = "kind", Path = "path",
        Line = "line",
    }
);

field_enum!(
    /// Fields of commit authors.
    AuthorField { Name = "name", Email = "email", Bot = "bot" }
);

field_enum!(
    /// Fields of the link a relation step followed, usable in the `where` after the step.
    EdgeField { Provenance = "provenance", Confidence = "confidence", Evidence = "evidence" }
);

/// A field of some node, of the link that reached it, or its search score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Issue(IssueField),
    Commit(CommitField),
    File(FileField),
    Symbol(SymbolField),
    Author(AuthorField),
    Edge(EdgeField),
    /// The `matching`/`similar to` score of a searched set.
    Score,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Issue(f) => f.name(),
            Field::Commit(f) => f.name(),
            Field::File(f) => f.name(),
            Field::Symbol(f) => f.name(),
            Field::Author(f) => f.name(),
            Field::Edge(f) => f.name(),
            Field::Score => "score",
        }
    }

    /// The node kind whose records hold the field (`None`: any node).
    pub fn node_kind(self) -> Option<NodeKind> {
        match self {
            Field::Issue(_) => Some(NodeKind::Issue),
            Field::Commit(_) => Some(NodeKind::Commit),
            Field::File(_) => Some(NodeKind::File),
            Field::Symbol(_) => Some(NodeKind::Symbol),
            Field::Author(_) => Some(NodeKind::Author),
            Field::Edge(_) | Field::Score => None,
        }
    }

    pub fn is_edge(self) -> bool {
        matches!(self, Field::Edge(_))
    }

    /// A field whose values are times (compared with dates).
    pub fn is_time(self) -> bool {
        matches!(
            self,
            Field::Issue(
                IssueField::Created | IssueField::Updated | IssueField::Closed | IssueField::Merged
            ) | Field::Commit(CommitField::Date)
        )
    }

    /// The fields of the nodes of one kind, in listing order (without edge fields).
    pub fn of_node_kind(kind: NodeKind) -> Vec<Field> {
        match kind {
            NodeKind::Issue => IssueField::ALL.iter().map(|f| Field::Issue(*f)).collect(),
            NodeKind::Commit => CommitField::ALL.iter().map(|f| Field::Commit(*f)).collect(),
            NodeKind::File => FileField::ALL.iter().map(|f| Field::File(*f)).collect(),
            NodeKind::Symbol => SymbolField::ALL.iter().map(|f| Field::Symbol(*f)).collect(),
            NodeKind::Author => AuthorField::ALL.iter().map(|f| Field::Author(*f)).collect(),
            NodeKind::Blob => Vec::new(),
        }
    }

    /// The fields of a kind as written in queries: its node fields, and `score` where the
    /// kind can be searched.
    pub fn of_kind(kind: Kind) -> Vec<Field> {
        let mut fields = Field::of_node_kind(kind.node_kind());
        if kind != Kind::Authors {
            fields.push(Field::Score);
        }
        fields
    }

    /// The edge fields.
    pub fn edges() -> impl Iterator<Item = Field> {
        EdgeField::ALL.iter().map(|f| Field::Edge(*f))
    }
}

/// A field name resolved for a set: one [`Field`] per node kind the set can hold that has a
/// field of that name (a set reached through `fixed_by` holds commits and pull requests, and
/// both have an `author`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub name: &'static str,
    fields: Vec<Field>,
}

impl FieldRef {
    /// Resolve `name` among `candidates` (the fields a set can use).
    pub fn resolve(name: &str, candidates: &[Field]) -> Option<FieldRef> {
        let fields: Vec<Field> = candidates
            .iter()
            .copied()
            .filter(|f| f.name() == name)
            .collect();
        Some(FieldRef {
            name: fields.first()?.name(),
            fields,
        })
    }

    pub fn single(field: Field) -> FieldRef {
        FieldRef {
            name: field.name(),
            fields: vec![field],
        }
    }

    /// The field to read on a node of kind `kind` (`None`: the node has no such field).
    pub fn on(&self, kind: Option<NodeKind>) -> Option<Field> {
        self.fields
            .iter()
            .copied()
            .find(|f| f.node_kind().is_none() || f.node_kind() == kind)
    }

    pub fn is_edge(&self) -> bool {
        self.fields.iter().any(|f| f.is_edge())
    }

    pub fn is_time(&self) -> bool {
        self.fields.iter().any(|f| f.is_time())
    }
}

/// The fields of any of `kinds`, without repeats, in listing order.
pub fn fields_of_kinds(kinds: impl IntoIterator<Item = Kind>) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    for k in kinds {
        for f in Field::of_kind(k) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

/// The distinct names of `fields`, in order.
pub fn names(fields: &[Field]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in fields {
        if !out.contains(&f.name()) {
            out.push(f.name());
        }
    }
    out
}
