//! What the indexes give a `matching`, `similar to` or `concerning` set: its members and
//! their scores.

use std::collections::HashMap;

use super::ast::{Pattern, SearchRanker};
use super::bind::Search;
use crate::index::locate::{issue_text, Locator, Ranker};
use crate::index::rank::reciprocal_rank_fusion;
use crate::index::text::{TextFilter, TEXT_KINDS};
use crate::index::vectors::VECTOR_KINDS;
use crate::index::{IndexError, Indexes};
use crate::store::{NodeId, NodeKind, ReadTx, StoreError};

/// Where the executor gets the members of a `matching`, `similar to` or `concerning` set: the
/// nodes found, with their scores. The executor depends on this trait, not on how the search
/// is done; [`Indexes`] is the implementation.
pub trait SearchProvider {
    /// Up to `k` nodes of `node_kinds` for `search` (BM25 `matching` gives every match), each
    /// with its score. `accept` says whether a node passes the set's other filters, so vector
    /// searches keep looking until they have `k` that do.
    fn search(
        &self,
        search: &Search,
        node_kinds: &[NodeKind],
        read: &ReadTx,
        k: usize,
        accept: &mut dyn FnMut(NodeId) -> Result<bool, StoreError>,
    ) -> Result<HashMap<NodeId, f32>, IndexError>;
}

impl SearchProvider for Indexes {
    fn search(
        &self,
        search: &Search,
        node_kinds: &[NodeKind],
        read: &ReadTx,
        k: usize,
        accept: &mut Accept<'_>,
    ) -> Result<HashMap<NodeId, f32>, IndexError> {
        search_hits(search, node_kinds, read, self, k, accept)
    }
}

type Accept<'a> = dyn FnMut(NodeId) -> Result<bool, StoreError> + 'a;

/// What the indexes find for a `matching`/`similar to` set, with scores: BM25, cosine
/// similarity, or the fused reciprocal-rank score. Vector searches keep only nodes that pass the
/// set's other filters while they search, so `similar to #N where state = closed` gets its `k`
/// closed issues.
fn search_hits(
    search: &Search,
    node_kinds: &[NodeKind],
    read: &ReadTx,
    indexes: &Indexes,
    k: usize,
    accept: &mut Accept<'_>,
) -> Result<HashMap<NodeId, f32>, IndexError> {
    let searcher = Searcher {
        read,
        indexes,
        node_kinds,
        text_kinds: kinds_in(node_kinds, &TEXT_KINDS),
        vector_kinds: kinds_in(node_kinds, &VECTOR_KINDS),
    };
    Ok(match search {
        Search::Matching {
            text,
            ranker: SearchRanker::Bm25,
        } => searcher
            .bm25(text, searcher.every()?)?
            .into_iter()
            .collect(),
        Search::Matching {
            text,
            ranker: SearchRanker::Vector,
        }
        | Search::Similar(Pattern::Text { text, .. }) => {
            let q = indexes.embed_text(text)?;
            searcher.nearest(&q, None, k, accept)?.into_iter().collect()
        }
        Search::Matching {
            text,
            ranker: SearchRanker::Hybrid,
        } => searcher.hybrid(text, k, accept)?,
        Search::Similar(Pattern::Number(n)) => searcher.similar_issue(*n, k, accept)?,
        Search::Concerning(n) => searcher.concerning(*n, k, accept)?,
    })
}

fn kinds_in(node_kinds: &[NodeKind], searchable: &[NodeKind]) -> Vec<NodeKind> {
    node_kinds
        .iter()
        .copied()
        .filter(|k| searchable.contains(k))
        .collect()
}

/// One search over the node kinds of a set.
struct Searcher<'a> {
    read: &'a ReadTx,
    indexes: &'a Indexes,
    node_kinds: &'a [NodeKind],
    text_kinds: Vec<NodeKind>,
    vector_kinds: Vec<NodeKind>,
}

