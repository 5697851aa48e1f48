//! Turn a file's bytes into symbols and imports with its language's tree-sitter query.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, Parser, Query, QueryCursor, Tree};

use super::edits::{changes, input_edits, Change};
use super::symbol_text::{doc, end_line, go_receiver, is_constant_name, signature, symbol_name};
use crate::code::lang::{blank_cuda, Lang};
use crate::store::records::{SymbolKind, SymbolRecord};

/// What a parse found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    pub lang: Lang,
    pub symbols: Vec<SymbolRecord>,
    /// Imported modules as written (`minillm.worker.memory_utils`, `<cuda_runtime.h>`, `./app`).
    pub imports: Vec<String>,
    /// Bytes covered by syntax errors; the symbols outside them are still valid.
    pub error_bytes: u32,
    /// The tree has errors (including zero-width missing tokens).
    pub has_errors: bool,
}

/// Why a file was not parsed. Each is counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    UnknownLanguage,
    TooLarge,
    /// A line longer than [`ParseLimits::max_line_bytes`]: minified or generated.
    LongLines,
    Timeout,
    MostlyErrors,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::UnknownLanguage => "unknown_language",
            Skip::TooLarge => "too_large",
            Skip::LongLines => "long_lines",
            Skip::Timeout => "timeout",
            Skip::MostlyErrors => "mostly_errors",
        }
    }
}

/// Limits for untrusted input.
#[derive(Debug, Clone)]
pub struct ParseLimits {
    pub max_bytes: usize,
    pub max_line_bytes: usize,
    pub timeout: Duration,
    /// Files whose syntax errors cover more than this share of the bytes are skipped.
    pub max_error_share: f32,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bytes: 1 << 20,
            max_line_bytes: 20_000,
            timeout: Duration::from_secs(2),
            max_error_share: 0.5,
        }
    }
}

/// A reusable parser for every language (one per thread: tree-sitter parsers are not `Sync`).
pub struct CodeParser {
    limits: ParseLimits,
    parsers: HashMap<Lang, Parser>,
}

/// The compiled extraction query of `lang`, built once per process.
fn query(lang: Lang) -> &'static Query {
    static QUERIES: OnceLock<HashMap<Lang, Query>> = OnceLock::new();
    &QUERIES.get_or_init(|| {
        Lang::ALL
            .iter()
            .map(|&l| {
                let query =
                    Query::new(&l.grammar(), l.query_source()).expect("bundled queries compile");
                (l, query)
            })
            .collect()
    })[&lang]
}

impl CodeParser {
    pub fn new(limits: ParseLimits) -> CodeParser {
        CodeParser {
            limits,
            parsers: HashMap::new(),
        }
    }

    /// Parse `content` of the file at `path`.
    pub fn parse(&mut self, path: &str, content: &[u8]) -> Result<ParsedFile, Skip> {
        self.parse_from(path, content, None).0
    }

