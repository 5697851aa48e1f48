//! What queries can name: entity kinds, relations (both directions of every stored one), and
//! the fields of each kind.

use crate::store::{NodeKind, Rel};

/// An entity set as written in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Issues,
    Prs,
    Commits,
    Files,
    Symbols,
    Functions,
    Classes,
    Methods,
    Authors,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Issues,
        Kind::Prs,
        Kind::Commits,
        Kind::Files,
        Kind::Symbols,
        Kind::Functions,
        Kind::Classes,
        Kind::Methods,
        Kind::Authors,
    ];

    /// Plural and singular spellings.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Kind::Issues => ("issues", "issue"),
            Kind::Prs => ("prs", "pr"),
            Kind::Commits => ("commits", "commit"),
            Kind::Files => ("files", "file"),
            Kind::Symbols => ("symbols", "symbol"),
            Kind::Functions => ("functions", "function"),
            Kind::Classes => ("classes", "class"),
            Kind::Methods => ("methods", "method"),
            Kind::Authors => ("authors", "author"),
        }
    }

    pub fn from_word(word: &str) -> Option<(Kind, bool)> {
        let w = word.to_ascii_lowercase();
        Kind::ALL.into_iter().find_map(|k| {
            let (plural, singular) = k.words();
            if w == plural {
                Some((k, true))
            } else if w == singular {
                Some((k, false))
            } else {
                None
            }
        })
    }

    /// The kind a relation's destination implies when the query names none.
    pub fn implied_by(kinds: &[NodeKind]) -> Option<Kind> {
        match kinds {
            [NodeKind::Commit] => Some(Kind::Commits),
            [NodeKind::File] => Some(Kind::Files),
            [NodeKind::Symbol] => Some(Kind::Symbols),
            [NodeKind::Author] => Some(Kind::Authors),
            _ => None,
        }
    }

    pub fn node_kind(self) -> NodeKind {
        match self {
            Kind::Issues | Kind::Prs => NodeKind::Issue,
            Kind::Commits => NodeKind::Commit,
            Kind::Files => NodeKind::File,
            Kind::Symbols | Kind::Functions | Kind::Classes | Kind::Methods => NodeKind::Symbol,
            Kind::Authors => NodeKind::Author,
        }
    }

    /// The names of the fields `where`, `order by`, `count by` and `return` can use.
    pub fn field_names(self) -> Vec<&'static str> {
        super::fields::Field::of_kind(self)
            .into_iter()
            .map(|f| f.name())
            .collect()
    }

    /// The field `since` and `until` compare.
    pub fn date_field(self) -> Option<&'static str> {
        match self {
            Kind::Issues | Kind::Prs => Some("created"),
            Kind::Commits => Some("date"),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        self.words().0
    }
}

/// Names of the fields of the edge a step followed, usable in the `where` after the step.
pub fn edge_field_names() -> Vec<&'static str> {
    super::fields::Field::edges().map(|f| f.name()).collect()
}

/// What a relation walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Stored edges of one relation.
    Edges(Rel),
    /// Line provenance at HEAD: a commit and the files and symbols whose current lines it
    /// introduced (`commits introducing symbol free_blocks`).
    LineOrigins,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Edges(rel) => rel.name(),
            Via::LineOrigins => "line origins at HEAD",
        }
    }
}

/// A relation as written: what it walks and the direction it is walked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    pub name: &'static str,
    pub via: Via,
    /// Walk stored edges from source to destination (true) or backwards (for line origins:
    /// from commits to what they introduced, or back).
    pub forward: bool,
    pub from: &'static [NodeKind],
    pub to: &'static [NodeKind],
}

use NodeKind::{Author as A, Commit as C, File as F, Issue as I, Symbol as S};

