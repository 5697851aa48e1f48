//! Code: symbols and imports extracted with tree-sitter.
//!
//! [`lang`] knows the languages (detection, grammar, query file); [`extract`] runs a language's
//! query over a parse tree and turns the matches into symbol records with qualified names, spans,
//! signatures and doc comments. Partial trees still give the symbols outside their errors;
//! files over the limits are skipped and counted ([`Skip`]).

mod edits;
pub mod extract;
pub mod imports;
mod ingest;
mod symbol_text;
mod symbols_diff;

pub use crate::code::lang::{self, Lang};
pub use extract::{CodeParser, ParseBase, ParseLimits, ParsedFile, Skip};
pub use ingest::{ingest, is_vendored, CodeIngestOptions, CodeIngestReport};
