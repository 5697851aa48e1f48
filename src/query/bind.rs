//! Binding: the parsed [`Query`] checked against the schema and turned into a typed
//! [`LogicalQuery`]. Every mistake a user can make in a query that parses is reported here,
//! with its span, before any storage or index is touched.

use regex::Regex;

use super::ast::{Binding, CmpOp, Expr, Filter, Pattern, Query, SearchRanker, Value, Word};
use super::fields::{self, Field, FieldRef};
use super::schema::{self, Kind, Relation};
use super::QueryError;
use crate::store::NodeKind;

/// A query ready to plan: its sets with compiled filters, the relations between them, and
/// what to output.
#[derive(Debug)]
pub struct LogicalQuery {
    pub explain: bool,
    pub sets: Vec<SetSpec>,
    /// `relations[i]` joins `sets[i]` and `sets[i + 1]`.
    pub relations: Vec<&'static Relation>,
    /// The sets a result tuple holds, by index, in order of first mention (at least one).
    pub returned: Vec<usize>,
    pub output: Output,
    /// `order by` on the first returned set.
    pub order: Option<(FieldRef, bool)>,
    pub limit: Option<usize>,
}

/// One set of the chain.
#[derive(Debug)]
pub struct SetSpec {
    /// The kind as written, or implied by the relation that reaches the set.
    pub kind: Option<Kind>,
    /// Node kinds the set can hold (from the kind word, or the relation's destinations).
    pub node_kinds: Vec<NodeKind>,
    pub pattern: Option<Pattern>,
    pub tests: Vec<Test>,
    /// `since`/`until` as written on this set; the planner moves them to the set they filter.
    pub dates: Vec<DateBound>,
    /// The filters use edge fields: the set cannot anchor the plan.
    pub uses_edge: bool,
    /// The singular kind word, by which `return` names the set.
    pub name: &'static str,
    pub search: Option<Search>,
    /// Where the set is written.
    pub span: (usize, usize),
}

/// A `since` (lower) or `until` (upper) bound, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DateBound {
    Since(i64),
    Until(i64),
}

/// What the search indexes find for a set.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// `matching "text" [using …]`
    Matching { text: String, ranker: SearchRanker },
    /// `similar to #N` or `similar to "text"`
    Similar(Pattern),
    /// `concerning #N`: the `locate` ranking of an issue.
    Concerning(u64),
}

/// What a result row is.
#[derive(Debug)]
pub enum Output {
    /// `count`
    Count,
    /// `count by FIELD`
    CountBy(FieldRef),
    /// Rows of columns: a returned set's default columns (`field: None`) or one field.
    Rows(Vec<Column>),
}

#[derive(Debug)]
pub struct Column {
    /// Position in [`LogicalQuery::returned`].
    pub at: usize,
    pub field: Option<FieldRef>,
}

/// A compiled `where` condition.
#[derive(Debug)]
pub enum Test {
    Or(Box<Test>, Box<Test>),
    And(Box<Test>, Box<Test>),
    Not(Box<Test>),
    Cmp(Comparison),
}

/// `field op value`, with the value read every way the field may need it.
#[derive(Debug)]
pub struct Comparison {
    pub field: FieldRef,
    pub op: CmpOp,
    pub text: String,
    pub num: Option<f64>,
    pub time: Option<i64>,
    pub regex: Option<Regex>,
}

impl Test {
    pub fn uses_edge(&self) -> bool {
        match self {
            Test::Or(a, b) | Test::And(a, b) => a.uses_edge() || b.uses_edge(),
            Test::Not(a) => a.uses_edge(),
            Test::Cmp(c) => c.field.is_edge(),
        }
    }
}

impl SetSpec {
    /// The fields `where`, `order by`, `count by` and `return` can name on this set.
    pub fn fields(&self) -> Vec<Field> {
        match self.kind {
            Some(k) => Field::of_kind(k),
            None => fields::fields_of_kinds(
                self.node_kinds
                    .iter()
                    .flat_map(|nk| Kind::ALL.into_iter().filter(move |k| k.node_kind() == *nk)),
            ),
        }
    }

