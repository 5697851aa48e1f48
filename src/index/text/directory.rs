//! A tantivy [`Directory`] kept in a table of the lore file, so the full-text index travels with
//! the knowledge base and shares its crash safety.
//!
//! Tantivy writes each segment file once and never changes it; `meta.json` (written through
//! [`Directory::atomic_write`]) names the live segments. Segment files are committed to redb with
//! [`Durability::None`]; the `meta.json` write is an [`Durability::Immediate`] commit, which makes
//! every earlier commit durable with it. A crash therefore leaves the index as of its last tantivy
//! commit, with no half-written segment reachable.
//!
//! Files are read whole on first open and cached, so searches run from memory. The lock files
//! tantivy takes are held in memory only: redb already keeps a second process out of the file, and
//! a lock file left in the table by a killed process would otherwise block the index for ever.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, FileSlice, Lock, TerminatingWrite,
    WatchCallback, WatchCallbackList, WatchHandle, WritePtr,
};

/// path inside the index -> file bytes
pub const TEXT_INDEX_FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("text_index_files");

/// A tantivy directory over the `text_index_files` table of a lore file.
#[derive(Clone)]
pub struct RedbDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    /// Files already read or written in this process. Tantivy files are immutable once written.
    cache: RwLock<HashMap<PathBuf, FileSlice>>,
    locks: Mutex<HashSet<PathBuf>>,
    watchers: WatchCallbackList,
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

impl RedbDirectory {
    /// Open the directory stored in `db`, creating its table if needed.
    pub fn open(db: Arc<Database>) -> io::Result<RedbDirectory> {
        let txn = db.begin_write().map_err(to_io)?;
        txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
        txn.commit().map_err(to_io)?;
        Ok(RedbDirectory {
            inner: Arc::new(Inner {
                db,
                cache: RwLock::new(HashMap::new()),
                locks: Mutex::new(HashSet::new()),
                watchers: WatchCallbackList::default(),
            }),
        })
    }

    /// Total bytes stored for the index (for `lore stats`).
    pub fn stored_bytes(&self) -> io::Result<u64> {
        let txn = self.inner.db.begin_read().map_err(to_io)?;
        let table = txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
        let mut total = 0u64;
        for row in redb::ReadableTable::iter(&table).map_err(to_io)? {
            let (_, v) = row.map_err(to_io)?;
            total += v.value().len() as u64;
        }
        Ok(total)
    }

    /// The paths of every stored file (to export the index, e.g. for benchmarks).
    pub fn file_names(&self) -> io::Result<Vec<String>> {
        let txn = self.inner.db.begin_read().map_err(to_io)?;
        let table = txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
        let mut out = Vec::new();
        for row in redb::ReadableTable::iter(&table).map_err(to_io)? {
            out.push(row.map_err(to_io)?.0.value().to_string());
        }
        Ok(out)
    }

    fn read_stored(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let txn = self.inner.db.begin_read().map_err(to_io)?;
        let table = txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
        let got = table.get(key(path)?).map_err(to_io)?;
        Ok(got.map(|v| v.value().to_vec()))
    }

    fn store(&self, path: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
        let mut txn = self.inner.db.begin_write().map_err(to_io)?;
        txn.set_durability(durability).map_err(to_io)?;
        {
            let mut table = txn.open_table(TEXT_INDEX_FILES).map_err(to_io)?;
            table.insert(key(path)?, data).map_err(to_io)?;
        }
        txn.commit().map_err(to_io)
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
        let k = key(path).map_err(io_err)?;
        let mut txn = self.inner.db.begin_write().map_err(to_io).map_err(io_err)?;
        txn.set_durability(Durability::None)
            .map_err(to_io)
            .map_err(io_err)?;
        let existed = {
            let mut table = txn
                .open_table(TEXT_INDEX_FILES)
                .map_err(to_io)
                .map_err(io_err)?;
            let removed = table.remove(k).map_err(to_io).map_err(io_err)?;
            removed.is_some()
        };
        txn.commit().map_err(to_io).map_err(io_err)?;
        let cached = self.inner.cache.write().unwrap().remove(path).is_some();
        if existed || cached {
            Ok(())
        } else {
            Err(DeleteError::FileDoesNotExist(path.to_path_buf()))
        }
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        if self.inner.cache.read().unwrap().contains_key(path) {
            return Ok(true);
        }
        let io_err = |e: io::Error| OpenReadError::wrap_io_error(e, path.to_path_buf());
        let txn = self.inner.db.begin_read().map_err(to_io).map_err(io_err)?;
        let table = txn
            .open_table(TEXT_INDEX_FILES)
            .map_err(to_io)
            .map_err(io_err)?;
        let k = key(path).map_err(io_err)?;
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
        self.store(path, data, Durability::Immediate)?;
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
        self.dir.store(&self.path, &data, Durability::None)?;
        self.dir
            .inner
            .cache
            .write()
            .unwrap()
            .insert(self.path.clone(), FileSlice::from(data));
        Ok(())
    }
}
