//! The write side: one [`WriteTx`] per transaction, holding every table open, with id
//! allocation, string interning and edge counts kept in memory until [`WriteTx::finish`].

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::codec::{decode, encode};
use super::records::{
    AuthorRecord, BlobRecord, CommitFacets, CommitRecord, EdgeMeta, FileRecord, IssueRecord,
    StoredBlob, StoredSymbol, SymbolKind, SymbolNode, SzzBlame, Watermark,
};
use super::records::{FileVersion, OriginRun};
use super::schema::*;
use super::{NodeId, NodeKind, Rel, StoreError, StrId};

pub struct WriteTx<'txn> {
    meta: Table<'txn, &'static str, &'static [u8]>,
    counters: Table<'txn, &'static str, u64>,
    strings: Table<'txn, u32, &'static str>,
    string_ids: Table<'txn, &'static str, u32>,
    commits: Table<'txn, u64, &'static [u8]>,
    files: Table<'txn, u64, &'static [u8]>,
    authors: Table<'txn, u64, &'static [u8]>,
    commit_by_sha: Table<'txn, &'static [u8], u64>,
    commit_by_time: Table<'txn, (i64, u64), ()>,
    file_by_path: Table<'txn, u32, u64>,
    author_by_email: Table<'txn, u32, u64>,
    edges: Table<'txn, (u64, u8, u64), &'static [u8]>,
    edges_rev: Table<'txn, (u64, u8, u64), ()>,
    watermarks: Table<'txn, &'static str, &'static [u8]>,
    blobs: Table<'txn, u64, &'static [u8]>,
    blob_by_sha: Table<'txn, &'static [u8], u64>,
    symbols: Table<'txn, u64, &'static [u8]>,
    symbol_by_key: Table<'txn, (u64, u32), u64>,
    head_blobs: Table<'txn, u64, u64>,
    issues: Table<'txn, u64, &'static [u8]>,
    issue_by_number: Table<'txn, u64, u64>,
    commit_facets: Table<'txn, u64, &'static [u8]>,
    szz_blame: Table<'txn, u64, &'static [u8]>,
    line_origins: Table<'txn, (u64, u64), &'static [u8]>,
    version_by_blob: Table<'txn, (u64, &'static [u8], u64), ()>,
    first_parents: Table<'txn, u64, u64>,
    /// Counter deltas, flushed in `finish`.
    pending_counters: HashMap<String, i64>,
    next_string: Option<u32>,
    /// Strings looked up or added in this transaction, by text: the code stage interns the
    /// same symbol names, signatures and docs for every version of a file.
    string_cache: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// Blobs stored in this transaction, with their chain lengths (see [`Self::stored_blob`]).
    recent_blobs: HashMap<u64, (StoredBlob, usize)>,
}

/// How many interned strings a transaction keeps at hand (emptied when full).
const STRING_CACHE: usize = 1 << 18;

/// How many stored blobs a transaction keeps at hand as bases for the next versions.
const RECENT_BLOBS: usize = 4096;

pub(super) fn counter_key_next(kind: NodeKind) -> String {
    format!("next.{}", kind.plural())
}

pub(super) fn counter_key_edges(rel: Rel) -> String {
    format!("edges.{}", rel.name())
}

