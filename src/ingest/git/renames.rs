//! Rename detection between the files a commit deleted and the files it added, with git's
//! rules: exact matches by blob id first (same base name preferred; empty files too), then
//! content similarity of
//! at least 50%, measured as git measures it: the bytes of line chunks (split at newlines or
//! every 64 bytes) the two files share, over the size of the larger one. Each file takes part in
//! at most one rename; the best scores are paired first.

use std::collections::HashMap;

use gix::ObjectId;

/// Only this many sources × destinations are compared for similarity (git's `diff.renameLimit`).
const RENAME_LIMIT: usize = 1000;
/// Minimum similarity, in percent (git's `-M50%`).
const MIN_SIMILARITY: u64 = 50;
const CHUNK: usize = 64;

/// One side of a rename candidate: its path, blob id and content when it could be read.
pub struct Candidate<'a> {
    pub path: &'a str,
    pub id: ObjectId,
    pub data: Option<&'a [u8]>,
}

/// `(deleted index, added index)` pairs that are renames.
pub fn pair(deleted: &[Candidate<'_>], added: &[Candidate<'_>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut src_used = vec![false; deleted.len()];
    let mut dst_used = vec![false; added.len()];
    // 1. Exact renames: same blob.
    let mut by_id: HashMap<ObjectId, Vec<usize>> = HashMap::new();
    for (i, d) in deleted.iter().enumerate() {
        by_id.entry(d.id).or_default().push(i);
    }
    for (j, a) in added.iter().enumerate() {
        let Some(sources) = by_id.get(&a.id) else {
            continue;
        };
        let free = sources.iter().copied().filter(|&i| !src_used[i]);
        let same_name = free
            .clone()
            .find(|&i| base_name(deleted[i].path) == base_name(a.path));
        if let Some(i) = same_name.or_else(|| free.clone().next()) {
            src_used[i] = true;
            dst_used[j] = true;
            pairs.push((i, j));
        }
    }

    // 2. Similar content.
    let sources: Vec<usize> = (0..deleted.len())
        .filter(|&i| !src_used[i] && deleted[i].data.is_some_and(|d| !d.is_empty()))
        .collect();
    let targets: Vec<usize> = (0..added.len())
        .filter(|&j| !dst_used[j] && added[j].data.is_some_and(|d| !d.is_empty()))
        .collect();
    if sources.is_empty()
        || targets.is_empty()
        || sources.len() * targets.len() > RENAME_LIMIT * RENAME_LIMIT
    {
        return pairs;
    }
    let fingerprints: Vec<Fingerprint> = sources
        .iter()
        .map(|&i| Fingerprint::of(deleted[i].data.unwrap_or_default()))
        .collect();
    let mut scored = Vec::new();
    for &j in &targets {
        let dst = added[j].data.unwrap_or_default();
        let mut dst_print: Option<Fingerprint> = None;
        for (s, &i) in sources.iter().enumerate() {
            let src = &fingerprints[s];
            let (small, large) = (src.size.min(dst.len()), src.size.max(dst.len()));
            // Not even a perfect overlap could reach the threshold.
            if (small as u64) * 100 < (large as u64) * MIN_SIMILARITY {
                continue;
            }
            let dst_print = dst_print.get_or_insert_with(|| Fingerprint::of(dst));
            let shared = src.shared_bytes(dst_print);
            let score = shared * 100 / large as u64;
            if score >= MIN_SIMILARITY {
                scored.push((score, i, j));
            }
        }
    }
    // Best first; ties broken by position, so results are deterministic.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (_, i, j) in scored {
        if !src_used[i] && !dst_used[j] {
            src_used[i] = true;
            dst_used[j] = true;
            pairs.push((i, j));
        }
    }
    pairs
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Bytes per chunk hash.
struct Fingerprint {
    size: usize,
    chunks: HashMap<u64, u64>,
}

impl Fingerprint {
    fn of(data: &[u8]) -> Fingerprint {
        let mut chunks: HashMap<u64, u64> = HashMap::new();
        let mut start = 0;
        while start < data.len() {
            let window = &data[start..data.len().min(start + CHUNK)];
            let len = window
                .iter()
                .position(|&b| b == b'\n')
                .map_or(window.len(), |i| i + 1);
            let chunk = &data[start..start + len];
            *chunks.entry(hash(chunk)).or_default() += len as u64;
            start += len;
        }
        Fingerprint {
            size: data.len(),
            chunks,
        }
    }

    fn shared_bytes(&self, other: &Fingerprint) -> u64 {
        let (small, large) = if self.chunks.len() <= other.chunks.len() {
            (self, other)
        } else {
            (other, self)
        };
        small
            .chunks
            .iter()
            .filter_map(|(h, n)| large.chunks.get(h).map(|m| (*n).min(*m)))
            .sum()
    }
}

/// FNV-1a: fast and good enough to tell line chunks apart.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    fn cand<'a>(path: &'a str, n: u8, data: &'a [u8]) -> Candidate<'a> {
        Candidate {
            path,
            id: id(n),
            data: Some(data),
        }
    }

    #[test]
    fn exact_renames_prefer_the_same_base_name() {
        let del = [cand("a/x.py", 1, b"same\n"), cand("b/y.py", 1, b"same\n")];
        let add = [cand("c/y.py", 1, b"same\n")];
        assert_eq!(pair(&del, &add), vec![(1, 0)]);
    }

    #[test]
    fn similar_files_pair_and_dissimilar_do_not() {
        let old = b"line one\nline two\nline three\nline four\n";
        let edited = b"line one\nline two\nline three\nline 4\n";
        let other = b"completely\ndifferent\ncontent here\n";
        let del = [cand("old.py", 1, old)];
        let add = [cand("other.py", 3, other), cand("new.py", 2, edited)];
        assert_eq!(pair(&del, &add), vec![(0, 1)]);
        let add = [cand("other.py", 3, other)];
        assert!(pair(&del, &add).is_empty());
    }

    #[test]
    fn empty_files_pair_only_exactly() {
        let del = [cand("a/.gitkeep", 1, b"")];
        let add = [cand("a/.keep", 1, b"")];
        assert_eq!(pair(&del, &add), vec![(0, 0)]);
        let add = [cand("a/.keep", 2, b"x\n")];
        assert!(pair(&del, &add).is_empty());
    }
}