    /// Parse `content` of the file at `path`, reusing the syntax tree of an earlier version of
    /// the same file where one is given: tree-sitter re-parses only what the edit touched.
    /// The result is the same as a fresh parse. Also returns the base for the next version.
    pub fn parse_from(
        &mut self,
        path: &str,
        content: &[u8],
        base: Option<ParseBase>,
    ) -> (Result<ParsedFile, Skip>, Option<ParseBase>) {
        let Some(lang) = Lang::detect(path, content) else {
            return (Err(Skip::UnknownLanguage), None);
        };
        if content.len() > self.limits.max_bytes {
            return (Err(Skip::TooLarge), None);
        }
        if content
            .split(|&b| b == b'\n')
            .any(|line| line.len() > self.limits.max_line_bytes)
        {
            return (Err(Skip::LongLines), None);
        }
        let source: Vec<u8> = if Lang::is_cuda(path) {
            blank_cuda(content)
        } else {
            content.to_vec()
        };
        let parser = self.parsers.entry(lang).or_insert_with(|| {
            let mut parser = Parser::new();
            parser
                .set_language(&lang.grammar())
                .expect("bundled grammars match the tree-sitter version");
            parser
        });

        let base = base.filter(|b| b.lang == lang).map(|mut b| {
            let changes = changes(&b.source, &source);
            for edit in input_edits(&changes, &b.source, &source) {
                b.tree.edit(&edit);
            }
            (b, changes)
        });
        let started = Instant::now();
        let timeout = self.limits.timeout;
        let mut check = |_: &tree_sitter::ParseState| {
            if started.elapsed() > timeout {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let options = tree_sitter::ParseOptions::new().progress_callback(&mut check);
        let len = source.len();
        let tree = parser.parse_with_options(
            &mut |offset, _| if offset < len { &source[offset..] } else { &[] },
            base.as_ref().map(|(b, _)| &b.tree),
            Some(options),
        );
        parser.reset();
        let Some(tree) = tree else {
            return (Err(Skip::Timeout), None);
        };

        let root = tree.root_node();
        let error_bytes = error_bytes(root);
        if !source.is_empty()
            && error_bytes as f32 / source.len() as f32 > self.limits.max_error_share
        {
            return (Err(Skip::MostlyErrors), None);
        }
        let previous = base
            .as_ref()
            .map(|(b, changes)| (&b.units, changes.as_slice()));
        let (symbols, imports, units, reused_units) =
            extract(lang, query(lang), root, &source, previous);
        drop(base);
        let parsed = ParsedFile {
            lang,
            symbols,
            imports,
            error_bytes,
            has_errors: root.has_error(),
        };
        let next = ParseBase {
            lang,
            source,
            tree,
            units,
            reused_units,
        };
        (Ok(parsed), Some(next))
    }
}

/// A parsed file version kept so that the next version of the same file parses incrementally.
pub struct ParseBase {
    lang: Lang,
    source: Vec<u8>,
    tree: Tree,
    units: Units,
    reused_units: usize,
}

/// What extraction found under each top-level node of a tree, keyed by the node's start byte.
/// A top-level node of the next version whose text (and the whitespace before it) no edit
/// touched, and that spans the same text with the same node kind, takes its symbols from here,
/// shifted, instead of being queried again.
type Units = HashMap<u32, Unit>;

struct Unit {
    start_byte: u32,
    end_byte: u32,
    kind: u16,
    start_row: u32,
    /// In order; `parent` indexes into this list.
    symbols: Vec<SymbolRecord>,
    imports: Vec<String>,
}

impl ParseBase {
    /// Bytes of source held (the tree costs a small multiple of this).
    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Top-level nodes whose symbols were carried over from the previous version.
    pub fn reused_units(&self) -> usize {
        self.reused_units
    }
}

/// Bytes under ERROR nodes (not counting nested ones twice) and missing nodes.
fn error_bytes(root: Node<'_>) -> u32 {
    if !root.has_error() {
        return 0;
    }
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() {
            total += (node.end_byte() - node.start_byte()) as u32;
            continue;
        }
        if !node.has_error() {
            continue;
        }
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor));
    }
    total
}

struct Def<'t> {
    kind: SymbolKind,
    node: Node<'t>,
    name: String,
}

pub(super) fn text<'s>(node: Node<'_>, source: &'s [u8]) -> std::borrow::Cow<'s, str> {
    String::from_utf8_lossy(&source[node.start_byte()..node.end_byte()])
}

/// Symbols and imports of the tree at `root`. With `previous` (the units of an earlier version
/// whose tree this one was parsed from), top-level nodes tree-sitter reused keep their symbols
/// and only the others are queried. Top-level nodes whose doc comments may have changed (the
/// comment and attribute siblings before them) are queried again too.
fn extract(
    lang: Lang,
    query: &Query,
    root: Node<'_>,
    source: &[u8],
    previous: Option<(&Units, &[Change])>,
) -> (Vec<SymbolRecord>, Vec<String>, Units, usize) {
    let mut walker = root.walk();
    let children: Vec<Node<'_>> = root.children(&mut walker).collect();
    let earlier = earlier_units(&children, previous);
    let reused = reused_units(&children, &earlier, previous.is_some());
    // Query the whole tree, or only the top-level nodes that were not reused.
    let ranges = if previous.is_none() {
        std::iter::once(0..usize::MAX).collect()
    } else {
        query_ranges(&children, &reused)
    };
    let (mut found, mut imports) = run_query(lang, query, root, source, &children, &ranges);

    // Outer definitions first, so a parent always comes before its children.
    found.sort_by_key(|(d, _)| (d.node.start_byte(), std::cmp::Reverse(d.node.end_byte())));
    found.dedup_by(|a, b| a.0.node.id() == b.0.node.id());
    imports.sort();
    let mut by_unit: Vec<Vec<Def<'_>>> = children.iter().map(|_| Vec::new()).collect();
    for (def, unit) in found {
        by_unit[unit].push(def);
    }
    let mut imports_by_unit: Vec<Vec<String>> = children.iter().map(|_| Vec::new()).collect();
    for (at, import) in imports {
        let unit = children
            .partition_point(|c| c.start_byte() <= at)
            .saturating_sub(1);
        imports_by_unit[unit].push(import);
    }

    let mut symbols: Vec<SymbolRecord> = Vec::new();
    let mut all_imports: Vec<String> = Vec::new();
    let mut units = Units::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        let unit = match earlier[i].filter(|_| reused[i]) {
            Some(old) => shifted(old, child),
            None => Unit {
                start_byte: child.start_byte() as u32,
                end_byte: child.end_byte() as u32,
                kind: child.kind_id(),
                start_row: child.start_position().row as u32,
                symbols: unit_symbols(lang, std::mem::take(&mut by_unit[i]), source),
                imports: std::mem::take(&mut imports_by_unit[i]),
            },
        };
        let offset = symbols.len() as u32;
        symbols.extend(unit.symbols.iter().map(|s| SymbolRecord {
            parent: s.parent.map(|p| p + offset),
            ..s.clone()
        }));
        all_imports.extend(unit.imports.iter().cloned());
        units.insert(unit.start_byte, unit);
    }
    all_imports.sort();
    all_imports.dedup();
    let reused_units = reused.iter().filter(|r| **r).count();
    (symbols, all_imports, units, reused_units)
}

