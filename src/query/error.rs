//! Query errors. A mistake in the query text is a [`Diagnostic`]: a message and the byte span
//! it is about, drawn with a caret under the query. Failures while running keep their source.

use std::fmt;

use crate::index::IndexError;
use crate::store::StoreError;

/// A message about a span of the query text.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub start: usize,
    pub end: usize,
    /// The query text, to draw the caret.
    pub text: String,
}

impl Diagnostic {
    pub fn new(text: &str, span: (usize, usize), message: String) -> Diagnostic {
        Diagnostic {
            message,
            start: span.0,
            end: span.1.max(span.0 + 1),
            text: text.to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    /// The message, then the query line with a caret under the span.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        let text = &self.text;
        let start = self.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |i| line_start + i);
        let col = text[line_start..start].chars().count();
        let width = text[start..self.end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        let line: Vec<char> = text[line_start..line_end].chars().collect();
        // A long line (a query of 20,000 parentheses) is shown around the caret only.
        let (from, to) = if line.len() <= WINDOW {
            (0, line.len())
        } else {
            let from = col.saturating_sub(WINDOW / 3);
            (from, (from + WINDOW).min(line.len()))
        };
        let shown: String = line[from..to].iter().collect();
        let (before, after) = (
            if from > 0 { "…" } else { "" },
            if to < line.len() { "…" } else { "" },
        );
        let pad = col - from + before.chars().count();
        let width = width.min(to.saturating_sub(col).max(1));
        write!(
            f,
            "\n  {before}{shown}{after}\n  {}{}",
            " ".repeat(pad),
            "^".repeat(width)
        )
    }
}

/// The most characters of a query line an error shows.
const WINDOW: usize = 100;

#[cfg(test)]
mod tests {
    use super::Diagnostic;

    #[test]
    fn a_long_query_is_shown_around_the_caret() {
        let text = format!("issues where {}x", "(".repeat(20_000));
        let at = text.len() - 1;
        let shown = Diagnostic::new(&text, (at, at + 1), "bad".into()).to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].chars().count() < 110, "{}", lines[1]);
        assert!(
            lines[1].starts_with("  …") && lines[1].ends_with('x'),
            "{}",
            lines[1]
        );
        // The caret sits under the `x`.
        let caret = lines[2].find('^').unwrap();
        assert_eq!(
            lines[1].chars().nth(lines[2][..caret].chars().count()),
            Some('x')
        );
        // A short query is shown whole.
        let short = Diagnostic::new("issues whre", (7, 11), "bad".into()).to_string();
        assert!(short.ends_with("  issues whre\n         ^^^^"), "{short}");
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The text is not a query: the lexer or the parser stopped at a token.
    #[error("{0}")]
    Syntax(Box<Diagnostic>),
    /// The query does not fit the schema (a field, relation or set that does not exist there).
    #[error("{0}")]
    Schema(Box<Diagnostic>),
    /// The result would pass the row cap.
    #[error(
        "the query gives more than {cap} rows; narrow it, add `count`, or raise the cap \
         (`lore query --max-rows N`)"
    )]
    TooManyRows { cap: usize },
    /// `matching`, `similar to` or `concerning` without the search indexes.
    #[error("`matching`, `similar to` and `concerning` need the search indexes, which this caller did not open")]
    NoIndexes,
    /// The search itself failed (an issue that does not exist, an index that cannot be read).
    #[error("{at}")]
    Search {
        at: Box<Diagnostic>,
        #[source]
        source: Box<IndexError>,
    },
    #[error("reading the lore file")]
    Store(#[from] StoreError),
}

impl QueryError {
    /// A syntax error at a span of `text`.
    pub fn at(text: &str, start: usize, end: usize, message: String) -> QueryError {
        QueryError::Syntax(Box::new(Diagnostic::new(text, (start, end), message)))
    }

    /// A schema error at a span of `text`.
    pub fn schema(text: &str, span: (usize, usize), message: String) -> QueryError {
        QueryError::Schema(Box::new(Diagnostic::new(text, span, message)))
    }

    /// A search that failed on `text` (drawn under the whole query).
    pub fn search(text: &str, source: IndexError) -> QueryError {
        QueryError::Search {
            at: Box::new(Diagnostic::new(text, (0, text.len()), source.to_string())),
            source: Box::new(source),
        }
    }

    /// The diagnostic, for errors about the query text.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            QueryError::Syntax(d) | QueryError::Schema(d) => Some(d),
            QueryError::Search { at, .. } => Some(at),
            _ => None,
        }
    }
}
