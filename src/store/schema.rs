//! Table definitions and the schema version. `docs/file-format.md` describes each table.

use redb::TableDefinition;

/// The schema this build writes and reads. Bump it whenever a table or record layout changes.
pub const SCHEMA_VERSION: u32 = 8;

/// Files of this version and later open, after adding the tables they lack.
pub const OLDEST_UPGRADABLE: u32 = 2;

/// Written under [`META`]`["format"]` so a lore file is recognised as one.
pub const FORMAT_MAGIC: &[u8] = b"lore-kb";

/// `"format"`, `"schema_version"` (u32 LE), `"created_by"`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Per-kind id sequences (`"next.commits"`), edge counts (`"edges.touches"`), ingest counters.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

pub const STRINGS: TableDefinition<u32, &str> = TableDefinition::new("strings");
pub const STRING_IDS: TableDefinition<&str, u32> = TableDefinition::new("string_ids");

/// Node tables: local id -> encoded record.
pub const COMMITS: TableDefinition<u64, &[u8]> = TableDefinition::new("commits");
pub const FILES: TableDefinition<u64, &[u8]> = TableDefinition::new("files");
pub const AUTHORS: TableDefinition<u64, &[u8]> = TableDefinition::new("authors");

/// Lookups.
pub const COMMIT_BY_SHA: TableDefinition<&[u8], u64> = TableDefinition::new("commit_by_sha");
pub const COMMIT_BY_TIME: TableDefinition<(i64, u64), ()> = TableDefinition::new("commit_by_time");
/// path string id -> file local id
pub const FILE_BY_PATH: TableDefinition<u32, u64> = TableDefinition::new("file_by_path");
/// canonical (lower-cased) email string id -> author local id
pub const AUTHOR_BY_EMAIL: TableDefinition<u32, u64> = TableDefinition::new("author_by_email");

/// `(src, rel, dst) -> EdgeMeta` and `(dst, rel, src) -> ()`.
pub const EDGES: TableDefinition<(u64, u8, u64), &[u8]> = TableDefinition::new("edges");
pub const EDGES_REV: TableDefinition<(u64, u8, u64), ()> = TableDefinition::new("edges_rev");

pub const BLOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("blobs");
pub const BLOB_BY_SHA: TableDefinition<&[u8], u64> = TableDefinition::new("blob_by_sha");
pub const SYMBOLS: TableDefinition<u64, &[u8]> = TableDefinition::new("symbols");
/// (file local id, qualified name string id) -> symbol local id
pub const SYMBOL_BY_KEY: TableDefinition<(u64, u32), u64> = TableDefinition::new("symbol_by_key");
/// file local id -> blob local id of the file at the code head (see `meta["code_head"]`)
pub const HEAD_BLOBS: TableDefinition<u64, u64> = TableDefinition::new("head_blobs");

/// Issues and pull requests: local id -> IssueRecord.
pub const ISSUES: TableDefinition<u64, &[u8]> = TableDefinition::new("issues");
/// issue or PR number -> issue local id
pub const ISSUE_BY_NUMBER: TableDefinition<u64, u64> = TableDefinition::new("issue_by_number");
/// commit local id -> CommitFacets
pub const COMMIT_FACETS: TableDefinition<u64, &[u8]> = TableDefinition::new("commit_facets");
/// fix commit local id -> SzzBlame (cached blame of the lines it changed)
pub const SZZ_BLAME: TableDefinition<u64, &[u8]> = TableDefinition::new("szz_blame");

/// (file local id, commit local id) -> FileVersion: the file as the commit left it, each line
/// with the commit that introduced it (written for every commit that changed the file).
pub const LINE_ORIGINS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("line_origins");
/// (file local id, blob id, commit local id) -> (): the versions of a file with given content.
pub const VERSION_BY_BLOB: TableDefinition<(u64, &[u8], u64), ()> =
    TableDefinition::new("version_by_blob");
/// commit local id -> its first parent's local id (absent for a root or shallow boundary).
pub const FIRST_PARENTS: TableDefinition<u64, u64> = TableDefinition::new("first_parents");

/// `"git:refs/heads/main"` -> Watermark
pub const WATERMARKS: TableDefinition<&str, &[u8]> = TableDefinition::new("watermarks");

/// Copy every table of the store into a compacted file (see [`super::compact`]).
pub fn copy_tables(r: &mut super::compact::Copier<'_>) -> Result<(), super::StoreError> {
    r.table(META)?;
    r.table(COUNTERS)?;
    r.table(STRINGS)?;
    r.table(STRING_IDS)?;
    r.table(COMMITS)?;
    r.table(FILES)?;
    r.table(AUTHORS)?;
    r.table(COMMIT_BY_SHA)?;
    r.table(COMMIT_BY_TIME)?;
    r.table(FILE_BY_PATH)?;
    r.table(AUTHOR_BY_EMAIL)?;
    r.table(EDGES)?;
    r.table(EDGES_REV)?;
    r.table(BLOBS)?;
    r.table(BLOB_BY_SHA)?;
    r.table(SYMBOLS)?;
    r.table(SYMBOL_BY_KEY)?;
    r.table(HEAD_BLOBS)?;
    r.table(ISSUES)?;
    r.table(ISSUE_BY_NUMBER)?;
    r.table(COMMIT_FACETS)?;
    r.table(SZZ_BLAME)?;
    r.table(LINE_ORIGINS)?;
    r.table(VERSION_BY_BLOB)?;
    r.table(FIRST_PARENTS)?;
    r.table(WATERMARKS)?;
    Ok(())
}
