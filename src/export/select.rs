//! Which examples are kept and where they go: exact and near-duplicate removal (MinHash with
//! banded locality-sensitive hashing over word shingles), and a split by time in which an
//! example group (an issue and its duplicates) never straddles the boundary.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Words per shingle.
const SHINGLE: usize = 5;
/// MinHash values per text: `BANDS` bands of `ROWS` rows.
const BANDS: usize = 16;
const ROWS: usize = 4;
/// Texts whose estimated Jaccard similarity is at least this are near-duplicates.
pub const NEAR_DUPLICATE: f64 = 0.8;

/// Text reduced to what duplicates share: lowercase words.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stable 64-bit hash (FNV-1a, so it is the same on every machine and run).
fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix, so nearby seeds give independent values.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The MinHash signature of a normalised text over its word shingles.
fn signature(text: &str) -> Vec<u64> {
    let words: Vec<&str> = text.split(' ').collect();
    let shingles: Vec<String> = if words.len() <= SHINGLE {
        vec![text.to_string()]
    } else {
        words.windows(SHINGLE).map(|w| w.join(" ")).collect()
    };
    (0..BANDS * ROWS)
        .map(|k| {
            shingles
                .iter()
                .map(|s| stable_hash(s.as_bytes(), k as u64 + 1))
                .min()
                .unwrap_or(0)
        })
        .collect()
}

fn similarity(a: &[u64], b: &[u64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// What dedupe removed.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Removed {
    pub exact_duplicates: u64,
    pub near_duplicates: u64,
}

/// Indexes of `texts` to keep: the first of each exact duplicate set, then the first of each
/// near-duplicate set (in order, so the result does not depend on hashing order).
pub fn dedupe(texts: &[String]) -> (Vec<usize>, Removed) {
    let mut removed = Removed::default();
    let mut exact: HashSet<u64> = HashSet::new();
    let mut kept: Vec<usize> = Vec::new();
    let mut signatures: Vec<Vec<u64>> = Vec::new();
    let mut buckets: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    for (i, text) in texts.iter().enumerate() {
        let norm = normalise(text);
        if !exact.insert(stable_hash(norm.as_bytes(), 0)) {
            removed.exact_duplicates += 1;
            continue;
        }
        let sig = signature(&norm);
        let bands: Vec<(usize, u64)> = (0..BANDS)
            .map(|b| {
                let bytes: Vec<u8> = sig[b * ROWS..(b + 1) * ROWS]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                (b, stable_hash(&bytes, 0))
            })
            .collect();
        let near = bands
            .iter()
            .flat_map(|key| buckets.get(key).into_iter().flatten())
            .any(|&k| similarity(&signatures[k], &sig) >= NEAR_DUPLICATE);
        if near {
            removed.near_duplicates += 1;
            continue;
        }
        let slot = signatures.len();
        signatures.push(sig);
        for key in bands {
            buckets.entry(key).or_default().push(slot);
        }
        kept.push(i);
    }
    (kept, removed)
}

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Split {
    /// Groups whose latest example is at or after this time (unix seconds) are validation.
    Date { at: i64 },
    /// The latest fraction of groups (by their latest example) are validation.
    Fraction { val: f64 },
}

/// For each example (its group and time), whether it is in validation. A group goes whole
/// to one side, placed by its latest example; ties in time are broken by group name.
pub fn split(groups: &[(&str, i64)], how: Split) -> Vec<bool> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (g, t) in groups {
        let e = latest.entry(g).or_insert(*t);
        *e = (*e).max(*t);
    }
    let val_groups: HashSet<&str> = match how {
        Split::Date { at } => latest
            .iter()
            .filter(|(_, t)| **t >= at)
            .map(|(g, _)| *g)
            .collect(),
        Split::Fraction { val } => {
            let mut order: Vec<(&str, i64)> = latest.into_iter().collect();
            order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let n = (order.len() as f64 * val).round() as usize;
            order.into_iter().take(n).map(|(g, _)| g).collect()
        }
    };
    groups.iter().map(|(g, _)| val_groups.contains(g)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_near_duplicates_are_removed_in_order() {
        let base = "the kv cache allocator frees blocks twice when a sequence is preempted during decoding and the scheduler retries it";
        let texts = vec![
            base.to_string(),
            base.to_uppercase(),     // exact, after normalising
            format!("{base} again"), // near
            "a completely different report about tokenizer padding on the left side".to_string(),
        ];
        let (kept, removed) = dedupe(&texts);
        assert_eq!(kept, vec![0, 3]);
        assert_eq!(removed.exact_duplicates, 1);
        assert_eq!(removed.near_duplicates, 1);
    }

    #[test]
    fn groups_never_straddle_the_split() {
        let groups = [("#1", 10), ("#2", 20), ("#1", 30), ("#3", 25), ("#4", 5)];
        // #1's latest is 30: the whole group is validation, its early member too.
        let val = split(&groups, Split::Date { at: 25 });
        assert_eq!(val, vec![true, false, true, true, false]);
        let val = split(&groups, Split::Fraction { val: 0.5 });
        assert_eq!(val, vec![true, false, true, true, false]);
    }
}