    /// The set has a date that `since` and `until` compare.
    pub fn has_date(&self) -> bool {
        self.kind.and_then(Kind::date_field).is_some()
    }

    fn kind_name(&self) -> &'static str {
        self.kind.map_or("this set", Kind::name)
    }
}

/// The set a `since`/`until` written on set `i` filters: set `i` if it has a date, else the
/// nearest set to its left that has one (`commits touching memory_utils since …` filters the
/// commits), else the source.
pub fn date_target(sets: &[SetSpec], i: usize) -> usize {
    (0..=i).rev().find(|&j| sets[j].has_date()).unwrap_or(0)
}

/// Check `q` (parsed from `text`) against the schema.
pub fn bind(text: &str, q: &Query) -> Result<LogicalQuery, QueryError> {
    let mut sets = vec![bind_set(text, &q.source, None)?];
    let mut relations = Vec::new();
    for step in &q.steps {
        let prev = sets.last().expect("the source");
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
            return Err(QueryError::schema(
                text,
                step.span,
                format!(
                    "`{}` starts from {}, not from {}; relations from {}: {}",
                    step.relation.name,
                    from.join(" or "),
                    prev.kind_name(),
                    prev.kind_name(),
                    valid.join(", ")
                ),
            ));
        }
        sets.push(bind_set(text, &step.target, Some(step.relation))?);
        relations.push(step.relation);
    }
    for i in 0..sets.len() {
        let target = date_target(&sets, i);
        if !sets[i].dates.is_empty() && !sets[target].has_date() {
            return Err(QueryError::schema(
                text,
                sets[target].span,
                "`since` and `until` apply to issues, prs and commits".to_string(),
            ));
        }
    }
    let (returned, columns) = bind_returns(text, q, &sets)?;
    let primary = &sets[returned[0]];
    let order = match &q.tail.order {
        Some((word, desc)) => Some((tail_field(text, word, primary)?, *desc)),
        None => None,
    };
    let output = match &q.tail.count {
        Some(None) => Output::Count,
        Some(Some(word)) => Output::CountBy(tail_field(text, word, primary)?),
        None => Output::Rows(columns),
    };
    Ok(LogicalQuery {
        explain: q.explain,
        sets,
        relations,
        returned,
        output,
        order,
        limit: q.tail.limit,
    })
}

fn bind_set(
    text: &str,
    b: &Binding,
    incoming: Option<&'static Relation>,
) -> Result<SetSpec, QueryError> {
    let node_kinds = match (b.kind, incoming) {
        (Some(k), Some(r)) if !r.to.contains(&k.node_kind()) => {
            let to: Vec<&str> = r.to.iter().map(|k| k.plural()).collect();
            return Err(QueryError::schema(
                text,
                b.span,
                format!(
                    "`{}` leads to {}, not to {}",
                    r.name,
                    to.join(" or "),
                    k.name()
                ),
            ));
        }
        (Some(k), _) => vec![k.node_kind()],
        (None, Some(r)) => r.to.to_vec(),
        (None, None) => {
            return Err(QueryError::schema(
                text,
                b.span,
                "a query starts with an entity set".to_string(),
            ))
        }
    };
    let kind = b.kind.or_else(|| Kind::implied_by(&node_kinds));
    let mut set = SetSpec {
        kind,
        node_kinds,
        pattern: b.pattern.clone(),
        tests: Vec::new(),
        dates: Vec::new(),
        uses_edge: false,
        name: kind.map_or("issue", |k| k.words().1),
        search: None,
        span: b.span,
    };
    let candidates = set.fields();
    for f in &b.filters {
        match f {
            Filter::Where(e) => {
                let test = compile(text, e, &set, &candidates, incoming.is_some())?;
                set.tests.push(test);
            }
            Filter::Since(d) => set.dates.push(DateBound::Since(d.at)),
            Filter::Until(d) => set.dates.push(DateBound::Until(d.at)),
            Filter::Matching {
                text: words,
                ranker,
            } => {
                let search = Search::Matching {
                    text: words.clone(),
                    ranker: *ranker,
                };
                set.search = Some(bind_search(text, search, &set)?);
            }
            Filter::Similar(p) => {
                set.search = Some(bind_search(text, Search::Similar(p.clone()), &set)?)
            }
            Filter::Concerning(n) => {
                set.search = Some(bind_search(text, Search::Concerning(*n), &set)?)
            }
        }
    }
    set.uses_edge = set.tests.iter().any(Test::uses_edge);
    Ok(set)
}

