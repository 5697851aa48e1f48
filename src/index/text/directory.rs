//! A tantivy [`Directory`] kept in a table of the lore file (each file in parts), so the full-text index travels with
//! the knowledge base and shares its crash safety.
//!
//! Tantivy writes each segment file once and never changes it; `meta.json` (written through
//! [`Directory::atomic_write`]) names the live segments. Finished segment files and deletions are
//! held in memory until the next atomic write, which commits them together with it in one
//! transaction. A crash therefore leaves the index as of its last tantivy commit, with no
//! half-written segment reachable. (Other processes may read the file, which rules out redb's
//! non-durable commits.) A reader in another process reads `meta.json` and then the segment
//! files it names, in separate read transactions, and keeps them in memory; a merge committed
//! in between can remove a segment it was about to read, and that open fails with "file does
//! not exist" (the next one succeeds).
//!
//! Files are read whole on first open and cached, so searches run from memory. The lock files
//! tantivy takes are held in memory only: redb already keeps a second process out of the file, and
//! a lock file left in the table by a killed process would otherwise block the index for ever.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::store::{table_missing, Db};
use redb::{ReadOnlyTable, ReadTransaction, TableDefinition};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, FileSlice, Lock, TerminatingWrite,
    WatchCallback, WatchCallbackList, WatchHandle, WritePtr,
};

/// path inside the index -> file bytes: files written before [`TEXT_INDEX_FILE_PARTS`], read
/// until tantivy deletes them.
pub const TEXT_INDEX_FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("text_index_files");
/// `(path inside the index, part) -> bytes`: every file written now, in parts (see
/// [`crate::index::parts`]).
pub const TEXT_INDEX_FILE_PARTS: crate::index::parts::PartsTable =
    TableDefinition::new("text_index_file_parts");

/// A tantivy directory over the `text_index_files` table of a lore file.
#[derive(Clone)]
pub struct RedbDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// Files already read or written in this process. Tantivy files are immutable once written.
    cache: RwLock<HashMap<PathBuf, FileSlice>>,
    locks: Mutex<HashSet<PathBuf>>,
    watchers: WatchCallbackList,
    /// Finished files and deletions not yet committed; the next atomic write commits them.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Written files (their bytes are in the cache).
    written: HashSet<PathBuf>,
    deleted: HashSet<PathBuf>,
}

impl fmt::Debug for RedbDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedbDirectory")
    }
}

fn key(path: &Path) -> io::Result<&str> {
    path.to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 index path"))
}

fn to_io(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// The parts table, or `None` where no writer has made it yet.
fn parts_table(txn: &ReadTransaction) -> io::Result<Option<crate::index::parts::ReadOnlyParts>> {
    match txn.open_table(TEXT_INDEX_FILE_PARTS) {
        Ok(t) => Ok(Some(t)),
        Err(e) if table_missing(&e) => Ok(None),
        Err(e) => Err(to_io(e)),
    }
}

/// The files table of earlier files, or `None` where no writer has made it.
fn files_table(
    txn: &ReadTransaction,
) -> io::Result<Option<ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(TEXT_INDEX_FILES) {
        Ok(t) => Ok(Some(t)),
        Err(e) if table_missing(&e) => Ok(None),
        Err(e) => Err(to_io(e)),
    }
}

impl RedbDirectory {
    /// Open the directory stored in `db`, creating its table on a writable handle (on a
    /// read-only one, a missing table reads as an empty directory).
    pub fn open(db: Db) -> io::Result<RedbDirectory> {
        if !db.is_read_only() {
            let txn = db.begin_write().map_err(to_io)?;
            txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
            txn.open_table(TEXT_INDEX_FILE_PARTS).map_err(to_io)?;
            txn.commit().map_err(to_io)?;
        }
        Ok(RedbDirectory {
            inner: Arc::new(Inner {
                db,
                cache: RwLock::new(HashMap::new()),
                locks: Mutex::new(HashSet::new()),
                watchers: WatchCallbackList::default(),
                pending: Mutex::new(Pending::default()),
            }),
        })
    }

    /// Total bytes stored for the index (for `lore stats`).
    pub fn stored_bytes(&self) -> io::Result<u64> {
        Ok(self.stored_files()?.iter().map(|(_, len)| len).sum())
    }

