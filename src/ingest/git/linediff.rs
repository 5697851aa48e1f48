//! Line statistics of one file change, counted as `git diff --numstat` counts them.

use gix::diff::blob::{sources, Algorithm, Diff, InternedInput};

/// `(added, removed, binary)` between two versions (an absent side is empty), or `None` when a
/// side could not be read.
pub fn stats(
    old: Option<&[u8]>,
    new: Option<&[u8]>,
    same_blob: bool,
) -> Option<(Option<u32>, Option<u32>, bool)> {
    if same_blob {
        return Some((Some(0), Some(0), false));
    }
    let (old, new) = (old?, new?);
    if is_binary(old) || is_binary(new) {
        return Some((None, None, true));
    }
    let (added, removed) = line_diff_counts(old, new);
    Some((Some(added), Some(removed), false))
}

/// What git calls binary: a NUL byte in the first 8000 bytes.
fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(8000)].contains(&0)
}

fn count_lines(data: &[u8]) -> u32 {
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let unterminated = usize::from(!data.is_empty() && !data.ends_with(b"\n"));
    (newlines + unterminated) as u32
}

/// Cut the lines both sides share at the start and at the end; what is left holds every
/// difference. Returns the two middles, each starting at a line start.
fn trim_common_lines<'a>(a: &'a [u8], b: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let mut prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    prefix = a[..prefix]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let mut suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let at_line_start = |s: &[u8], cut: usize| cut == 0 || s[cut - 1] == b'\n';
    if !(at_line_start(a, a.len() - suffix) && at_line_start(b, b.len() - suffix)) {
        // Move the cut forward to just after the first newline inside the shared suffix.
        let tail = &a[a.len() - suffix..];
        suffix = match tail.iter().position(|&c| c == b'\n') {
            Some(i) => suffix - (i + 1),
            None => 0,
        };
    }
    (&a[..a.len() - suffix], &b[..b.len() - suffix])
}

/// `(added, removed)` lines between two texts, with a Myers diff as `git diff --numstat` uses.
pub fn line_diff_counts(old: &[u8], new: &[u8]) -> (u32, u32) {
    let (old, new) = trim_common_lines(old, new);
    if old.is_empty() || new.is_empty() {
        return (count_lines(new), count_lines(old));
    }
    let input = InternedInput::new(sources::byte_lines(old), sources::byte_lines(new));
    let diff = Diff::compute(Algorithm::Myers, &input);
    (diff.count_additions(), diff.count_removals())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(line_diff_counts(b"a\nb\nc\n", b"a\nX\nc\n"), (1, 1));
        assert_eq!(line_diff_counts(b"a\nb", b"a\nb\n"), (1, 1));
        assert_eq!(line_diff_counts(b"a\n", b"a\nb\nc\n"), (2, 0));
        assert_eq!(line_diff_counts(b"x\na\nb\n", b"a\nb\n"), (0, 1));
        assert_eq!(line_diff_counts(b"xfoo\n", b"foo\n"), (1, 1));
    }
}
