//! Files and symbols named in issue text: Python traceback frames, Rust panic locations,
//! C/C++/CUDA compiler diagnostics, repository paths, and backticked identifiers.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::store::records::{evidence, Provenance, SymbolKind};
use crate::store::{NodeId, ReadTx, StoreError};

/// A file or symbol an issue mentions, with the strongest rule that found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mention {
    pub target: NodeId,
    pub provenance: Provenance,
    pub confidence: f32,
    pub evidence: String,
}

struct HeadSymbol {
    id: NodeId,
    start_line: u32,
    end_line: u32,
}

/// Lookup tables over the repository's files and the symbols defined at the code head.
#[derive(Default)]
pub struct CodeIndex {
    /// Path suffix by whole components (`memory_utils.py`, `worker/memory_utils.py`, …) → files.
    by_suffix: HashMap<String, Vec<NodeId>>,
    /// Symbol name and qualified name → symbols.
    symbols_by_name: HashMap<String, Vec<NodeId>>,
    /// Symbols per file, for "which function is line N in".
    symbols_by_file: HashMap<NodeId, Vec<HeadSymbol>>,
    names_in_file: HashMap<(NodeId, String), NodeId>,
}

impl CodeIndex {
    /// Files at the code head (or every file ever seen when the code stage has not run), and
    /// the symbols the head defines.
    pub fn build(read: &ReadTx) -> Result<CodeIndex, StoreError> {
        let head = read.head_files()?;
        let files: Vec<(NodeId, String)> = if head.is_empty() {
            read.all_files()?
        } else {
            head.iter()
                .map(|(f, _)| Ok((*f, read.string(read.file(*f)?.path)?)))
                .collect::<Result<_, StoreError>>()?
        };
        CodeIndex::from_files(read, &files, &head)
    }

    /// Lookup tables over `files` (id, path) and the symbols of the given file versions
    /// (file, blob): the code as it was at any point in history.
    pub fn from_files(
        read: &ReadTx,
        files: &[(NodeId, String)],
        blobs: &[(NodeId, NodeId)],
    ) -> Result<CodeIndex, StoreError> {
        let mut index = CodeIndex::default();
        for (file, path) in files {
            let parts: Vec<&str> = path.split('/').collect();
            for k in 1..=parts.len() {
                let suffix = parts[parts.len() - k..].join("/");
                index.by_suffix.entry(suffix).or_default().push(*file);
            }
        }
        for &(file, blob) in blobs {
            let record = read.blob(blob)?;
            let mut symbols = Vec::new();
            for s in &record.symbols {
                // A line inside a namespace or module says nothing about which code it is.
                let container = s.kind == SymbolKind::Module;
                let Some(qid) = read.string_id(&s.qualified_name)? else {
                    continue;
                };
                let Some(id) = read.symbol_in_file(file, qid)? else {
                    continue;
                };
                if !container {
                    symbols.push(HeadSymbol {
                        id,
                        start_line: s.start_line,
                        end_line: s.end_line,
                    });
                }
                index
                    .symbols_by_name
                    .entry(s.name.clone())
                    .or_default()
                    .push(id);
                if s.qualified_name != s.name {
                    index
                        .symbols_by_name
                        .entry(s.qualified_name.clone())
                        .or_default()
                        .push(id);
                }
                index.names_in_file.insert((file, s.name.clone()), id);
            }
            index.symbols_by_file.insert(file, symbols);
        }
        Ok(index)
    }

    /// The file a path written in text names: the longest suffix of it (by whole components)
    /// that names exactly one repository file. Returns the file and how many components
    /// matched.
    pub fn resolve_path(&self, written: &str) -> Option<(NodeId, usize)> {
        let cleaned = written.replace('\\', "/");
        let parts: Vec<&str> = cleaned
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for k in (1..=parts.len()).rev() {
            let suffix = parts[parts.len() - k..].join("/");
            match self.by_suffix.get(&suffix).map(Vec::as_slice) {
                Some([one]) => return Some((*one, k)),
                Some(_) => return None,
                None => continue,
            }
        }
        None
    }

    /// The innermost head symbol of `file` containing `line`.
    fn symbol_at(&self, file: NodeId, line: u32) -> Option<NodeId> {
        self.symbols_by_file
            .get(&file)?
            .iter()
            .filter(|s| s.start_line <= line && line <= s.end_line)
            .min_by_key(|s| s.end_line - s.start_line)
            .map(|s| s.id)
    }

