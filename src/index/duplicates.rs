//! Likely duplicate issues: an issue's nearest earlier issues by vector, fused with a BM25 search
//! of its text. Accepted pairs become `duplicate_of` links with provenance `similarity`.

use crate::progress::Progress;
use std::collections::HashSet;

use serde::Serialize;

use super::rank::reciprocal_rank_fusion;
use super::text::TextFilter;
use super::{embed::cosine, IndexError, Indexes};
use crate::store::records::{EdgeDetail, EdgeMeta, Provenance};
use crate::store::{NodeId, NodeKind, ReadTx, Rel, Store};

/// A proposed pair: `issue` (the later one) may duplicate `of`.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateCandidate {
    #[serde(skip)]
    pub issue: NodeId,
    #[serde(skip)]
    pub of: NodeId,
    pub number: u64,
    pub of_number: u64,
    /// Cosine similarity of the two issues' vectors.
    pub similarity: f32,
    /// Rank of `of` in a BM25 search for `issue`'s text (1-based), if in the top 30.
    pub text_rank: Option<usize>,
    pub title: String,
    pub of_title: String,
    /// The pair is already linked by `duplicate_of` (shown only for `--of`).
    pub linked: bool,
}

#[derive(Debug, Clone)]
pub struct DuplicateOptions {
    /// Pairs below this cosine similarity are not proposed.
    pub min_similarity: f32,
    /// Only look for duplicates among open issues (the earlier issue may be in any state).
    pub open_only: bool,
    /// Only this issue's candidates.
    pub of: Option<u64>,
    /// Candidates per issue.
    pub per_issue: usize,
}

impl Default for DuplicateOptions {
    fn default() -> Self {
        DuplicateOptions {
            min_similarity: 0.8,
            open_only: false,
            of: None,
            per_issue: 3,
        }
    }
}

const TEXT_DEPTH: usize = 30;

/// The likely earlier originals of `issue`, best first.
pub fn candidates_of(
    read: &ReadTx,
    indexes: &Indexes,
    issue: NodeId,
    k: usize,
) -> Result<Vec<DuplicateCandidate>, IndexError> {
    let record = read.issue(issue)?;
    let Some(v) = indexes.vector_of(issue)? else {
        return Ok(Vec::new());
    };
    let created = record.created_at.unwrap_or(i64::MAX);
    let mut earlier = |n: NodeId| {
        n != issue
            && read
                .issue(n)
                .is_ok_and(|r| !r.is_pr && !r.stub && r.created_at.unwrap_or(i64::MIN) <= created)
    };
    let semantic: Vec<NodeId> = indexes
        .nearest(NodeKind::Issue, &v, TEXT_DEPTH, &mut earlier)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let filter = TextFilter {
        kinds: vec![NodeKind::Issue],
        before: None,
    };
    let mut lexical = Vec::new();
    for hit in indexes.search_text(
        &format!("{}\n{}", record.title, record.body),
        &filter,
        TEXT_DEPTH * 2,
    )? {
        if lexical.len() == TEXT_DEPTH {
            break;
        }
        if earlier(hit.node) {
            lexical.push(hit.node);
        }
    }
    let mut out = Vec::new();
    for (of, _) in reciprocal_rank_fusion(&[semantic, lexical.clone()], &[])
        .into_iter()
        .take(k)
    {
        let other = read.issue(of)?;
        let similarity = indexes.vector_of(of)?.map_or(0.0, |w| cosine(&v, &w));
        out.push(DuplicateCandidate {
            issue,
            of,
            number: record.number,
            of_number: other.number,
            similarity,
            text_rank: lexical.iter().position(|n| *n == of).map(|p| p + 1),
            title: record.title.clone(),
            of_title: other.title,
            linked: false,
        });
    }
    Ok(out)
}

/// Likely duplicate pairs across the file, most similar first. Pairs already linked by
/// `duplicate_of` (either way) are left out.
pub fn propose(
    read: &ReadTx,
    indexes: &Indexes,
    opts: &DuplicateOptions,
    progress: &dyn Progress,
) -> Result<Vec<DuplicateCandidate>, IndexError> {
    let issues: Vec<_> = match opts.of {
        Some(n) => {
            let id = read.issue_by_number(n)?.ok_or_else(|| {
                IndexError::Usage(format!("there is no issue #{n} in this lore file"))
            })?;
            vec![(id, read.issue(id)?)]
        }
        None => read
            .issues()?
            .into_iter()
            .filter(|(_, r)| !r.is_pr && !r.stub)
            .filter(|(_, r)| !opts.open_only || r.state == crate::store::records::IssueState::Open)
            .collect(),
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    progress.phase("comparing issues", Some(issues.len() as u64));
    for (id, _) in &issues {
        progress.advance(1);
        let linked: HashSet<NodeId> = read
            .targets_of(*id, Rel::DuplicateOf)?
            .into_iter()
            .chain(read.sources_of(*id, Rel::DuplicateOf)?)
            .collect();
        for mut c in candidates_of(read, indexes, *id, opts.per_issue)? {
            c.linked = linked.contains(&c.of);
            // One issue's candidates are all shown; across the file, only new likely pairs.
            if opts.of.is_none() && (c.similarity < opts.min_similarity || c.linked) {
                continue;
            }
            let key = if c.issue < c.of {
                (c.issue, c.of)
            } else {
                (c.of, c.issue)
            };
            if seen.insert(key) {
                out.push(c);
            }
        }
    }
    progress.done();
    out.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.number.cmp(&b.number))
    });
    Ok(out)
}

/// Record that issue `number` duplicates issue `of`, as a `similarity` link.
pub fn accept(
    store: &Store,
    indexes: &Indexes,
    number: u64,
    of: u64,
) -> Result<DuplicateCandidate, IndexError> {
    let read = store.read()?;
    let find = |n: u64| -> Result<NodeId, IndexError> {
        read.issue_by_number(n)?
            .ok_or_else(|| IndexError::Usage(format!("there is no issue #{n} in this lore file")))
    };
    let (a, b) = (find(number)?, find(of)?);
    if a == b {
        return Err(IndexError::Usage(format!(
            "#{number} cannot duplicate itself"
        )));
    }
    let similarity = match (indexes.vector_of(a)?, indexes.vector_of(b)?) {
        (Some(x), Some(y)) => cosine(&x, &y),
        _ => 0.0,
    };
    let (title, of_title) = (read.issue(a)?.title, read.issue(b)?.title);
    drop(read);
    let meta = EdgeMeta {
        provenance: Provenance::Similarity,
        confidence: similarity.clamp(0.0, 1.0),
        evidence: Some(format!(
            "accepted duplicate; cosine similarity {similarity:.3}"
        )),
        detail: EdgeDetail::None,
    };
    store.write(|tx| tx.add_edge(a, Rel::DuplicateOf, b, &meta))?;
    Ok(DuplicateCandidate {
        issue: a,
        of: b,
        number,
        of_number: of,
        similarity,
        text_rank: None,
        title,
        of_title,
        linked: true,
    })
}
