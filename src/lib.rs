//! lore: one file that knows a software project.
//!
//! The library is a pipeline whose stages are modules, and data flows one way:
//!
//! ```text
//! ingest  ->  store  ->  index  ->  query  ->  export  ->  adapt
//! ```
//!
//! * [`ingest`] reads the outside world (git history today; code ASTs and issue dumps next) and
//!   writes it into the store, in batches, each batch one transaction.
//! * [`store`] is the single redb file: typed node tables, forward and reverse edge tables whose
//!   edges carry provenance, confidence and evidence, interned strings, watermarks and the schema
//!   version.
//!
//! A stage only ever depends on the stages to its left. Each stage has its own
//! `#[non_exhaustive]` error enum that converts into [`Error`].

pub mod error;
pub mod index;
pub mod ingest;
pub mod query;
pub mod store;

pub use error::{Error, Result};