    /// Mentions in `text`, one per target with its strongest evidence.
    pub fn mentions(&self, text: &str) -> Vec<Mention> {
        static FRAME: OnceLock<Regex> = OnceLock::new();
        static PANIC: OnceLock<Regex> = OnceLock::new();
        static DIAG: OnceLock<Regex> = OnceLock::new();
        static NVCC: OnceLock<Regex> = OnceLock::new();
        static PATH: OnceLock<Regex> = OnceLock::new();
        static IDENT: OnceLock<Regex> = OnceLock::new();
        let re = |cell: &'static OnceLock<Regex>, p: &str| -> &'static Regex {
            cell.get_or_init(|| Regex::new(p).expect("valid regex"))
        };
        let mut found: Vec<Mention> = Vec::new();
        fn add(
            found: &mut Vec<Mention>,
            target: NodeId,
            provenance: Provenance,
            confidence: f32,
            line: &str,
        ) {
            found.push(Mention {
                target,
                provenance,
                confidence,
                evidence: evidence(line),
            });
        }
        for line in text.lines() {
            // Python: File "/usr/lib/.../minillm/worker/memory_utils.py", line 88, in free_blocks
            for c in re(&FRAME, r#"File "([^"]+)", line (\d+), in ([\w<>.]+)"#).captures_iter(line)
            {
                if let Some((file, _)) = self.resolve_path(&c[1]) {
                    add(&mut found, file, Provenance::Traceback, 0.9, line);
                    if let Some(sym) = self.names_in_file.get(&(file, c[3].to_string())) {
                        add(&mut found, *sym, Provenance::Traceback, 0.9, line);
                    }
                }
            }
            let located = |cell, pattern, provenance, found: &mut Vec<Mention>| {
                for c in re(cell, pattern).captures_iter(line) {
                    let Some((file, _)) = self.resolve_path(&c[1]) else {
                        continue;
                    };
                    let m = |target| Mention {
                        target,
                        provenance,
                        confidence: 0.9,
                        evidence: evidence(line),
                    };
                    found.push(m(file));
                    if let Some(sym) = c[2].parse().ok().and_then(|l| self.symbol_at(file, l)) {
                        found.push(Mention {
                            confidence: 0.8,
                            ..m(sym)
                        });
                    }
                }
            };
            if line.contains("panicked at") {
                located(
                    &PANIC,
                    r"([\w./-]+\.rs):(\d+):\d+",
                    Provenance::RustPanic,
                    &mut found,
                );
            }
            located(
                &DIAG,
                r"([\w./-]+\.(?:c|cc|cpp|cxx|h|hh|hpp|cu|cuh)):(\d+)(?::\d+)?:\s*(?:fatal )?error",
                Provenance::CompilerError,
                &mut found,
            );
            located(
                &NVCC,
                r"([\w./-]+\.(?:cu|cuh|h|hpp|cpp))\((\d+)\): (?:catastrophic )?error",
                Provenance::CompilerError,
                &mut found,
            );
            for c in re(
                &PATH,
                r"(?:^|[\s`'(\[])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:py|pyi|rs|c|cc|cpp|cxx|h|hh|hpp|cu|cuh|go|js|jsx|ts|tsx|md|toml|ya?ml|json|txt|cfg|sh))\b",
            )
            .captures_iter(line)
            {
                if let Some((file, k)) = self.resolve_path(&c[1]) {
                    let confidence = if k >= 2 { 0.8 } else { 0.6 };
                    found.push(Mention {
                        target: file,
                        provenance: Provenance::PathInText,
                        confidence,
                        evidence: evidence(line),
                    });
                }
            }
            for c in re(
                &IDENT,
                r"`([A-Za-z_]\w*(?:(?:\.|::)[A-Za-z_]\w*)*)(?:\(\))?`",
            )
            .captures_iter(line)
            {
                let name = &c[1];
                let name = name.replace("::", ".");
                let candidates = self
                    .symbols_by_name
                    .get(&name)
                    .or_else(|| self.symbols_by_name.get(&c[1]));
                if let Some(ids) = candidates {
                    if ids.len() <= 5 {
                        for id in ids {
                            found.push(Mention {
                                target: *id,
                                provenance: Provenance::Identifier,
                                confidence: 0.8 / ids.len() as f32,
                                evidence: evidence(line),
                            });
                        }
                    }
                }
            }
        }
        // One mention per target: the most confident, the first found among equals.
        let mut best: Vec<Mention> = Vec::new();
        for m in found {
            match best.iter_mut().find(|b| b.target == m.target) {
                Some(b) if m.confidence > b.confidence => *b = m,
                Some(_) => {}
                None => best.push(m),
            }
        }
        best
    }
}
