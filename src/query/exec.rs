//! Execution: a [`PhysicalPlan`] run on a snapshot. The anchor is listed; the chain is walked
//! from it outwards along stored edges (backwards to the left through the reverse edge table,
//! forwards to the right); every reached node is checked against its set's kind, pattern,
//! dates and filters; and pruning passes keep only members on a complete path.

use std::collections::{HashMap, HashSet};

use super::ast::Pattern;
use super::bind::{Comparison, SetSpec, Test};
use super::dates::DAY;
use super::fields::{Field, IssueField};
use super::names::{glob, path_matches, symbol_matches};
use super::plan::PhysicalPlan;
use super::schema::{Kind, Relation, Via};
use super::search::SearchProvider;
use super::values::{Ctx, Val};
use super::QueryError;
use crate::store::records::{EdgeMeta, SymbolKind};
use crate::store::{hex, NodeId, NodeKind, ReadTx, StoreError};

/// How many nearest neighbours `similar to` and vector `matching` return without a `limit`.
pub const DEFAULT_NEAREST: usize = 10;

type Pairs = Vec<(NodeId, NodeId)>;

/// The members of each set that lie on a complete path, and the links between consecutive
/// sets.
pub struct Matches {
    pub members: Vec<Vec<NodeId>>,
    pub pairs: Vec<Pairs>,
}

/// One run of a plan: the plan, what the searches found, and the record caches.
pub struct Run<'p, 'r> {
    plan: &'p PhysicalPlan,
    /// Per set, the nodes its search found (`None`: the set has no search).
    hits: Vec<Option<HashMap<NodeId, f32>>>,
    pub ctx: Ctx<'r>,
}

impl<'p, 'r> Run<'p, 'r> {
    /// Run the searches of `plan` (with `search`, which must be given when the plan has any),
    /// ready to walk.
    pub fn start(
        plan: &'p PhysicalPlan,
        ctx: Ctx<'r>,
        search: Option<&dyn SearchProvider>,
        text: &str,
    ) -> Result<Run<'p, 'r>, QueryError> {
        let mut run = Run {
            plan,
            hits: vec![None; plan.sets().len()],
            ctx,
        };
        let k = plan.query.limit.unwrap_or(DEFAULT_NEAREST);
        for (i, set) in plan.sets().iter().enumerate() {
            let Some(spec) = &set.search else {
                continue;
            };
            let provider = search.ok_or(QueryError::NoIndexes)?;
            let read = run.ctx.read;
            let found = provider
                .search(spec, &set.node_kinds, read, k, &mut |n| {
                    run.accepts(i, n, None)
                })
                .map_err(|source| QueryError::search(text, source))?;
            for (n, s) in &found {
                run.ctx.scores.insert(*n, *s);
            }
            run.hits[i] = Some(found);
        }
        Ok(run)
    }

