//! The parsed query. `Display` prints it back in canonical form; parsing that text gives the
//! same AST (tested on every fixture query).

use std::fmt;

use super::schema::{Kind, Relation};

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub explain: bool,
    pub source: Binding,
    pub steps: Vec<Step>,
    pub tail: Tail,
}

/// One set in the chain: a kind (or the relation's destination when omitted), an optional
/// name pattern, and its filters.
impl Query {
    /// Whether running the query needs the search indexes (`matching`, `similar to`).
    pub fn needs_indexes(&self) -> bool {
        std::iter::once(&self.source)
            .chain(self.steps.iter().map(|s| &s.target))
            .flat_map(|b| &b.filters)
            .any(|f| {
                matches!(
                    f,
                    Filter::Matching { .. } | Filter::Similar(_) | Filter::Concerning(_)
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub kind: Option<Kind>,
    /// Written in the singular (`commit`), as an item rather than a set.
    pub singular: bool,
    pub pattern: Option<Pattern>,
    pub filters: Vec<Filter>,
    /// Byte span of the kind word or pattern, for errors.
    pub span: (usize, usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// `#42` or `42` after `issue`/`pr`.
    Number(u64),
    /// A name, path, sha prefix or glob (`memory_*`), bare or quoted.
    Text { text: String, quoted: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub relation: &'static Relation,
    pub target: Binding,
    pub span: (usize, usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Where(Expr),
    Since(DateLit),
    Until(DateLit),
    /// `matching "text" [using bm25|vector|hybrid]`: full-text (and/or vector) search.
    Matching {
        text: String,
        ranker: SearchRanker,
    },
    /// `similar to #N` / `similar to "text"`: nearest neighbours by vector.
    Similar(Pattern),
    /// `concerning #N`: the files or symbols `lore locate N` ranks for an issue.
    Concerning(u64),
}

/// How `matching` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchRanker {
    /// BM25 only: every node that contains a word of the text.
    #[default]
    Bm25,
    /// Vectors only: the nearest nodes to the text's embedding.
    Vector,
    /// Reciprocal rank fusion of both.
    Hybrid,
}

impl SearchRanker {
    pub const ALL: [SearchRanker; 3] = [
        SearchRanker::Bm25,
        SearchRanker::Vector,
        SearchRanker::Hybrid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SearchRanker::Bm25 => "bm25",
            SearchRanker::Vector => "vector",
            SearchRanker::Hybrid => "hybrid",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare {
        field: String,
        op: CmpOp,
        value: Value,
        span: (usize, usize),
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Regex,
    Contains,
}

impl CmpOp {
    pub fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
            CmpOp::Regex => "~",
            CmpOp::Contains => "contains",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text { text: String, quoted: bool },
    Number(f64),
}

/// A date as written, and its unix seconds (parsed once, by the parser).
#[derive(Debug, Clone, PartialEq)]
pub struct DateLit {
    pub text: String,
    pub at: i64,
}

/// A word of a clause (a field or set name) and where it is, for errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub span: (usize, usize),
}

/// One item of `return`: a set (`commit`), or a field of one (`commit.sha`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnItem {
    pub set: Word,
    pub field: Option<Word>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tail {
    /// `order by FIELD [asc|desc]`: field and descending.
    pub order: Option<(Word, bool)>,
    pub limit: Option<usize>,
    /// `count` (None) or `count by FIELD`.
    pub count: Option<Option<Word>>,
    /// `return a, b.field`: sets by kind word, or fields of them.
    pub returns: Vec<ReturnItem>,
}

impl fmt::Display for ReturnItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}.{}", self.set.text, field.text),
            None => write!(f, "{}", self.set.text),
        }
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Number(n) => write!(f, "#{n}"),
            Pattern::Text { text, quoted: true } => write!(f, "{}", quote(text)),
            Pattern::Text { text, .. } => write!(f, "{text}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text { text, quoted: true } => write!(f, "{}", quote(text)),
            Value::Text { text, .. } => write!(f, "{text}"),
            Value::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Expr {
    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, parent: u8) -> fmt::Result {
        let (prec, open) = match self {
            Expr::Or(..) => (1, parent > 1),
            Expr::And(..) => (2, parent > 2),
            _ => (3, false),
        };
        if open {
            write!(f, "(")?;
        }
        match self {
            Expr::Or(a, b) => {
                a.fmt_prec(f, prec)?;
                write!(f, " or ")?;
                b.fmt_prec(f, prec + 1)?;
            }
            Expr::And(a, b) => {
                a.fmt_prec(f, prec)?;
                write!(f, " and ")?;
                b.fmt_prec(f, prec + 1)?;
            }
            Expr::Not(e) => {
                write!(f, "not ")?;
                e.fmt_prec(f, 3)?;
            }
            Expr::Compare {
                field, op, value, ..
            } => write!(f, "{field} {} {value}", op.text())?,
        }
        if open {
            write!(f, ")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_prec(f, 0)
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(kind) = self.kind {
            let (plural, singular) = kind.words();
            parts.push(if self.singular { singular } else { plural }.to_string());
        }
        if let Some(p) = &self.pattern {
            parts.push(p.to_string());
        }
        for filter in &self.filters {
            parts.push(match filter {
                Filter::Where(e) => format!("where {e}"),
                Filter::Since(d) => format!("since {}", d.text),
                Filter::Until(d) => format!("until {}", d.text),
                Filter::Matching { text, ranker } => match ranker {
                    SearchRanker::Bm25 => format!("matching {}", quote(text)),
                    r => format!("matching {} using {}", quote(text), r.name()),
                },
                Filter::Similar(p) => format!("similar to {p}"),
                Filter::Concerning(n) => format!("concerning #{n}"),
            });
        }
        write!(f, "{}", parts.join(" "))
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.explain {
            write!(f, "explain ")?;
        }
        write!(f, "{}", self.source)?;
        for step in &self.steps {
            write!(f, " {}", step.relation.name)?;
            let target = step.target.to_string();
            if !target.is_empty() {
                write!(f, " {target}")?;
            }
        }
        let t = &self.tail;
        if let Some((field, desc)) = &t.order {
            write!(
                f,
                " order by {}{}",
                field.text,
                if *desc { " desc" } else { "" }
            )?;
        }
        if let Some(count) = &t.count {
            match count {
                None => write!(f, " count")?,
                Some(field) => write!(f, " count by {}", field.text)?,
            }
        }
        if !t.returns.is_empty() {
            let items: Vec<String> = t.returns.iter().map(ReturnItem::to_string).collect();
            write!(f, " return {}", items.join(", "))?;
        }
        if let Some(n) = t.limit {
            write!(f, " limit {n}")?;
        }
        Ok(())
    }
}
