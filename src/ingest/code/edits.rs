//! From one version of a file's bytes to the next: the changed byte ranges, which decide the
//! top-level nodes the code stage parses again.

use std::collections::HashMap;

use crate::ingest::git::linediff::{common_prefix, common_suffix};

/// A changed byte range: `old` in the old text became `new` in the new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) old: std::ops::Range<usize>,
    pub(super) new: std::ops::Range<usize>,
}

/// The changed ranges between `old` and `new`, in order. Differences are found line by line
/// between the common prefix and suffix; runs of changed lines become one change each, less
/// the bytes at either end the two sides share (the indentation of a changed line, the part of
/// a line before an edit in it), so that a change reaches only what differs.
pub(super) fn changes(old: &[u8], new: &[u8]) -> Vec<Change> {
    let prefix = common_prefix(old, new);
    let max_suffix = old.len().min(new.len()) - prefix;
    let suffix = common_suffix(
        &old[old.len() - max_suffix..],
        &new[new.len() - max_suffix..],
    );
    if prefix == old.len() && prefix == new.len() {
        return Vec::new();
    }
    // Split the differing middle into changed line runs by matching lines exactly, a cheap
    // approximation of a diff that is always correct: any split yields valid changes.
    let start = memchr::memrchr(b'\n', &old[..prefix]).map_or(0, |i| i + 1);
    let old_mid = &old[start..old.len() - suffix];
    let new_mid = &new[start..new.len() - suffix];
    changed_runs(old_mid, new_mid)
        .into_iter()
        .map(|(o, n)| {
            let (o, n) = (
                start + o.start..start + o.end,
                start + n.start..start + n.end,
            );
            let head = common_prefix(&old[o.clone()], &new[n.clone()]);
            let tail = common_suffix(&old[o.start + head..o.end], &new[n.start + head..n.end]);
            Change {
                old: o.start + head..o.end - tail,
                new: n.start + head..n.end - tail,
            }
        })
        .collect()
}

/// Byte ranges of changed line runs between `old` and `new`: lines present in both at the same
/// relative position after resynchronising on the next identical line are unchanged.
pub(super) fn changed_runs(
    old: &[u8],
    new: &[u8],
) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let lines = |s: &[u8]| -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < s.len() {
            let end = memchr::memchr(b'\n', &s[at..]).map_or(s.len(), |i| at + i + 1);
            out.push(at..end);
            at = end;
        }
        out
    };
    let (a, b) = (lines(old), lines(new));
    // Lines are looked up, never iterated, so the hash only has to be fast.
    let mut index: HashMap<&[u8], Vec<usize>, foldhash::fast::FixedState> =
        HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x6c6f_7265));
    for (j, r) in b.iter().enumerate() {
        index.entry(&new[r.clone()]).or_default().push(j);
    }
    let mut runs = Vec::new();
    let (mut i, mut j) = (0, 0);
    let byte_a = |i: usize| a.get(i).map_or(old.len(), |r| r.start);
    let byte_b = |j: usize| b.get(j).map_or(new.len(), |r| r.start);
    while i < a.len() && j < b.len() {
        if old[a[i].clone()] == new[b[j].clone()] {
            i += 1;
            j += 1;
            continue;
        }
        // Find the nearest resynchronisation: an old line at or after i equal to a new line at
        // or after j, preferring the smallest total skip, looking a bounded distance ahead.
        let mut best: Option<(usize, usize)> = None;
        for di in 0..64.min(a.len() - i) {
            if let Some(js) = index.get(&old[a[i + di].clone()]) {
                if let Some(&nj) = js.get(js.partition_point(|&nj| nj < j)) {
                    if best.is_none_or(|(bi, bj)| di + (nj - j) < (bi - i) + (bj - j)) {
                        best = Some((i + di, nj));
                    }
                }
            }
        }
        let (ni, nj) = best.unwrap_or((a.len(), b.len()));
        runs.push((byte_a(i)..byte_a(ni), byte_b(j)..byte_b(nj)));
        i = ni;
        j = nj;
    }
    if i < a.len() || j < b.len() {
        runs.push((byte_a(i)..old.len(), byte_b(j)..new.len()));
    }
    runs
}