    /// The paths of every stored file (to export the index, e.g. for benchmarks).
    pub fn file_names(&self) -> io::Result<Vec<String>> {
        Ok(self
            .stored_files()?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Every stored file's path and length, in path order.
    fn stored_files(&self) -> io::Result<Vec<(String, u64)>> {
        let txn = self.inner.db.begin_read().map_err(to_io)?;
        let mut out = std::collections::BTreeMap::new();
        if let Some(table) = files_table(&txn)? {
            for row in redb::ReadableTable::iter(&table).map_err(to_io)? {
                let (k, v) = row.map_err(to_io)?;
                out.insert(k.value().to_string(), v.value().len() as u64);
            }
        }
        if let Some(table) = parts_table(&txn)? {
            out.extend(crate::index::parts::sizes(&table).map_err(to_io)?);
        }
        Ok(out.into_iter().collect())
    }

    fn read_stored(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        if self.inner.pending.lock().unwrap().deleted.contains(path) {
            return Ok(None);
        }
        let txn = self.inner.db.begin_read().map_err(to_io)?;
        if let Some(table) = parts_table(&txn)? {
            if let Some(bytes) = crate::index::parts::read(&table, key(path)?).map_err(to_io)? {
                return Ok(Some(bytes));
            }
        }
        let Some(table) = files_table(&txn)? else {
            return Ok(None);
        };
        let got = table.get(key(path)?).map_err(to_io)?;
        Ok(got.map(|v| v.value().to_vec()))
    }

    /// Commit `path` with `data`, together with every pending file and deletion.
    fn store_with_pending(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut pending = self.inner.pending.lock().unwrap();
        let cache = self.inner.cache.read().unwrap();
        let txn = self.inner.db.begin_write().map_err(to_io)?;
        {
            let mut earlier = txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
            let mut table = txn.open_table(TEXT_INDEX_FILE_PARTS).map_err(to_io)?;
            for gone in &pending.deleted {
                earlier.remove(key(gone)?).map_err(to_io)?;
                crate::index::parts::remove(&mut table, key(gone)?).map_err(to_io)?;
            }
            let mut put = |path: &Path, bytes: &[u8]| -> io::Result<()> {
                earlier.remove(key(path)?).map_err(to_io)?;
                crate::index::parts::write(&mut table, key(path)?, bytes).map_err(to_io)
            };
            for written in &pending.written {
                let slice = cache.get(written).ok_or_else(|| {
                    io::Error::other(format!("{} is pending but not cached", written.display()))
                })?;
                put(written, slice.read_bytes()?.as_slice())?;
            }
            put(path, data)?;
        }
        txn.commit().map_err(to_io)?;
        *pending = Pending::default();
        Ok(())
    }
}

impl Directory for RedbDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(self.open_read(path)?))
    }

    fn open_read(&self, path: &Path) -> Result<FileSlice, OpenReadError> {
        if let Some(slice) = self.inner.cache.read().unwrap().get(path) {
            return Ok(slice.clone());
        }
        let io_err = |e: io::Error| OpenReadError::wrap_io_error(e, path.to_path_buf());
        let data = self
            .read_stored(path)
            .map_err(io_err)?
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))?;
        let slice = FileSlice::from(data);
        self.inner
            .cache
            .write()
            .unwrap()
            .insert(path.to_path_buf(), slice.clone());
        Ok(slice)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        let io_err = |e: io::Error| DeleteError::IoError {
            io_error: Arc::new(e),
            filepath: path.to_path_buf(),
        };
        let stored = self.read_stored(path).map_err(io_err)?.is_some();
        let mut pending = self.inner.pending.lock().unwrap();
        let was_pending = pending.written.remove(path);
        if stored {
            pending.deleted.insert(path.to_path_buf());
        }
        let cached = self.inner.cache.write().unwrap().remove(path).is_some();
        if stored || was_pending || cached {
            Ok(())
        } else {
            Err(DeleteError::FileDoesNotExist(path.to_path_buf()))
        }
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        if self.inner.cache.read().unwrap().contains_key(path) {
            return Ok(true);
        }
        if self.inner.pending.lock().unwrap().deleted.contains(path) {
            return Ok(false);
        }
        let io_err = |e: io::Error| OpenReadError::wrap_io_error(e, path.to_path_buf());
        let txn = self.inner.db.begin_read().map_err(to_io).map_err(io_err)?;
        let k = key(path).map_err(io_err)?;
        if let Some(table) = parts_table(&txn).map_err(io_err)? {
            if crate::index::parts::contains(&table, k)
                .map_err(to_io)
                .map_err(io_err)?
            {
                return Ok(true);
            }
        }
        let Some(table) = files_table(&txn).map_err(io_err)? else {
            return Ok(false);
        };
        Ok(table.get(k).map_err(to_io).map_err(io_err)?.is_some())
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let exists = self
            .exists(path)
            .map_err(|e| OpenWriteError::wrap_io_error(io::Error::other(e), path.to_path_buf()))?;
        if exists {
            return Err(OpenWriteError::FileAlreadyExists(path.to_path_buf()));
        }
        let writer = FileWriter {
            path: path.to_path_buf(),
            dir: self.clone(),
            data: Vec::new(),
        };
        Ok(BufWriter::new(Box::new(writer)))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let io_err = |e: io::Error| OpenReadError::wrap_io_error(e, path.to_path_buf());
        self.read_stored(path)
            .map_err(io_err)?
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.store_with_pending(path, data)?;
        self.inner.cache.write().unwrap().remove(path);
        if path == Path::new("meta.json") {
            drop(self.inner.watchers.broadcast());
        }
        Ok(())
    }

    fn sync_directory(&self) -> io::Result<()> {
        // Durability comes from the `meta.json` commit, which is immediate.
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        loop {
            {
                let mut held = self.inner.locks.lock().unwrap();
                if held.insert(lock.filepath.clone()) {
                    let guard = LockGuard {
                        dir: self.inner.clone(),
                        path: lock.filepath.clone(),
                    };
                    return Ok(DirectoryLock::from(Box::new(guard)));
                }
            }
            if !lock.is_blocking {
                return Err(LockError::LockBusy);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(self.inner.watchers.subscribe(watch_callback))
    }
}

struct LockGuard {
    dir: Arc<Inner>,
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.dir.locks.lock().unwrap().remove(&self.path);
    }
}