    fn set(&self, i: usize) -> &'p SetSpec {
        &self.plan.query.sets[i]
    }

    /// Kind, search hits and pattern only (cheap checks, before filters).
    fn admits(&mut self, i: usize, id: NodeId) -> Result<bool, StoreError> {
        let set = self.set(i);
        let Some(nk) = id.kind() else {
            return Ok(false);
        };
        if !set.node_kinds.contains(&nk) {
            return Ok(false);
        }
        if self.hits[i].as_ref().is_some_and(|h| !h.contains_key(&id)) {
            return Ok(false);
        }
        if !self.kind_admits(set.kind, nk, id)? {
            return Ok(false);
        }
        match &set.pattern {
            None => Ok(true),
            Some(pattern) => self.pattern_admits(pattern, nk, id),
        }
    }

    /// Kinds narrower than their node kind: issues or prs, functions, classes, methods.
    fn kind_admits(
        &mut self,
        kind: Option<Kind>,
        nk: NodeKind,
        id: NodeId,
    ) -> Result<bool, StoreError> {
        Ok(match (kind, nk) {
            (Some(Kind::Issues), NodeKind::Issue) => !self.ctx.issue(id)?.is_pr,
            (Some(Kind::Prs), NodeKind::Issue) => self.ctx.issue(id)?.is_pr,
            (Some(k @ (Kind::Functions | Kind::Classes | Kind::Methods)), NodeKind::Symbol) => {
                let sk = self.ctx.names(id)?.2;
                match k {
                    Kind::Functions => {
                        matches!(sk, Some(SymbolKind::Function | SymbolKind::Method))
                    }
                    Kind::Classes => matches!(sk, Some(SymbolKind::Class | SymbolKind::Struct)),
                    _ => sk == Some(SymbolKind::Method),
                }
            }
            _ => true,
        })
    }

    fn pattern_admits(
        &mut self,
        pattern: &Pattern,
        nk: NodeKind,
        id: NodeId,
    ) -> Result<bool, StoreError> {
        let read = self.ctx.read;
        Ok(match (pattern, nk) {
            (Pattern::Number(n), NodeKind::Issue) => self.ctx.issue(id)?.number == *n,
            (Pattern::Number(_), _) => false,
            (Pattern::Text { text, .. }, NodeKind::Issue) => self
                .ctx
                .issue(id)?
                .title
                .to_ascii_lowercase()
                .contains(&text.to_ascii_lowercase()),
            (Pattern::Text { text, .. }, NodeKind::Commit) => {
                hex(&read.commit(id)?.sha).starts_with(&text.to_ascii_lowercase())
            }
            (Pattern::Text { text, .. }, NodeKind::File) => {
                path_matches(text, &self.ctx.names(id)?.0)
            }
            (Pattern::Text { text, .. }, NodeKind::Symbol) => {
                let (path, qname, _) = self.ctx.names(id)?;
                symbol_matches(text, path, qname)
            }
            (Pattern::Text { text, .. }, NodeKind::Author) => {
                let a = read.author(id)?;
                let (name, email) = (read.string(a.name)?, read.string(a.email)?);
                glob(text, &name)
                    || glob(text, &email)
                    || name
                        .to_ascii_lowercase()
                        .contains(&text.to_ascii_lowercase())
            }
            (Pattern::Text { .. }, NodeKind::Blob) => false,
        })
    }

    /// Everything: kind, pattern, dates, filters (with the edge that reached the node).
    fn accepts(
        &mut self,
        i: usize,
        id: NodeId,
        edge: Option<&EdgeMeta>,
    ) -> Result<bool, StoreError> {
        if !self.admits(i, id)? {
            return Ok(false);
        }
        let set = self.set(i);
        let (since, until) = self.plan.bounds[i];
        if since.is_some() || until.is_some() {
            let field = match set.kind {
                Some(Kind::Issues | Kind::Prs) => Field::Issue(IssueField::Created),
                _ => Field::Commit(super::fields::CommitField::Date),
            };
            let Val::Time(t) = self.ctx.field(id, field, None)? else {
                return Ok(false);
            };
            if since.is_some_and(|s| t < s) || until.is_some_and(|u| t >= u + DAY) {
                return Ok(false);
            }
        }
        for t in &set.tests {
            if !self.test(t, id, edge)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn test(&mut self, t: &Test, id: NodeId, edge: Option<&EdgeMeta>) -> Result<bool, StoreError> {
        Ok(match t {
            Test::Or(a, b) => self.test(a, id, edge)? || self.test(b, id, edge)?,
            Test::And(a, b) => self.test(a, id, edge)? && self.test(b, id, edge)?,
            Test::Not(a) => !self.test(a, id, edge)?,
            Test::Cmp(c) => {
                let v = self.ctx.value(id, &c.field, edge)?;
                compare(c, &v)
            }
        })
    }

    /// Candidates when set `i` anchors the plan: the search hits best first, a lookup for
    /// items and names, else a scan.
    fn list(&mut self, i: usize) -> Result<Vec<NodeId>, StoreError> {
        if let Some(hits) = &self.hits[i] {
            let mut found: Vec<(NodeId, f32)> = hits.iter().map(|(n, s)| (*n, *s)).collect();
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            return Ok(found.into_iter().map(|(n, _)| n).collect());
        }
        let set = self.set(i);
        let mut ids = Vec::new();
        for nk in &set.node_kinds {
            self.list_kind(*nk, set.pattern.as_ref(), &mut ids)?;
        }
        Ok(ids)
    }

    fn list_kind(
        &mut self,
        nk: NodeKind,
        pattern: Option<&Pattern>,
        ids: &mut Vec<NodeId>,
    ) -> Result<(), StoreError> {
        let read = self.ctx.read;
        let text = match pattern {
            Some(Pattern::Text { text, .. }) => Some(text.as_str()),
            _ => None,
        };
        match (nk, pattern) {
            (NodeKind::Issue, Some(Pattern::Number(n))) => ids.extend(read.issue_by_number(*n)?),
            (NodeKind::Issue, _) => {
                for (id, r) in read.issues()? {
                    self.ctx.remember_issue(id, r);
                    ids.push(id);
                }
            }
            (NodeKind::Commit, Some(Pattern::Text { text, .. }))
                if text.len() >= 4 && text.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                ids.extend(read.commits_by_hex_prefix(text, usize::MAX)?)
            }
            (NodeKind::Commit, _) => {
                ids.extend((0..read.commit_count()?).map(|l| NodeId::new(NodeKind::Commit, l)))
            }
            (NodeKind::File, _) => self.list_files(text, ids)?,
            // A plain name (no glob) compares interned ids instead of reading every name.
            (NodeKind::Symbol, Some(Pattern::Text { text, .. })) if !text.contains(['*', '?']) => {
                ids.extend(symbols_named(read, text)?)
            }
            (NodeKind::Symbol, _) => ids.extend(read.all_symbols()?.into_iter().map(|(id, _)| id)),
            (NodeKind::Author, _) => ids.extend(read.all_authors()?),
            (NodeKind::Blob, _) => {}
        }
        Ok(())
    }

    /// Files whose path matches `pattern` (all without one). A path that names a file exactly
    /// is that file; otherwise the session's cached path list is scanned.
    fn list_files(
        &mut self,
        pattern: Option<&str>,
        ids: &mut Vec<NodeId>,
    ) -> Result<(), StoreError> {
        let read = self.ctx.read;
        if let Some(text) = pattern {
            if text.contains('/') && !text.contains(['*', '?']) {
                if let Some(id) = read.file_by_path(text)? {
                    ids.push(id);
                    return Ok(());
                }
            }
        }
        let files = self.ctx.cache.files(read)?;
        for (id, path) in files.iter() {
            if pattern.is_some_and(|p| !path_matches(p, path)) {
                continue;
            }
            self.ctx.remember_path(*id, path.clone());
            ids.push(*id);
        }
        Ok(())
    }

    /// Walk the plan: list the anchor, walk outwards, check link filters, prune.
    pub fn walk(&mut self) -> Result<Matches, StoreError> {
        let n = self.plan.sets().len();
        let a = self.plan.anchor;
        let mut members: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        let mut pairs: Vec<Pairs> = vec![Vec::new(); n.saturating_sub(1)];
        let mut listed = HashSet::new();
        for id in self.list(a)? {
            if listed.insert(id) && self.accepts(a, id, None)? {
                members[a].push(id);
            }
        }
        for i in (0..a).rev() {
            let (reached, p) = self.walk_left(i, &members[i + 1])?;
            members[i] = reached;
            pairs[i] = p;
        }
        for i in a..n.saturating_sub(1) {
            let (reached, p) = self.walk_right(i, &members[i])?;
            members[i + 1] = reached;
            pairs[i] = p;
        }
        self.check_left_links(&mut pairs)?;
        prune(&mut members, &mut pairs);
        Ok(Matches { members, pairs })
    }

    /// From the members of set `i + 1`, walk relation `i` backwards to set `i`.
    fn walk_left(
        &mut self,
        i: usize,
        right: &[NodeId],
    ) -> Result<(Vec<NodeId>, Pairs), StoreError> {
        let relation = self.plan.query.relations[i];
        let with_meta = self.set(i + 1).uses_edge;
        let mut seen = HashSet::new();
        let (mut reached, mut p) = (Vec::new(), Vec::new());
        for &y in right {
            for (x, meta) in neighbours(self.ctx.read, y, relation, true, with_meta)? {
                // The edge belongs to set i+1's filters; x's own filters use its own edge later.
                if with_meta && !self.accepts(i + 1, y, meta.as_ref())? {
                    continue;
                }
                if !self.admits(i, x)? {
                    continue;
                }
                // A set with link filters is checked with its own incoming edge afterwards.
                let ok = (self.set(i).uses_edge && i > 0) || self.accepts(i, x, None)?;
                if ok {
                    p.push((x, y));
                    if seen.insert(x) {
                        reached.push(x);
                    }
                }
            }
        }
        Ok((reached, p))
    }

    /// From the members of set `i`, walk relation `i` forwards to set `i + 1`.
    fn walk_right(
        &mut self,
        i: usize,
        left: &[NodeId],
    ) -> Result<(Vec<NodeId>, Pairs), StoreError> {
        let relation = self.plan.query.relations[i];
        let with_meta = self.set(i + 1).uses_edge;
        let mut seen = HashSet::new();
        let (mut reached, mut p) = (Vec::new(), Vec::new());
        for &x in left {
            for (y, meta) in neighbours(self.ctx.read, x, relation, false, with_meta)? {
                if self.accepts(i + 1, y, meta.as_ref())? {
                    p.push((x, y));
                    if seen.insert(y) {
                        reached.push(y);
                    }
                }
            }
        }
        Ok((reached, p))
    }

    /// Sets left of the anchor with link filters: keep only pairs whose edge passes, read from
    /// the left.
    fn check_left_links(&mut self, pairs: &mut [Pairs]) -> Result<(), StoreError> {
        let n = self.plan.sets().len();
        for i in 1..self.plan.anchor.min(n) {
            if !self.set(i).uses_edge {
                continue;
            }
            let relation = self.plan.query.relations[i - 1];
            let mut keep = Vec::new();
            for &(x, y) in &pairs[i - 1] {
                let mut ok = false;
                for (d, m) in neighbours(self.ctx.read, x, relation, false, true)? {
                    if d == y && self.accepts(i, y, m.as_ref())? {
                        ok = true;
                        break;
                    }
                }
                if ok {
                    keep.push((x, y));
                }
            }
            pairs[i - 1] = keep;
        }
        Ok(())
    }
}

