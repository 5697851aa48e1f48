//! The store: one redb file holding nodes, edges, interned strings, watermarks and the schema
//! version. Writes go through [`Store::write`], one transaction per call: a crash at any point
//! leaves the file as of the last committed call.

mod codec;
mod ids;
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

use redb::{Database, ReadableDatabase};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("no lore file at {path}; create one with `lore init {path}` or `lore ingest REPO --kb {path}`")]
    Missing { path: PathBuf },
    #[error("{path} is not a lore file ({detail})")]
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
    #[error("{path} is already open in another lore process")]
    Locked { path: PathBuf },
    #[error("cannot open or create {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path} already exists")]
    AlreadyExists { path: PathBuf },
    #[error("corrupt {what} record: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("database error: {0}")]
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

/// An open lore file.
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
}

impl Store {
    /// Create a new, empty lore file. Fails if `path` exists.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::AlreadyExists { path: path.into() });
        }
        let db = Database::create(path).map_err(|e| map_open_error(path, e))?;
        let store = Store {
            db: Arc::new(db),
            path: path.into(),
        };
        store.write(|tx| tx.initialise())?;
        Ok(store)
    }

    /// Open an existing lore file, checking that it is one and that its schema is readable.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.into() });
        }
        if path.is_dir() {
            return Err(StoreError::NotAKb {
                path: path.into(),
                detail: "it is a directory".into(),
            });
        }
        let db = Database::open(path).map_err(|e| map_open_error(path, e))?;
        let store = Store {
            db: Arc::new(db),
            path: path.into(),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Open `path`, creating it first if it does not exist. Returns whether it was created.
    pub fn open_or_create(path: &Path) -> Result<(Store, bool), StoreError> {
        if path.exists() {
            Ok((Store::open(path)?, false))
        } else {
            Ok((Store::create(path)?, true))
        }
    }

    /// The underlying database, for the index stage, which keeps its own tables in the same file.
    pub fn database(&self) -> Arc<Database> {
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
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
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
        let txn = self.db.begin_write().map_err(StoreError::from)?;
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

fn map_open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.into() },
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
