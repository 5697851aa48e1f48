//! Projection: the matches of a run become rows. Tuples of the returned sets along complete
//! paths, ordered, then counted or turned into columns, then limited. `explain` rows describe
//! the plan instead.

use std::collections::{HashMap, HashSet};

use super::bind::{Column, Output};
use super::exec::{Matches, Run};
use super::fields::{CommitField, Field, FieldRef, FileField, IssueField, SymbolField};
use super::plan::PhysicalPlan;
use super::schema::Kind;
use super::values::{Ctx, Val};
use super::{QueryError, Rows};
use crate::store::{hex, NodeId, NodeKind, StoreError};

/// The rows of a run (`cap`: the most result tuples allowed before ordering).
pub fn rows(plan: &PhysicalPlan, run: &mut Run<'_, '_>, cap: usize) -> Result<Rows, QueryError> {
    let matches = run.walk()?;
    if plan.query.explain {
        return Ok(explain(plan, &matches));
    }
    let q = &plan.query;
    let mut tuples = tuples(&q.returned, &matches, cap)?;
    order(plan, &mut run.ctx, &matches, &mut tuples)?;
    let mut nodes: Vec<NodeId> = match &q.output {
        Output::Rows(_) => tuples.iter().map(|t| t[0]).collect(),
        Output::Count | Output::CountBy(_) => Vec::new(),
    };
    let (columns, mut rows) = match &q.output {
        Output::Count => (
            vec!["count".to_string()],
            vec![vec![serde_json::json!(tuples.len())]],
        ),
        Output::CountBy(field) => count_by(&mut run.ctx, field, &tuples)?,
        Output::Rows(columns) => table(plan, &mut run.ctx, columns, &tuples)?,
    };
    if let Some(limit) = q.limit {
        rows.truncate(limit);
        nodes.truncate(limit);
    }
    Ok(Rows {
        columns,
        rows,
        elapsed_ms: 0.0,
        anchor: plan.anchor,
        nodes,
    })
}

/// One row per set: how it is reached, whether it anchors, its estimate and its members.
fn explain(plan: &PhysicalPlan, matches: &Matches) -> Rows {
    let rows = plan
        .sets()
        .iter()
        .enumerate()
        .map(|(i, set)| {
            let role = if i == plan.anchor {
                "anchor: listed"
            } else {
                "reached"
            };
            vec![
                serde_json::json!(i),
                serde_json::json!(set.kind.map_or("(any)", Kind::name)),
                serde_json::json!(plan.step(i)),
                serde_json::json!(role),
                serde_json::json!(plan.estimates[i]),
                serde_json::json!(matches.members[i].len()),
            ]
        })
        .collect();
    Rows {
        columns: ["set", "kind", "step", "plan", "estimate", "members"]
            .map(String::from)
            .to_vec(),
        rows,
        elapsed_ms: 0.0,
        anchor: plan.anchor,
        nodes: Vec::new(),
    }
}

/// The distinct tuples of the `returned` sets' members along complete paths.
fn tuples(returned: &[usize], m: &Matches, cap: usize) -> Result<Vec<Vec<NodeId>>, QueryError> {
    if let [only] = returned {
        if m.members[*only].len() > cap {
            return Err(QueryError::TooManyRows { cap });
        }
        return Ok(m.members[*only].iter().map(|id| vec![*id]).collect());
    }
    let first = *returned.iter().min().expect("at least one set is returned");
    let last = *returned.iter().max().expect("at least one set is returned");
    let next: Vec<HashMap<NodeId, Vec<NodeId>>> = m
        .pairs
        .iter()
        .map(|p| {
            let mut out: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
            for (x, y) in p {
                out.entry(*x).or_default().push(*y);
            }
            out
        })
        .collect();
    let mut seen = HashSet::new();
    let mut tuples = Vec::new();
    let mut stack: Vec<(usize, Vec<NodeId>)> = m.members[first]
        .iter()
        .map(|id| (first, vec![*id]))
        .collect();
    while let Some((i, path)) = stack.pop() {
        if i == last {
            let tuple: Vec<NodeId> = returned.iter().map(|r| path[r - first]).collect();
            if seen.insert(tuple.clone()) {
                if tuples.len() == cap {
                    return Err(QueryError::TooManyRows { cap });
                }
                tuples.push(tuple);
            }
            continue;
        }
        let at = *path.last().expect("paths are never empty");
        for y in next[i].get(&at).into_iter().flatten() {
            let mut p = path.clone();
            p.push(*y);
            stack.push((i + 1, p));
        }
    }
    Ok(tuples)
}

