//! Reciprocal rank fusion: each ranking gives a node `1 / (K + rank)`, summed over rankings.
//! It needs no score calibration between BM25 and cosine similarity.

use std::collections::HashMap;

use crate::store::NodeId;

/// The usual constant; it damps the weight of the very first ranks.
pub const RRF_K: f32 = 60.0;

/// Fuse rankings (each best first) into one, best first, with fused scores. `weights` gives a
/// weight per ranking (1.0 each when shorter than `rankings`).
pub fn reciprocal_rank_fusion(rankings: &[Vec<NodeId>], weights: &[f32]) -> Vec<(NodeId, f32)> {
    let mut scores: HashMap<NodeId, f32> = HashMap::new();
    for (i, ranking) in rankings.iter().enumerate() {
        let w = weights.get(i).copied().unwrap_or(1.0);
        for (rank, node) in ranking.iter().enumerate() {
            *scores.entry(*node).or_default() += w / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(NodeId, f32)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_first_place() {
        let (a, b, c) = (NodeId(1), NodeId(2), NodeId(3));
        // b is second in both lists; a and c are first in one each.
        let fused = reciprocal_rank_fusion(&[vec![a, b], vec![c, b]], &[]);
        assert_eq!(fused[0].0, b);
        let fused = reciprocal_rank_fusion(&[vec![a, b], vec![b, a]], &[3.0, 1.0]);
        assert_eq!(fused[0].0, a);
    }
}