/// For each top-level node, the earlier version's unit with the same text (and the same
/// whitespace before it), if any.
fn earlier_units<'u>(
    children: &[Node<'_>],
    previous: Option<(&'u Units, &[Change])>,
) -> Vec<Option<&'u Unit>> {
    match previous {
        None => vec![None; children.len()],
        Some((units, changes)) => children
            .iter()
            .enumerate()
            .map(|(i, child)| {
                let gap = if i == 0 {
                    0
                } else {
                    children[i - 1].end_byte()
                };
                let (a, b) = (child.start_byte(), child.end_byte());
                if changes.iter().any(|c| c.new.start <= b && c.new.end >= gap) {
                    return None;
                }
                let shift: isize = changes
                    .iter()
                    .take_while(|c| c.new.end < gap)
                    .map(|c| c.new.len() as isize - c.old.len() as isize)
                    .sum();
                let old_start = (a as isize - shift) as u32;
                units.get(&old_start).filter(|u| {
                    u.end_byte as isize == b as isize - shift && u.kind == child.kind_id()
                })
            })
            .collect(),
    }
}

/// Which top-level nodes keep their earlier unit: the same text, and the comment and attribute
/// siblings a doc comment is read from unchanged too.
fn reused_units(children: &[Node<'_>], earlier: &[Option<&Unit>], incremental: bool) -> Vec<bool> {
    if !incremental {
        return vec![false; children.len()];
    }
    let same: Vec<bool> = earlier.iter().map(Option::is_some).collect();
    (0..children.len())
        .map(|i| {
            if !same[i] {
                return false;
            }
            // The comment and attribute siblings a doc comment is read from.
            children[..i]
                .iter()
                .zip(&same)
                .rev()
                .take_while(|(c, _)| c.kind().contains("comment") || c.kind() == "attribute_item")
                .all(|(_, same)| *same)
        })
        .collect()
}

/// The byte ranges of the top-level nodes that were not reused, adjacent ones merged.
fn query_ranges(children: &[Node<'_>], reused: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for (child, reused) in children.iter().zip(reused) {
        if *reused {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if last.end == child.start_byte() => last.end = child.end_byte(),
            _ => ranges.push(child.start_byte()..child.end_byte()),
        }
    }
    ranges
}

/// A definition and the index of the top-level node it is under.
type UnitDef<'t> = (Def<'t>, usize);