/// Every relation, both directions.
pub const RELATIONS: [Relation; 28] = [
    Relation {
        name: "fixed_by",
        via: Via::Edges(Rel::FixedBy),
        forward: true,
        from: &[I],
        to: &[C, I],
    },
    Relation {
        name: "fixes",
        via: Via::Edges(Rel::FixedBy),
        forward: false,
        from: &[C, I],
        to: &[I],
    },
    Relation {
        name: "touching",
        via: Via::Edges(Rel::Touches),
        forward: true,
        from: &[C],
        to: &[F],
    },
    Relation {
        name: "touched_by",
        via: Via::Edges(Rel::Touches),
        forward: false,
        from: &[F],
        to: &[C],
    },
    Relation {
        name: "modifies",
        via: Via::Edges(Rel::Modifies),
        forward: true,
        from: &[C],
        to: &[S],
    },
    Relation {
        name: "modified_by",
        via: Via::Edges(Rel::Modifies),
        forward: false,
        from: &[S],
        to: &[C],
    },
    Relation {
        name: "defines",
        via: Via::Edges(Rel::Defines),
        forward: true,
        from: &[F],
        to: &[S],
    },
    Relation {
        name: "defined_in",
        via: Via::Edges(Rel::Defines),
        forward: false,
        from: &[S],
        to: &[F],
    },
    Relation {
        name: "mentions",
        via: Via::Edges(Rel::Mentions),
        forward: true,
        from: &[I],
        to: &[F, S],
    },
    Relation {
        name: "mentioned_by",
        via: Via::Edges(Rel::Mentions),
        forward: false,
        from: &[F, S],
        to: &[I],
    },
    Relation {
        name: "introduced_by",
        via: Via::Edges(Rel::IntroducedBy),
        forward: true,
        from: &[C],
        to: &[C],
    },
    Relation {
        name: "introduces",
        via: Via::Edges(Rel::IntroducedBy),
        forward: false,
        from: &[C],
        to: &[C],
    },
    Relation {
        name: "references",
        via: Via::Edges(Rel::References),
        forward: true,
        from: &[I, C],
        to: &[I],
    },
    Relation {
        name: "referenced_by",
        via: Via::Edges(Rel::References),
        forward: false,
        from: &[I],
        to: &[I, C],
    },
    Relation {
        name: "duplicate_of",
        via: Via::Edges(Rel::DuplicateOf),
        forward: true,
        from: &[I],
        to: &[I],
    },
    Relation {
        name: "duplicated_by",
        via: Via::Edges(Rel::DuplicateOf),
        forward: false,
        from: &[I],
        to: &[I],
    },
    Relation {
        name: "authored_by",
        via: Via::Edges(Rel::AuthoredBy),
        forward: true,
        from: &[C],
        to: &[A],
    },
    Relation {
        name: "authored",
        via: Via::Edges(Rel::AuthoredBy),
        forward: false,
        from: &[A],
        to: &[C],
    },
    // `parent` edges go child -> parent: "commits parent_of X" are X's parents.
    Relation {
        name: "parent_of",
        via: Via::Edges(Rel::Parent),
        forward: false,
        from: &[C],
        to: &[C],
    },
    Relation {
        name: "child_of",
        via: Via::Edges(Rel::Parent),
        forward: true,
        from: &[C],
        to: &[C],
    },
    Relation {
        name: "merged_as",
        via: Via::Edges(Rel::MergedAs),
        forward: true,
        from: &[I],
        to: &[C],
    },
    Relation {
        name: "merges",
        via: Via::Edges(Rel::MergedAs),
        forward: false,
        from: &[C],
        to: &[I],
    },
    Relation {
        name: "renamed_from",
        via: Via::Edges(Rel::RenamedFrom),
        forward: true,
        from: &[F],
        to: &[F],
    },
    Relation {
        name: "renamed_to",
        via: Via::Edges(Rel::RenamedFrom),
        forward: false,
        from: &[F],
        to: &[F],
    },
    Relation {
        name: "imports",
        via: Via::Edges(Rel::Imports),
        forward: true,
        from: &[F],
        to: &[F],
    },
    Relation {
        name: "introducing",
        via: Via::LineOrigins,
        forward: true,
        from: &[C],
        to: &[F, S],
    },
    Relation {
        name: "introduced_in",
        via: Via::LineOrigins,
        forward: false,
        from: &[F, S],
        to: &[C],
    },
    Relation {
        name: "imported_by",
        via: Via::Edges(Rel::Imports),
        forward: false,
        from: &[F],
        to: &[F],
    },
];

pub fn relation(word: &str) -> Option<&'static Relation> {
    let w = word.to_ascii_lowercase();
    RELATIONS.iter().find(|r| r.name == w)
}

/// Words that are not names: kinds, relations, and clause keywords.
pub const KEYWORDS: [&str; 20] = [
    "explain",
    "where",
    "since",
    "until",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "count",
    "return",
    "and",
    "or",
    "not",
    "contains",
    "matching",
    "similar",
    "to",
    "using",
    "concerning",
];

pub fn is_reserved(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    KEYWORDS.contains(&w.as_str()) || relation(&w).is_some() || Kind::from_word(&w).is_some()
}

/// The kinds reachable from `kind` and the relations that reach them, for error messages.
pub fn relations_from(kind: NodeKind) -> Vec<&'static str> {
    RELATIONS
        .iter()
        .filter(|r| r.from.contains(&kind))
        .map(|r| r.name)
        .collect()
}

/// Edit distance, for "did you mean".
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, if close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&w, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
