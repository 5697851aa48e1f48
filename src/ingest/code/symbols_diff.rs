//! Which symbols a change touched: each changed line is attributed to the innermost symbol that
//! contains it, in the old version (removed or changed lines) and in the new one (added or
//! changed lines). Blank lines are not attributed (they are layout around definitions, not part
//! of them). Symbols are matched across versions by qualified name.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use crate::store::records::{SymbolChange, SymbolRecord};

/// `line number (0-based) -> innermost symbol index` for one file version.
fn innermost(symbols: &[SymbolRecord]) -> Vec<Option<u32>> {
    let lines = symbols
        .iter()
        .map(|s| s.end_line as usize)
        .max()
        .unwrap_or(0);
    let mut owner = vec![None; lines];
    // Symbols are stored outer first, so inner ones paint over their parents.
    for (i, s) in symbols.iter().enumerate() {
        let first = s.leading_line.min(s.start_line).saturating_sub(1) as usize;
        let last = (s.end_line as usize).min(lines);
        if first < last {
            owner[first..last].fill(Some(i as u32));
        }
    }
    owner
}

fn touched<'a>(symbols: &'a [SymbolRecord], lines: &[u32]) -> HashSet<&'a str> {
    let owner = innermost(symbols);
    let mut out = HashSet::new();
    for line in lines {
        if let Some(Some(i)) = owner.get(*line as usize) {
            out.insert(symbols[*i as usize].qualified_name.as_str());
        }
    }
    out
}

/// The non-blank lines (0-based) inside `ranges` of `text`.
///
/// Lines are found as they are asked for, so ranges in ascending order (a diff's hunks) read
/// the text once, up to the last line asked for.
pub fn non_blank_lines(text: &[u8], ranges: impl Iterator<Item = Range<u32>>) -> Vec<u32> {
    let mut lines = Lines {
        text,
        line: 0,
        start: 0,
    };
    ranges
        .flatten()
        .filter(|&l| {
            lines
                .get(l)
                .is_some_and(|line| !line.trim_ascii().is_empty())
        })
        .collect()
}

/// A cursor over a text's lines (each with its line end).
struct Lines<'t> {
    text: &'t [u8],
    /// The line that starts at byte `start`.
    line: u32,
    start: usize,
}

impl<'t> Lines<'t> {
    /// Line `l` (0-based), if the text has that many lines.
    fn get(&mut self, l: u32) -> Option<&'t [u8]> {
        if l < self.line {
            self.line = 0;
            self.start = 0;
        }
        while self.line < l {
            if self.start >= self.text.len() {
                return None;
            }
            self.start = self.end_of_line();
            self.line += 1;
        }
        (self.start < self.text.len()).then(|| &self.text[self.start..self.end_of_line()])
    }

    fn end_of_line(&self) -> usize {
        memchr::memchr(b'\n', &self.text[self.start..])
            .map_or(self.text.len(), |i| self.start + i + 1)
    }
}

/// Qualified name -> how the change affected it, with the symbol record (new version when it
/// exists, else the old one).
pub fn changed_symbols<'a>(
    old: &'a [SymbolRecord],
    new: &'a [SymbolRecord],
    old_lines: &[u32],
    new_lines: &[u32],
) -> BTreeMap<&'a str, (SymbolChange, &'a SymbolRecord)> {
    let old_names: BTreeMap<&str, &SymbolRecord> =
        old.iter().map(|s| (s.qualified_name.as_str(), s)).collect();
    let new_names: BTreeMap<&str, &SymbolRecord> =
        new.iter().map(|s| (s.qualified_name.as_str(), s)).collect();
    let touched_old = touched(old, old_lines);
    let touched_new = touched(new, new_lines);
    let mut out = BTreeMap::new();
    for (name, record) in &new_names {
        if !old_names.contains_key(name) {
            out.insert(*name, (SymbolChange::Added, *record));
        } else if touched_old.contains(name) || touched_new.contains(name) {
            out.insert(*name, (SymbolChange::Changed, *record));
        }
    }
    for (name, record) in &old_names {
        if !new_names.contains_key(name) {
            out.insert(*name, (SymbolChange::Removed, *record));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::SymbolKind;

    fn sym(name: &str, start: u32, end: u32) -> SymbolRecord {
        SymbolRecord {
            kind: SymbolKind::Function,
            name: name.rsplit('.').next().unwrap().into(),
            qualified_name: name.into(),
            start_byte: 0,
            end_byte: 0,
            start_line: start,
            end_line: end,
            signature: String::new(),
            doc: None,
            leading_line: start,
            parent: None,
        }
    }

    #[test]
    fn lines_go_to_the_innermost_symbol() {
        let old = vec![sym("A", 1, 10), sym("A.f", 2, 4), sym("A.g", 6, 9)];
        let new = vec![
            sym("A", 1, 11),
            sym("A.f", 2, 5),
            sym("A.g", 7, 10),
            sym("h", 12, 13),
        ];
        // line 3 (0-based 2) changed inside A.f; h added
        let changes = changed_symbols(&old, &new, &[2], &[2, 3, 11, 12]);
        let summary: Vec<(&str, SymbolChange)> =
            changes.iter().map(|(n, (c, _))| (*n, *c)).collect();
        assert_eq!(
            summary,
            vec![("A.f", SymbolChange::Changed), ("h", SymbolChange::Added)]
        );
    }

    #[test]
    fn blank_lines_are_not_attributed() {
        let text = b"class A:\n\n    def f(self):\n        pass\n";
        assert_eq!(non_blank_lines(text, std::iter::once(0..4)), vec![0, 2, 3]);
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of ranges, some of one range
    fn non_blank_lines_agree_with_splitting_the_whole_text() {
        // The cursor against the plain definition: split every line, then look each one up.
        fn oracle(text: &[u8], ranges: &[Range<u32>]) -> Vec<u32> {
            let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
            ranges
                .iter()
                .cloned()
                .flatten()
                .filter(|&l| {
                    lines
                        .get(l as usize)
                        .is_some_and(|line| !line.trim_ascii().is_empty())
                })
                .collect()
        }
        let texts: [&[u8]; 5] = [
            b"",
            b"a",
            b"a\n\n  \n\tb\nc",
            b"\n\nx\n \r\n y \n\n",
            b"fn f() {\n    1\n}\n\nfn g() {}\n",
        ];
        let range_sets: [&[Range<u32>]; 6] = [
            &[],
            &[0..1],
            &[0..3, 4..9],
            &[2..4, 0..2, 5..5, 1..7],
            &[7..12],
            &[3..4, 3..4, 0..1],
        ];
        for text in texts {
            for ranges in range_sets {
                assert_eq!(
                    non_blank_lines(text, ranges.iter().cloned()),
                    oracle(text, ranges),
                    "{:?} {ranges:?}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    #[test]
    fn removed_symbols_come_from_the_old_version() {
        let old = vec![sym("f", 1, 2), sym("g", 4, 5)];
        let new = vec![sym("f", 1, 2)];
        let changes = changed_symbols(&old, &new, &[3, 4], &[]);
        assert_eq!(changes["g"].0, SymbolChange::Removed);
        assert!(!changes.contains_key("f"));
    }
}