/// Symbols a plain name names: by name or qualified name, else (`worker::memory_utils::
/// free_blocks`) by the trailing parts that can be a name or a qualified name; the module part
/// is checked against each symbol's file afterwards.
fn symbols_named(read: &ReadTx, text: &str) -> Result<Vec<NodeId>, StoreError> {
    let mut found = read.symbols_named(text)?;
    if found.is_empty() {
        let segments: Vec<&str> = text.split(['.', ':']).filter(|s| !s.is_empty()).collect();
        for n in 1..segments.len() {
            let tail = &segments[segments.len() - n..];
            found.extend(read.symbols_named(&tail.join("."))?);
            if n > 1 {
                found.extend(read.symbols_named(&tail.join("::"))?);
            }
        }
    }
    Ok(found.into_iter().map(|(id, _)| id).collect())
}

/// Keep only members and pairs on complete paths: right to left, left to right, right to left.
fn prune(members: &mut [Vec<NodeId>], pairs: &mut [Pairs]) {
    let n = members.len();
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
}

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
    let rel = match relation.via {
        Via::Edges(rel) => rel,
        Via::LineOrigins => {
            let found = if along_stored {
                super::origins::introduced_by_commit(read, id)?
            } else {
                super::origins::commits_introducing(read, id)?
            };
            return Ok(found.into_iter().map(|n| (n, None)).collect());
        }
    };
    Ok(match (along_stored, with_meta) {
        (true, true) => read
            .edges_from(id, rel)?
            .into_iter()
            .map(|e| (e.dst, Some(e.meta)))
            .collect(),
        (false, true) => read
            .edges_to(id, rel)?
            .into_iter()
            .map(|e| (e.src, Some(e.meta)))
            .collect(),
        (true, false) => read
            .targets_of(id, rel)?
            .into_iter()
            .map(|n| (n, None))
            .collect(),
        (false, false) => read
            .sources_of(id, rel)?
            .into_iter()
            .map(|n| (n, None))
            .collect(),
    })
}

