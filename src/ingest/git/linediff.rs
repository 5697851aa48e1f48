//! Line statistics of one file change, counted as `git diff --numstat` counts them.

use std::hash::BuildHasher;

use gix::diff::blob::{sources, Algorithm, Diff, InternedInput};

/// Counts added and removed lines; one per worker thread, so its buffers are reused.
#[derive(Default)]
pub struct LineCounter {
    /// Lines are interned by a 64-bit hash of their bytes (terminator included), which keeps
    /// the buffers free of borrows and reusable from one file to the next.
    input: InternedInput<u64>,
    diff: Diff,
}

/// `(added, removed, binary)` between two versions (an absent side is empty), or `None` when a
/// side could not be read.
pub fn stats(
    counter: &mut LineCounter,
    old: Option<&[u8]>,
    new: Option<&[u8]>,
    same_blob: bool,
) -> Option<(Option<u32>, Option<u32>, bool)> {
    if same_blob {
        // A pure rename or mode change: git still says `-` for binary content.
        let binary = new.is_some_and(is_binary);
        return Some(if binary {
            (None, None, true)
        } else {
            (Some(0), Some(0), false)
        });
    }
    let (old, new) = (old?, new?);
    if is_binary(old) || is_binary(new) {
        return Some((None, None, true));
    }
    let (added, removed) = counter.counts(old, new);
    Some((Some(added), Some(removed), false))
}

/// `(added, removed, binary)` from the blocks of lines `new` keeps from `old` (a Myers diff of
/// the two texts, as [`LineCounter::counts`] computes it: moving a change within the diff, as
/// git's indent heuristic does, does not change the counts). `None` when the blocks keep more
/// lines than either text has, so they are not a diff of these two texts.
pub fn stats_from_blocks(
    blocks: &[crate::store::records::Block],
    old: &[u8],
    new: &[u8],
) -> Option<(Option<u32>, Option<u32>, bool)> {
    let kept: u32 = blocks.iter().map(|b| b.len).sum();
    let added = count_lines(new).checked_sub(kept)?;
    let removed = count_lines(old).checked_sub(kept)?;
    Some((Some(added), Some(removed), false))
}

/// What git calls binary: a NUL byte in the first 8000 bytes.
fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(8000)].contains(&0)
}

fn count_lines(data: &[u8]) -> u32 {
    let newlines = memchr::memchr_iter(b'\n', data).count();
    let unterminated = usize::from(!data.is_empty() && !data.ends_with(b"\n"));
    (newlines + unterminated) as u32
}

/// Cut the lines both sides share at the start and at the end; what is left holds every
/// difference. Returns the two middles, each starting at a line start.
fn trim_common_lines<'a>(a: &'a [u8], b: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let (prefix, suffix) = common_lines(a, b);
    (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix])
}

/// The bytes of the whole lines two texts share at the start and at the end: `(prefix,
/// suffix)`, the prefix ending and the suffix starting at a line start in both texts, and the
/// two not overlapping in either.
pub(crate) fn common_lines(a: &[u8], b: &[u8]) -> (usize, usize) {
    let mut prefix = common_prefix(a, b);
    prefix = a[..prefix]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let mut suffix = common_suffix(a, b);
    let at_line_start = |s: &[u8], cut: usize| cut == 0 || s[cut - 1] == b'\n';
    if !(at_line_start(a, a.len() - suffix) && at_line_start(b, b.len() - suffix)) {
        // Move the cut forward to just after the first newline inside the shared suffix.
        let tail = &a[a.len() - suffix..];
        suffix = match tail.iter().position(|&c| c == b'\n') {
            Some(i) => suffix - (i + 1),
            None => 0,
        };
    }
    (prefix, suffix)
}

/// Intern the lines of `old` and `new` into `input` (cleared first), each line the two share
/// at the start or the end interned once for both sides: the same tokens as interning each
/// side line by line, up to the numbering, and the numbering does not change a diff.
pub(crate) fn intern_lines<'a, T: Eq + std::hash::Hash>(
    input: &mut InternedInput<T>,
    old: &'a [u8],
    new: &'a [u8],
    token: impl Fn(&'a [u8]) -> T,
) {
    input.clear();
    input.reserve(count_lines(old), count_lines(new));
    let (prefix, suffix) = common_lines(old, new);
    let interner = &mut input.interner;
    input
        .before
        .extend(sources::byte_lines(&old[..prefix]).map(|l| interner.intern(token(l))));
    input.after.extend_from_slice(&input.before);
    input.before.extend(
        sources::byte_lines(&old[prefix..old.len() - suffix]).map(|l| interner.intern(token(l))),
    );
    input.after.extend(
        sources::byte_lines(&new[prefix..new.len() - suffix]).map(|l| interner.intern(token(l))),
    );
    let middle_end = input.before.len();
    input
        .before
        .extend(sources::byte_lines(&old[old.len() - suffix..]).map(|l| interner.intern(token(l))));
    let (before, after) = (&input.before, &mut input.after);
    after.extend_from_slice(&before[middle_end..]);
}

