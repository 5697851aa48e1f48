//! The query language, one phase per module:
//!
//! ```text
//! text ─lexer→ tokens ─parser→ ast::Query ─bind→ LogicalQuery ─plan→ PhysicalPlan
//!      ─exec→ matches (members and links per set) ─project→ Rows
//! ```
//!
//! * [`lexer`] and [`parser`] (nom, with spans) give an [`ast::Query`] that prints back to text.
//! * [`bind`] checks it against the [`schema`] and the typed [`fields`], and reports every user
//!   mistake with its span before anything is read.
//! * [`plan`] pushes dates down to the set they filter, estimates each set and picks the anchor.
//! * [`exec`] lists the anchor and walks stored edges outwards; searches come from a
//!   [`SearchProvider`] (the indexes).
//! * [`project`] orders, counts, projects columns and applies `limit`.
//!
//! The grammar is `grammar/lore.ebnf`; `docs/query-language.md` has an example for every
//! construct.
//!
//! ```text
//! issues fixed_by commit touching memory_utils
//! commits touching "minillm/worker/memory_utils.py" since 2024-01-10 order by date desc limit 5
//! issues where label = bug and error ~ "CUDA" count by state
//! issues fixed_by commit return issue.number, commit.sha
//! ```

pub mod ast;
pub mod bind;
pub mod dates;
mod error;
pub mod exec;
pub mod fields;
pub mod lexer;
mod names;
mod origins;
pub mod parser;
pub mod plan;
mod project;
pub mod schema;
mod search;
mod values;

use std::time::Instant;

pub use error::{Diagnostic, QueryError};
pub use search::SearchProvider;
pub use values::Cache;

use crate::store::ReadTx;

/// The most result rows a query may give before ordering, unless the caller raises it.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

/// The rows of a query: column names and JSON cells.
#[derive(Debug, Clone)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub elapsed_ms: f64,
    /// The set the plan anchored at.
    pub anchor: usize,
    /// The node of the first returned set behind each row (empty for `count` and `explain`),
    /// for stages that read more of each result than its columns (export).
    pub nodes: Vec<crate::store::NodeId>,
}

/// How to run a query.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Anchor at the source whatever the estimates say (for comparisons).
    pub naive: bool,
    /// The most rows before ordering; more is an error that says how to raise it.
    pub max_rows: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            naive: false,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

/// Bind, plan and run the parsed query `q` (of `text`) on `read`. `search` answers
/// `matching`, `similar to` and `concerning`; without it they fail with
/// [`QueryError::NoIndexes`].
pub fn run_parsed(
    read: &ReadTx,
    search: Option<&dyn SearchProvider>,
    text: &str,
    q: &ast::Query,
    cache: &mut Cache,
    options: RunOptions,
) -> Result<Rows, QueryError> {
    let logical = bind::bind(text, q)?;
    run_bound(read, search, text, logical, cache, options)
}

/// Plan and run a query already bound (so its mistakes are already reported).
pub fn run_bound(
    read: &ReadTx,
    search: Option<&dyn SearchProvider>,
    text: &str,
    logical: bind::LogicalQuery,
    cache: &mut Cache,
    options: RunOptions,
) -> Result<Rows, QueryError> {
    let started = Instant::now();
    let plan = plan::plan(logical, read, options.naive)?;
    let ctx = values::Ctx::new(read, cache);
    let mut run = exec::Run::start(&plan, ctx, search, text)?;
    let mut rows = project::rows(&plan, &mut run, options.max_rows)?;
    rows.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(rows)
}

/// Parse and run `text` on `read` without search indexes (tests and tools that have a
/// snapshot; [`crate::kb::Kb::query`] is the usual entry point).
pub fn run(read: &ReadTx, text: &str) -> Result<Rows, QueryError> {
    let q = parser::parse(text)?;
    run_parsed(
        read,
        None,
        text,
        &q,
        &mut Cache::default(),
        RunOptions::default(),
    )
}
