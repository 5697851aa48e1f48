//! The store: one redb file holding nodes, edges, interned strings, watermarks and the schema
//! version. Writes go through [`Store::write`], one transaction per call: a crash at any point
//! leaves the file as of the last committed call.

mod blob_delta;
pub mod check;
mod codec;
pub mod compact;
mod ids;
pub mod origins;
pub mod paths;
mod read;
pub mod records;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use codec::{decode, encode, RECORD_VERSION};
pub use ids::{NodeId, NodeKind, Rel, StrId};
pub use read::{hex, Edge, ReadTx, Stats};
pub use schema::SCHEMA_VERSION;
pub use write::WriteTx;

use redb::{Builder, ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("no lore file at {path}; create one with `lore init {path}` or `lore ingest REPO --kb {path}`")]
    Missing { path: PathBuf },
    #[error("{path} is not a lore file ({detail}); if it is a damaged one, `lore check` says what is wrong")]
    NotAKb { path: PathBuf, detail: String },
    #[error("{path} was written by a newer lore (schema version {found}; this build reads version {supported}); upgrade lore to read it")]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} has schema version {found} from an earlier lore; this build reads version {supported}: move it aside and run `lore ingest` again")]
    UnsupportedSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} is being written by another lore process; a second writer cannot open it until that one ends (readers can)")]
    Locked { path: PathBuf },
    #[error("{path} is open read-only; {what} needs a command that writes (e.g. `lore index`)")]
    ReadOnly { path: PathBuf, what: &'static str },
    #[error("{path} was left open by a lore process that ended without closing it (killed or crashed); readers cannot use it until it is recovered to its last commit: run `lore check --repair --kb {path}`, or any command that writes (`lore ingest`, `lore index`)")]
    Unclean { path: PathBuf },
    #[error("cannot open or create {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// A compaction stopped; the file is as it was.
    #[error("{path} was not compacted: {detail}; the file is unchanged")]
    NotCompacted { path: PathBuf, detail: String },
    #[error("{path} already exists")]
    AlreadyExists { path: PathBuf },
    #[error("corrupt {what} record: {detail}; `lore check` says what else is damaged")]
    Corrupt { what: &'static str, detail: String },
    #[error("database error: {0}; if the file is damaged, `lore check` says what is wrong")]
    Db(#[from] redb::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// How processes share a lore file: one writer and any number of read-only handles, each
/// reading the writer's last commit (redb's single-writer mode, byte-range locks).
const SHARING: ConcurrencyMode = ConcurrencyMode::SingleWriter;

/// The redb handle under a [`Store`]: writable (one process at a time) or read-only (any number
/// of processes, beside the writer). Later stages keep their own tables through it.
#[derive(Clone)]
pub struct Db {
    handle: Arc<Handle>,
    path: Arc<PathBuf>,
}

enum Handle {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl Db {
    /// A writable handle over a redb database opened elsewhere (tests of the index tables).
    pub fn from_database(db: Database, path: &Path) -> Db {
        Db {
            handle: Arc::new(Handle::Writable(db)),
            path: Arc::new(path.into()),
        }
    }

    /// A snapshot of the last commit.
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match &*self.handle {
            Handle::Writable(db) => db.begin_read(),
            Handle::ReadOnly(db) => db.begin_read(),
        }
    }

    /// A write transaction; an error on a read-only handle, naming `what` wanted to write.
    pub fn begin_write_for(
        &self,
        what: &'static str,
    ) -> Result<redb::WriteTransaction, StoreError> {
        match &*self.handle {
            Handle::Writable(db) => Ok(db.begin_write()?),
            Handle::ReadOnly(_) => Err(StoreError::ReadOnly {
                path: (*self.path).clone(),
                what,
            }),
        }
    }

    /// A write transaction (an error on a read-only handle).
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.begin_write_for("this")
    }

    /// Whether this handle only reads.
    pub fn is_read_only(&self) -> bool {
        matches!(&*self.handle, Handle::ReadOnly(_))
    }
}

/// An open lore file.
pub struct Store {
    db: Db,
    path: PathBuf,
}

/// Whether an opened table is missing: a file opened read-only before any writer made the table
/// (its readers see an empty table).
pub fn table_missing(e: &redb::TableError) -> bool {
    matches!(e, redb::TableError::TableDoesNotExist(_))
}

impl Store {
    /// Create a new, empty lore file. Fails if `path` exists.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::AlreadyExists { path: path.into() });
        }
        let db = Builder::new()
            .set_concurrency_mode(SHARING)
            .create(path)
            .map_err(|e| map_open_error(path, e))?;
        let store = Store::with_handle(path, Handle::Writable(db));
        store.write(|tx| tx.initialise())?;
        Ok(store)
    }

    /// Open an existing lore file for writing, checking that it is one and that its schema is
    /// readable. One process at a time writes; read-only handles may be open beside it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        check_is_file(path)?;
        let db = Builder::new()
            .set_concurrency_mode(SHARING)
            .open(path)
            .map_err(|e| map_open_error(path, e))?;
        let store = Store::with_handle(path, Handle::Writable(db));
        store.check_schema()?;
        Ok(store)
    }

    /// Open an existing lore file read-only: nothing is written to it (not even on a file a
    /// killed writer left behind), any number of readers share it, and each read transaction
    /// sees the writer's last commit. A file with write permission only for others still opens.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        check_is_file(path)?;
        let db = Builder::new()
            .set_concurrency_mode(SHARING)
            .open_read_only(path)
            .map_err(|e| map_open_error(path, e))?;
        let store = Store::with_handle(path, Handle::ReadOnly(db));
        store.check_schema()?;
        Ok(store)
    }

    fn with_handle(path: &Path, handle: Handle) -> Store {
        Store {
            db: Db {
                handle: Arc::new(handle),
                path: Arc::new(path.into()),
            },
            path: path.into(),
        }
    }

    /// Whether this handle only reads.
    pub fn is_read_only(&self) -> bool {
        self.db.is_read_only()
    }

    /// Open `path`, creating it first if it does not exist. Returns whether it was created.
    pub fn open_or_create(path: &Path) -> Result<(Store, bool), StoreError> {
        if path.exists() {
            Ok((Store::open(path)?, false))
        } else {
            Ok((Store::create(path)?, true))
        }
    }

    /// The underlying database, for the later stages, which keep their own tables in the file.
    pub fn database(&self) -> Db {
        self.db.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let not_kb = |detail: &str| StoreError::NotAKb {
            path: self.path.clone(),
            detail: detail.into(),
        };
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(schema::META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(not_kb("a redb database without lore's meta table"))
            }
            Err(e) => return Err(e.into()),
        };
        let magic = meta.get("format")?;
        if magic.as_ref().map(|m| m.value()) != Some(schema::FORMAT_MAGIC) {
            return Err(not_kb("its meta table has no lore format marker"));
        }
        let version = meta
            .get("schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| not_kb("its schema version is missing"))?;
        // Versions start at 1: a 0 is what zeroed bytes read as, not an earlier lore.
        if version == 0 {
            return Err(not_kb("its schema version reads 0, which no lore writes"));
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if (schema::OLDEST_UPGRADABLE..SCHEMA_VERSION).contains(&version) && self.is_read_only() {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
                what: "upgrading a file written by an earlier lore",
            });
        }
        if (schema::OLDEST_UPGRADABLE..SCHEMA_VERSION).contains(&version) {
            // Newer versions only add tables, which opening a write transaction creates.
            return self.write(|tx| tx.set_schema_version(SCHEMA_VERSION));
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::UnsupportedSchema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Run `f` in one write transaction. If `f` fails, nothing it wrote is kept.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let txn = self.db.begin_write_for("writing")?;
        let out = {
            let mut tx = WriteTx::open(&txn)?;
            let out = f(&mut tx)?;
            tx.finish()?;
            out
        };
        txn.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// A consistent read-only view of the file.
    pub fn read(&self) -> Result<ReadTx, StoreError> {
        ReadTx::open(self.db.begin_read()?)
    }

    /// Overwrite the schema version (for tests of version checks and future migrations).
    #[doc(hidden)]
    pub fn force_schema_version(&self, version: u32) -> Result<(), StoreError> {
        self.write(|tx| tx.set_schema_version(version))
    }
}

