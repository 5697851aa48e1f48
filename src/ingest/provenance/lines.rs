//! Diffs for line provenance: the blocks of lines a version keeps from a parent. The runs of
//! origins and how a version's runs follow from its parents' are the stored format's
//! arithmetic ([`crate::store::origins`]).

use gix::diff::blob::{Algorithm, Diff, InternedInput};

pub use crate::store::records::Block;

/// Diffs two versions line by line (Myers, with git's indent heuristic for where an
/// ambiguous change sits, as `git blame` diffs); one per worker thread.
#[derive(Default)]
pub struct LineDiffer {
    diff: Diff,
}

/// The number of lines of a text, as git counts them (an unterminated last line counts).
pub fn line_count(data: &[u8]) -> u32 {
    let newlines = memchr::memchr_iter(b'\n', data).count();
    (newlines + usize::from(!data.is_empty() && !data.ends_with(b"\n"))) as u32
}

impl LineDiffer {
    /// The blocks of lines `new` keeps from `old`, in order.
    pub fn blocks(&mut self, old: &[u8], new: &[u8]) -> Vec<Block> {
        let mut input = InternedInput::default();
        crate::ingest::git::linediff::intern_lines(&mut input, old, new, |line| line);
        self.diff.compute_with(
            Algorithm::Myers,
            &input.before,
            &input.after,
            input.interner.num_tokens(),
        );
        self.diff.postprocess_lines(&input);
        let (old_len, new_len) = (input.before.len() as u32, input.after.len() as u32);
        let mut out = Vec::new();
        let (mut old_at, mut new_at) = (0u32, 0u32);
        for hunk in self.diff.hunks() {
            let len = hunk.before.start - old_at;
            debug_assert_eq!(len, hunk.after.start - new_at);
            if len > 0 {
                out.push(Block {
                    old: old_at,
                    new: new_at,
                    len,
                });
            }
            old_at = hunk.before.end;
            new_at = hunk.after.end;
        }
        if old_at < old_len {
            out.push(Block {
                old: old_at,
                new: new_at,
                len: old_len - old_at,
            });
        }
        debug_assert_eq!(old_len - old_at, new_len - new_at);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::origins::{assign, assign_by_line, compress, expand, Origin};
    use crate::store::records::OriginRun;

    fn o(commit: u64, line: u32) -> Origin {
        Origin {
            commit,
            file: 1,
            line,
        }
    }

    #[test]
    fn blocks_are_the_unchanged_lines() {
        let mut d = LineDiffer::default();
        assert_eq!(
            d.blocks(b"a\nb\nc\n", b"a\nX\nc\nd\n"),
            vec![
                Block {
                    old: 0,
                    new: 0,
                    len: 1
                },
                Block {
                    old: 2,
                    new: 2,
                    len: 1
                }
            ]
        );
        assert_eq!(d.blocks(b"", b"a\n"), vec![]);
        assert_eq!(
            d.blocks(b"a\n", b"a\n"),
            vec![Block {
                old: 0,
                new: 0,
                len: 1
            }]
        );
        assert_eq!(line_count(b"a\nb"), 2);
        assert_eq!(line_count(b""), 0);
    }

    #[test]
    fn runs_round_trip_and_merge_consecutive_lines() {
        let lines = vec![o(1, 0), o(1, 1), o(2, 5), o(1, 2), o(1, 4)];
        let runs = compress(&lines);
        assert_eq!(runs.len(), 4);
        assert_eq!(expand(&runs), lines);
    }

    #[test]
    fn first_parent_wins_then_later_parents_then_the_commit() {
        // The child has 4 lines: line 0 from both parents, line 1 from the second only.
        let p1 = vec![o(10, 0)];
        let p2 = vec![o(20, 0), o(20, 1)];
        let first = [Block {
            old: 0,
            new: 0,
            len: 1,
        }];
        let second = [Block {
            old: 0,
            new: 0,
            len: 2,
        }];
        let (p1, p2) = (compress(&p1), compress(&p2));
        let runs = assign(30, 1, 4, &[(&p1, &first[..]), (&p2, &second[..])]);
        assert_eq!(expand(&runs), vec![o(10, 0), o(20, 1), o(30, 2), o(30, 3)]);
    }

    /// Random parents (runs with gaps and zero-length runs), blocks in order, overlapping
    /// between parents, running past either version's end. One case in ten has its blocks out
    /// of order, which `assign` hands to `assign_by_line`: those check that hand-over.
    #[test]
    fn assigning_runs_agrees_with_assigning_line_by_line() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        for case in 0..3000 {
            let lines = next(60) as u32;
            let parents: Vec<(Vec<OriginRun>, Vec<Block>)> = (0..1 + next(3))
                .map(|_| {
                    let runs: Vec<OriginRun> = (0..next(8))
                        .map(|_| OriginRun {
                            commit: next(4),
                            file: 1 + next(2),
                            line: next(30) as u32,
                            len: next(12) as u32,
                        })
                        .collect();
                    let mut blocks = Vec::new();
                    let (mut old, mut new) = (next(5) as u32, next(5) as u32);
                    for _ in 0..next(6) {
                        let len = 1 + next(15) as u32;
                        blocks.push(Block { old, new, len });
                        old += len + next(6) as u32;
                        new += len + next(6) as u32;
                    }
                    if next(10) == 0 {
                        blocks.reverse();
                    }
                    (runs, blocks)
                })
                .collect();
            let by_runs: Vec<(&[OriginRun], &[Block])> = parents
                .iter()
                .map(|(r, b)| (r.as_slice(), b.as_slice()))
                .collect();
            let by_lines: Vec<(Vec<Origin>, &[Block])> = parents
                .iter()
                .map(|(r, b)| (expand(r), b.as_slice()))
                .collect();
            assert_eq!(
                assign(9, 1, lines, &by_runs),
                assign_by_line(9, 1, lines, &by_lines),
                "case {case}: {lines} lines, parents {parents:?}"
            );
        }
    }
}
