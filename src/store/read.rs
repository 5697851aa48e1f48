//! The read side: a [`ReadTx`] is a consistent snapshot of the file.

use std::collections::BTreeMap;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use super::codec::decode;
use super::records::{
    AuthorRecord, BlobRecord, CommitFacets, CommitRecord, EdgeMeta, FileRecord, IssueRecord,
    SymbolNode, SzzBlame, Watermark,
};
use super::records::{FileVersion, OriginRun};
use super::schema::*;
use super::write::counter_key_edges;
use super::{NodeId, NodeKind, Rel, StoreError, StrId};

/// One stored edge, read from either direction.
#[derive(Debug, Clone)]
pub struct Edge {
    pub src: NodeId,
    pub rel: Rel,
    pub dst: NodeId,
    pub meta: EdgeMeta,
}

/// What `lore stats` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub schema_version: u32,
    pub nodes: BTreeMap<String, u64>,
    pub edges: BTreeMap<String, u64>,
    /// Counters kept by ingest (skips, unknown stats, missing objects…).
    pub counters: BTreeMap<String, u64>,
    /// Ref name -> hex sha of the last ingested tip.
    pub watermarks: BTreeMap<String, String>,
}

pub struct ReadTx {
    pub(super) meta: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(super) counters: ReadOnlyTable<&'static str, u64>,
    pub(super) strings: ReadOnlyTable<u32, &'static str>,
    pub(super) commits: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) files: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) authors: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) commit_by_sha: ReadOnlyTable<&'static [u8], u64>,
    pub(super) string_ids: ReadOnlyTable<&'static str, u32>,
    pub(super) file_by_path: ReadOnlyTable<u32, u64>,
    pub(super) edges: ReadOnlyTable<(u64, u8, u64), &'static [u8]>,
    pub(super) edges_rev: ReadOnlyTable<(u64, u8, u64), ()>,
    pub(super) watermarks: ReadOnlyTable<&'static str, &'static [u8]>,
    pub(super) blobs: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) blob_by_sha: ReadOnlyTable<&'static [u8], u64>,
    pub(super) symbols: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) symbol_by_key: ReadOnlyTable<(u64, u32), u64>,
    pub(super) head_blobs: ReadOnlyTable<u64, u64>,
    pub(super) issues: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) issue_by_number: ReadOnlyTable<u64, u64>,
    pub(super) commit_facets: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) szz_blame: ReadOnlyTable<u64, &'static [u8]>,
    pub(super) line_origins: ReadOnlyTable<(u64, u64), &'static [u8]>,
    pub(super) version_by_blob: ReadOnlyTable<(u64, &'static [u8], u64), ()>,
    pub(super) first_parents: ReadOnlyTable<u64, u64>,
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The metadata of edge `src -rel-> dst` in an edges table (a read or a write transaction's).
pub(super) fn edge_meta_in(
    edges: &impl ReadableTable<(u64, u8, u64), &'static [u8]>,
    src: NodeId,
    rel: Rel,
    dst: NodeId,
) -> Result<Option<EdgeMeta>, StoreError> {
    match edges.get((src.0, rel as u8, dst.0))? {
        Some(v) => Ok(Some(decode("edge", v.value())?)),
        None => Ok(None),
    }
}

impl ReadTx {
    pub(super) fn open(txn: ReadTransaction) -> Result<ReadTx, StoreError> {
        Ok(ReadTx {
            meta: txn.open_table(META)?,
            counters: txn.open_table(COUNTERS)?,
            strings: txn.open_table(STRINGS)?,
            commits: txn.open_table(COMMITS)?,
            files: txn.open_table(FILES)?,
            authors: txn.open_table(AUTHORS)?,
            commit_by_sha: txn.open_table(COMMIT_BY_SHA)?,
            string_ids: txn.open_table(STRING_IDS)?,
            file_by_path: txn.open_table(FILE_BY_PATH)?,
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
        })
    }

    /// The commit holding the version of `file` with content `blob` that `commit` sees.
    pub fn version_with_blob(
        &self,
        file: NodeId,
        blob: &[u8],
        commit: NodeId,
    ) -> Result<Option<NodeId>, StoreError> {
        Ok(super::origins::version_with_blob(
            &self.version_by_blob,
            &self.first_parents,
            file.local(),
            blob,
            commit.local(),
        )?
        .map(|c| NodeId::new(NodeKind::Commit, c)))
    }

    /// The line origins of the version of `file` stored at `commit`.
    pub fn origin_runs(
        &self,
        file: NodeId,
        commit: NodeId,
    ) -> Result<Option<Vec<OriginRun>>, StoreError> {
        super::origins::runs(&self.line_origins, file.local(), commit.local())
    }

    /// The commit whose version of `file` is the file as of `commit`, with that version.
    pub fn file_version_at(
        &self,
        file: NodeId,
        commit: NodeId,
    ) -> Result<Option<(NodeId, FileVersion)>, StoreError> {
        Ok(super::origins::version_at(
            &self.line_origins,
            &self.first_parents,
            file.local(),
            commit.local(),
        )?
        .map(|(c, v)| (NodeId::new(NodeKind::Commit, c), v)))
    }

    /// Every recorded first parent, indexed by commit local id (`u64::MAX`: none).
    pub fn all_first_parents(&self) -> Result<Vec<u64>, StoreError> {
        super::origins::all_first_parents(&self.first_parents)
    }

    /// The first parent of `commit`, as the provenance stage recorded it.
    pub fn first_parent(&self, commit: NodeId) -> Result<Option<NodeId>, StoreError> {
        Ok(
            super::origins::first_parent(&self.first_parents, commit.local())?
                .map(|c| NodeId::new(NodeKind::Commit, c)),
        )
    }

    pub fn string(&self, id: StrId) -> Result<String, StoreError> {
        match self.strings.get(id.0)? {
            Some(v) => Ok(v.value().to_string()),
            None => Err(StoreError::Corrupt {
                what: "string",
                detail: format!("dangling string id {}", id.0),
            }),
        }
    }

    /// The id of an interned string, if it was ever interned.
    pub fn string_id(&self, s: &str) -> Result<Option<StrId>, StoreError> {
        Ok(self.string_ids.get(s)?.map(|v| StrId(v.value())))
    }

    pub fn commit(&self, id: NodeId) -> Result<CommitRecord, StoreError> {
        let v = self
            .commits
            .get(id.local())?
            .ok_or_else(|| dangling("commit", id))?;
        decode("commit", v.value())
    }

    pub fn file(&self, id: NodeId) -> Result<FileRecord, StoreError> {
        let v = self
            .files
            .get(id.local())?
            .ok_or_else(|| dangling("file", id))?;
        decode("file", v.value())
    }

    pub fn author(&self, id: NodeId) -> Result<AuthorRecord, StoreError> {
        let v = self
            .authors
            .get(id.local())?
            .ok_or_else(|| dangling("author", id))?;
        decode("author", v.value())
    }

    pub fn blob(&self, id: NodeId) -> Result<BlobRecord, StoreError> {
        let (stored, _) = super::blob_delta::load(id.local(), |k| {
            Ok(self.blobs.get(k)?.map(|v| v.value().to_vec()))
        })?;
        stored.resolve(|s| self.string(s))
    }

    pub fn issue(&self, id: NodeId) -> Result<IssueRecord, StoreError> {
        let v = self
            .issues
            .get(id.local())?
            .ok_or_else(|| dangling("issue", id))?;
        decode("issue", v.value())
    }

    pub fn issue_by_number(&self, number: u64) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .issue_by_number
            .get(number)?
            .map(|v| NodeId::new(NodeKind::Issue, v.value())))
    }

    /// [`ReadTx::issue_by_number`] for answers that tell a user an issue does not exist: on a
    /// miss, the issues themselves are read to confirm that none has that number, so that a
    /// damaged number index is reported as damage (naming `lore check`) rather than as an
    /// absent issue. A miss costs a read of every issue record.
    pub fn find_issue(&self, number: u64) -> Result<Option<NodeId>, StoreError> {
        if let Some(id) = self.issue_by_number(number)? {
            return Ok(Some(id));
        }
        for entry in self.issues.iter()? {
            let (local, bytes) = entry?;
            let record: IssueRecord = decode("issue", bytes.value())?;
            if record.number == number {
                return Err(StoreError::Corrupt {
                    what: "issue",
                    detail: format!(
                        "#{number} (node {}) is stored but missing from the index of issue numbers",
                        local.value()
                    ),
                });
            }
        }
        Ok(None)
    }

    /// Every issue and pull request, in number order.
    pub fn issues(&self) -> Result<Vec<(NodeId, IssueRecord)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.issue_by_number.iter()? {
            let id = NodeId::new(NodeKind::Issue, entry?.1.value());
            out.push((id, self.issue(id)?));
        }
        Ok(out)
    }

    pub fn commit_facets(&self, commit: NodeId) -> Result<Option<CommitFacets>, StoreError> {
        match self.commit_facets.get(commit.local())? {
            Some(v) => Ok(Some(decode("commit facets", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn szz_blame(&self, commit: NodeId) -> Result<Option<SzzBlame>, StoreError> {
        match self.szz_blame.get(commit.local())? {
            Some(v) => Ok(Some(decode("szz blame", v.value())?)),
            None => Ok(None),
        }
    }

    /// How many deltas reading blob `id` applies (0: it is stored whole).
    pub fn blob_chain_length(&self, id: NodeId) -> Result<usize, StoreError> {
        let (_, depth) = super::blob_delta::load(id.local(), |k| {
            Ok(self.blobs.get(k)?.map(|v| v.value().to_vec()))
        })?;
        Ok(depth)
    }

    pub fn blob_by_sha(&self, sha: &[u8]) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .blob_by_sha
            .get(sha)?
            .map(|v| NodeId::new(NodeKind::Blob, v.value())))
    }

    pub fn symbol(&self, id: NodeId) -> Result<SymbolNode, StoreError> {
        let v = self
            .symbols
            .get(id.local())?
            .ok_or_else(|| dangling("symbol", id))?;
        decode("symbol", v.value())
    }

    /// The blob of `file` at the code head, if the file exists there and was parsed.
    pub fn head_blob(&self, file: NodeId) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .head_blobs
            .get(file.local())?
            .map(|v| NodeId::new(NodeKind::Blob, v.value())))
    }

    /// The symbol node for `qualified_name` in `file`.
    pub fn symbol_in_file(
        &self,
        file: NodeId,
        qualified_name: StrId,
    ) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .symbol_by_key
            .get((file.local(), qualified_name.0))?
            .map(|v| NodeId::new(NodeKind::Symbol, v.value())))
    }

    /// The symbol and the same qualified name in every file this file was renamed from,
    /// transitively: the symbol's whole lineage across renames.
    pub fn symbol_lineage(&self, symbol: NodeId) -> Result<Vec<NodeId>, StoreError> {
        let node = self.symbol(symbol)?;
        let mut out = vec![symbol];
        let mut files = vec![node.file];
        let mut seen = std::collections::HashSet::from([node.file]);
        while let Some(file) = files.pop() {
            for edge in self.edges_from(file, Rel::RenamedFrom)? {
                if !seen.insert(edge.dst) {
                    continue;
                }
                if let Some(s) = self.symbol_in_file(edge.dst, node.qualified_name)? {
                    out.push(s);
                }
                files.push(edge.dst);
            }
        }
        Ok(out)
    }

    /// Symbol nodes whose name or qualified name equals `name`.
    pub fn symbols_named(&self, name: &str) -> Result<Vec<(NodeId, SymbolNode)>, StoreError> {
        let Some(sid) = self.string_ids.get(name)?.map(|v| StrId(v.value())) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in self.symbols.iter()? {
            let (k, v) = entry?;
            let node: SymbolNode = decode("symbol", v.value())?;
            if node.name == sid || node.qualified_name == sid {
                out.push((NodeId::new(NodeKind::Symbol, k.value()), node));
            }
        }
        Ok(out)
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.value().to_vec()))
    }

    pub fn commit_by_sha(&self, sha: &[u8]) -> Result<Option<NodeId>, StoreError> {
        Ok(self
            .commit_by_sha
            .get(sha)?
            .map(|v| NodeId::new(NodeKind::Commit, v.value())))
    }

    /// Commits whose hex sha starts with `prefix` (lower-case hex), at most `limit` of them.
    pub fn commits_by_hex_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<NodeId>, StoreError> {
        let prefix = prefix.to_ascii_lowercase();
        let nibbles: Option<Vec<u8>> = prefix
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect();
        let Some(nibbles) = nibbles else {
            return Ok(Vec::new());
        };
        let start: Vec<u8> = nibbles
            .chunks(2)
            .map(|c| (c[0] << 4) | c.get(1).copied().unwrap_or(0))
            .collect();
        let mut out = Vec::new();
        for entry in self.commit_by_sha.range(start.as_slice()..)? {
            let (k, v) = entry?;
            if !hex(k.value()).starts_with(&prefix) {
                break;
            }
            out.push(NodeId::new(NodeKind::Commit, v.value()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Files with a blob at the code head (empty when the code stage has not run).
    pub fn head_files(&self) -> Result<Vec<(NodeId, NodeId)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.head_blobs.iter()? {
            let (file, blob) = entry?;
            out.push((
                NodeId::new(NodeKind::File, file.value()),
                NodeId::new(NodeKind::Blob, blob.value()),
            ));
        }
        Ok(out)
    }

    /// Every symbol node.
    pub fn all_symbols(&self) -> Result<Vec<(NodeId, SymbolNode)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.symbols.iter()? {
            let (k, v) = entry?;
            out.push((
                NodeId::new(NodeKind::Symbol, k.value()),
                decode("symbol", v.value())?,
            ));
        }
        Ok(out)
    }

    /// Every commit with its record, in id order.
    pub fn all_commits(&self) -> Result<Vec<(NodeId, CommitRecord)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.commits.iter()? {
            let (k, v) = entry?;
            out.push((
                NodeId::new(NodeKind::Commit, k.value()),
                decode("commit", v.value())?,
            ));
        }
        Ok(out)
    }

    /// Every author id.
    pub fn all_authors(&self) -> Result<Vec<NodeId>, StoreError> {
        let mut out = Vec::new();
        for entry in self.authors.iter()? {
            out.push(NodeId::new(NodeKind::Author, entry?.0.value()));
        }
        Ok(out)
    }

    /// How many nodes of `kind` are stored.
    pub fn node_count(&self, kind: NodeKind) -> Result<u64, StoreError> {
        Ok(match kind {
            NodeKind::Commit => self.commits.len()?,
            NodeKind::File => self.files.len()?,
            NodeKind::Author => self.authors.len()?,
            NodeKind::Blob => self.blobs.len()?,
            NodeKind::Symbol => self.symbols.len()?,
            NodeKind::Issue => self.issues.len()?,
        })
    }

    /// Every file ever seen, with its path.
    pub fn all_files(&self) -> Result<Vec<(NodeId, String)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.files.iter()? {
            let (id, v) = entry?;
            let record: FileRecord = decode("file", v.value())?;
            out.push((
                NodeId::new(NodeKind::File, id.value()),
                self.string(record.path)?,
            ));
        }
        Ok(out)
    }

    pub fn file_by_path(&self, path: &str) -> Result<Option<NodeId>, StoreError> {
        let Some(sid) = self.string_ids.get(path)? else {
            return Ok(None);
        };
        Ok(self
            .file_by_path
            .get(sid.value())?
            .map(|v| NodeId::new(NodeKind::File, v.value())))
    }

    /// The metadata of edge `src -rel-> dst`, if it exists.
    pub fn edge_meta(
        &self,
        src: NodeId,
        rel: Rel,
        dst: NodeId,
    ) -> Result<Option<EdgeMeta>, StoreError> {
        edge_meta_in(&self.edges, src, rel, dst)
    }

    /// Edges `src -rel-> *`, in destination id order.
    pub fn edges_from(&self, src: NodeId, rel: Rel) -> Result<Vec<Edge>, StoreError> {
        let r = rel as u8;
        let mut out = Vec::new();
        for entry in self.edges.range((src.0, r, 0)..=(src.0, r, u64::MAX))? {
            let (k, v) = entry?;
            out.push(Edge {
                src,
                rel,
                dst: NodeId(k.value().2),
                meta: decode("edge", v.value())?,
            });
        }
        Ok(out)
    }

    /// Edges `* -rel-> dst`, found through the reverse table.
    /// The destinations of `src -rel-> *`, without reading the edges' metadata.
    pub fn targets_of(&self, src: NodeId, rel: Rel) -> Result<Vec<NodeId>, StoreError> {
        let r = rel as u8;
        let mut out = Vec::new();
        for entry in self.edges.range((src.0, r, 0)..=(src.0, r, u64::MAX))? {
            out.push(NodeId(entry?.0.value().2));
        }
        Ok(out)
    }

    /// The sources of `* -rel-> dst`, from the reverse table alone.
    pub fn sources_of(&self, dst: NodeId, rel: Rel) -> Result<Vec<NodeId>, StoreError> {
        let r = rel as u8;
        let mut out = Vec::new();
        for entry in self.edges_rev.range((dst.0, r, 0)..=(dst.0, r, u64::MAX))? {
            out.push(NodeId(entry?.0.value().2));
        }
        Ok(out)
    }

    pub fn edges_to(&self, dst: NodeId, rel: Rel) -> Result<Vec<Edge>, StoreError> {
        let r = rel as u8;
        let mut out = Vec::new();
        for entry in self.edges_rev.range((dst.0, r, 0)..=(dst.0, r, u64::MAX))? {
            let src = NodeId(entry?.0.value().2);
            let meta = self
                .edges
                .get((src.0, r, dst.0))?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "edge",
                    detail: format!(
                        "reverse edge {dst} <-{}- {src} has no forward edge",
                        rel.name()
                    ),
                })?;
            out.push(Edge {
                src,
                rel,
                dst,
                meta: decode("edge", meta.value())?,
            });
        }
        Ok(out)
    }

    pub fn commit_count(&self) -> Result<u64, StoreError> {
        Ok(self.commits.len()?)
    }

    /// Every commit sha in the store.
    pub fn all_commit_shas(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(self.commit_by_sha.len()? as usize);
        for entry in self.commit_by_sha.iter()? {
            out.push(entry?.0.value().to_vec());
        }
        Ok(out)
    }

    pub fn watermarks(&self) -> Result<Vec<(String, Watermark)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.watermarks.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_string(), decode("watermark", v.value())?));
        }
        Ok(out)
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .meta
            .get("schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0))
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let mut nodes = BTreeMap::new();
        nodes.insert(NodeKind::Commit.plural().into(), self.commits.len()?);
        nodes.insert(NodeKind::File.plural().into(), self.files.len()?);
        nodes.insert(NodeKind::Author.plural().into(), self.authors.len()?);
        nodes.insert(NodeKind::Blob.plural().into(), self.blobs.len()?);
        nodes.insert(NodeKind::Symbol.plural().into(), self.symbols.len()?);
        // Issues, pull requests and stubs (numbers referenced but never imported) share a table.
        let (mut issues, mut prs, mut stubs) = (0, 0, 0);
        for entry in self.issues.iter()? {
            let record: IssueRecord = decode("issue", entry?.1.value())?;
            match (record.stub, record.is_pr) {
                (true, _) => stubs += 1,
                (false, true) => prs += 1,
                (false, false) => issues += 1,
            }
        }
        nodes.insert(NodeKind::Issue.plural().into(), issues);
        nodes.insert("pull_requests".into(), prs);
        nodes.insert("issue_stubs".into(), stubs);
        let mut edges = BTreeMap::new();
        for rel in Rel::ALL {
            let n = self
                .counters
                .get(counter_key_edges(rel).as_str())?
                .map(|v| v.value());
            edges.insert(rel.name().to_string(), n.unwrap_or(0));
        }
        let mut counters = BTreeMap::new();
        for entry in self.counters.iter()? {
            let (k, v) = entry?;
            let k = k.value();
            if !k.starts_with("next.") && !k.starts_with("edges.") {
                counters.insert(k.to_string(), v.value());
            }
        }
        let watermarks = self
            .watermarks()?
            .into_iter()
            .map(|(k, w)| (k, hex(&w.sha)))
            .collect();
        Ok(Stats {
            schema_version: self.schema_version()?,
            nodes,
            edges,
            counters,
            watermarks,
        })
    }
}

fn dangling(what: &'static str, id: NodeId) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: format!("no record for {id}"),
    }
}
