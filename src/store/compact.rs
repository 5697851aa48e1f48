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
//! redb grows a file under 4 GiB by doubling it, so a copy without free pages would double on
//! the first small write after it. The copy therefore keeps a thirty-second of its data free
//! (a scratch table written last, kept through redb's own compaction of the copy, then
//! dropped): the next ingests of a few commits write into that space.
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
    /// Free space left in the file for the writes after the compaction.
    pub bytes_kept_free: u64,
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
    /// Key and value bytes copied.
    bytes: u64,
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
            let (k, v) = (k.value(), v.value());
            self.bytes += (K::as_bytes(&k).as_ref().len() + V::as_bytes(&v).as_ref().len()) as u64;
            to.insert(k, v)?;
            self.entries += 1;
        }
        self.tables += 1;
        Ok(())
    }
}

/// The scratch table that holds the free space a compacted file keeps.
const RESERVE: TableDefinition<u32, &[u8]> = TableDefinition::new("lore_compaction_reserve");
// Just under 64 KiB, so each block takes one 64 KiB run of pages with its key and header.
const RESERVE_BLOCK: usize = (64 << 10) - 512;

/// Free space a compacted file keeps for the writes after it: a thirty-second of the data
/// copied, at least 256 KiB and at most 256 MiB.
fn reserve_bytes(data_bytes: u64) -> u64 {
    (data_bytes / 32).clamp(256 << 10, 256 << 20)
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
        bytes: 0,
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
    let (tables_copied, entries, copier_bytes) = (copier.tables, copier.entries, copier.bytes);
    // Room for the next writes, held by a scratch table through redb's compaction: redb
    // grows a file under 4 GiB by doubling it, so a compacted file with no free pages would
    // double on the first small ingest after it.
    let reserve = reserve_bytes(copier_bytes);
    {
        let mut t = to.open_table(RESERVE)?;
        let block = vec![0u8; RESERVE_BLOCK];
        for i in 0..reserve.div_ceil(RESERVE_BLOCK as u64) {
            t.insert(i as u32, block.as_slice())?;
        }
    }
    to.commit()?;
    // redb grows a file ahead of its data; its compaction gives the tail back.
    let mut copy = copy;
    while copy.compact().map_err(|e| StoreError::Db(e.into()))? {}
    let free = copy.begin_write()?;
    free.delete_table(RESERVE)?;
    free.commit()?;
    // redb hands pages freed by one commit back to its allocator in the commits after it.
    for _ in 0..2 {
        copy.begin_write()?.commit()?;
    }
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
        bytes_kept_free: reserve.div_ceil(RESERVE_BLOCK as u64) * RESERVE_BLOCK as u64,
        tables: tables_copied,
        entries,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_compacted_file_takes_small_writes_without_doubling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(T).unwrap();
                for i in 0..2000u64 {
                    t.insert(i, [i as u8; 4000].as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let report = compact(&path, &|c| c.table(T)).unwrap();
        let compacted = len(&path);
        assert_eq!(report.bytes_after, compacted);
        assert!(report.bytes_kept_free >= compacted / 40, "{report:?}");
        // Three small transactions, as an ingest of a commit or two writes.
        {
            let db = redb::Database::open(&path).unwrap();
            for round in 0..3u64 {
                let txn = db.begin_write().unwrap();
                {
                    let mut t = txn.open_table(T).unwrap();
                    for i in 0..6 {
                        t.insert(10_000 + round * 6 + i, [1u8; 4000].as_slice())
                            .unwrap();
                    }
                }
                txn.commit().unwrap();
            }
        }
        let after = len(&path);
        assert!(
            after < compacted + compacted / 8,
            "{compacted} bytes compacted, {after} after 72 KB more"
        );
    }
}
