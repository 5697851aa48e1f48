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
        write!(
            f,
            "\n  {}\n  {}{}",
            &text[line_start..line_end],
            " ".repeat(col),
            "^".repeat(width)
        )
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