/// `search` if the set can be searched that way and has no other search.
fn bind_search(text: &str, search: Search, set: &SetSpec) -> Result<Search, QueryError> {
    let (searchable, word): (&[NodeKind], &str) = match &search {
        Search::Matching { .. } => (
            &[
                NodeKind::Issue,
                NodeKind::Commit,
                NodeKind::Symbol,
                NodeKind::File,
            ],
            "`matching` applies to issues, prs, commits, symbols and files",
        ),
        Search::Similar(_) => (
            &[NodeKind::Issue, NodeKind::Commit, NodeKind::Symbol],
            "`similar to` applies to issues, prs, commits and symbols",
        ),
        Search::Concerning(_) => (
            &[NodeKind::File, NodeKind::Symbol],
            "`concerning #N` applies to files and symbols",
        ),
    };
    if !set.node_kinds.iter().any(|k| searchable.contains(k)) {
        return Err(QueryError::schema(text, set.span, word.to_string()));
    }
    if set.search.is_some() {
        return Err(QueryError::schema(
            text,
            set.span,
            "one set takes one `matching`, `similar to` or `concerning`".to_string(),
        ));
    }
    Ok(search)
}

/// `where` conditions, with each field resolved on the set (and on the link that reached it,
/// when `edge_ok`).
fn compile(
    text: &str,
    e: &Expr,
    set: &SetSpec,
    candidates: &[Field],
    edge_ok: bool,
) -> Result<Test, QueryError> {
    let recurse = |e: &Expr| compile(text, e, set, candidates, edge_ok).map(Box::new);
    Ok(match e {
        Expr::Or(a, b) => Test::Or(recurse(a)?, recurse(b)?),
        Expr::And(a, b) => Test::And(recurse(a)?, recurse(b)?),
        Expr::Not(a) => Test::Not(recurse(a)?),
        Expr::Compare {
            field,
            op,
            value,
            span,
        } => {
            let field_span = (span.0, span.0 + field.len());
            let edges: Vec<Field> = Field::edges().collect();
            if let Some(edge) = FieldRef::resolve(field, &edges) {
                if !edge_ok {
                    return Err(QueryError::schema(
                        text,
                        field_span,
                        format!("`{field}` is a field of links: use it in the `where` after a relation step"),
                    ));
                }
                return Ok(Test::Cmp(comparison(text, edge, *op, value, *span)?));
            }
            let Some(resolved) = FieldRef::resolve(field, candidates) else {
                let known = fields::names(candidates);
                let mut message = format!(
                    "{} have no field `{field}`; fields: {}",
                    set.kind_name(),
                    known.join(", ")
                );
                let near_candidates = known.iter().copied().chain(edges.iter().map(|f| f.name()));
                if let Some(near) = schema::nearest(field, near_candidates) {
                    message.push_str(&format!(" (did you mean `{near}`?)"));
                }
                return Err(QueryError::schema(text, field_span, message));
            };
            Test::Cmp(comparison(text, resolved, *op, value, *span)?)
        }
    })
}