impl<'txn> WriteTx<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<WriteTx<'txn>, StoreError> {
        Ok(WriteTx {
            meta: txn.open_table(META)?,
            counters: txn.open_table(COUNTERS)?,
            strings: txn.open_table(STRINGS)?,
            string_ids: txn.open_table(STRING_IDS)?,
            commits: txn.open_table(COMMITS)?,
            files: txn.open_table(FILES)?,
            authors: txn.open_table(AUTHORS)?,
            commit_by_sha: txn.open_table(COMMIT_BY_SHA)?,
            commit_by_time: txn.open_table(COMMIT_BY_TIME)?,
            file_by_path: txn.open_table(FILE_BY_PATH)?,
            author_by_email: txn.open_table(AUTHOR_BY_EMAIL)?,
            edges: txn.open_table(EDGES)?,
            edges_rev: txn.open_table(EDGES_REV)?,
            watermarks: txn.open_table(WATERMARKS)?,
            blobs: txn.open_table(BLOBS)?,
            blob_by_sha: txn.open_table(BLOB_BY_SHA)?,
            symbols: txn.open_table(SYMBOLS)?,
            symbol_by_key: txn.open_table(SYMBOL_BY_KEY)?,
            head_blobs: txn.open_table(HEAD_BLOBS)?,
            issues: txn.open_table(ISSUES)?,
            issue_by_number: txn.open_table(ISSUE_BY_NUMBER)?,
            commit_facets: txn.open_table(COMMIT_FACETS)?,
            szz_blame: txn.open_table(SZZ_BLAME)?,
            line_origins: txn.open_table(LINE_ORIGINS)?,
            version_by_blob: txn.open_table(VERSION_BY_BLOB)?,
            first_parents: txn.open_table(FIRST_PARENTS)?,
            pending_counters: HashMap::new(),
            next_string: None,
            string_cache: HashMap::default(),
            recent_blobs: HashMap::new(),
        })
    }

    pub(super) fn initialise(&mut self) -> Result<(), StoreError> {
        self.meta.insert("format", FORMAT_MAGIC)?;
        self.set_schema_version(SCHEMA_VERSION)?;
        let by = format!("lore {}", env!("CARGO_PKG_VERSION"));
        self.meta.insert("created_by", by.as_bytes())?;
        Ok(())
    }

    pub(super) fn set_schema_version(&mut self, version: u32) -> Result<(), StoreError> {
        self.meta
            .insert("schema_version", version.to_le_bytes().as_slice())?;
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<(), StoreError> {
        if let Some(next) = self.next_string {
            self.counters.insert("next.strings", next as u64)?;
        }
        for (key, delta) in self.pending_counters.drain() {
            let old = self
                .counters
                .get(key.as_str())?
                .map(|v| v.value())
                .unwrap_or(0);
            self.counters
                .insert(key.as_str(), old.saturating_add_signed(delta))?;
        }
        Ok(())
    }

    fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let stored = self.counters.get(key)?.map(|v| v.value()).unwrap_or(0);
        Ok(stored.saturating_add_signed(self.pending_counters.get(key).copied().unwrap_or(0)))
    }

    /// Add `delta` to a named counter (e.g. `ingest.stats_unknown`), visible in `lore stats`.
    pub fn bump(&mut self, key: &str, delta: u64) {
        if delta > 0 {
            *self.pending_counters.entry(key.to_string()).or_default() += delta as i64;
        }
    }

    fn alloc(&mut self, kind: NodeKind) -> Result<NodeId, StoreError> {
        let key = counter_key_next(kind);
        let local = self.counter(&key)?;
        self.bump(&key, 1);
        Ok(NodeId::new(kind, local))
    }

    /// The id of `s`, interning it if new.
    pub fn intern(&mut self, s: &str) -> Result<StrId, StoreError> {
        if let Some(&id) = self.string_cache.get(s) {
            return Ok(StrId(id));
        }
        if self.string_cache.len() >= STRING_CACHE {
            self.string_cache.clear();
        }
        if let Some(id) = self.string_ids.get(s)? {
            let id = id.value();
            self.string_cache.insert(s.into(), id);
            return Ok(StrId(id));
        }
        let next = match self.next_string {
            Some(n) => n,
            None => self
                .counters
                .get("next.strings")?
                .map(|v| v.value() as u32)
                .unwrap_or(0),
        };
        self.strings.insert(next, s)?;
        self.string_ids.insert(s, next)?;
        self.next_string = Some(next + 1);
        self.string_cache.insert(s.into(), next);
        Ok(StrId(next))
    }

    pub fn commit_id(&self, sha: &[u8]) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .commit_by_sha
            .get(sha)?
            .map(|v| NodeId::new(NodeKind::Commit, v.value())))
    }

    /// Insert a commit. Fails if a commit with this sha exists: callers check first.
    pub fn insert_commit(&mut self, record: &CommitRecord) -> Result<NodeId, StoreError> {
        if let Some(id) = self.commit_id(&record.sha)? {
            return Err(StoreError::Corrupt {
                what: "commit",
                detail: format!("duplicate insert of an existing commit ({id})"),
            });
        }
        let id = self.alloc(NodeKind::Commit)?;
        self.commits.insert(id.local(), encode(record).as_slice())?;
        self.commit_by_sha
            .insert(record.sha.as_slice(), id.local())?;
        self.commit_by_time
            .insert((record.committer.time, id.local()), ())?;
        Ok(id)
    }

    /// The file node for `path`, created if new. Returns the id and the path's string id.
    pub fn file(&mut self, path: &str) -> Result<(NodeId, StrId), StoreError> {
        let sid = self.intern(path)?;
        if let Some(local) = self.file_by_path.get(sid.0)? {
            return Ok((NodeId::new(NodeKind::File, local.value()), sid));
        }
        let id = self.alloc(NodeKind::File)?;
        self.files
            .insert(id.local(), encode(&FileRecord { path: sid }).as_slice())?;
        self.file_by_path.insert(sid.0, id.local())?;
        Ok((id, sid))
    }

    /// How many commits the file holds, this transaction's included.
    pub fn commit_count(&self) -> Result<u64, StoreError> {
        Ok(self.commits.len()?)
    }

    /// The file node of `path`, if the file knows it (nothing is created).
    pub fn file_id(&self, path: &str) -> Result<Option<NodeId>, StoreError> {
        let Some(sid) = self.string_ids.get(path)?.map(|v| v.value()) else {
            return Ok(None);
        };
        Ok(self
            .file_by_path
            .get(sid)?
            .map(|v| NodeId::new(NodeKind::File, v.value())))
    }

    /// The author node for a canonical identity, keyed by lower-cased email.
    pub fn author(&mut self, name: &str, email: &str, is_bot: bool) -> Result<NodeId, StoreError> {
        let key = self.intern(&email.to_lowercase())?;
        if let Some(local) = self.author_by_email.get(key.0)? {
            return Ok(NodeId::new(NodeKind::Author, local.value()));
        }
        let record = AuthorRecord {
            name: self.intern(name)?,
            email: self.intern(email)?,
            is_bot,
        };
        let id = self.alloc(NodeKind::Author)?;
        self.authors
            .insert(id.local(), encode(&record).as_slice())?;
        self.author_by_email.insert(key.0, id.local())?;
        Ok(id)
    }

    /// Add an edge in both directions. Re-adding an existing edge replaces its metadata.
    /// Says whether the edge is new.
    pub fn add_edge(
        &mut self,
        src: NodeId,
        rel: Rel,
        dst: NodeId,
        meta: &EdgeMeta,
    ) -> Result<bool, StoreError> {
        let key = (src.0, rel as u8, dst.0);
        let existed = self.edges.insert(key, encode(meta).as_slice())?.is_some();
        self.edges_rev.insert((dst.0, rel as u8, src.0), ())?;
        if !existed {
            self.bump(&counter_key_edges(rel), 1);
        }
        Ok(!existed)
    }

    pub fn watermark(&self, name: &str) -> Result<Option<Watermark>, StoreError> {
        match self.watermarks.get(name)? {
            Some(v) => Ok(Some(decode("watermark", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn set_watermark(&mut self, name: &str, mark: &Watermark) -> Result<(), StoreError> {
        self.watermarks.insert(name, encode(mark).as_slice())?;
        Ok(())
    }

    pub fn remove_watermark(&mut self, name: &str) -> Result<(), StoreError> {
        self.watermarks.remove(name)?;
        Ok(())
    }

    pub fn blob_id(&self, sha: &[u8]) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .blob_by_sha
            .get(sha)?
            .map(|v| NodeId::new(NodeKind::Blob, v.value())))
    }

    pub fn blob(&self, id: NodeId) -> Result<BlobRecord, StoreError> {
        let (stored, _) = self.stored_blob(id.local())?;
        stored.resolve(|id| self.string(id))
    }

    /// Blob `local` with interned strings, and the length of its chain of deltas. The
    /// versions stored in this transaction are kept, so the next version of a file finds
    /// its base without reading the chain again.
    fn stored_blob(&self, local: u64) -> Result<(StoredBlob, usize), StoreError> {
        if let Some((blob, depth)) = self.recent_blobs.get(&local) {
            return Ok((blob.clone(), *depth));
        }
        super::blob_delta::load(local, |k| {
            Ok(self.blobs.get(k)?.map(|v| v.value().to_vec()))
        })
    }

    fn string(&self, id: StrId) -> Result<String, StoreError> {
        match self.strings.get(id.0)? {
            Some(v) => Ok(v.value().to_string()),
            None => Err(StoreError::Corrupt {
                what: "string",
                detail: format!("dangling string id {}", id.0),
            }),
        }
    }

    /// Store a parsed blob; returns the existing id when it is already stored. `base` is an
    /// earlier version of the same file, if one is stored: the new version is kept as its
    /// changes against it where that is smaller.
    pub fn insert_blob(
        &mut self,
        record: &BlobRecord,
        base: Option<NodeId>,
    ) -> Result<NodeId, StoreError> {
        if let Some(id) = self.blob_id(&record.sha)? {
            return Ok(id);
        }
        let mut symbols = Vec::with_capacity(record.symbols.len());
        for s in &record.symbols {
            symbols.push(StoredSymbol {
                kind: s.kind,
                name: self.intern(&s.name)?,
                qualified_name: self.intern(&s.qualified_name)?,
                start_byte: s.start_byte,
                end_byte: s.end_byte,
                start_line: s.start_line,
                end_line: s.end_line,
                signature: self.intern(&s.signature)?,
                doc: s.doc.as_deref().map(|d| self.intern(d)).transpose()?,
                leading_line: s.leading_line,
                parent: s.parent,
            });
        }
        let stored = StoredBlob {
            sha: record.sha.clone(),
            lang: record.lang.as_deref().map(|l| self.intern(l)).transpose()?,
            status: record.status.clone(),
            symbols,
            imports: record
                .imports
                .iter()
                .map(|i| self.intern(i))
                .collect::<Result<_, _>>()?,
        };
        let base = match base.filter(|b| b.kind() == Some(NodeKind::Blob)) {
            Some(b) => Some((b.local(), self.stored_blob(b.local())?)),
            None => None,
        };
        let id = self.alloc(NodeKind::Blob)?;
        let (bytes, depth) = super::blob_delta::encode_version(
            &stored,
            base.as_ref()
                .map(|(local, (blob, depth))| (*local, *depth, blob)),
        );
        self.blobs.insert(id.local(), bytes.as_slice())?;
        self.blob_by_sha.insert(record.sha.as_slice(), id.local())?;
        if self.recent_blobs.len() >= RECENT_BLOBS {
            self.recent_blobs.clear();
        }
        self.recent_blobs.insert(id.local(), (stored, depth));
        Ok(id)
    }

    /// The symbol node for `qualified_name` in `file`, created if new.
    pub fn symbol(
        &mut self,
        file: NodeId,
        qualified_name: &str,
        name: &str,
        kind: SymbolKind,
    ) -> Result<NodeId, StoreError> {
        let qid = self.intern(qualified_name)?;
        if let Some(local) = self.symbol_by_key.get((file.local(), qid.0))? {
            return Ok(NodeId::new(NodeKind::Symbol, local.value()));
        }
        let record = SymbolNode {
            file,
            qualified_name: qid,
            name: self.intern(name)?,
            kind,
        };
        let id = self.alloc(NodeKind::Symbol)?;
        self.symbols
            .insert(id.local(), encode(&record).as_slice())?;
        self.symbol_by_key
            .insert((file.local(), qid.0), id.local())?;
        Ok(id)
    }

    /// Remove every `src -rel-> *` edge, in both directions.
    pub fn remove_edges_from(&mut self, src: NodeId, rel: Rel) -> Result<u64, StoreError> {
        let r = rel as u8;
        let mut dsts = Vec::new();
        for entry in self.edges.range((src.0, r, 0)..=(src.0, r, u64::MAX))? {
            dsts.push(entry?.0.value().2);
        }
        for dst in &dsts {
            self.edges.remove((src.0, r, *dst))?;
            self.edges_rev.remove((*dst, r, src.0))?;
        }
        let removed = dsts.len() as u64;
        *self
            .pending_counters
            .entry(counter_key_edges(rel))
            .or_default() -= removed as i64;
        Ok(removed)
    }

    pub fn head_blob(&self, file: NodeId) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .head_blobs
            .get(file.local())?
            .map(|v| NodeId::new(NodeKind::Blob, v.value())))
    }

    pub fn set_head_blob(&mut self, file: NodeId, blob: Option<NodeId>) -> Result<(), StoreError> {
        match blob {
            Some(b) => self.head_blobs.insert(file.local(), b.local())?,
            None => self.head_blobs.remove(file.local())?,
        };
        Ok(())
    }

    /// Files that have a head blob.
    pub fn head_files(&self) -> Result<Vec<NodeId>, StoreError> {
        let mut out = Vec::new();
        for entry in self.head_blobs.iter()? {
            out.push(NodeId::new(NodeKind::File, entry?.0.value()));
        }
        Ok(out)
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.value().to_vec()))
    }

    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        Ok(())
    }

    /// Remove a `meta` entry; says whether there was one.
    pub fn remove_meta(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.meta.remove(key)?.is_some())
    }

    pub fn issue_by_number(&self, number: u64) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .issue_by_number
            .get(number)?
            .map(|v| NodeId::new(NodeKind::Issue, v.value())))
    }

    pub fn issue(&self, id: NodeId) -> Result<IssueRecord, StoreError> {
        match self.issues.get(id.local())? {
            Some(v) => decode("issue", v.value()),
            None => Err(StoreError::Corrupt {
                what: "issue",
                detail: format!("no record for {id}"),
            }),
        }
    }

    /// Insert or replace the issue with `record.number`. Returns its id and whether it is new.
    pub fn put_issue(&mut self, record: &IssueRecord) -> Result<(NodeId, bool), StoreError> {
        let (id, new) = match self.issue_by_number(record.number)? {
            Some(id) => (id, false),
            None => {
                let id = self.alloc(NodeKind::Issue)?;
                self.issue_by_number.insert(record.number, id.local())?;
                (id, true)
            }
        };
        self.issues.insert(id.local(), encode(record).as_slice())?;
        Ok((id, new))
    }

    /// The issue or PR numbered `number`, creating a stub if it was never imported.
    pub fn issue_or_stub(&mut self, number: u64, is_pr: bool) -> Result<NodeId, StoreError> {
        match self.issue_by_number(number)? {
            Some(id) => Ok(id),
            None => {
                self.bump("links.stub_issues", 1);
                Ok(self.put_issue(&IssueRecord::stub(number, is_pr))?.0)
            }
        }
    }

    pub fn set_commit_facets(
        &mut self,
        commit: NodeId,
        facets: &CommitFacets,
    ) -> Result<(), StoreError> {
        self.commit_facets
            .insert(commit.local(), encode(facets).as_slice())?;
        Ok(())
    }

    pub fn szz_blame(&self, commit: NodeId) -> Result<Option<SzzBlame>, StoreError> {
        match self.szz_blame.get(commit.local())? {
            Some(v) => Ok(Some(decode("szz blame", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn set_szz_blame(&mut self, commit: NodeId, blame: &SzzBlame) -> Result<(), StoreError> {
        self.szz_blame
            .insert(commit.local(), encode(blame).as_slice())?;
        Ok(())
    }

    /// Every `src -rel-> dst` edge's destination and metadata.
    /// Store the version of `file` that `commit` left (see [`super::origins`]).
    pub fn put_file_version(
        &mut self,
        file: NodeId,
        commit: NodeId,
        version: &FileVersion,
    ) -> Result<(), StoreError> {
        self.line_origins
            .insert((file.local(), commit.local()), encode(version).as_slice())?;
        if let Some(blob) = &version.blob {
            self.version_by_blob
                .insert((file.local(), blob.as_slice(), commit.local()), ())?;
        }
        Ok(())
    }

    pub fn set_first_parent(&mut self, commit: NodeId, parent: NodeId) -> Result<(), StoreError> {
        self.first_parents.insert(commit.local(), parent.local())?;
        Ok(())
    }

    /// The commits (sorted) holding a version of `file` with content `blob`, at or before
    /// `commit`.
    pub fn versions_with_blob(
        &self,
        file: NodeId,
        blob: &[u8],
        commit: NodeId,
    ) -> Result<Vec<u64>, StoreError> {
        super::origins::versions_with_blob(
            &self.version_by_blob,
            file.local(),
            blob,
            commit.local(),
        )
    }

    /// The stored version of `file` at exactly `commit`.
    pub fn file_version(
        &self,
        file: NodeId,
        commit: NodeId,
    ) -> Result<Option<FileVersion>, StoreError> {
        super::origins::version(&self.line_origins, file.local(), commit.local())
    }

    /// How many deltas lie between the version of `file` at `commit` and stored runs.
    pub fn origin_depth(&self, file: NodeId, commit: NodeId) -> Result<u32, StoreError> {
        super::origins::depth(&self.line_origins, file.local(), commit.local())
    }

    /// Every recorded first parent, indexed by commit local id (`u64::MAX`: none).
    pub fn all_first_parents(&self) -> Result<Vec<u64>, StoreError> {
        super::origins::all_first_parents(&self.first_parents)
    }

    /// The line origins of the version of `file` stored at `commit`.
    pub fn origin_runs(
        &self,
        file: NodeId,
        commit: NodeId,
    ) -> Result<Option<Vec<OriginRun>>, StoreError> {
        super::origins::runs(&self.line_origins, file.local(), commit.local())
    }

    pub fn edges_from(&self, src: NodeId, rel: Rel) -> Result<Vec<(NodeId, EdgeMeta)>, StoreError> {
        let r = rel as u8;
        let mut out = Vec::new();
        for entry in self.edges.range((src.0, r, 0)..=(src.0, r, u64::MAX))? {
            let (k, v) = entry?;
            out.push((NodeId(k.value().2), decode("edge", v.value())?));
        }
        Ok(out)
    }

    /// Every `* -rel-> dst` edge's source.
    pub fn sources_to(&self, dst: NodeId, rel: Rel) -> Result<Vec<NodeId>, StoreError> {
        let r = rel as u8;
        let mut out = Vec::new();
        for entry in self.edges_rev.range((dst.0, r, 0)..=(dst.0, r, u64::MAX))? {
            out.push(NodeId(entry?.0.value().2));
        }
        Ok(out)
    }

    /// Remove one edge in both directions, if present.
    pub fn remove_edge(&mut self, src: NodeId, rel: Rel, dst: NodeId) -> Result<bool, StoreError> {
        let removed = self.edges.remove((src.0, rel as u8, dst.0))?.is_some();
        self.edges_rev.remove((dst.0, rel as u8, src.0))?;
        if removed {
            *self
                .pending_counters
                .entry(counter_key_edges(rel))
                .or_default() -= 1;
        }
        Ok(removed)
    }

    /// The metadata of one edge, if it exists.
    pub fn edge_meta(
        &self,
        src: NodeId,
        rel: Rel,
        dst: NodeId,
    ) -> Result<Option<EdgeMeta>, StoreError> {
        super::read::edge_meta_in(&self.edges, src, rel, dst)
    }

    /// Every issue and pull request id, in number order.
    pub fn all_issue_ids(&self) -> Result<Vec<NodeId>, StoreError> {
        let mut out = Vec::new();
        for entry in self.issue_by_number.iter()? {
            out.push(NodeId::new(NodeKind::Issue, entry?.1.value()));
        }
        Ok(out)
    }

    /// A commit's author time (Unix seconds).
    pub fn commit_time(&self, commit: NodeId) -> Result<i64, StoreError> {
        match self.commits.get(commit.local())? {
            Some(v) => {
                let record: CommitRecord = decode("commit", v.value())?;
                Ok(record.author.time)
            }
            None => Err(StoreError::Corrupt {
                what: "commit",
                detail: format!("no record for {commit}"),
            }),
        }
    }
}