impl Searcher<'_> {
    /// The `k` nearest accepted nodes to `query` over every vector kind of the set.
    fn nearest(
        &self,
        query: &[f32],
        exclude: Option<NodeId>,
        k: usize,
        accept: &mut Accept<'_>,
    ) -> Result<Vec<(NodeId, f32)>, IndexError> {
        let mut all = Vec::new();
        for kind in &self.vector_kinds {
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
            let found = self.indexes.nearest(*kind, query, k, &mut accept)?;
            if let Some(e) = failed {
                return Err(IndexError::from(e));
            }
            all.extend(found);
        }
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        Ok(all)
    }

    /// BM25 hits for `text`, at most `limit`.
    fn bm25(&self, text: &str, limit: usize) -> Result<Vec<(NodeId, f32)>, IndexError> {
        let filter = TextFilter {
            kinds: self.text_kinds.clone(),
            before: None,
        };
        Ok(self
            .indexes
            .search_text(text, &filter, limit.max(1))?
            .into_iter()
            .map(|h| (h.node, h.score))
            .collect())
    }

    /// How many documents the text kinds have: a limit that keeps every BM25 match.
    fn every(&self) -> Result<usize, IndexError> {
        let mut n = 0u64;
        for k in &self.text_kinds {
            n += self.read.node_count(*k)?;
        }
        if n > 0 && self.indexes.text.is_empty() {
            let recorded = self.indexes.text.recorded()?;
            if recorded > 0 {
                // The index was built, yet nothing of it reads back.
                return Err(IndexError::Corrupt {
                    what: "the full-text index".into(),
                    source: format!(
                        "it reads as empty but records {recorded} indexed documents; `lore index` rebuilds it"
                    )
                    .into(),
                });
            }
            return Err(IndexError::Usage(
                "the full-text index is empty; run `lore index` to build it".into(),
            ));
        }
        Ok(n as usize)
    }

    /// Reciprocal rank fusion of the accepted BM25 and vector rankings, the best `k`.
    fn hybrid(
        &self,
        text: &str,
        k: usize,
        accept: &mut Accept<'_>,
    ) -> Result<HashMap<NodeId, f32>, IndexError> {
        let depth = (k * 10).max(100);
        let mut lexical = Vec::new();
        for (n, _) in self.bm25(text, self.every()?)? {
            if lexical.len() == depth {
                break;
            }
            if accept(n)? {
                lexical.push(n);
            }
        }
        let q = self.indexes.embed_text(text)?;
        let semantic: Vec<NodeId> = self
            .nearest(&q, None, depth, accept)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        Ok(reciprocal_rank_fusion(&[lexical, semantic], &[])
            .into_iter()
            .take(k)
            .collect())
    }

    fn issue(&self, n: u64) -> Result<NodeId, IndexError> {
        self.read
            .find_issue(n)?
            .ok_or_else(|| IndexError::Usage(format!("there is no issue or pull request #{n}")))
    }

    /// The `k` nearest accepted nodes to issue #n's vector.
    fn similar_issue(
        &self,
        n: u64,
        k: usize,
        accept: &mut Accept<'_>,
    ) -> Result<HashMap<NodeId, f32>, IndexError> {
        let issue = self.issue(n)?;
        let v = self.indexes.vector_of(issue)?.ok_or_else(|| {
            IndexError::Usage(format!(
                "#{n} has no vector (a stub, an empty text, or the index is not up to date: run `lore index`)"
            ))
        })?;
        Ok(self
            .nearest(&v, Some(issue), k, accept)?
            .into_iter()
            .collect())
    }

    /// The files and symbols `lore locate n` ranks, as of when #n was opened.
    fn concerning(
        &self,
        n: u64,
        k: usize,
        accept: &mut Accept<'_>,
    ) -> Result<HashMap<NodeId, f32>, IndexError> {
        let (read, indexes) = (self.read, self.indexes);
        let issue = self.issue(n)?;
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
            if self.node_kinds.contains(&NodeKind::File) && files < k && accept(f.file)? {
                hits.insert(f.file, f.score);
                files += 1;
            }
            if self.node_kinds.contains(&NodeKind::Symbol) {
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
        Ok(hits)
    }
}
