//! Code context: which code goes with an issue (`--context`), and how a long file is cut to a
//! budget around the lines that matter, never mid-line.

use std::ops::Range;

/// How much code an example may show, in tokens; a token is taken as four characters.
pub const CHARS_PER_TOKEN: usize = 4;

/// `--context`: which code an `issue_fix` prompt shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Context {
    /// The files the fix touched, at the fix's parent (what SWE-bench calls oracle retrieval).
    Oracle { tokens: usize },
    /// The files `lore locate` ranks from what existed when the issue was opened, at the fix's
    /// parent (realistic retrieval).
    Locate { tokens: usize, files: usize },
    /// No code.
    None { tokens: usize },
}

impl Context {
    pub fn parse(name: &str, tokens: usize) -> Option<Context> {
        match name {
            "oracle" => Some(Context::Oracle { tokens }),
            "locate" => Some(Context::Locate { tokens, files: 5 }),
            "none" => Some(Context::None { tokens }),
            _ => None,
        }
    }

    /// The code budget in characters.
    pub fn budget_chars(&self) -> usize {
        let tokens = match self {
            Context::Oracle { tokens }
            | Context::Locate { tokens, .. }
            | Context::None { tokens } => *tokens,
        };
        tokens * CHARS_PER_TOKEN
    }
}

/// `text` cut to at most `budget` characters: whole when it fits; otherwise whole lines
/// around `focus` (0-based line ranges, e.g. the lines a fix changed), widened evenly until the
/// budget is spent, with `...` where lines were left out. Without a focus the file's start is
/// kept.
pub fn cut_around(text: &str, focus: &[Range<u32>], budget: usize) -> String {
    if text.len() <= budget {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // Each line's distance to the nearest focused line (to the start without a focus).
    let distance = |i: usize| -> usize {
        if focus.is_empty() {
            return i;
        }
        focus
            .iter()
            .map(|r| {
                let (s, e) = (r.start as usize, (r.end as usize).max(r.start as usize + 1));
                if i < s {
                    s - i
                } else if i >= e {
                    i + 1 - e
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(0)
    };
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| (distance(i), i));
    let mut keep = vec![false; lines.len()];
    let mut used = 0;
    for i in order {
        if used + lines[i].len() > budget {
            break;
        }
        used += lines[i].len();
        keep[i] = true;
    }
    let mut out = String::with_capacity(used + 16);
    let mut gap = false;
    for (line, kept) in lines.iter().zip(&keep) {
        if *kept {
            if gap {
                out.push_str("...\n");
                gap = false;
            }
            out.push_str(line);
        } else {
            gap = true;
        }
    }
    if gap {
        out.push_str("...\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (0..n).map(|i| format!("line {i:03}\n")).collect()
    }

    #[test]
    fn a_file_that_fits_is_whole() {
        let t = numbered(5);
        assert_eq!(cut_around(&t, std::slice::from_ref(&(2..3)), 1000), t);
    }

    #[test]
    fn a_long_file_is_cut_around_the_focus_on_whole_lines() {
        let t = numbered(100);
        let cut = cut_around(&t, std::slice::from_ref(&(50..51)), 9 * 5);
        assert_eq!(
            cut,
            "...\nline 048\nline 049\nline 050\nline 051\nline 052\n...\n"
        );
        // Every kept line is a whole line of the file.
        for l in cut.lines().filter(|l| *l != "...") {
            assert!(t.contains(&format!("{l}\n")));
        }
        let start = cut_around(&t, &[], 9 * 3);
        assert_eq!(start, "line 000\nline 001\nline 002\n...\n");
    }
}
