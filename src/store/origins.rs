//! Line provenance lookups, shared by the read and the write side: which stored version of a
//! file a commit sees, and the runs of line origins of that version.
//!
//! A version is stored at `(file, commit)` for every commit that changed the file against its
//! first parent. The file as of any commit `c` is therefore the version stored at the nearest
//! commit on `c`'s first-parent chain that changed it; [`version_at`] walks that chain through
//! the `first_parents` table. When the blob is known (a diff names it), [`version_with_blob`]
//! finds the version from the few that share the content, walking only to tell those apart.

use std::collections::BTreeSet;

use redb::ReadableTable;

use super::codec::decode;
use super::records::{Block, FileVersion, LineOrigins, OriginRun};
use super::StoreError;

/// How many `SameAs` and delta links are followed before the chain is called corrupt.
const MAX_LINKS: usize = 256;

/// One line's origin: the commit, the file (its path there) and the line there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub commit: u64,
    pub file: u64,
    pub line: u32,
}

/// The origin of every line of a version, expanded from its runs.
pub fn expand(runs: &[OriginRun]) -> Vec<Origin> {
    let mut out = Vec::with_capacity(runs.iter().map(|r| r.len as usize).sum());
    for r in runs {
        out.extend((0..r.len).map(|i| Origin {
            commit: r.commit,
            file: r.file,
            line: r.line + i,
        }));
    }
    out
}

/// Runs of consecutive lines from one commit and file, whose lines there are consecutive.
pub fn compress(lines: &[Origin]) -> Vec<OriginRun> {
    let mut out: Vec<OriginRun> = Vec::new();
    for o in lines {
        match out.last_mut() {
            Some(r) if r.commit == o.commit && r.file == o.file && r.line + r.len == o.line => {
                r.len += 1;
            }
            _ => out.push(OriginRun {
                commit: o.commit,
                file: o.file,
                line: o.line,
                len: 1,
            }),
        }
    }
    out
}

/// The runs of a version of `lines` lines that `commit` wrote as file `file`, given each
/// parent's runs and the blocks the version keeps from it, parents in order. As `git blame`
/// passes blame: a line kept from an earlier parent takes that parent's origin; a line no
/// parent has was introduced by `commit`.
///
/// Works on runs, not lines: a version's cost is its runs and blocks, not its length. Blocks
/// out of order (diffs give them in order; only a damaged record would not) go through
/// [`assign_by_line`], the plain definition.
pub fn assign(
    commit: u64,
    file: u64,
    lines: u32,
    parents: &[(&[OriginRun], &[Block])],
) -> Vec<OriginRun> {
    let in_order = |blocks: &[Block]| {
        blocks
            .windows(2)
            .all(|w| u64::from(w[0].new) + u64::from(w[0].len) <= u64::from(w[1].new))
    };
    if !parents.iter().all(|(_, blocks)| in_order(blocks)) {
        let expanded: Vec<(Vec<Origin>, &[Block])> = parents
            .iter()
            .map(|(runs, blocks)| (expand(runs), *blocks))
            .collect();
        return assign_by_line(commit, file, lines, &expanded);
    }
    // Lines no parent has given yet, as `[start, end)` ranges in order.
    let mut free: Vec<(u32, u32)> = if lines > 0 { vec![(0, lines)] } else { vec![] };
    // What each parent gives: (first line here, lines, parent, first line in the parent).
    let mut pieces: Vec<(u32, u32, usize, u32)> = Vec::new();
    for (p, (runs, blocks)) in parents.iter().enumerate() {
        let parent_lines: u64 = runs.iter().map(|r| u64::from(r.len)).sum();
        // Each block cut to the lines both versions have.
        let given: Vec<(u32, u32, u32)> = blocks
            .iter()
            .filter_map(|b| {
                let len = u64::from(b.len)
                    .min(parent_lines.saturating_sub(u64::from(b.old)))
                    .min(u64::from(lines.saturating_sub(b.new))) as u32;
                (len > 0).then_some((b.new, b.new + len, b.old))
            })
            .collect();
        let mut still_free = Vec::with_capacity(free.len());
        let mut next = 0;
        for &(free_start, free_end) in &free {
            while next < given.len() && given[next].1 <= free_start {
                next += 1;
            }
            let mut at = free_start;
            let mut g = next;
            while at < free_end {
                let Some(&(start, end, old)) = given.get(g).filter(|b| b.0 < free_end) else {
                    still_free.push((at, free_end));
                    break;
                };
                if start > at {
                    still_free.push((at, start));
                    at = start;
                }
                let stop = end.min(free_end);
                pieces.push((at, stop - at, p, old + (at - start)));
                at = stop;
                if end <= free_end {
                    g += 1;
                }
            }
            next = g;
        }
        free = still_free;
    }
    const OWN: usize = usize::MAX;
    pieces.extend(
        free.iter()
            .map(|&(start, end)| (start, end - start, OWN, start)),
    );
    pieces.sort_unstable_by_key(|piece| piece.0);

    // Where each parent run starts among the parent's lines.
    let starts: Vec<Vec<u64>> = parents
        .iter()
        .map(|(runs, _)| {
            let mut at = 0u64;
            runs.iter()
                .map(|r| {
                    let start = at;
                    at += u64::from(r.len);
                    start
                })
                .collect()
        })
        .collect();
    let mut out: Vec<OriginRun> = Vec::new();
    let mut push = |run: OriginRun| match out.last_mut() {
        Some(last)
            if last.commit == run.commit
                && last.file == run.file
                && last.line + last.len == run.line =>
        {
            last.len += run.len
        }
        _ => out.push(run),
    };
    for (_, len, p, old) in pieces {
        if p == OWN {
            push(OriginRun {
                commit,
                file,
                line: old,
                len,
            });
            continue;
        }
        let (runs, starts) = (parents[p].0, &starts[p]);
        let (mut at, end) = (u64::from(old), u64::from(old) + u64::from(len));
        let mut k = starts.partition_point(|&s| s <= at) - 1;
        while at < end {
            let run = &runs[k];
            let skip = (at - starts[k]) as u32;
            let take = (u64::from(run.len - skip)).min(end - at) as u32;
            if take > 0 {
                push(OriginRun {
                    commit: run.commit,
                    file: run.file,
                    line: run.line + skip,
                    len: take,
                });
            }
            at += u64::from(take);
            k += 1;
        }
    }
    out
}

