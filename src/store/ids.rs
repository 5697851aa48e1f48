//! Compact identifiers: node ids carry their kind in the top byte, relations are one byte.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of node the store holds. The discriminant is part of the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum NodeKind {
    Commit = 1,
    File = 2,
    Author = 3,
    /// A file version (git blob), holding the symbols parsed from it.
    Blob = 4,
    /// A named definition in a file (stable across versions of the file).
    Symbol = 5,
    /// An issue or a pull request (they share GitHub's number space).
    Issue = 6,
}

impl NodeKind {
    pub const ALL: [NodeKind; 6] = [
        NodeKind::Commit,
        NodeKind::File,
        NodeKind::Author,
        NodeKind::Blob,
        NodeKind::Symbol,
        NodeKind::Issue,
    ];

    pub fn from_u8(v: u8) -> Option<NodeKind> {
        NodeKind::ALL.into_iter().find(|k| *k as u8 == v)
    }

    /// Plural name as shown in `lore stats`.
    pub fn plural(self) -> &'static str {
        match self {
            NodeKind::Commit => "commits",
            NodeKind::File => "files",
            NodeKind::Author => "authors",
            NodeKind::Blob => "blobs",
            NodeKind::Symbol => "symbols",
            NodeKind::Issue => "issues",
        }
    }
}

/// A node's id: kind in the top 8 bits, a per-kind sequence number in the low 56.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

const LOCAL_BITS: u32 = 56;
const LOCAL_MASK: u64 = (1 << LOCAL_BITS) - 1;

impl NodeId {
    pub fn new(kind: NodeKind, local: u64) -> NodeId {
        debug_assert!(local <= LOCAL_MASK);
        NodeId(((kind as u64) << LOCAL_BITS) | (local & LOCAL_MASK))
    }

    pub fn kind(self) -> Option<NodeKind> {
        NodeKind::from_u8((self.0 >> LOCAL_BITS) as u8)
    }

    pub fn local(self) -> u64 {
        self.0 & LOCAL_MASK
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Some(k) => write!(f, "{}:{}", k.plural(), self.local()),
            None => write!(f, "?:{}", self.0),
        }
    }
}

/// The relations between nodes. Each edge is stored forward `(src, rel, dst)` and reverse
/// `(dst, rel, src)`, so both directions are a prefix scan. The discriminant is part of the
/// file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Rel {
    /// commit → its parent commit (detail: parent position).
    Parent = 1,
    /// commit → file it changed (detail: change kind and line stats).
    Touches = 2,
    /// commit → author (mailmap-resolved identity).
    AuthoredBy = 3,
    /// file → the file it was renamed from (evidence: the renaming commit).
    RenamedFrom = 4,
    /// file → symbol it defines at the head of the default branch.
    Defines = 5,
    /// commit → symbol whose lines it changed (detail: added / changed / removed).
    Modifies = 6,
    /// issue → the commit or pull request that fixed it (closing keyword, or through a PR).
    FixedBy = 7,
    /// issue or commit → an issue or PR it mentions without closing it.
    References = 8,
    /// issue → the issue it duplicates.
    DuplicateOf = 9,
    /// issue → file or symbol named in its text (paths, tracebacks, identifiers).
    Mentions = 10,
    /// fix commit → a commit that last touched the lines the fix changed (SZZ).
    IntroducedBy = 11,
    /// pull request → the commit that landed it (squash title or merge commit).
    MergedAs = 12,
    /// file → the repository file one of its imports names, at HEAD (evidence: the import).
    Imports = 13,
}

impl Rel {
    pub const ALL: [Rel; 13] = [
        Rel::Parent,
        Rel::Touches,
        Rel::AuthoredBy,
        Rel::RenamedFrom,
        Rel::Defines,
        Rel::Modifies,
        Rel::FixedBy,
        Rel::References,
        Rel::DuplicateOf,
        Rel::Mentions,
        Rel::IntroducedBy,
        Rel::MergedAs,
        Rel::Imports,
    ];

    pub fn from_u8(v: u8) -> Option<Rel> {
        Rel::ALL.into_iter().find(|r| *r as u8 == v)
    }

    /// The name of the relation as written in queries and `lore stats`.
    pub fn name(self) -> &'static str {
        match self {
            Rel::Parent => "parent",
            Rel::Touches => "touches",
            Rel::AuthoredBy => "authored_by",
            Rel::RenamedFrom => "renamed_from",
            Rel::Defines => "defines",
            Rel::Modifies => "modifies",
            Rel::FixedBy => "fixed_by",
            Rel::References => "references",
            Rel::DuplicateOf => "duplicate_of",
            Rel::Mentions => "mentions",
            Rel::IntroducedBy => "introduced_by",
            Rel::MergedAs => "merged_as",
            Rel::Imports => "imports",
        }
    }
}

/// Id of an interned string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StrId(pub u32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_keeps_kind_and_local() {
        let id = NodeId::new(NodeKind::File, 123_456);
        assert_eq!(id.kind(), Some(NodeKind::File));
        assert_eq!(id.local(), 123_456);
        assert!(NodeId::new(NodeKind::Commit, 9) < NodeId::new(NodeKind::File, 0));
    }

    #[test]
    fn discriminants_round_trip() {
        for k in NodeKind::ALL {
            assert_eq!(NodeKind::from_u8(k as u8), Some(k));
        }
        for r in Rel::ALL {
            assert_eq!(Rel::from_u8(r as u8), Some(r));
        }
        assert_eq!(Rel::from_u8(0), None);
    }
}