/// Whether value `v` passes comparison `c`.
pub fn compare(c: &Comparison, v: &Val) -> bool {
    use super::ast::CmpOp;
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match v {
        Val::Null => None,
        Val::Num(n) => c
            .num
            .or_else(|| c.text.parse().ok())
            .and_then(|x| n.partial_cmp(&x)),
        Val::Time(t) => match (c.op, c.time) {
            // A date compares by day: `created = 2024-01-11` is any time that day.
            (CmpOp::Eq | CmpOp::Ne, Some(day)) if c.text.len() == 10 => Some(if *t < day {
                Ordering::Less
            } else if *t >= day + DAY {
                Ordering::Greater
            } else {
                Ordering::Equal
            }),
            (_, time) => time.map(|x| t.cmp(&x)),
        },
        Val::Text(s) => Some(s.to_ascii_lowercase().cmp(&c.text.to_ascii_lowercase())),
        Val::Bool(b) => {
            let want = matches!(c.text.to_ascii_lowercase().as_str(), "true" | "yes" | "1");
            Some(b.cmp(&want))
        }
        Val::List(items) => {
            return match c.op {
                CmpOp::Ne => !items.iter().any(|i| i.eq_ignore_ascii_case(&c.text)),
                _ => items.iter().any(|i| compare(c, &Val::Text(i.clone()))),
            }
        }
    };
    match c.op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Regex => match v {
            Val::Text(s) => c.regex.as_ref().is_some_and(|r| r.is_match(s)),
            Val::Num(_) | Val::Time(_) | Val::Bool(_) => c
                .regex
                .as_ref()
                .is_some_and(|r| r.is_match(v.display().to_string().trim_matches('"'))),
            Val::Null | Val::List(_) => false,
        },
        CmpOp::Contains => match v {
            Val::Text(s) => s
                .to_ascii_lowercase()
                .contains(&c.text.to_ascii_lowercase()),
            _ => false,
        },
    }
}
