//! Planning: a [`LogicalQuery`] becomes an immutable [`PhysicalPlan`].
//!
//! Two rewrites and one choice. `since`/`until` written after a set without dates are pushed
//! down to the set they filter. Each set gets an estimate of how many nodes listing it gives.
//! The **anchor** is the set that is cheapest to list (an item or a name pattern beats a whole
//! table; a search beats a table; a smaller table beats a bigger one); a set whose filters read
//! the link that reached it cannot anchor. The executor lists the anchor and walks the chain
//! outwards from it. The naive plan anchors at the source, which `explain` and the benchmark
//! compare against.

use super::ast::Pattern;
use super::bind::{date_target, DateBound, LogicalQuery, SetSpec};
use crate::store::{ReadTx, StoreError};

/// What a `matching`/`similar to`/`concerning` set is assumed to hold when choosing the anchor.
pub const SEARCH_ESTIMATE: u64 = 20;

/// How the anchor is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// What the search indexes found.
    SearchHits,
    /// An item or name: a lookup by number, sha prefix, path or interned name where the store
    /// has one, else a scan that tests the pattern.
    Lookup,
    /// Every node of the set's kinds.
    Scan,
}

/// A plan: the query's sets with their date bounds, the anchor, and the estimates that chose
/// it.
#[derive(Debug)]
pub struct PhysicalPlan {
    pub query: LogicalQuery,
    /// Per set, after the date pushdown: (since, until) in unix seconds.
    pub bounds: Vec<(Option<i64>, Option<i64>)>,
    pub estimates: Vec<u64>,
    pub anchor: usize,
    pub access: Access,
}

impl PhysicalPlan {
    pub fn sets(&self) -> &[SetSpec] {
        &self.query.sets
    }

    /// How set `i` is reached: "source" for the source, else the relation and the direction
    /// of the stored edges walked.
    pub fn step(&self, i: usize) -> String {
        if i == 0 {
            return "source".to_string();
        }
        let r = self.query.relations[i - 1];
        let dir = if i <= self.anchor {
            "reverse edges"
        } else {
            "edges"
        };
        format!("{} ({dir} of {})", r.name, r.via.name())
    }
}

/// The date bounds of each set once the dates written on sets without a date are moved to the
/// set they filter. Bounds a set has of its own come first; a later bound of the same side
/// replaces an earlier one.
pub fn push_down_dates(sets: &[SetSpec]) -> Vec<(Option<i64>, Option<i64>)> {
    let mut written: Vec<Vec<DateBound>> = sets.iter().map(|s| s.dates.clone()).collect();
    for i in (1..sets.len()).rev() {
        let target = date_target(sets, i);
        if target != i {
            let moved = std::mem::take(&mut written[i]);
            written[target].extend(moved);
        }
    }
    written
        .iter()
        .map(|dates| {
            let mut bounds = (None, None);
            for d in dates {
                match d {
                    DateBound::Since(t) => bounds.0 = Some(*t),
                    DateBound::Until(t) => bounds.1 = Some(*t),
                }
            }
            bounds
        })
        .collect()
}

/// A guess at how many nodes listing `set` gives.
pub fn estimate(set: &SetSpec, read: &ReadTx) -> Result<u64, StoreError> {
    if set.search.is_some() {
        return Ok(SEARCH_ESTIMATE);
    }
    let table: u64 = set
        .node_kinds
        .iter()
        .map(|k| read.node_count(*k))
        .sum::<Result<u64, _>>()?;
    Ok(match &set.pattern {
        Some(Pattern::Number(_)) => 1,
        Some(Pattern::Text { .. }) => (table / 100).max(1),
        None => table,
    })
}

/// The anchor for these estimates: the cheapest set that does not read its incoming link
/// (the first on ties).
pub fn choose_anchor(sets: &[SetSpec], estimates: &[u64]) -> usize {
    (0..sets.len())
        .filter(|&i| i == 0 || !sets[i].uses_edge)
        .min_by_key(|&i| (estimates[i], i))
        .unwrap_or(0)
}