/// Bytes compared at a time while looking for where two texts start (or stop) differing: one
/// `memcmp` per block beats a byte loop on the long equal stretches of two versions of a file.
const BLOCK: usize = 256;

/// The length of the longest common prefix of `a` and `b`.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// The length of the longest common suffix of `a` and `b`.
pub(crate) fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut len = 0;
    while len + BLOCK <= n && a[n - len - BLOCK..n - len] == b[n - len - BLOCK..n - len] {
        len += BLOCK;
    }
    len + a[..n - len]
        .iter()
        .rev()
        .zip(b[..n - len].iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

impl LineCounter {
    /// `(added, removed)` lines between two texts, with a Myers diff as `git diff --numstat`
    /// uses.
    ///
    /// When the lines the two texts share at both ends cover one of them completely, the change
    /// is a pure insertion or deletion and is counted directly. Otherwise the whole texts are
    /// diffed: git's Myers heuristics depend on line counts over the whole files, and diffing
    /// only the middle would give different (equally valid, but not git's) answers on large
    /// edits.
    pub fn counts(&mut self, old: &[u8], new: &[u8]) -> (u32, u32) {
        let (old_middle, new_middle) = trim_common_lines(old, new);
        if old_middle.is_empty() || new_middle.is_empty() {
            return (count_lines(new_middle), count_lines(old_middle));
        }
        self.diff_whole(old, new);
        (self.diff.count_additions(), self.diff.count_removals())
    }

    /// Myers diff of the two texts line by line, into `self.diff`.
    fn diff_whole(&mut self, old: &[u8], new: &[u8]) {
        let hasher = foldhash::fast::FixedState::with_seed(0x6c6f_7265);
        intern_lines(&mut self.input, old, new, |line| hasher.hash_one(line));
        self.diff.compute_with(
            Algorithm::Myers,
            &self.input.before,
            &self.input.after,
            self.input.interner.num_tokens(),
        );
    }

    /// The changed line ranges (0-based, end-exclusive) as `(before, after)` pairs.
    pub fn hunks(
        &mut self,
        old: &[u8],
        new: &[u8],
    ) -> Vec<(std::ops::Range<u32>, std::ops::Range<u32>)> {
        self.diff_whole(old, new);
        self.diff.hunks().map(|h| (h.before, h.after)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift generator: each call gives a number below its argument.
    fn below(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// One to `most` random edits of `text`'s lines: a word inserted, a line removed, or a
    /// number appended to a line.
    fn edit_randomly(
        text: &mut Vec<String>,
        words: &[&str],
        next: &mut impl FnMut(u64) -> u64,
        most: u64,
    ) {
        for _ in 0..=next(most) {
            let at = next(text.len() as u64 + 1) as usize;
            match next(3) {
                0 => text.insert(at, words[next(words.len() as u64) as usize].to_string()),
                1 if at < text.len() => drop(text.remove(at)),
                _ if at < text.len() => text[at] = format!("{} {}", text[at], next(9)),
                _ => {}
            }
        }
    }

    #[test]
    fn counts_lines_like_git() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\n"), 1);
        assert_eq!(count_lines(b"a\nb"), 2);
        assert!(is_binary(b"ab\0c"));
        assert!(!is_binary("héllo\n".as_bytes()));
    }

    #[test]
    fn trimming_keeps_whole_lines() {
        assert_eq!(
            trim_common_lines(b"xfoo\n", b"foo\n"),
            (&b"xfoo\n"[..], &b"foo\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"foo", b"foo\nbar\n"),
            (&b"foo"[..], &b"foo\nbar\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"foo\n", b"foo\nbar\n"),
            (&b""[..], &b"bar\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"a\nb\nc\n", b"a\nX\nc\n"),
            (&b"b\n"[..], &b"X\n"[..])
        );
        assert_eq!(
            trim_common_lines(b"a\nbc\n", b"a\nxbc\n"),
            (&b"bc\n"[..], &b"xbc\n"[..])
        );
    }

    #[test]
    fn line_counts_match_numstat() {
        assert_eq!(
            LineCounter::default().counts(b"a\nb\nc\n", b"a\nX\nc\n"),
            (1, 1)
        );
        assert_eq!(LineCounter::default().counts(b"a\nb", b"a\nb\n"), (1, 1));
        assert_eq!(LineCounter::default().counts(b"a\n", b"a\nb\nc\n"), (2, 0));
        assert_eq!(
            LineCounter::default().counts(b"x\na\nb\n", b"a\nb\n"),
            (0, 1)
        );
        assert_eq!(LineCounter::default().counts(b"xfoo\n", b"foo\n"), (1, 1));
    }

    #[test]
    fn stats_from_provenance_blocks_match_the_numstat_diff() {
        // Versions of a text edited in many places, with repeated lines (where the indent
        // heuristic moves changes) and a last line without its newline.
        let mut next = below(0x2545_f491);
        let words = ["}", "", "    x += 1;", "fn f() {", "    return;", "// note"];
        let mut text: Vec<String> = (0..60)
            .map(|_| words[next(6) as usize].to_string())
            .collect();
        let (mut counter, mut differ) = (
            LineCounter::default(),
            crate::ingest::provenance::lines::LineDiffer::default(),
        );
        for _ in 0..200 {
            let old = text.join("\n");
            edit_randomly(&mut text, &words, &mut next, 4);
            let new = text.join("\n");
            let (old, new) = (old.as_bytes(), new.as_bytes());
            let (added, removed) = counter.counts(old, new);
            let blocks = differ.blocks(old, new);
            assert_eq!(
                stats_from_blocks(&blocks, old, new),
                Some((Some(added), Some(removed), false)),
                "{old:?} -> {new:?}"
            );
        }
    }

    #[test]
    fn common_ends_agree_with_a_byte_loop_across_chunk_boundaries() {
        let prefix = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let suffix = |a: &[u8], b: &[u8]| {
            a.iter()
                .rev()
                .zip(b.iter().rev())
                .take_while(|(x, y)| x == y)
                .count()
        };
        let base: Vec<u8> = (0..700u32).map(|i| b'a' + (i % 26) as u8).collect();
        for len in [0, 1, 255, 256, 257, 300, 512, 700] {
            let a = &base[..len];
            for at in 0..=len {
                // One byte changed at `at` (or none when at == len), and a shorter copy.
                let mut b = a.to_vec();
                if at < len {
                    b[at] = b'#';
                }
                assert_eq!(common_prefix(a, &b), prefix(a, &b), "len {len} at {at}");
                assert_eq!(common_suffix(a, &b), suffix(a, &b), "len {len} at {at}");
                assert_eq!(common_prefix(a, &a[..at]), at);
                assert_eq!(common_suffix(a, &a[at..]), len - at);
            }
        }
    }

    /// Interning the shared first and last lines once gives the same diffs, postprocessed or
    /// not, as interning every line of both sides.
    #[test]
    fn shared_lines_interned_once_give_the_same_diffs() {
        let mut next = below(0x9e37_79b9);
        let words = [
            "}",
            "",
            "    x += 1;",
            "fn f() {",
            "    return;",
            "// note",
            "  }",
        ];
        let mut text: Vec<String> = (0..40)
            .map(|_| words[next(7) as usize].to_string())
            .collect();
        let hunks = |diff: &Diff| {
            diff.hunks()
                .map(|h| (h.before, h.after))
                .collect::<Vec<_>>()
        };
        let mut checked = 0;
        for round in 0..2000 {
            if round % 200 == 0 {
                text.truncate(next(3) as usize);
            }
            let old = text.join("\n") + if next(2) == 0 { "\n" } else { "" };
            edit_randomly(&mut text, &words, &mut next, 3);
            let new = text.join("\n") + if next(2) == 0 { "\n" } else { "" };
            let (old, new) = (old.as_bytes(), new.as_bytes());
            let whole = InternedInput::new(sources::byte_lines(old), sources::byte_lines(new));
            let mut shared = InternedInput::default();
            intern_lines(&mut shared, old, new, |line| line);
            assert_eq!(whole.before.len(), shared.before.len());
            assert_eq!(whole.after.len(), shared.after.len());
            for postprocess in [false, true] {
                let mut a = Diff::compute(Algorithm::Myers, &whole);
                let mut b = Diff::compute(Algorithm::Myers, &shared);
                if postprocess {
                    a.postprocess_lines(&whole);
                    b.postprocess_lines(&shared);
                }
                assert_eq!(hunks(&a), hunks(&b), "{old:?} -> {new:?}");
                checked += usize::from(a.count_additions() + a.count_removals() > 0);
            }
        }
        assert!(checked > 1000, "only {checked} pairs differed");
    }

    #[test]
    fn blocks_that_keep_more_lines_than_a_text_has_give_no_stats() {
        let blocks = [crate::store::records::Block {
            old: 0,
            new: 0,
            len: 5,
        }];
        assert_eq!(
            stats_from_blocks(&blocks, b"a\nb\n", b"a\nb\nc\nd\ne\n"),
            None
        );
    }
}
