//! What the indexes give a `matching` or `similar to` set: its members and their scores.

use std::collections::HashMap;

use super::ast::{Filter, Pattern, SearchRanker};
use crate::index::locate::{issue_text, Locator, Ranker};
use crate::index::rank::reciprocal_rank_fusion;
use crate::index::text::{TextFilter, TEXT_KINDS};
use crate::index::vectors::VECTOR_KINDS;
use crate::index::{IndexError, Indexes};
use crate::store::{NodeId, NodeKind, ReadTx, StoreError};

/// What the indexes find for a `matching`/`similar to` set, with scores: BM25, cosine
/// similarity, or the fused reciprocal-rank score. Vector searches keep only nodes that pass the
/// set's other filters while they search, so `similar to #N where state = closed` gets its `k`
/// closed issues.
pub(super) fn search_hits(
    search: &Filter,
    node_kinds: &[NodeKind],
    read: &ReadTx,
    indexes: &Indexes,
    k: usize,
    accept: &mut dyn FnMut(NodeId) -> Result<bool, StoreError>,
) -> Result<HashMap<NodeId, f32>, IndexError> {
    let text_kinds: Vec<NodeKind> = node_kinds
        .iter()
        .copied()
        .filter(|k| TEXT_KINDS.contains(k))
        .collect();
    let vector_kinds: Vec<NodeKind> = node_kinds
        .iter()
        .copied()
        .filter(|k| VECTOR_KINDS.contains(k))
        .collect();
    let nearest = |query: &[f32],
                   exclude: Option<NodeId>,
                   k: usize,
                   accept: &mut dyn FnMut(NodeId) -> Result<bool, StoreError>| {
        let mut all = Vec::new();
        for kind in &vector_kinds {
            let mut failed = None;
            let mut accept = |n: NodeId| {
                if Some(n) == exclude {
                    return false;
                }
                match accept(n) {
                    Ok(ok) => ok,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            };
            let found = indexes.nearest(*kind, query, k, &mut accept)?;
            if let Some(e) = failed {
                return Err(IndexError::from(e));
            }
            all.extend(found);
        }
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        Ok::<_, IndexError>(all)
    };
    let bm25 = |text: &str, limit: usize| -> Result<Vec<(NodeId, f32)>, IndexError> {
        let filter = TextFilter {
            kinds: text_kinds.clone(),
            before: None,
        };
        Ok(indexes
            .search_text(text, &filter, limit.max(1))?
            .into_iter()
            .map(|h| (h.node, h.score))
            .collect())
    };
    let every = || -> Result<usize, IndexError> {
        let mut n = 0u64;
        for k in &text_kinds {
            n += read.node_count(*k)?;
        }
        if n > 0 && indexes.text.is_empty() {
            return Err(IndexError::Usage(
                "the full-text index is empty; run `lore index` to build it".into(),
            ));
        }
        Ok(n as usize)
    };
    Ok(match search {
        Filter::Matching {
            text,
            ranker: SearchRanker::Bm25,
        } => bm25(text, every()?)?.into_iter().collect(),
        Filter::Matching {
            text,
            ranker: SearchRanker::Vector,
        } => {
            let q = indexes.embed_text(text)?;
            nearest(&q, None, k, accept)?.into_iter().collect()
        }
        Filter::Matching {
            text,
            ranker: SearchRanker::Hybrid,
        } => {
            let depth = (k * 10).max(100);
            let mut lexical = Vec::new();
            for (n, _) in bm25(text, every()?)? {
                if lexical.len() == depth {
                    break;
                }
                if accept(n)? {
                    lexical.push(n);
                }
            }
            let q = indexes.embed_text(text)?;
            let semantic: Vec<NodeId> = nearest(&q, None, depth, accept)?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            reciprocal_rank_fusion(&[lexical, semantic], &[])
                .into_iter()
                .take(k)
                .collect()
        }
        Filter::Similar(Pattern::Number(n)) => {
            let issue = read.issue_by_number(*n)?.ok_or_else(|| {
                IndexError::Usage(format!("there is no issue or pull request #{n}"))
            })?;
            let v = indexes.vector_of(issue)?.ok_or_else(|| {
                IndexError::Usage(format!(
                    "#{n} has no vector (a stub, an empty text, or the index is not up to date: run `lore index`)"
                ))
            })?;
            nearest(&v, Some(issue), k, accept)?.into_iter().collect()
        }
        Filter::Similar(Pattern::Text { text, .. }) => {
            let q = indexes.embed_text(text)?;
            nearest(&q, None, k, accept)?.into_iter().collect()
        }
        Filter::Concerning(n) => {
            let issue = read.issue_by_number(*n)?.ok_or_else(|| {
                IndexError::Usage(format!("there is no issue or pull request #{n}"))
            })?;
            let record = read.issue(issue)?;
            if record.stub {
                return Err(IndexError::Usage(format!(
                    "#{n} was referenced but never imported, so lore has no text for it"
                )));
            }
            let before = record.created_at.unwrap_or(i64::MAX);
            let locator = Locator::new(read, indexes)?;
            let ranker = if indexes.vectors.active_model()?.is_some() {
                Ranker::Hybrid
            } else {
                Ranker::Bm25
            };
            // Rank deep enough that filters on the set still leave `k` members.
            let found = locator.locate(&issue_text(&record), before, Some(issue), ranker, 200)?;
            let mut hits = HashMap::new();
            let mut files = 0;
            for f in &found {
                if node_kinds.contains(&NodeKind::File) && files < k && accept(f.file)? {
                    hits.insert(f.file, f.score);
                    files += 1;
                }
                if node_kinds.contains(&NodeKind::Symbol) {
                    for (i, qname) in f.symbols.iter().enumerate() {
                        let Some(sid) = read.string_id(qname)? else {
                            continue;
                        };
                        if let Some(sym) = read.symbol_in_file(f.file, sid)? {
                            if hits.len() < k && accept(sym)? {
                                hits.entry(sym).or_insert(f.score / (i as f32 + 1.0));
                            }
                        }
                    }
                }
            }
            hits
        }
        _ => HashMap::new(),
    })
}