/// Plan `query` on `read` (`naive`: anchor at the source whatever the estimates say).
pub fn plan(query: LogicalQuery, read: &ReadTx, naive: bool) -> Result<PhysicalPlan, StoreError> {
    let bounds = push_down_dates(&query.sets);
    let estimates = query
        .sets
        .iter()
        .map(|s| estimate(s, read))
        .collect::<Result<Vec<u64>, _>>()?;
    let anchor = if naive {
        0
    } else {
        choose_anchor(&query.sets, &estimates)
    };
    let set = &query.sets[anchor];
    let access = if set.search.is_some() {
        Access::SearchHits
    } else if set.pattern.is_some() {
        Access::Lookup
    } else {
        Access::Scan
    };
    Ok(PhysicalPlan {
        query,
        bounds,
        estimates,
        anchor,
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::bind::bind;
    use crate::query::parser::parse;

    /// Bind `text` and choose its anchor with the given per-set estimates (as the store would
    /// give them), checking the estimates' shape.
    fn anchor_of(text: &str, table: impl Fn(&SetSpec) -> u64) -> (usize, Vec<u64>) {
        let q = bind(text, &parse(text).unwrap()).unwrap();
        let estimates: Vec<u64> = q
            .sets
            .iter()
            .map(|s| {
                if s.search.is_some() {
                    SEARCH_ESTIMATE
                } else {
                    match &s.pattern {
                        Some(Pattern::Number(_)) => 1,
                        Some(Pattern::Text { .. }) => (table(s) / 100).max(1),
                        None => table(s),
                    }
                }
            })
            .collect();
        (choose_anchor(&q.sets, &estimates), estimates)
    }

    /// Table sizes shaped like a busy project: many commits and files, fewer issues.
    fn tables(s: &SetSpec) -> u64 {
        use crate::store::NodeKind;
        s.node_kinds
            .iter()
            .map(|k| match k {
                NodeKind::Issue => 5_000,
                NodeKind::Commit => 20_000,
                NodeKind::File => 3_000,
                NodeKind::Symbol => 40_000,
                NodeKind::Author => 800,
                NodeKind::Blob => 0,
            })
            .sum()
    }

    #[test]
    fn anchors_at_the_most_selective_set() {
        let cases: [(&str, usize); 12] = [
            ("issues fixed_by commit touching memory_utils", 2),
            ("issues", 0),
            ("issue #7 fixed_by commit", 0),
            ("commits touching memory_utils", 1),
            ("files touched_by commit 3fa9c1", 1),
            ("commits modifies symbol free_blocks", 1),
            ("issues where state = open fixed_by commit", 0),
            ("issues matching \"out of memory\" fixed_by commit", 0),
            ("commits introduced_by commit fixes issue #7", 2),
            ("authors authored commit touching memory_utils", 2),
            // The item is cheaper, but its filter reads the link: the source anchors.
            (
                "issues fixed_by commit 3fa9c1 where provenance = closing_keyword",
                0,
            ),
            (
                "issues mentions file memory_utils where confidence >= 0.9",
                0,
            ),
        ];
        for (text, want) in cases {
            let (got, estimates) = anchor_of(text, tables);
            assert_eq!(got, want, "{text}: estimates {estimates:?}");
        }
    }

    #[test]
    fn estimates_follow_patterns_and_searches() {
        let (_, e) = anchor_of("issues fixed_by commit touching memory_utils", tables);
        assert_eq!(e, vec![5_000, 20_000, 30]);
        let (_, e) = anchor_of("issue #7 mentions", tables);
        assert_eq!(e, vec![1, 43_000]);
        let (_, e) = anchor_of("symbols similar to \"free blocks\"", tables);
        assert_eq!(e, vec![SEARCH_ESTIMATE]);
    }

    fn bounds_of(text: &str) -> Vec<(Option<i64>, Option<i64>)> {
        push_down_dates(&bind(text, &parse(text).unwrap()).unwrap().sets)
    }

    const JAN10: i64 = 1_704_844_800;
    const FEB01: i64 = 1_706_745_600;

    #[test]
    fn dates_move_to_the_set_they_filter() {
        // Written after files: they filter the commits.
        assert_eq!(
            bounds_of("commits touching memory_utils since 2024-01-10"),
            vec![(Some(JAN10), None), (None, None)]
        );
        // Written on a set with a date: they stay.
        assert_eq!(
            bounds_of("issues fixed_by commit since 2024-01-10"),
            vec![(None, None), (Some(JAN10), None)]
        );
        // Past two sets without dates, to the issues.
        assert_eq!(
            bounds_of("issues mentions file defines symbol until 2024-02-01"),
            vec![(None, Some(FEB01)), (None, None), (None, None)]
        );
        // Both sides, on the source.
        assert_eq!(
            bounds_of("commits since 2024-01-10 until 2024-02-01"),
            vec![(Some(JAN10), Some(FEB01))]
        );
        // Its own bound first; the one moved from the right replaces it.
        assert_eq!(
            bounds_of("commits since 2024-02-01 touching memory_utils since 2024-01-10"),
            vec![(Some(JAN10), None), (None, None)]
        );
    }

    #[test]
    fn dates_on_a_chain_without_any_date_are_refused_at_the_source() {
        let text = "files defines symbol since 2024-01-10";
        let err = bind(text, &parse(text).unwrap()).unwrap_err();
        let d = err.diagnostic().unwrap();
        assert_eq!(
            d.message,
            "`since` and `until` apply to issues, prs and commits"
        );
        assert_eq!((d.start, d.end), (0, 5));
    }
}