/// The definitions (with the top-level node each is under) and imports (with their start
/// byte) the language's query finds in `ranges`.
fn run_query<'t>(
    lang: Lang,
    query: &Query,
    root: Node<'t>,
    source: &[u8],
    children: &[Node<'t>],
    ranges: &[std::ops::Range<usize>],
) -> (Vec<UnitDef<'t>>, Vec<(usize, String)>) {
    let names = query.capture_names();
    let mut found: Vec<(Def<'t>, usize)> = Vec::new();
    let mut imports: Vec<(usize, String)> = Vec::new();
    let mut cursor = QueryCursor::new();
    for range in ranges {
        cursor.set_byte_range(range.clone());
        let mut matches = cursor.matches(query, root, source);
        while let Some(m) = matches.next() {
            let mut def: Option<(SymbolKind, Node<'_>)> = None;
            let mut name: Option<Node<'_>> = None;
            let (mut from, mut imported): (Option<Node<'_>>, Option<Node<'_>>) = (None, None);
            for capture in m.captures() {
                let capture_name = names[capture.index as usize];
                if let Some(kind) = capture_name.strip_prefix("def.") {
                    def = SymbolKind::from_capture(kind).map(|k| (k, capture.node));
                } else if capture_name == "name" {
                    name = Some(capture.node);
                } else if capture_name == "import" && range.contains(&capture.node.start_byte()) {
                    imports.push((
                        capture.node.start_byte(),
                        text(capture.node, source).trim().to_string(),
                    ));
                } else if capture_name == "import.from" {
                    from = Some(capture.node);
                } else if capture_name == "import.name" {
                    imported = Some(capture.node);
                }
            }
            // `from package import name`: the name may be a module of the package.
            if let (Some(f), Some(n)) = (from, imported) {
                if range.contains(&f.start_byte()) {
                    let statement = format!(
                        "from {} import {}",
                        text(f, source).trim(),
                        text(n, source).trim()
                    );
                    imports.push((f.start_byte(), statement));
                }
            }
            if let (Some((kind, node)), Some(name)) = (def, name) {
                if !range.contains(&node.start_byte()) {
                    continue;
                }
                let name = symbol_name(lang, kind, name, node, source);
                if name.is_empty()
                    || (kind == SymbolKind::Constant
                        && lang == Lang::Python
                        && !is_constant_name(&name))
                {
                    continue;
                }
                let unit = children
                    .partition_point(|c| c.start_byte() <= node.start_byte())
                    .saturating_sub(1);
                found.push((Def { kind, node, name }, unit));
            }
        }
    }
    (found, imports)
}

/// A reused unit moved to where `child` now starts.
fn shifted(old: &Unit, child: &Node<'_>) -> Unit {
    let start_byte = child.start_byte() as u32;
    let start_row = child.start_position().row as u32;
    let (db, dr) = (
        start_byte as i64 - old.start_byte as i64,
        start_row as i64 - old.start_row as i64,
    );
    let byte = |b: u32| (b as i64 + db) as u32;
    let row = |r: u32| (r as i64 + dr) as u32;
    Unit {
        start_byte,
        end_byte: child.end_byte() as u32,
        kind: old.kind,
        start_row,
        symbols: old
            .symbols
            .iter()
            .map(|s| SymbolRecord {
                start_byte: byte(s.start_byte),
                end_byte: byte(s.end_byte),
                start_line: row(s.start_line),
                end_line: row(s.end_line),
                leading_line: row(s.leading_line),
                ..s.clone()
            })
            .collect(),
        imports: old.imports.clone(),
    }
}

/// Symbol records for the definitions under one top-level node, in order; parents index into
/// the returned list.
fn unit_symbols(lang: Lang, defs: Vec<Def<'_>>, source: &[u8]) -> Vec<SymbolRecord> {
    let mut symbols: Vec<SymbolRecord> = Vec::with_capacity(defs.len());
    let mut open: Vec<usize> = Vec::new();
    for def in defs {
        while let Some(&top) = open.last() {
            if symbols[top].end_byte as usize >= def.node.end_byte() {
                break;
            }
            open.pop();
        }
        let parent = open.last().copied();
        let mut kind = def.kind;
        let parent_kind = parent.map(|p| symbols[p].kind);
        if kind == SymbolKind::Function
            && matches!(
                parent_kind,
                Some(SymbolKind::Class | SymbolKind::Struct | SymbolKind::Impl | SymbolKind::Trait)
            )
        {
            kind = SymbolKind::Method;
        }
        let mut qualified = match parent {
            Some(p) => format!(
                "{}{}{}",
                symbols[p].qualified_name,
                lang.separator(),
                def.name
            ),
            None => def.name.clone(),
        };
        if lang == Lang::Go && kind == SymbolKind::Method {
            if let Some(receiver) = go_receiver(def.node, source) {
                qualified = format!("{receiver}.{}", def.name);
            }
        }
        if lang == Lang::Cpp && kind == SymbolKind::Function && def.name.contains("::") {
            kind = SymbolKind::Method;
        }
        let name = match (lang, def.name.rsplit_once("::")) {
            (Lang::Cpp, Some((_, last))) => last.to_string(),
            _ => def.name.clone(),
        };
        let doc = doc(lang, def.node, source);
        symbols.push(SymbolRecord {
            kind,
            name,
            qualified_name: qualified,
            start_byte: def.node.start_byte() as u32,
            end_byte: def.node.end_byte() as u32,
            start_line: def.node.start_position().row as u32 + 1,
            end_line: end_line(def.node),
            signature: signature(lang, def.node, source),
            doc: doc.as_ref().map(|(d, _)| d.clone()),
            leading_line: doc.map_or(def.node.start_position().row as u32 + 1, |(_, row)| {
                row as u32 + 1
            }),
            parent: parent.map(|p| p as u32),
        });
        open.push(symbols.len() - 1);
    }
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tree_sitter::Point;

    fn fixture(rel: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Parse `versions` in order, each from the previous tree, and compare every result with a
    /// fresh parse of the same bytes.
    fn assert_incremental_matches_fresh(path: &str, versions: &[Vec<u8>]) {
        let mut incremental = CodeParser::new(ParseLimits::default());
        let mut fresh = CodeParser::new(ParseLimits::default());
        let mut base = None;
        let mut reused = 0;
        for (i, version) in versions.iter().enumerate() {
            let (got, next) = incremental.parse_from(path, version, base.take());
            let want = fresh.parse(path, version);
            assert_eq!(got, want, "{path} version {i}");
            reused += next.as_ref().map_or(0, ParseBase::reused_units);
            base = next;
        }
        // Units are top-level nodes: a C++ file wrapped in one namespace is re-queried whole.
        let one_namespace = versions[0].windows(10).any(|w| w == b"namespace ");
        assert!(
            reused > 0 || one_namespace,
            "{path}: no symbols were carried over"
        );
    }

    #[test]
    fn incremental_reparse_of_fixture_histories_matches_fresh_parse() {
        for (path, files) in [
            (
                "minillm/worker/memory_utils.py",
                &[
                    "memory_utils.v1.py",
                    "memory_utils.v2.py",
                    "memory_utils.v3.py",
                    "memory_utils.v4.py",
                    "memory_utils.v5.py",
                    "memory_utils.v1.py",
                ][..],
            ),
            (
                "minillm/scheduler.py",
                &["scheduler.v1.py", "scheduler.v2.py", "scheduler.v3.py"][..],
            ),
            (
                "csrc/attention.cu",
                &["attention.v1.cu", "attention.v2.cu", "attention.v3.cu"][..],
            ),
        ] {
            let versions: Vec<Vec<u8>> = files
                .iter()
                .map(|f| fixture(&format!("fixtures/repo-src/{f}")))
                .collect();
            assert_incremental_matches_fresh(path, &versions);
        }
    }

    /// Deterministic edits of every per-language sample: insertions, deletions and changes of
    /// lines at many positions, including edits that break and then repair the syntax.
    #[test]
    fn incremental_reparse_after_line_edits_matches_fresh_parse() {
        for (path, name) in [
            ("a.py", "sampler.py"),
            ("a.rs", "block_table.rs"),
            ("a.c", "ring.c"),
            ("a.cpp", "cache_engine.cpp"),
            ("a.go", "router.go"),
            ("a.js", "client.js"),
            ("a.ts", "metrics.ts"),
        ] {
            let original = fixture(&format!("fixtures/code/{name}"));
            let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
            let mut versions = vec![original.clone()];
            let mut seed = 0x9e37_79b9_u64;
            let mut current: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
            for step in 0..120 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % current.len().max(1);
                match step % 7 {
                    0 => current.insert(at, b"    x = broken(\n".to_vec()),
                    1 => {
                        current.remove(at.min(current.len() - 1));
                    }
                    2 => current[at].insert(0, b'z'),
                    3 => current.insert(at, b"// note\n".to_vec()),
                    4 => {
                        // Move a block of lines elsewhere.
                        let end = (at + 5).min(current.len());
                        let block: Vec<Vec<u8>> = current.drain(at..end).collect();
                        let to = (seed >> 17) as usize % (current.len() + 1);
                        current.splice(to..to, block);
                    }
                    5 => current.insert(at, b"\n".to_vec()),
                    _ => current = lines.iter().map(|l| l.to_vec()).collect(),
                }
                versions.push(current.concat());
            }
            assert_incremental_matches_fresh(path, &versions);
        }
    }

    #[test]
    fn edits_cover_exactly_the_changed_lines() {
        let old = b"a\nb\nc\nd\ne\n";
        let new = b"a\nB\nc\nd\nE\nf\n";
        let edits = input_edits(&changes(old, new), old, new);
        // Last first: "e" -> "E\nf" (the final newline is common), then "b\n" -> "B\n".
        assert_eq!(edits.len(), 2);
        assert_eq!(
            (
                edits[0].start_byte,
                edits[0].old_end_byte,
                edits[0].new_end_byte
            ),
            (8, 9, 11)
        );
        assert_eq!(edits[0].start_position, Point { row: 4, column: 0 });
        assert_eq!(edits[0].new_end_position, Point { row: 5, column: 1 });
        assert_eq!(
            (
                edits[1].start_byte,
                edits[1].old_end_byte,
                edits[1].new_end_byte
            ),
            (2, 4, 4)
        );
        assert!(changes(old, old).is_empty());
    }
}
