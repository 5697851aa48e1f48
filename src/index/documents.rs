//! The searchable text of each node, as both indexes see it.
//!
//! - commits: the summary line as title, the rest of the message as body;
//! - issues and pull requests: title, then body and comments;
//! - symbols defined at the code head: name and qualified name, then signature, doc and path;
//! - files at the code head: path, then the names of the symbols they define.

use crate::store::{NodeId, NodeKind, ReadTx, StoreError};

/// One node's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub node: NodeId,
    /// When the node came to be (commit author time, issue creation); 0 when unknown.
    pub time: i64,
    pub title: String,
    pub body: String,
}

impl Document {
    /// A stable 64-bit fingerprint of the text, to tell whether a node needs re-indexing.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        h.write(&self.time.to_le_bytes());
        h.write(self.title.as_bytes());
        h.write(&[0xff]);
        h.write(self.body.as_bytes());
        h.0
    }

    /// Title and body as one text (for embedders).
    pub fn full_text(&self) -> String {
        if self.body.is_empty() {
            self.title.clone()
        } else {
            format!("{}\n{}", self.title, self.body)
        }
    }
}

/// FNV-1a: stable across builds and platforms, unlike the std hasher.
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// Issue text kept in the index: the body and comments are cut at this many bytes in all.
const MAX_BODY: usize = 64 * 1024;

fn cut(mut s: String) -> String {
    if s.len() > MAX_BODY {
        let mut end = MAX_BODY;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Every document of the given kinds, in node order.
pub fn collect(read: &ReadTx, kinds: &[NodeKind]) -> Result<Vec<Document>, StoreError> {
    let mut out = Vec::new();
    if kinds.contains(&NodeKind::Commit) {
        for (node, c) in read.all_commits()? {
            let (title, body) = match c.message.split_once('\n') {
                Some((t, b)) => (t.trim().to_string(), b.trim().to_string()),
                None => (c.message.trim().to_string(), String::new()),
            };
            out.push(Document {
                node,
                time: c.author.time,
                title,
                body: cut(body),
            });
        }
    }
    if kinds.contains(&NodeKind::Issue) {
        for (node, issue) in read.issues()? {
            if issue.stub {
                continue;
            }
            let mut body = issue.body.clone();
            for c in &issue.comments {
                body.push_str("\n\n");
                body.push_str(&c.body);
            }
            out.push(Document {
                node,
                time: issue.created_at.unwrap_or(0),
                title: issue.title.clone(),
                body: cut(body),
            });
        }
    }
    let want_symbols = kinds.contains(&NodeKind::Symbol);
    let want_files = kinds.contains(&NodeKind::File);
    if want_symbols || want_files {
        let paths: std::collections::HashMap<NodeId, String> =
            read.all_files()?.into_iter().collect();
        for (file, blob) in read.head_files()? {
            let path = paths.get(&file).cloned().unwrap_or_default();
            let record = read.blob(blob)?;
            if want_files {
                let names: Vec<&str> = record.symbols.iter().map(|s| s.name.as_str()).collect();
                out.push(Document {
                    node: file,
                    time: 0,
                    title: path.clone(),
                    body: names.join(" "),
                });
            }
            if want_symbols {
                for sym in &record.symbols {
                    let Some(qid) = read.string_id(&sym.qualified_name)? else {
                        continue;
                    };
                    let Some(node) = read.symbol_in_file(file, qid)? else {
                        continue;
                    };
                    let mut body = sym.signature.clone();
                    if let Some(doc) = &sym.doc {
                        body.push('\n');
                        body.push_str(doc);
                    }
                    body.push('\n');
                    body.push_str(&path);
                    out.push(Document {
                        node,
                        time: 0,
                        title: if sym.qualified_name == sym.name {
                            sym.name.clone()
                        } else {
                            format!("{} {}", sym.name, sym.qualified_name)
                        },
                        body: cut(body),
                    });
                }
            }
        }
    }
    out.sort_by_key(|d| d.node);
    out.dedup_by_key(|d| d.node);
    Ok(out)
}
