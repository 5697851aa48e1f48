//! The query language: text → tokens (nom, with spans) → [`ast::Query`] (printable back to
//! text) → a plan anchored at the most selective set → rows. The grammar is
//! `grammar/lore.ebnf`; `docs/query-language.md` has an example for every construct.
//!
//! ```text
//! issues fixed_by commit touching memory_utils
//! commits touching "minillm/worker/memory_utils.py" since 2024-01-10 order by date desc limit 5
//! issues where label = bug and error ~ "CUDA" count by state
//! ```

pub mod ast;
pub mod exec;
pub mod lexer;
pub mod parser;
pub mod schema;
mod search;

use std::fmt;

use crate::index::Indexes;
use crate::store::{ReadTx, StoreError};

pub use exec::{Cache, PlanInfo};

/// A query error: a message and the byte span of the query text it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub message: String,
    pub start: usize,
    pub end: usize,
    /// The query text, to draw the caret.
    pub text: String,
}

impl QueryError {
    pub fn at(text: &str, start: usize, end: usize, message: String) -> QueryError {
        QueryError {
            message,
            start,
            end: end.max(start + 1),
            text: text.to_string(),
        }
    }

    /// An error about the query as a whole.
    pub fn whole(text: &str, message: String) -> QueryError {
        QueryError::at(text, 0, text.len(), message)
    }

    pub fn store(e: StoreError) -> QueryError {
        QueryError {
            message: format!("reading the lore file: {e}"),
            start: 0,
            end: 0,
            text: String::new(),
        }
    }
}

impl fmt::Display for QueryError {
    /// The message, then the query line with a caret under the span.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if self.text.is_empty() {
            return Ok(());
        }
        // The line holding the span.
        let line_start = self.text[..self.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = &self.text[line_start..line_end];
        let col = self.text[line_start..self.start.min(self.text.len())]
            .chars()
            .count();
        let width = self.text[self.start.min(self.text.len())
            ..self.end.min(line_end).max(self.start.min(self.text.len()))]
            .chars()
            .count()
            .max(1);
        write!(f, "\n  {line}\n  {}{}", " ".repeat(col), "^".repeat(width))
    }
}

impl std::error::Error for QueryError {}

/// Rows of a query: column names and JSON cells.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub elapsed_ms: f64,
    pub plan: Option<PlanInfo>,
}

/// Parse and run `text` on `read` (without the search indexes: `matching` and `similar to`
/// fail; see [`run_with`]).
pub fn run(read: &ReadTx, text: &str) -> Result<QueryResult, QueryError> {
    run_cached(read, None, text, &mut Cache::default())
}

/// Parse and run `text` with the file's search indexes.
pub fn run_with(read: &ReadTx, indexes: &Indexes, text: &str) -> Result<QueryResult, QueryError> {
    run_cached(read, Some(indexes), text, &mut Cache::default())
}

/// Parse and run `text`, keeping what later queries on the same file can reuse in `cache`
/// (the REPL keeps one per session).
pub fn run_cached(
    read: &ReadTx,
    indexes: Option<&Indexes>,
    text: &str,
    cache: &mut Cache,
) -> Result<QueryResult, QueryError> {
    let q = parser::parse(text)?;
    exec::execute(text, &q, read, indexes, false, cache)
}

/// Run `text` with the naive plan (a scan from the first set), for comparisons.
pub fn run_naive(read: &ReadTx, text: &str, cache: &mut Cache) -> Result<QueryResult, QueryError> {
    let q = parser::parse(text)?;
    exec::execute(text, &q, read, None, true, cache)
}