/// [`assign`] line by line: each parent's lines expanded, each line given its origin.
pub fn assign_by_line(
    commit: u64,
    file: u64,
    lines: u32,
    parents: &[(Vec<Origin>, &[Block])],
) -> Vec<OriginRun> {
    let mut origin: Vec<Option<Origin>> = vec![None; lines as usize];
    for (parent_lines, blocks) in parents {
        for b in blocks.iter() {
            for i in 0..b.len {
                let (old, new) = ((b.old + i) as usize, (b.new + i) as usize);
                if let (Some(slot @ None), Some(from)) =
                    (origin.get_mut(new), parent_lines.get(old))
                {
                    *slot = Some(*from);
                }
            }
        }
    }
    let all: Vec<Origin> = origin
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.unwrap_or(Origin {
                commit,
                file,
                line: i as u32,
            })
        })
        .collect();
    compress(&all)
}

pub(super) fn version(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    file: u64,
    commit: u64,
) -> Result<Option<FileVersion>, StoreError> {
    match origins.get((file, commit))? {
        Some(v) => Ok(Some(decode("line origins", v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn first_parent(
    parents: &impl ReadableTable<u64, u64>,
    commit: u64,
) -> Result<Option<u64>, StoreError> {
    Ok(parents.get(commit)?.map(|v| v.value()))
}

/// The first of `candidates` (sorted) met walking the first-parent chain down from `commit`.
fn walk_to(
    parents: &impl ReadableTable<u64, u64>,
    candidates: &BTreeSet<u64>,
    commit: u64,
) -> Result<Option<u64>, StoreError> {
    let Some(&lowest) = candidates.first() else {
        return Ok(None);
    };
    let mut at = commit;
    loop {
        if candidates.contains(&at) {
            return Ok(Some(at));
        }
        match first_parent(parents, at)? {
            Some(p) if p >= lowest && p < at => at = p,
            _ => return Ok(None),
        }
    }
}

/// The commit whose stored version of `file` is the file as of `commit` (`None`: the file did
/// not exist there, or no version is stored), with that version.
pub(super) fn version_at(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    parents: &impl ReadableTable<u64, u64>,
    file: u64,
    commit: u64,
) -> Result<Option<(u64, FileVersion)>, StoreError> {
    let mut candidates = BTreeSet::new();
    for entry in origins.range((file, 0)..=(file, commit))? {
        candidates.insert(entry?.0.value().1);
    }
    let Some(found) = walk_to(parents, &candidates, commit)? else {
        return Ok(None);
    };
    Ok(version(origins, file, found)?.map(|v| (found, v)))
}

/// The commit holding the version of `file` with content `blob` that `commit` sees: among the
/// stored versions with that blob at or before `commit`, the one on its first-parent chain (or
/// the latest, when the chain passes none of them).
pub(super) fn version_with_blob(
    by_blob: &impl ReadableTable<(u64, &'static [u8], u64), ()>,
    parents: &impl ReadableTable<u64, u64>,
    file: u64,
    blob: &[u8],
    commit: u64,
) -> Result<Option<u64>, StoreError> {
    let mut candidates = BTreeSet::new();
    for entry in by_blob.range((file, blob, 0)..=(file, blob, commit))? {
        candidates.insert(entry?.0.value().2);
    }
    match candidates.len() {
        0 => Ok(None),
        1 => Ok(candidates.first().copied()),
        _ => Ok(walk_to(parents, &candidates, commit)?.or(candidates.last().copied())),
    }
}

/// The commits (sorted) holding a version of `file` with content `blob`, at or before
/// `commit`.
pub(super) fn versions_with_blob(
    by_blob: &impl ReadableTable<(u64, &'static [u8], u64), ()>,
    file: u64,
    blob: &[u8],
    commit: u64,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in by_blob.range((file, blob, 0)..=(file, blob, commit))? {
        out.push(entry?.0.value().2);
    }
    Ok(out)
}

/// Every recorded first parent, indexed by commit local id (`u64::MAX`: none recorded).
pub(super) fn all_first_parents(
    parents: &impl ReadableTable<u64, u64>,
) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for entry in parents.iter()? {
        let (k, v) = entry?;
        let k = k.value() as usize;
        if out.len() <= k {
            out.resize(k + 1, u64::MAX);
        }
        out[k] = v.value();
    }
    Ok(out)
}

/// The runs of the version stored at `(file, commit)`, following `SameAs` links and applying
/// deltas to their parents' runs. `None` when the version is unknown (binary), deleted or
/// missing.
pub(super) fn runs(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    file: u64,
    commit: u64,
) -> Result<Option<Vec<OriginRun>>, StoreError> {
    let mut budget = MAX_LINKS;
    runs_within(origins, file, commit, &mut budget)
}

fn runs_within(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    mut file: u64,
    mut commit: u64,
    budget: &mut usize,
) -> Result<Option<Vec<OriginRun>>, StoreError> {
    loop {
        if *budget == 0 {
            return Err(StoreError::Corrupt {
                what: "line origins",
                detail: format!(
                    "more than {MAX_LINKS} versions chained from file {file} at commit {commit}"
                ),
            });
        }
        *budget -= 1;
        let Some(v) = version(origins, file, commit)? else {
            return Ok(None);
        };
        match v.origins {
            LineOrigins::Runs(runs) => return Ok(Some(runs)),
            LineOrigins::SameAs { file: f, commit: c } => {
                file = f;
                commit = c;
            }
            LineOrigins::Delta { parents, .. } => {
                let mut from = Vec::with_capacity(parents.len());
                for p in &parents {
                    if let Some(r) = runs_within(origins, p.file, p.commit, budget)? {
                        from.push((r, p.blocks.as_slice()));
                    }
                }
                let from: Vec<(&[OriginRun], &[Block])> =
                    from.iter().map(|(r, b)| (r.as_slice(), *b)).collect();
                return Ok(Some(assign(commit, file, v.lines, &from)));
            }
            LineOrigins::Unknown | LineOrigins::Deleted => return Ok(None),
        }
    }
}

/// How many deltas lie between the version at `(file, commit)` and stored runs (0 for runs).
pub(super) fn depth(
    origins: &impl ReadableTable<(u64, u64), &'static [u8]>,
    file: u64,
    commit: u64,
) -> Result<u32, StoreError> {
    Ok(match version(origins, file, commit)?.map(|v| v.origins) {
        Some(LineOrigins::Delta { depth, .. }) => depth,
        Some(LineOrigins::SameAs { file, commit }) => match version(origins, file, commit)? {
            Some(FileVersion {
                origins: LineOrigins::Delta { depth, .. },
                ..
            }) => depth,
            _ => 0,
        },
        _ => 0,
    })
}
