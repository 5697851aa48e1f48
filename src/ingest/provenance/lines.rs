//! The arithmetic of line provenance: diffs as blocks of unchanged lines, runs of origins,
//! and a version's runs computed from its parents' runs as `git blame` assigns them.

use gix::diff::blob::{sources, Algorithm, Diff, InternedInput};

use crate::store::records::OriginRun;

/// `len` lines unchanged between a parent (from line `old`) and the child (from line `new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub old: u32,
    pub new: u32,
    pub len: u32,
}

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
/// parent's lines and the blocks the version keeps from it, parents in order. As `git blame`
/// passes blame: a line kept from an earlier parent takes that parent's origin; a line no
/// parent has was introduced by `commit`.
pub fn assign(
    commit: u64,
    file: u64,
    lines: u32,
    parents: &[(Vec<Origin>, Vec<Block>)],
) -> Vec<OriginRun> {
    let mut origin: Vec<Option<Origin>> = vec![None; lines as usize];
    for (parent_lines, blocks) in parents {
        for b in blocks {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let runs = assign(
            30,
            1,
            4,
            &[
                (
                    p1,
                    vec![Block {
                        old: 0,
                        new: 0,
                        len: 1,
                    }],
                ),
                (
                    p2,
                    vec![Block {
                        old: 0,
                        new: 0,
                        len: 2,
                    }],
                ),
            ],
        );
        assert_eq!(expand(&runs), vec![o(10, 0), o(20, 1), o(30, 2), o(30, 3)]);
    }
}
