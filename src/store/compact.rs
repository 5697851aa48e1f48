//! Compaction: every table copied, in key order, into a fresh file that then replaces the old
//! one.
//!
//! redb fills the pages of keys written in ascending order, and leaves those of keys written in
//! any other order (edges, line origins, vectors by text length) about half empty; many write
//! transactions leave free pages all over the file as well. redb's own compaction moves pages
//! toward the start of the file, but stops at the first large value it cannot place lower, so on
//! a real file it returns little. A copy written in key order packs each table as tightly as
//! redb can, and has no free pages.
//!
//! The copy is made beside the file (`NAME.compacting`) while this process holds the writer's
//! place, committed durably, then renamed over the file; a compaction cut short at any point
//! leaves the file as it was (and a stale `.compacting` file the next compaction removes). The
//! copy must account for every table: a table no stage names is an error, and nothing changes.
//! A process that had the old file open (a read-only REPL) keeps reading the old file until it
//! opens it again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{
    Builder, Key, MultimapTableHandle, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableHandle, Value, WriteTransaction,
};

use super::{check_is_file, map_open_error, StoreError, SHARING};

/// What a compaction did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactReport {
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub tables: u64,
    pub entries: u64,
    pub elapsed_ms: u64,
}

/// Copies the tables each stage names from the file into its compacted copy.
pub struct Copier<'t> {
    from: &'t ReadTransaction,
    to: &'t WriteTransaction,
    left: BTreeSet<String>,
    tables: u64,
    entries: u64,
}

impl Copier<'_> {
    /// Copy `def` in key order (nothing when the file does not have it).
    pub fn table<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        if !self.left.remove(def.name()) {
            return Ok(());
        }
        let from = self.from.open_table(def)?;
        let mut to = self.to.open_table(def)?;
        for row in from.iter()? {
            let (k, v) = row?;
            to.insert(k.value(), v.value())?;
            self.entries += 1;
        }
        self.tables += 1;
        Ok(())
    }
}

/// Removes the scratch copy unless the compaction got as far as renaming it.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Compact the lore file at `path` as its one writer: `tables` names every table of every
/// stage (see the module docs).
pub fn compact(
    path: &Path,
    tables: &dyn Fn(&mut Copier<'_>) -> Result<(), StoreError>,
) -> Result<CompactReport, StoreError> {
    let started = Instant::now();
    check_is_file(path)?;
    let io = |what: &str, e: std::io::Error| StoreError::NotCompacted {
        path: path.into(),
        detail: format!("{what}: {e}"),
    };
    let bytes_before = std::fs::metadata(path)
        .map_err(|e| io("reading its size", e))?
        .len();
    // The writer's place, held until the copy has replaced the file: nothing is written to the
    // file meanwhile.
    let db = Builder::new()
        .set_concurrency_mode(SHARING)
        .open(path)
        .map_err(|e| map_open_error(path, e))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".compacting");
    let scratch = Scratch(path.with_file_name(name));
    if scratch.0.exists() {
        std::fs::remove_file(&scratch.0).map_err(|e| io("removing an earlier scratch copy", e))?;
    }
    let copy = Builder::new()
        .set_concurrency_mode(SHARING)
        .create(&scratch.0)
        .map_err(|e| map_open_error(&scratch.0, e))?;
    let from = db.begin_read()?;
    let to = copy.begin_write()?;
    if let Some(t) = from.list_multimap_tables()?.next() {
        return Err(StoreError::NotCompacted {
            path: path.into(),
            detail: format!("it has a multimap table ({}) lore does not write", t.name()),
        });
    }
    let left = from.list_tables()?.map(|h| h.name().to_string()).collect();
    let mut copier = Copier {
        from: &from,
        to: &to,
        left,
        tables: 0,
        entries: 0,
    };
    tables(&mut copier)?;
    if !copier.left.is_empty() {
        let unknown: Vec<String> = copier.left.into_iter().collect();
        return Err(StoreError::NotCompacted {
            path: path.into(),
            detail: format!(
                "this lore does not know its tables {} (written by a newer lore?)",
                unknown.join(", ")
            ),
        });
    }
    let (tables_copied, entries) = (copier.tables, copier.entries);
    to.commit()?;
    // redb grows a file ahead of its data; its compaction gives the tail back.
    let mut copy = copy;
    while copy.compact().map_err(|e| StoreError::Db(e.into()))? {}
    drop(copy);
    let permissions = std::fs::metadata(path)
        .map_err(|e| io("reading its permissions", e))?
        .permissions();
    std::fs::set_permissions(&scratch.0, permissions)
        .map_err(|e| io("giving the copy the file's permissions", e))?;
    std::fs::rename(&scratch.0, path).map_err(|e| io("replacing it with the compacted copy", e))?;
    std::mem::forget(scratch);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    drop(from);
    drop(db);
    Ok(CompactReport {
        bytes_before,
        bytes_after: std::fs::metadata(path).map_or(0, |m| m.len()),
        tables: tables_copied,
        entries,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