fn comparison(
    text: &str,
    field: FieldRef,
    op: CmpOp,
    value: &Value,
    span: (usize, usize),
) -> Result<Comparison, QueryError> {
    let (vtext, num) = match value {
        Value::Text { text, .. } => (text.clone(), None),
        Value::Number(n) => (value.to_string(), Some(*n)),
    };
    let regex = if op == CmpOp::Regex {
        Some(Regex::new(&vtext).map_err(|e| {
            // The regex crate's message spans lines; its last line says what is wrong.
            let why = e.to_string();
            let why = why
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            QueryError::schema(
                text,
                span,
                format!("bad regular expression `{vtext}`: {why}"),
            )
        })?)
    } else {
        None
    };
    let time = super::dates::parse_date(&vtext);
    // A date compared with a time field must be one (`created > 2024-02-30` is a mistake, as
    // `since 2024-02-30` is).
    let looks_like_date = vtext.len() >= 8
        && vtext.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && vtext.as_bytes()[4] == b'-';
    if field.is_time() && op != CmpOp::Regex && time.is_none() && looks_like_date {
        return Err(QueryError::schema(
            text,
            span,
            format!("`{vtext}` is not a date (expected YYYY-MM-DD or an RFC 3339 time)"),
        ));
    }
    Ok(Comparison {
        field,
        op,
        time,
        text: vtext,
        num,
        regex,
    })
}

/// The sets `return` names (the source when it names none) and the columns it asks for.
fn bind_returns(
    text: &str,
    q: &Query,
    sets: &[SetSpec],
) -> Result<(Vec<usize>, Vec<Column>), QueryError> {
    let mut returned: Vec<usize> = Vec::new();
    let mut columns = Vec::new();
    for item in &q.tail.returns {
        let name = item.set.text.as_str();
        let idx = sets
            .iter()
            .position(|s| {
                s.kind
                    .is_some_and(|k| k.words().0 == name || k.words().1 == name)
                    || s.name == name
            })
            .ok_or_else(|| {
                let names: Vec<&str> = sets
                    .iter()
                    .filter_map(|s| s.kind.map(|k| k.words().1))
                    .collect();
                let mut message = format!(
                    "`return {name}`: no set of that kind in the query; sets: {}",
                    names.join(", ")
                );
                // `return qname` where `return symbol.qname` was meant.
                if item.field.is_none() {
                    if let Some(set) = sets
                        .iter()
                        .find(|s| FieldRef::resolve(name, &s.fields()).is_some())
                    {
                        message.push_str(&format!(
                            " (a field is named with its set: `{}.{name}`)",
                            set.name
                        ));
                    }
                }
                QueryError::schema(text, item.set.span, message)
            })?;
        let at = match returned.iter().position(|&r| r == idx) {
            Some(at) => at,
            None => {
                returned.push(idx);
                returned.len() - 1
            }
        };
        let field = match &item.field {
            Some(word) => Some(tail_field(text, word, &sets[idx])?),
            None => None,
        };
        columns.push(Column { at, field });
    }
    if returned.is_empty() {
        returned.push(0);
        columns.push(Column { at: 0, field: None });
    }
    Ok((returned, columns))
}

/// A field named by `order by`, `count by` or `return set.field`.
fn tail_field(text: &str, word: &Word, set: &SetSpec) -> Result<FieldRef, QueryError> {
    let candidates = set.fields();
    FieldRef::resolve(&word.text, &candidates).ok_or_else(|| {
        let known = fields::names(&candidates);
        let mut message = format!(
            "{} have no field `{}`; fields: {}",
            set.kind.map_or("these", Kind::name),
            word.text,
            known.join(", ")
        );
        if let Some(near) = schema::nearest(&word.text, known.iter().copied()) {
            message.push_str(&format!(" (did you mean `{near}`?)"));
        }
        QueryError::schema(text, word.span, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parser::parse;

    #[test]
    fn a_bare_field_after_return_points_to_its_set() {
        let text = r#"symbols where name = "get_peft_model" return qname, line"#;
        let err = bind(text, &parse(text).unwrap()).unwrap_err().to_string();
        assert!(err.contains("no set of that kind"), "{err}");
        assert!(err.contains("`symbol.qname`"), "{err}");
        // A word that is neither a set nor a field gets no such hint.
        let text = "symbols return nonsense";
        let err = bind(text, &parse(text).unwrap()).unwrap_err().to_string();
        assert!(!err.contains("named with its set"), "{err}");
    }
}