/// Buffers a segment file and stores it whole when tantivy terminates it.
struct FileWriter {
    path: PathBuf,
    dir: RedbDirectory,
    data: Vec<u8>,
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TerminatingWrite for FileWriter {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        let data = std::mem::take(&mut self.data);
        let inner = &self.dir.inner;
        let mut pending = inner.pending.lock().unwrap();
        inner
            .cache
            .write()
            .unwrap()
            .insert(self.path.clone(), FileSlice::from(data));
        pending.deleted.remove(&self.path);
        pending.written.insert(self.path.clone());
        Ok(())
    }
}

/// `lore check`'s look at the stored index: `meta.json` parses, and every file of every segment
/// it lists is stored. Returns the problems found.
pub fn check_stored(db: &Db) -> io::Result<Vec<String>> {
    let txn = db.begin_read().map_err(to_io)?;
    let Some(table) = files_table(&txn)? else {
        return Ok(Vec::new());
    };
    let Some(meta) = table.get("meta.json").map_err(to_io)? else {
        return Ok(Vec::new());
    };
    let meta: serde_json::Value = match serde_json::from_slice(meta.value()) {
        Ok(m) => m,
        Err(e) => {
            return Ok(vec![format!(
                "the text index's meta.json does not parse: {e}"
            )])
        }
    };
    let mut names = Vec::new();
    for row in redb::ReadableTable::iter(&table).map_err(to_io)? {
        names.push(row.map_err(to_io)?.0.value().to_string());
    }
    let mut problems = Vec::new();
    for segment in meta["segments"].as_array().into_iter().flatten() {
        let Some(id) = segment["segment_id"].as_str() else {
            problems.push("the text index's meta.json lists a segment without an id".into());
            continue;
        };
        let stem = id.replace('-', "");
        let stored = names.iter().filter(|n| n.starts_with(&stem)).count();
        // Every segment has at least its postings, terms, positions, store and field norms.
        if stored < 4 {
            problems.push(format!(
                "text index segment {id} is listed in meta.json but {stored} of its files are stored"
            ));
        }
    }
    Ok(problems)
}
