//! Diffs for line provenance: the blocks of lines a version keeps from a parent. The runs of
//! origins and how a version's runs follow from its parents' are the stored format's
//! arithmetic ([`crate::store::origins`]).

use gix::diff::blob::{sources, Algorithm, Diff, InternedInput};

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
        let input = InternedInput::new(sources::byte_lines(old), sources::byte_lines(new));
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
    use crate::store::origins::{assign, compress, expand, Origin};

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
        let runs = assign(30, 1, 4, &[(p1, &first[..]), (p2, &second[..])]);
        assert_eq!(expand(&runs), vec![o(10, 0), o(20, 1), o(30, 2), o(30, 3)]);
    }
}
