//! lore's integration tests: one binary, a module per area.

mod adapt;
mod bert;
mod blame;
mod closing_refs;
mod code_fixture;
mod code_symbols;
mod common;
mod damaged;
mod export;
mod ingest_bad_input;
mod ingest_fixture;
mod ingest_incremental;
mod ingest_kill;
mod issues_bad_input;
mod issues_fixture;
mod queries;
mod query_schema;
mod readers;
mod repl;
mod search;
mod serve;
mod store_file;
mod sync;
mod text_directory;
mod watch;