fn check_is_file(path: &Path) -> Result<(), StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing { path: path.into() });
    }
    if path.is_dir() {
        return Err(StoreError::NotAKb {
            path: path.into(),
            detail: "it is a directory".into(),
        });
    }
    Ok(())
}

fn map_open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.into() },
        redb::DatabaseError::RepairAborted => StoreError::Unclean { path: path.into() },
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            StoreError::NotAKb {
                path: path.into(),
                detail: io.to_string(),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => StoreError::Io {
            path: path.into(),
            detail: io.to_string(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => StoreError::NotAKb {
            path: path.into(),
            detail: format!("not a redb database: {detail}"),
        },
        redb::DatabaseError::UpgradeRequired(v) => StoreError::NotAKb {
            path: path.into(),
            detail: format!("a redb database of an old file format ({v})"),
        },
        other => other.into(),
    }
}

/// Where the bytes of a lore file go: one row per table, from redb's own table statistics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableStorage {
    pub table: String,
    pub entries: u64,
    /// Bytes of keys and values in leaf pages.
    pub stored_bytes: u64,
    /// Bytes of page headers and offsets.
    pub metadata_bytes: u64,
    /// Bytes in the table's pages that hold nothing (free space inside pages).
    pub fragmented_bytes: u64,
    /// Pages of the table's tree, leaves and branches (values too large for a page live in
    /// pages of their own, counted in `stored_bytes` but not here).
    pub tree_pages: u64,
}

impl TableStorage {
    /// The bytes the table takes in the file: stored, metadata and fragmentation.
    pub fn total_bytes(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

impl Store {
    /// Bytes per table, largest first (`lore stats --storage`).
    pub fn storage(&self) -> Result<Vec<TableStorage>, StoreError> {
        use redb::{ReadableTableMetadata, TableHandle};
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for handle in txn.list_tables()? {
            let name = handle.name().to_string();
            let table = txn.open_untyped_table(handle)?;
            let stats = table.stats()?;
            out.push(TableStorage {
                table: name,
                entries: table.len()?,
                stored_bytes: stats.stored_bytes(),
                metadata_bytes: stats.metadata_bytes(),
                fragmented_bytes: stats.fragmented_bytes(),
                tree_pages: stats.leaf_pages() + stats.branch_pages(),
            });
        }
        out.sort_by(|a, b| {
            b.total_bytes()
                .cmp(&a.total_bytes())
                .then(a.table.cmp(&b.table))
        });
        Ok(out)
    }

    /// Compact the file at `path` as its one writer: the store's tables and those
    /// `later_stages` copy go, in key order, into a fresh file that replaces it.
    pub fn compact(
        path: &Path,
        later_stages: &dyn Fn(&mut compact::Copier<'_>) -> Result<(), StoreError>,
    ) -> Result<compact::CompactReport, StoreError> {
        compact::compact(path, &|r| {
            schema::copy_tables(r)?;
            later_stages(r)
        })
    }
}