/// Order tuples by the `order by` field of the first returned set; else searched sets by
/// score, best first; else a natural order per kind.
fn order(
    plan: &PhysicalPlan,
    ctx: &mut Ctx<'_>,
    m: &Matches,
    tuples: &mut Vec<Vec<NodeId>>,
) -> Result<(), StoreError> {
    let q = &plan.query;
    let primary = q.returned[0];
    let sort = match &q.order {
        Some((field, desc)) => Some((field.clone(), *desc)),
        None if q.sets[primary].search.is_some() => Some((FieldRef::single(Field::Score), true)),
        None => m.members[primary]
            .first()
            .and_then(|id| id.kind())
            .map(natural_order),
    };
    let Some((field, desc)) = sort else {
        return Ok(());
    };
    let mut keyed = Vec::with_capacity(tuples.len());
    for t in tuples.drain(..) {
        keyed.push((ctx.value(t[0], &field, None)?.sort_key(), t));
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
    tuples.extend(keyed.into_iter().map(|(_, t)| t));
    Ok(())
}

/// Issues by number, commits newest first, files by path, symbols by qualified name.
fn natural_order(kind: NodeKind) -> (FieldRef, bool) {
    let (field, desc) = match kind {
        NodeKind::Issue => (Field::Issue(IssueField::Number), false),
        NodeKind::Commit => (Field::Commit(CommitField::Date), true),
        NodeKind::File => (Field::File(FileField::Path), false),
        NodeKind::Symbol => (Field::Symbol(SymbolField::Qname), false),
        NodeKind::Author | NodeKind::Blob => {
            (Field::Author(super::fields::AuthorField::Name), false)
        }
    };
    (FieldRef::single(field), desc)
}

type Table = (Vec<String>, Vec<Vec<serde_json::Value>>);

/// `count by FIELD`: one row per value (list fields count each item), most frequent first.
fn count_by(
    ctx: &mut Ctx<'_>,
    field: &FieldRef,
    tuples: &[Vec<NodeId>],
) -> Result<Table, StoreError> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for t in tuples {
        match ctx.value(t[0], field, None)? {
            Val::List(items) if items.is_empty() => *counts.entry(String::new()).or_default() += 1,
            Val::List(items) => {
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
    let rows = v
        .into_iter()
        .map(|(k, c)| vec![serde_json::json!(k), serde_json::json!(c)])
        .collect();
    Ok((vec![field.name.to_string(), "count".to_string()], rows))
}

/// Default columns of a node.
fn default_columns(kind: NodeKind) -> &'static [Field] {
    use Field as F;
    match kind {
        NodeKind::Issue => &[
            F::Issue(IssueField::Number),
            F::Issue(IssueField::State),
            F::Issue(IssueField::Title),
        ],
        NodeKind::Commit => &[
            F::Commit(CommitField::Sha),
            F::Commit(CommitField::Date),
            F::Commit(CommitField::Author),
            F::Commit(CommitField::Subject),
        ],
        NodeKind::File => &[F::File(FileField::Path)],
        NodeKind::Symbol => &[
            F::Symbol(SymbolField::Qname),
            F::Symbol(SymbolField::Kind),
            F::Symbol(SymbolField::Path),
        ],
        NodeKind::Author => &[
            F::Author(super::fields::AuthorField::Name),
            F::Author(super::fields::AuthorField::Email),
        ],
        NodeKind::Blob => &[],
    }
}

/// A default column's cell: numbers as `#N`/`PR #N`, stubs' titles marked, short shas.
fn default_cell(
    ctx: &mut Ctx<'_>,
    id: NodeId,
    field: Field,
) -> Result<serde_json::Value, StoreError> {
    Ok(match field {
        Field::Issue(IssueField::Number) => {
            let i = ctx.issue(id)?;
            serde_json::json!(format!("{}#{}", if i.is_pr { "PR " } else { "" }, i.number))
        }
        Field::Issue(IssueField::Title) => {
            let i = ctx.issue(id)?;
            serde_json::json!(if i.stub {
                "(not imported)".to_string()
            } else {
                i.title.clone()
            })
        }
        Field::Commit(CommitField::Sha) => {
            serde_json::json!(hex(&ctx.read.commit(id)?.sha)[..10].to_string())
        }
        _ => ctx.field(id, field, None)?.display(),
    })
}

/// The column names and cells of `columns` for each tuple.
fn table(
    plan: &PhysicalPlan,
    ctx: &mut Ctx<'_>,
    columns: &[Column],
    tuples: &[Vec<NodeId>],
) -> Result<Table, StoreError> {
    let q = &plan.query;
    // The node kind of each returned set: its first row's, else the set's first kind.
    let kinds: Vec<NodeKind> = (0..q.returned.len())
        .map(|at| {
            tuples
                .first()
                .and_then(|t| t[at].kind())
                .unwrap_or(q.sets[q.returned[at]].node_kinds[0])
        })
        .collect();
    let searched = |at: usize| q.sets[q.returned[at]].search.is_some();
    let defaults = |at: usize, kind: NodeKind| -> Vec<Field> {
        let mut c = default_columns(kind).to_vec();
        if searched(at) {
            c.push(Field::Score);
        }
        c
    };
    let prefixed = q.returned.len() > 1;
    let mut names = Vec::new();
    for c in columns {
        let set = q.sets[q.returned[c.at]].name;
        let fields: Vec<&str> = match &c.field {
            Some(f) => vec![f.name],
            None => defaults(c.at, kinds[c.at])
                .iter()
                .map(|f| f.name())
                .collect(),
        };
        for name in fields {
            names.push(if prefixed {
                format!("{set}.{name}")
            } else {
                name.to_string()
            });
        }
    }
    let mut rows = Vec::with_capacity(tuples.len());
    for t in tuples {
        let mut row = Vec::new();
        for c in columns {
            let id = t[c.at];
            match &c.field {
                Some(f) => row.push(ctx.value(id, f, None)?.display()),
                None => {
                    for f in defaults(c.at, id.kind().unwrap_or(NodeKind::Blob)) {
                        row.push(default_cell(ctx, id, f)?);
                    }
                }
            }
        }
        rows.push(row);
    }
    Ok((names, rows))
}
