//! Turn a file's bytes into symbols and imports with its language's tree-sitter query.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, Parser, Query, QueryCursor, Tree};

use super::edits::{changes, Change};
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

    /// Parse `content` of the file at `path`. Given `base`, an earlier version of the same
    /// file, only the top-level nodes the change touched are parsed again (see [`splice`]); the
    /// result is the same as a fresh parse. Also returns the base for the next version.
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
        if longest_line(content) > self.limits.max_line_bytes {
            return (Err(Skip::LongLines), None);
        }
        let source: Vec<u8> = if Lang::is_cuda(path) {
            blank_cuda(content)
        } else {
            content.to_vec()
        };
        let timeout = self.limits.timeout;
        let parser = self.parsers.entry(lang).or_insert_with(|| {
            let mut parser = Parser::new();
            parser
                .set_language(&lang.grammar())
                .expect("bundled grammars match the tree-sitter version");
            parser
        });

        if let Some(base) = base.filter(|b| b.lang == lang && b.spliceable) {
            if let Some((units, reused_units)) = splice(parser, lang, &base, &source, timeout) {
                let error_bytes: u32 = units.iter().map(|u| u.error_bytes).sum();
                let has_errors = units.iter().any(|u| u.has_error);
                let spliced = Parsed {
                    lang,
                    source,
                    units,
                    error_bytes,
                    has_errors,
                    spliceable: true,
                    spliced: true,
                    reused_units,
                };
                return spliced.finish(&self.limits);
            }
        }

        let Some(tree) = parse_tree(parser, &source, timeout) else {
            return (Err(Skip::Timeout), None);
        };
        let root = tree.root_node();
        let error_bytes = error_bytes(root);
        if mostly_errors(&self.limits, error_bytes, source.len()) {
            return (Err(Skip::MostlyErrors), None);
        }
        let parsed = Parsed {
            lang,
            units: extract(lang, query(lang), root, &source),
            source,
            error_bytes,
            has_errors: root.has_error(),
            spliceable: errors_contained(root, lang),
            spliced: false,
            reused_units: 0,
        };
        parsed.finish(&self.limits)
    }
}

/// Syntax errors cover more of the file than the limits allow.
/// The length of the longest line of `text` in bytes, without its line end.
fn longest_line(text: &[u8]) -> usize {
    let mut longest = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', text) {
        longest = longest.max(end - start);
        start = end + 1;
    }
    longest.max(text.len() - start)
}

fn mostly_errors(limits: &ParseLimits, error_bytes: u32, len: usize) -> bool {
    len > 0 && error_bytes as f32 / len as f32 > limits.max_error_share
}

/// A file version's units, however they were found, before they become its symbols and the
/// base for its next version.
struct Parsed {
    lang: Lang,
    source: Vec<u8>,
    units: Vec<Unit>,
    error_bytes: u32,
    has_errors: bool,
    spliceable: bool,
    spliced: bool,
    reused_units: usize,
}

impl Parsed {
    fn finish(self, limits: &ParseLimits) -> (Result<ParsedFile, Skip>, Option<ParseBase>) {
        if mostly_errors(limits, self.error_bytes, self.source.len()) {
            return (Err(Skip::MostlyErrors), None);
        }
        let (symbols, imports) = flatten(&self.units);
        let parsed = ParsedFile {
            lang: self.lang,
            symbols,
            imports,
            error_bytes: self.error_bytes,
            has_errors: self.has_errors,
        };
        let next = ParseBase {
            lang: self.lang,
            source: self.source,
            units: self.units,
            spliceable: self.spliceable,
            spliced: self.spliced,
            reused_units: self.reused_units,
        };
        (Ok(parsed), Some(next))
    }
}

/// Parse `source` from scratch, giving up after `timeout`.
fn parse_tree(parser: &mut Parser, source: &[u8], timeout: Duration) -> Option<Tree> {
    let started = Instant::now();
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
        None,
        Some(options),
    );
    parser.reset();
    tree
}

/// A parsed file version kept so that the next version of the same file parses only what
/// changed.
pub struct ParseBase {
    lang: Lang,
    source: Vec<u8>,
    /// What extraction found under each top-level node, in order.
    units: Vec<Unit>,
    /// Any syntax errors of the version lie inside top-level nodes (no top-level node is an
    /// error): only then are its units spliced. A unit with errors is kept as it is while
    /// every change lies before it; a change at or after it parses the whole file.
    spliceable: bool,
    /// This version was parsed from the previous version's units, not whole.
    spliced: bool,
    reused_units: usize,
}

/// What extraction found under one node of a file: a top-level node, or a member of a
/// container's body (an `impl`, `trait` or `mod` block, a class, a namespace).
#[derive(Clone, PartialEq)]
struct Unit {
    start_byte: u32,
    end_byte: u32,
    start_row: u32,
    /// A comment or an attribute: the doc comment of the definition after it is read from it.
    doc_context: bool,
    /// Bytes under syntax errors in the node, and whether it has any (missing tokens too).
    error_bytes: u32,
    has_error: bool,
    /// A syntax error lies outside the unit's members (anywhere in it, when it has none).
    own_error: bool,
    /// The symbols outside the members (all of them when there is no body), outer first;
    /// `parent` indexes into this list.
    symbols: Vec<SymbolRecord>,
    imports: Vec<String>,
    body: Option<Body>,
}

/// The members of a container, each a unit of its own, so that a change inside one member
/// parses only that member again.
#[derive(Clone, PartialEq)]
struct Body {
    /// Where members live: after the opening brace and before the closing one (for a Python
    /// class, the block).
    inner: (u32, u32),
    /// The symbol (an index into the unit's `symbols`) the members' outermost symbols are under.
    parent: Option<u32>,
    members: Vec<Unit>,
}

impl ParseBase {
    /// Bytes of source held (the units cost a small multiple of this).
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// The source parsed: the file's bytes, except in CUDA files, whose CUDA-only syntax is
    /// blanked before parsing.
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Units (top-level nodes, members, statements) whose symbols were carried over from the
    /// previous version.
    pub fn reused_units(&self) -> usize {
        self.reused_units
    }

    /// Whether this version was parsed from the previous version's units rather than whole.
    pub fn spliced(&self) -> bool {
        self.spliced
    }
}

/// Whether every syntax error of the tree lies inside a top-level node, none of which is an
/// error or a missing token itself.
///
/// Only visible nodes can be inspected: a missing hidden token (Python's `_newline`, `_indent`
/// and `_dedent`, the automatic semicolon of JavaScript and TypeScript) marks the root as
/// having an error while no child shows one. Such an error belongs to no top-level node, so a
/// tree whose root has an error that no visible child accounts for is not contained, and in
/// the languages with hidden statement terminators a root with any error is not either: a
/// hidden missing terminator may sit beside the visible errors.
fn errors_contained(root: Node<'_>, lang: Lang) -> bool {
    if !root.has_error() {
        return true;
    }
    if root.is_error() || root.is_missing() {
        return false;
    }
    if matches!(
        lang,
        Lang::Python | Lang::JavaScript | Lang::TypeScript | Lang::Tsx
    ) {
        return false;
    }
    let mut walker = root.walk();
    let mut visible_error = false;
    for child in root.children(&mut walker) {
        if child.is_error() || child.is_missing() {
            return false;
        }
        visible_error |= child.has_error();
    }
    visible_error
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

/// Whether `node` has a syntax error outside the subtrees of `members` (its children's
/// children: a container's member nodes).
fn errors_outside(node: Node<'_>, members: &[Node<'_>]) -> bool {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if n.is_error() || n.is_missing() {
            return true;
        }
        if !n.has_error() || members.iter().any(|m| m.id() == n.id()) {
            continue;
        }
        let mut cursor = n.walk();
        stack.extend(n.children(&mut cursor));
    }
    false
}

/// Whether every syntax error under `root` is an ERROR node within the bytes `span`, with no
/// missing token anywhere: a missing token is how an unclosed construct shows, and what it
/// swallows in the file depends on the text after the run.
fn errors_within(root: Node<'_>, span: &std::ops::Range<usize>) -> bool {
    let mut found = false;
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.is_missing() {
            return false;
        }
        if n.is_error() {
            if n.start_byte() < span.start || n.end_byte() > span.end {
                return false;
            }
            found = true;
            continue;
        }
        if n.has_error() {
            let mut cursor = n.walk();
            stack.extend(n.children(&mut cursor));
        }
    }
    // An error no visible node shows (a missing hidden token) is not within anything.
    found
}

struct Def<'t> {
    kind: SymbolKind,
    node: Node<'t>,
    name: String,
}

pub(super) fn text<'s>(node: Node<'_>, source: &'s [u8]) -> std::borrow::Cow<'s, str> {
    String::from_utf8_lossy(&source[node.start_byte()..node.end_byte()])
}

/// The symbols (parents re-indexed) and the sorted, distinct imports of a file's units.
fn flatten(units: &[Unit]) -> (Vec<SymbolRecord>, Vec<String>) {
    let mut symbols: Vec<SymbolRecord> = Vec::new();
    let mut imports: Vec<String> = Vec::new();
    for unit in units {
        flatten_into(unit, None, &mut symbols, &mut imports);
    }
    imports.sort();
    imports.dedup();
    (symbols, imports)
}

fn flatten_into(
    unit: &Unit,
    parent: Option<u32>,
    symbols: &mut Vec<SymbolRecord>,
    imports: &mut Vec<String>,
) {
    let offset = symbols.len() as u32;
    symbols.extend(unit.symbols.iter().map(|s| SymbolRecord {
        parent: s.parent.map(|p| p + offset).or(parent),
        ..s.clone()
    }));
    imports.extend(unit.imports.iter().cloned());
    if let Some(body) = &unit.body {
        let parent = body.parent.map(|p| p + offset);
        for member in &body.members {
            flatten_into(member, parent, symbols, imports);
        }
    }
}

/// The units (symbols and imports under each top-level node) of the tree at `root`.
fn extract(lang: Lang, query: &Query, root: Node<'_>, source: &[u8]) -> Vec<Unit> {
    let mut walker = root.walk();
    let children: Vec<Node<'_>> = root.children(&mut walker).collect();
    let (mut found, mut imports) = run_query(lang, query, root, source, &children);

    // Outer definitions first, so a parent always comes before its children.
    found.sort_by_key(|(d, _)| (d.node.start_byte(), std::cmp::Reverse(d.node.end_byte())));
    found.dedup_by(|a, b| a.0.node.id() == b.0.node.id());
    imports.sort();
    let mut by_unit: Vec<Vec<Def<'_>>> = children.iter().map(|_| Vec::new()).collect();
    for (def, unit) in found {
        by_unit[unit].push(def);
    }
    let mut imports_by_unit: Vec<Vec<(usize, String)>> =
        children.iter().map(|_| Vec::new()).collect();
    for (at, import) in imports {
        let unit = children
            .partition_point(|c| c.start_byte() <= at)
            .saturating_sub(1);
        imports_by_unit[unit].push((at, import));
    }
    children
        .iter()
        .enumerate()
        .map(|(i, child)| {
            let symbols = unit_symbols(lang, std::mem::take(&mut by_unit[i]), source);
            build_unit(
                lang,
                *child,
                symbols,
                std::mem::take(&mut imports_by_unit[i]),
            )
        })
        .collect()
}

/// The unit of `node` from its symbols (outer first, parents indexing into the list) and its
/// imports (with their start bytes), split into members where `node` is a container whose
/// symbols nest cleanly: the container's own symbols first, every member's outermost symbols
/// under the same one of them. Otherwise the unit keeps its symbols as one list.
fn build_unit(
    lang: Lang,
    node: Node<'_>,
    symbols: Vec<SymbolRecord>,
    imports: Vec<(usize, String)>,
) -> Unit {
    let mut unit = Unit {
        start_byte: node.start_byte() as u32,
        end_byte: node.end_byte() as u32,
        start_row: node.start_position().row as u32,
        doc_context: node.kind().contains("comment") || node.kind() == "attribute_item",
        error_bytes: error_bytes(node),
        has_error: node.has_error(),
        own_error: node.has_error(),
        symbols: Vec::new(),
        imports: Vec::new(),
        body: None,
    };
    let Some((inner, members)) = container_body(lang, node) else {
        unit.symbols = symbols;
        unit.imports = imports.into_iter().map(|(_, i)| i).collect();
        return unit;
    };
    let member_of = |byte: usize| -> Option<usize> {
        let k = members.partition_point(|m| m.start_byte() <= byte);
        (k > 0 && byte < members[k - 1].end_byte()).then(|| k - 1)
    };
    let owner: Vec<Option<usize>> = symbols
        .iter()
        .map(|s| member_of(s.start_byte as usize))
        .collect();
    // The container's own symbols come before every member's.
    let own = owner.iter().take_while(|o| o.is_none()).count();
    let nested_cleanly = owner[own..].iter().all(Option::is_some)
        && symbols[..own]
            .iter()
            .all(|s| s.parent.is_none_or(|p| (p as usize) < own));
    // The parent of every member's outermost symbols: the innermost own symbol around the
    // body (the container's own symbol), decided by position so that a member added later
    // gets it too.
    let parent: Option<u32> = (0..own)
        .rev()
        .find(|&p| symbols[p].start_byte <= inner.0 && symbols[p].end_byte >= inner.1)
        .map(|p| p as u32);
    let mut agree = true;
    for (i, s) in symbols.iter().enumerate().skip(own) {
        let outside = match s.parent {
            Some(p) if owner[p as usize] == owner[i] => continue,
            Some(p) if (p as usize) < own => Some(p),
            Some(_) => {
                agree = false;
                break;
            }
            None => None,
        };
        if outside != parent {
            agree = false;
            break;
        }
    }
    if !nested_cleanly || !agree {
        unit.symbols = symbols;
        unit.imports = imports.into_iter().map(|(_, i)| i).collect();
        return unit;
    }
    let mut member_symbols: Vec<Vec<SymbolRecord>> = members.iter().map(|_| Vec::new()).collect();
    let mut index_in_member = vec![0u32; symbols.len()];
    let mut own_symbols = Vec::with_capacity(own);
    for (i, s) in symbols.into_iter().enumerate() {
        match owner[i] {
            None => own_symbols.push(s),
            Some(k) => {
                let parent = s
                    .parent
                    .filter(|&p| owner[p as usize] == Some(k))
                    .map(|p| index_in_member[p as usize]);
                index_in_member[i] = member_symbols[k].len() as u32;
                member_symbols[k].push(SymbolRecord { parent, ..s });
            }
        }
    }
    let mut member_imports: Vec<Vec<(usize, String)>> =
        members.iter().map(|_| Vec::new()).collect();
    let mut own_imports = Vec::new();
    for (at, import) in imports {
        match member_of(at) {
            Some(k) => member_imports[k].push((at, import)),
            None => own_imports.push(import),
        }
    }
    unit.symbols = own_symbols;
    unit.imports = own_imports;
    unit.own_error = unit.has_error && errors_outside(node, &members);
    unit.body = Some(Body {
        inner,
        parent,
        members: members
            .iter()
            .zip(member_symbols)
            .zip(member_imports)
            .map(|((m, s), i)| build_unit(lang, *m, s, i))
            .collect(),
    });
    unit
}

/// Where a container's members live and the members themselves, for the containers whose
/// members are split into units: Rust `impl`, `trait` and inline `mod` blocks and function
/// bodies (statements), Python classes and function bodies (decorated or not), C++ namespaces
/// and JavaScript/TypeScript classes.
fn container_body(lang: Lang, node: Node<'_>) -> Option<((u32, u32), Vec<Node<'_>>)> {
    let container = match (lang, node.kind()) {
        (Lang::Rust, "impl_item" | "trait_item" | "mod_item" | "function_item")
        | (Lang::Python, "class_definition" | "function_definition")
        | (Lang::Cpp, "namespace_definition")
        | (
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
            "class_declaration" | "abstract_class_declaration",
        ) => node,
        (Lang::Python, "decorated_definition") => node
            .child_by_field_name("definition")
            .filter(|d| matches!(d.kind(), "class_definition" | "function_definition"))?,
        _ => return None,
    };
    let body = container.child_by_field_name("body")?;
    let mut walker = body.walk();
    let children: Vec<Node<'_>> = body.children(&mut walker).collect();
    if lang == Lang::Python {
        if body.kind() != "block" || children.is_empty() {
            return None;
        }
        return Some(((body.start_byte() as u32, body.end_byte() as u32), children));
    }
    let (open, close) = (children.first()?, children.last()?);
    if children.len() < 2 || open.kind() != "{" || close.kind() != "}" {
        return None;
    }
    let inner = (open.end_byte() as u32, close.start_byte() as u32);
    Some((inner, children[1..children.len() - 1].to_vec()))
}

/// The units of `new`, a later version of `base`'s file, parsing only the nodes a change
/// reached. `None` where that cannot be done exactly; the caller parses the whole file.
///
/// At each level (the top-level nodes, then the members of a container), a unit is parsed
/// again when a change touches it or the whitespace on either side of it (inserted text there
/// may join it), when it is a comment or attribute next to such a unit (a definition's doc
/// comment is read from the siblings before it), or when it is the definition after a changed
/// comment. A container whose changes all lie inside its braces is not parsed itself: its
/// members are spliced the same way. Each run of units to parse, with the whitespace around
/// it, is parsed on its own, wrapped in the unchanged opening and closing text of the
/// containers around it (`impl Foo {` … `}`), so it parses exactly as it does inside the file;
/// the other units keep their symbols, moved by the bytes and lines inserted before them.
/// Top-level nodes and members of the languages lore reads are self-contained (a Rust item, a
/// Python statement, a C declaration), so a run that parses without errors parses the same in
/// the file; a run with errors falls back to its container, and at the top to the whole file.
/// A unit with syntax errors inside it is kept while every change lies before it. `benches/code.rs`
/// checks every version of real histories against a fresh parse.
fn splice(
    parser: &mut Parser,
    lang: Lang,
    base: &ParseBase,
    new: &[u8],
    timeout: Duration,
) -> Option<(Vec<Unit>, usize)> {
    let old = &base.source[..];
    let changes = changes(old, new);
    if changes.is_empty() {
        return Some((base.units.clone(), base.units.len()));
    }
    // How far each change moves what follows it, in bytes and lines, summed over the changes.
    let mut moved = vec![(0i64, 0i64)];
    for c in &changes {
        let lines =
            |r: std::ops::Range<usize>, s: &[u8]| memchr::memchr_iter(b'\n', &s[r]).count() as i64;
        let last = moved[moved.len() - 1];
        moved.push((
            last.0 + c.new.len() as i64 - c.old.len() as i64,
            last.1 + lines(c.new.clone(), new) - lines(c.old.clone(), old),
        ));
    }
    let mut splicer = Splicer {
        parser,
        lang,
        old,
        new,
        changes,
        moved,
        timeout,
        reused: 0,
    };
    let units = splicer.level(&base.units, 0, old.len(), &[])?;
    Some((units, splicer.reused))
}

struct Splicer<'a> {
    parser: &'a mut Parser,
    lang: Lang,
    old: &'a [u8],
    new: &'a [u8],
    changes: Vec<Change>,
    /// `moved[k]`: the bytes and lines the first `k` changes insert.
    moved: Vec<(i64, i64)>,
    timeout: Duration,
    reused: usize,
}

/// The opening and closing text (byte ranges of the new version) of a container around a run.
type Wrap = (std::ops::Range<usize>, std::ops::Range<usize>);

impl Splicer<'_> {
    /// The move of an old position that starts a span: changes entirely before it count,
    /// an insertion at it belongs to the span.
    fn moved_before(&self, p: usize) -> (i64, i64) {
        self.moved[self
            .changes
            .partition_point(|c| c.old.start < p && c.old.end <= p)]
    }

    /// The move of an old position that ends a span: an insertion at it belongs to the span.
    fn moved_through(&self, p: usize) -> (i64, i64) {
        self.moved[self.changes.partition_point(|c| c.old.start <= p)]
    }

    /// The units of one level in their new places. `units` live in the old bytes `lo..hi`
    /// (all of the file at the top, a container's inside below); `wraps` are the containers
    /// around them, outermost first.
    fn level(&mut self, units: &[Unit], lo: usize, hi: usize, wraps: &[Wrap]) -> Option<Vec<Unit>> {
        let n = units.len();
        if n == 0 {
            return None;
        }
        // What a unit reaches: from the end of the one before to the start of the one after.
        let reach_start = |i: usize| {
            if i == 0 {
                lo
            } else {
                units[i - 1].end_byte as usize
            }
        };
        let reach_end = |i: usize| {
            if i + 1 == n {
                hi
            } else {
                units[i + 1].start_byte as usize
            }
        };
        let mut hit = vec![false; n];
        for c in &self.changes {
            let mut i = first_index(n, |i| reach_end(i) >= c.old.start);
            while i < n && reach_start(i) <= c.old.end {
                hit[i] = true;
                i += 1;
            }
        }
        // A container whose changes all lie inside its braces keeps its own symbols, and with
        // them the doc comment read from the units before it: its members are spliced, and the
        // comments before it are not parsed again, as long as it is a run of its own.
        let inside: Vec<bool> = (0..n)
            .map(|i| hit[i] && self.changes_inside(&units[i], reach_start(i), reach_end(i)))
            .collect();
        // How the parser recovers from a syntax error may depend on the text after it: a unit
        // with errors is parsed again with the unit after it when that one changed (and a run
        // with errors is checked against the unit after it, in `parse_run`).
        let changed = hit.clone();
        for i in 1..n {
            if changed[i] && units[i - 1].has_error {
                hit[i - 1] = true;
            }
        }
        loop {
            let before = hit.clone();
            // A changed comment changes the doc of the definition after it.
            for i in 0..n - 1 {
                if hit[i] && units[i].doc_context {
                    hit[i + 1] = true;
                }
            }
            // A definition parsed again is parsed with its doc comment. A container whose
            // changes all lie inside its braces is not parsed again (below), unless its members
            // cannot be spliced; then its doc comments are added to the run there.
            for i in (1..n).rev() {
                if hit[i] && !inside[i] && units[i - 1].doc_context {
                    hit[i - 1] = true;
                }
            }
            if hit == before {
                break;
            }
        }
        // A Python class's docstring is its first member.
        if self.lang == Lang::Python && !wraps.is_empty() && hit[0] {
            return None;
        }

        // The containers spliced member by member instead of parsed again, even inside a run of
        // touched units: those with every change inside their braces whose doc cannot have
        // changed (the unit before is not a touched comment) and whose parse cannot depend on
        // a touched neighbour (a unit with errors before it is parsed with it; its own errors'
        // recovery may depend on the text after it). Decided last to first: a container whose
        // members cannot be spliced is parsed after all, with the comments before it.
        let mut spliced: Vec<Option<Unit>> = (0..n).map(|_| None).collect();
        for i in (0..n).rev() {
            let doc_or_error_before =
                i > 0 && hit[i - 1] && (units[i - 1].doc_context || units[i - 1].has_error);
            let error_before_change = units[i].has_error && i + 1 < n && hit[i + 1];
            if !inside[i] {
                continue;
            }
            if !doc_or_error_before && !error_before_change {
                spliced[i] = self.container(&units[i], reach_start(i), reach_end(i), wraps);
            }
            if spliced[i].is_none() {
                let mut k = i;
                while k > 0 && units[k - 1].doc_context {
                    k -= 1;
                    hit[k] = true;
                }
            }
        }
        // The comments added may reach a Python class's first member.
        if self.lang == Lang::Python && !wraps.is_empty() && hit[0] {
            return None;
        }

        let mut out: Vec<Unit> = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            if let Some(unit) = spliced[i].take() {
                out.push(unit);
                i += 1;
                continue;
            }
            if !hit[i] {
                let u = &units[i];
                let (s, e) = (u.start_byte as usize, u.end_byte as usize);
                let (db, dr) = self.moved_before(s);
                let ns = (s as i64 + db) as usize;
                // The unit's text must be where the move puts it; anything else is a mistake
                // in the change list, and the whole file is parsed instead.
                if self.new.get(ns..ns + (e - s)) != Some(&self.old[s..e]) {
                    return None;
                }
                out.push(shift_unit(u, db, dr));
                self.reused += 1;
                i += 1;
                continue;
            }
            // A run of touched units, up to the next unit that is untouched or spliced.
            let first = i;
            while i < n && hit[i] && spliced[i].is_none() {
                i += 1;
            }
            let last = i - 1;
            // The unit after the run in its new place: spliced, or unchanged and moved.
            let moved_after;
            let after = match (spliced.get(i), units.get(i)) {
                (Some(Some(unit)), _) => Some(unit),
                (_, Some(u)) => {
                    let (db, dr) = self.moved_before(u.start_byte as usize);
                    moved_after = shift_unit(u, db, dr);
                    Some(&moved_after)
                }
                _ => None,
            };
            let span_lo = if first == 0 && wraps.is_empty() {
                0
            } else {
                let p = reach_start(first);
                (p as i64 + self.moved_before(p).0) as usize
            };
            let span_hi = if last + 1 == n && wraps.is_empty() {
                self.new.len()
            } else {
                let p = reach_end(last);
                (p as i64 + self.moved_through(p).0) as usize
            };
            out.extend(self.parse_run(span_lo, span_hi, wraps, after)?);
        }
        Some(out)
    }

    /// Whether `unit` is a container with no syntax errors of its own and every change that
    /// reaches it (between the old bytes `reach_lo` and `reach_hi`) lies inside its braces.
    fn changes_inside(&self, unit: &Unit, reach_lo: usize, reach_hi: usize) -> bool {
        let Some(body) = unit.body.as_ref().filter(|_| !unit.own_error) else {
            return false;
        };
        let (inner_lo, inner_hi) = (body.inner.0 as usize, body.inner.1 as usize);
        self.changes
            .iter()
            .filter(|c| c.old.start <= reach_hi && c.old.end >= reach_lo)
            .all(|c| {
                // A Python block ends where its last statement does: a change that reaches
                // that end may move it in ways no shift tells.
                let end_ok = if self.lang == Lang::Python {
                    c.old.end < inner_hi
                } else {
                    c.old.end <= inner_hi
                };
                c.old.start >= inner_lo && end_ok
            })
    }

    /// A container all of whose changes lie inside its braces, with its members spliced.
    fn container(
        &mut self,
        unit: &Unit,
        reach_lo: usize,
        reach_hi: usize,
        wraps: &[Wrap],
    ) -> Option<Unit> {
        if !self.changes_inside(unit, reach_lo, reach_hi) {
            return None;
        }
        let body = unit.body.as_ref()?;
        let (inner_lo, inner_hi) = (body.inner.0 as usize, body.inner.1 as usize);
        let (s, e) = (unit.start_byte as usize, unit.end_byte as usize);
        let (db0, dr0) = self.moved_before(s);
        let (db1, dr1) = self.moved_through(inner_hi);
        let at = |p: usize, d: i64| (p as i64 + d) as usize;
        let opening = at(s, db0)..at(inner_lo, db0);
        let closing = at(inner_hi, db1)..at(e, db1);
        if self.new.get(opening.clone()) != Some(&self.old[s..inner_lo])
            || self.new.get(closing.clone()) != Some(&self.old[inner_hi..e])
        {
            return None;
        }
        let mut inner_wraps = wraps.to_vec();
        inner_wraps.push((opening, closing));
        let members = self.level(&body.members, inner_lo, inner_hi, &inner_wraps)?;
        // With no errors of its own, the container's errors are its members'.
        let error_bytes = members.iter().map(|m| m.error_bytes).sum();
        let has_error = members.iter().any(|m| m.has_error);
        let start = |b: u32| (b as i64 + db0) as u32;
        let end = |b: u32| (b as i64 + db1) as u32;
        let (start_row, end_row) = (
            |r: u32| (r as i64 + dr0) as u32,
            |r: u32| (r as i64 + dr1) as u32,
        );
        Some(Unit {
            start_byte: start(unit.start_byte),
            end_byte: end(unit.end_byte),
            start_row: start_row(unit.start_row),
            doc_context: unit.doc_context,
            error_bytes,
            has_error,
            own_error: false,
            symbols: unit
                .symbols
                .iter()
                .map(|sym| SymbolRecord {
                    start_byte: start(sym.start_byte),
                    end_byte: end(sym.end_byte),
                    start_line: start_row(sym.start_line),
                    end_line: end_row(sym.end_line),
                    leading_line: start_row(sym.leading_line),
                    ..sym.clone()
                })
                .collect(),
            imports: unit.imports.clone(),
            body: Some(Body {
                inner: (start(body.inner.0), end(body.inner.1)),
                parent: body.parent,
                members,
            }),
        })
    }

    /// Parse the new bytes `lo..hi` inside the opening and closing text of `wraps`, and return
    /// the units found there, in the file's positions. `after` is the unchanged unit that
    /// follows the run at its level, in its new place (none at the end of a level).
    ///
    /// A run that parses without errors parses the same in the file. A run with errors is kept
    /// at the end of the file with its errors inside its top-level nodes; elsewhere only with
    /// its errors as ERROR nodes inside the run (no missing token, the sign of an unclosed
    /// construct that would swallow the text after it), followed by an unchanged unit at its
    /// level, and if the run parsed together with that unit gives the same units and that unit
    /// as it was.
    fn parse_run(
        &mut self,
        lo: usize,
        hi: usize,
        wraps: &[Wrap],
        after: Option<&Unit>,
    ) -> Option<Vec<Unit>> {
        let (units, has_error) = self.parse_wrapped(lo, hi, wraps)?;
        if !has_error || (wraps.is_empty() && hi == self.new.len()) {
            return Some(units);
        }
        // At the end of a container's members the text after the run is the rest of the file:
        // the container is parsed again instead, at its own level.
        let after = after?;
        let (mut with_after, _) = self.parse_wrapped(lo, after.end_byte as usize, wraps)?;
        (with_after.pop().as_ref() == Some(after) && with_after == units).then_some(units)
    }

    /// The units of the new bytes `lo..hi` parsed alone inside `wraps`, in the file's
    /// positions, and whether the text had syntax errors; `None` where the errors may reach
    /// outside `lo..hi` or the units do not lie inside it.
    fn parse_wrapped(&mut self, lo: usize, hi: usize, wraps: &[Wrap]) -> Option<(Vec<Unit>, bool)> {
        if lo > hi || hi > self.new.len() {
            return None;
        }
        let mut text = Vec::new();
        for (opening, _) in wraps {
            text.extend_from_slice(&self.new[opening.clone()]);
        }
        let header = text.len();
        text.extend_from_slice(&self.new[lo..hi]);
        for (_, closing) in wraps.iter().rev() {
            text.extend_from_slice(&self.new[closing.clone()]);
        }
        let tree = parse_tree(self.parser, &text, self.timeout)?;
        let root = tree.root_node();
        let span = header..header + (hi - lo);
        let at_file_end = wraps.is_empty() && hi == self.new.len();
        if root.has_error()
            && !(errors_contained(root, self.lang) && (at_file_end || errors_within(root, &span)))
        {
            return None;
        }
        let mut units = extract(self.lang, query(self.lang), root, &text);
        for _ in wraps {
            match <[Unit; 1]>::try_from(units) {
                Ok(
                    [Unit {
                        body: Some(body), ..
                    }],
                ) => units = body.members,
                _ => return None,
            }
        }
        if units
            .iter()
            .any(|u| !span.contains(&(u.start_byte as usize)) || u.end_byte as usize > span.end)
        {
            return None;
        }
        let header_rows = memchr::memchr_iter(b'\n', &text[..header]).count() as i64;
        let row = memchr::memchr_iter(b'\n', &self.new[..lo]).count() as i64;
        let units = units
            .iter()
            .map(|u| shift_unit(u, lo as i64 - header as i64, row - header_rows))
            .collect();
        Some((units, root.has_error()))
    }
}

/// The first of `0..n` where `pred` holds, for a `pred` false up to some index and true after.
fn first_index(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// A unit moved by `db` bytes and `dr` lines.
fn shift_unit(old: &Unit, db: i64, dr: i64) -> Unit {
    let byte = |b: u32| (b as i64 + db) as u32;
    let row = |r: u32| (r as i64 + dr) as u32;
    Unit {
        start_byte: byte(old.start_byte),
        end_byte: byte(old.end_byte),
        start_row: row(old.start_row),
        doc_context: old.doc_context,
        error_bytes: old.error_bytes,
        has_error: old.has_error,
        own_error: old.own_error,
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
        body: old.body.as_ref().map(|b| Body {
            inner: (byte(b.inner.0), byte(b.inner.1)),
            parent: b.parent,
            members: b.members.iter().map(|m| shift_unit(m, db, dr)).collect(),
        }),
    }
}

/// A definition and the index of the top-level node it is under.
type UnitDef<'t> = (Def<'t>, usize);

/// The definitions found under a node, and the imports with their start byte.
type Found<'t> = (Vec<UnitDef<'t>>, Vec<(usize, String)>);

/// The definitions (with the top-level node each is under) and imports (with their start
/// byte) the language's query finds under `root`.
fn run_query<'t>(
    lang: Lang,
    query: &Query,
    root: Node<'t>,
    source: &[u8],
    children: &[Node<'t>],
) -> Found<'t> {
    if lang == Lang::Rust {
        return walk_rust(root, source, children);
    }
    query_matches(lang, query, root, source, children)
}

/// A definition found at `node`, named by `name`, in the unit of `children` that holds it;
/// empty names and (in Python) assignments to names that are not constants are left out.
fn push_def<'t>(
    lang: Lang,
    kind: SymbolKind,
    node: Node<'t>,
    name: Node<'t>,
    source: &[u8],
    children: &[Node<'t>],
    found: &mut Vec<UnitDef<'t>>,
) {
    let name = symbol_name(lang, kind, name, node, source);
    if name.is_empty()
        || (kind == SymbolKind::Constant && lang == Lang::Python && !is_constant_name(&name))
    {
        return;
    }
    let unit = children
        .partition_point(|c| c.start_byte() <= node.start_byte())
        .saturating_sub(1);
    found.push((Def { kind, node, name }, unit));
}

/// Rust's definitions and imports, found by walking the tree instead of running
/// `queries/rust.scm`: the same matches (a test holds the two to each other on every Rust
/// fixture and on broken versions of them), at a fraction of the query engine's cost, which
/// visits every node of every parsed unit. Rust is the language whose histories this pays on
/// most: cargo's code stage spent a sixth of its time matching queries.
fn walk_rust<'t>(root: Node<'t>, source: &[u8], children: &[Node<'t>]) -> Found<'t> {
    let table = rust_kinds();
    let mut found = Vec::new();
    let mut imports = Vec::new();
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        let step = table
            .get(usize::from(node.kind_id()))
            .copied()
            .unwrap_or(RustStep::Descend);
        let pattern = match step {
            RustStep::Define(kind, field, name_kind) => Some((kind, field, name_kind)),
            RustStep::Import => {
                if let Some(argument) = node.child_by_field_name("argument").filter(Node::is_named)
                {
                    imports.push((
                        argument.start_byte(),
                        text(argument, source).trim().to_string(),
                    ));
                }
                None
            }
            RustStep::Descend | RustStep::Skip => None,
        };
        if let Some((kind, field, name_kind)) = pattern {
            let name = node
                .child_by_field_name(field)
                .filter(|n| n.is_named() && name_kind.is_none_or(|k| n.kind() == k));
            if let Some(name) = name {
                push_def(Lang::Rust, kind, node, name, source, children, &mut found);
            }
        }
        if step != RustStep::Skip && cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return (found, imports);
            }
        }
    }
}

/// What [`walk_rust`] does at a node of one kind: the query's patterns (the definition's kind,
/// the field holding its name, and the kind that field's node must have: any named node for
/// an impl's type), an import, or nothing but going on to its children. A macro's token tree
/// holds tokens only, never an item, so the walk does not enter it.
#[derive(Clone, Copy, PartialEq)]
enum RustStep {
    Define(SymbolKind, &'static str, Option<&'static str>),
    Import,
    Descend,
    Skip,
}

/// [`RustStep`] by node kind id, so the walk compares numbers, not kind names.
fn rust_kinds() -> &'static [RustStep] {
    static TABLE: std::sync::OnceLock<Vec<RustStep>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let language = Lang::Rust.grammar();
        (0..language.node_kind_count())
            .map(
                |id| match language.node_kind_for_id(id as u16).unwrap_or("") {
                    "function_item" | "function_signature_item" => {
                        RustStep::Define(SymbolKind::Function, "name", Some("identifier"))
                    }
                    "struct_item" | "union_item" => {
                        RustStep::Define(SymbolKind::Struct, "name", Some("type_identifier"))
                    }
                    "enum_item" => {
                        RustStep::Define(SymbolKind::Enum, "name", Some("type_identifier"))
                    }
                    "trait_item" => {
                        RustStep::Define(SymbolKind::Trait, "name", Some("type_identifier"))
                    }
                    "impl_item" => RustStep::Define(SymbolKind::Impl, "type", None),
                    "const_item" | "static_item" => {
                        RustStep::Define(SymbolKind::Constant, "name", Some("identifier"))
                    }
                    "mod_item" => RustStep::Define(SymbolKind::Module, "name", Some("identifier")),
                    "use_declaration" => RustStep::Import,
                    "token_tree" => RustStep::Skip,
                    _ => RustStep::Descend,
                },
            )
            .collect()
    })
}

/// Definitions and imports as the language's query matches them.
fn query_matches<'t>(
    lang: Lang,
    query: &Query,
    root: Node<'t>,
    source: &[u8],
    children: &[Node<'t>],
) -> Found<'t> {
    let names = query.capture_names();
    let mut found: Vec<(Def<'t>, usize)> = Vec::new();
    let mut imports: Vec<(usize, String)> = Vec::new();
    let mut cursor = QueryCursor::new();
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
            } else if capture_name == "import" {
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
            let statement = format!(
                "from {} import {}",
                text(f, source).trim(),
                text(n, source).trim()
            );
            imports.push((f.start_byte(), statement));
        }
        if let (Some((kind, node)), Some(name)) = (def, name) {
            push_def(lang, kind, node, name, source, children, &mut found);
        }
    }
    (found, imports)
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

    fn fixture(rel: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Parse `versions` in order, each from the previous one's units, and compare every result with a
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
        assert!(reused > 0, "{path}: no symbols were carried over");
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
                let comment: &[u8] = if path.ends_with(".py") {
                    b"# note\n"
                } else {
                    b"// note\n"
                };
                match step % 9 {
                    // Edits that keep the file valid first, so that later versions splice.
                    0 => current = lines.iter().map(|l| l.to_vec()).collect(),
                    1 | 3 => current.insert(at, b"\n".to_vec()),
                    2 => current.insert(at, comment.to_vec()),
                    4 => current.insert(at, b"    x = broken(\n".to_vec()),
                    5 => {
                        current.remove(at.min(current.len() - 1));
                    }
                    6 => current[at].insert(0, b'z'),
                    7 => {
                        // Move a block of lines elsewhere.
                        let end = (at + 5).min(current.len());
                        let block: Vec<Vec<u8>> = current.drain(at..end).collect();
                        let to = (seed >> 17) as usize % (current.len() + 1);
                        current.splice(to..to, block);
                    }
                    _ => current.insert(at, comment.to_vec()),
                }
                versions.push(current.concat());
            }
            assert_incremental_matches_fresh(path, &versions);
        }
    }

    /// A change inside one member of a container parses only that member again: the
    /// container's other members and the units around it are carried over.
    /// Parses `versions` of the file at `path` one from the other, checking each against a
    /// fresh parse; for every version after the first, whether it was spliced and how many
    /// units it kept.
    fn parse_chain(path: &str, versions: &[&str]) -> Vec<(bool, usize)> {
        let mut incremental = CodeParser::new(ParseLimits::default());
        let mut fresh = CodeParser::new(ParseLimits::default());
        let (_, mut base) = incremental.parse_from(path, versions[0].as_bytes(), None);
        let mut out = Vec::new();
        for (i, version) in versions.iter().enumerate().skip(1) {
            let (got, next) = incremental.parse_from(path, version.as_bytes(), base.take());
            assert_eq!(
                got,
                fresh.parse(path, version.as_bytes()),
                "{path} version {i}"
            );
            let next = next.expect("a parsed version is a base for the next");
            out.push((next.spliced(), next.reused_units()));
            base = Some(next);
        }
        out
    }

    #[test]
    fn members_of_containers_are_spliced_one_by_one() {
        for (path, versions) in [
            (
                "a.rs",
                [
                    "use std::fmt;\n\nstruct Pool;\n\nimpl Pool {\n    fn alloc(&self) -> u32 {\n        1\n    }\n\n    /// Frees a block.\n    fn free(&self, b: u32) {\n        let _ = b;\n    }\n}\n\nfn main() {}\n",
                    "use std::fmt;\n\nstruct Pool;\n\nimpl Pool {\n    fn alloc(&self) -> u32 {\n        let n = 2;\n        n - 1\n    }\n\n    /// Frees a block.\n    fn free(&self, b: u32) {\n        let _ = b;\n    }\n}\n\nfn main() {}\n",
                    "use std::fmt;\n\nstruct Pool;\n\nimpl Pool {\n    fn alloc(&self) -> u32 {\n        let n = 2;\n        n - 1\n    }\n\n    fn grow(&mut self) {}\n\n    /// Frees a block.\n    fn free(&self, b: u32) {\n        let _ = b;\n    }\n}\n\nfn main() {}\n",
                ],
            ),
            (
                "a.py",
                [
                    "import os\n\n\nclass Pool:\n    \"\"\"Blocks.\"\"\"\n\n    def alloc(self):\n        return 1\n\n    def free(self, b):\n        del b\n\n\ndef main():\n    pass\n",
                    "import os\n\n\nclass Pool:\n    \"\"\"Blocks.\"\"\"\n\n    def alloc(self):\n        n = 2\n        return n - 1\n\n    def free(self, b):\n        del b\n\n\ndef main():\n    pass\n",
                    "import os\n\n\nclass Pool:\n    \"\"\"Blocks.\"\"\"\n\n    def alloc(self):\n        n = 2\n        return n - 1\n\n    def grow(self):\n        pass\n\n    def free(self, b):\n        del b\n\n\ndef main():\n    pass\n",
                ],
            ),
        ] {
            for (i, (_, reused)) in parse_chain(path, &versions).into_iter().enumerate() {
                // The units before and after the container, and the untouched members.
                assert!(reused >= 3, "{path} version {}: {reused}", i + 1);
            }
        }
    }

    /// Functions whose changes lie inside their braces are spliced member by member even when
    /// the units beside them changed too (one run of touched units), and keep the doc read
    /// from the comment before them; a changed doc comment still reaches its function.
    #[test]
    fn containers_inside_a_run_of_touched_units_are_spliced() {
        let path = "a.rs";
        let versions = [
            "/// Allocates.\nfn alloc() -> u32 {\n    let x = 1;\n    let y = 2;\n    x + y\n}\nstruct S {\n    a: u32,\n}\nfn free(b: u32) {\n    let c = b;\n    let d = c;\n    drop(d);\n}\n",
            "/// Allocates.\nfn alloc() -> u32 {\n    let x = 1;\n    let y = 2;\n    x * y\n}\nstruct S {\n    b: u64,\n}\nfn free(b: u32) {\n    let c = b;\n    let d = c;\n    std::mem::drop(d);\n}\n",
            "/// Allocates two.\nfn alloc() -> u32 {\n    let x = 1;\n    let y = 2;\n    x - y\n}\nstruct S {\n    c: u64,\n}\nfn free(b: u32) {\n    let c = b;\n    let d = c;\n    drop(d);\n}\n",
        ];
        let chain = parse_chain(path, &versions);
        assert!(chain.iter().all(|(spliced, _)| *spliced), "{chain:?}");
        let reused: Vec<usize> = chain.iter().map(|(_, reused)| *reused).collect();
        let doc = |parsed: &ParsedFile| {
            let alloc = parsed.symbols.iter().find(|s| s.name == "alloc");
            alloc.and_then(|s| s.doc.clone())
        };
        let last = CodeParser::new(ParseLimits::default())
            .parse(path, versions[2].as_bytes())
            .expect("parses");
        assert_eq!(doc(&last).as_deref(), Some("Allocates two."));
        // Version 1: the doc comment, `alloc`'s two unchanged statements and `free`'s first
        // (text inserted at the start of a statement may join the one before it, so that one
        // is parsed again too).
        assert_eq!(reused[0], 4, "{reused:?}");
        // Version 2: the doc changed, so `alloc` is parsed with it; `free`'s first statement.
        assert_eq!(reused[1], 1, "{reused:?}");
    }

    /// A missing hidden token (here Python's statement-ending newline) is an error of the
    /// whole file that no visible node shows: the result must say the file has errors, as a
    /// fresh parse does, and the next version must not be spliced onto it.
    #[test]
    fn a_missing_hidden_token_is_an_error_of_the_file() {
        let path = "mapping.py";
        let versions = [
            "from .tuners import LoraConfig, AdaLoraConfig\n\n\ndef get(name):\n    return name\n",
            "from .tuners import LoraConfig, AdaLoraConfig PrefixConfig\n\n\ndef get(name):\n    return name\n",
            "from .tuners import LoraConfig, AdaLoraConfig PrefixConfig\n\n\ndef get(name):\n    return name + 1\n",
            "from .tuners import LoraConfig, AdaLoraConfig, PrefixConfig\n\n\ndef get(name):\n    return name + 1\n",
            "from .tuners import LoraConfig, AdaLoraConfig, PrefixConfig\n\n\ndef get(name):\n    return name + 2\n",
        ];
        let mut fresh = CodeParser::new(ParseLimits::default());
        let broken = fresh
            .parse(path, versions[1].as_bytes())
            .expect("parses with errors");
        assert!(broken.has_errors);
        let versions: Vec<Vec<u8>> = versions.iter().map(|v| v.as_bytes().to_vec()).collect();
        assert_incremental_matches_fresh(path, &versions);
    }

    /// A run that ends in an unclosed brace parses alone as "missing `}`", while in the file
    /// the block swallows the items after it: such a run must not be spliced.
    #[test]
    fn an_unclosed_brace_is_not_spliced() {
        let versions: Vec<Vec<u8>> = [
            "use std::fmt;\n\nimpl A {\n    fn a(&self) {}\n}\n\nmod tests {\n    fn t() {}\n}\n\nfn main() {}\n",
            "use std::fmt;\n\nimpl A {\n    fn a(&self) {}\n\nmod tests {\n    fn t() {}\n}\n\nfn main() {}\n",
            "use std::fmt;\n\nimpl A {\n    fn a(&self) {}\n}\n\nmod tests {\n    fn t() {}\n}\n\nfn main() {}\n",
            "use std::fmt;\n\nimpl A {\n    fn a(&self) {}\n}\n\nmod tests {\n    fn t() { let x = 1; }\n}\n\nfn main() {}\n",
        ]
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
        let mut fresh = CodeParser::new(ParseLimits::default());
        let broken = fresh
            .parse("a.rs", &versions[1])
            .expect("parses with errors");
        assert!(broken.has_errors);
        // In the file, `mod tests` lands inside the unclosed `impl A`.
        assert!(
            broken
                .symbols
                .iter()
                .any(|s| s.qualified_name == "A::tests"),
            "{broken:?}"
        );
        assert_incremental_matches_fresh("a.rs", &versions);
    }

    #[test]
    fn changes_beside_and_after_a_unit_with_errors_are_spliced() {
        // `str![..]` does not parse under tree-sitter-rust (`str` is a primitive type): the
        // error stays inside `a`'s body.
        let a = "fn a() {\n    let s = str![[\"x\"]];\n}\n\n";
        let versions: Vec<Vec<u8>> = [
            format!("{a}fn b() {{\n    let y = 1;\n}}\n\nfn c() {{}}\n"),
            // A change two units after the error.
            format!("{a}fn b() {{\n    let y = 1;\n}}\n\nfn c() {{ let z = 2; }}\n"),
            // A change in the unit right after it.
            format!("{a}fn b() {{\n    let y = 2;\n}}\n\nfn c() {{ let z = 2; }}\n"),
            // A change inside the unit with errors, beside its error.
            "fn a() {\n    let s = str![[\"x\"]];\n    let t = 3;\n}\n\nfn b() {\n    let y = 2;\n}\n\nfn c() { let z = 2; }\n".to_string(),
            // An unclosed brace after the error swallows what follows.
            format!("{a}fn b() {{\n    let y = 2;\n\nfn c() {{ let z = 2; }}\n"),
            format!("{a}fn b() {{\n    let y = 2;\n}}\n\nfn c() {{ let z = 2; }}\n"),
        ]
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
        let mut parser = CodeParser::new(ParseLimits::default());
        let (first, base) = parser.parse_from("a.rs", &versions[0], None);
        assert!(first.expect("parses").has_errors, "the test needs an error");
        let (_, next) = parser.parse_from("a.rs", &versions[1], base);
        assert!(next.expect("a base").spliced(), "parsed whole");
        assert_incremental_matches_fresh("a.rs", &versions);
    }

    #[test]
    fn a_change_inside_a_documented_function_keeps_its_doc_comment_unparsed() {
        let file = |add: &str, doc: &str, sub: &str| {
            format!(
                "/// {doc}\n#[inline]\nfn add(a: u32) -> u32 {{\n    {add}\n}}\n\n/// Subtracts.\nfn sub(a: u32) -> u32 {{\n    {sub}\n}}\n"
            )
            .into_bytes()
        };
        let versions = vec![
            file("a + 1", "Adds.", "a - 1"),
            // Inside the body only: the comment and the attribute are kept, not parsed again.
            file("a + 2", "Adds.", "a - 1"),
            // The doc comment too.
            file("a + 3", "Adds one.", "a - 1"),
            // Inside both functions.
            file("a + 4", "Adds one.", "a - 2"),
            // An empty body, then a statement in it: a body with no members is parsed again
            // with the function, and the function with its doc comment.
            file("", "Adds one.", "a - 2"),
            file("a + 5", "Adds one.", "a - 2"),
        ];
        let mut parser = CodeParser::new(ParseLimits::default());
        let (_, base) = parser.parse_from("a.rs", &versions[0], None);
        let (parsed, next) = parser.parse_from("a.rs", &versions[1], base);
        let next = next.expect("a base");
        assert!(next.spliced());
        // `/// Adds.`, `#[inline]`, `/// Subtracts.` and `sub`.
        assert_eq!(next.reused_units(), 4, "the units kept as they were");
        let add = &parsed.expect("parses").symbols[0];
        assert_eq!(
            (add.name.as_str(), add.doc.as_deref()),
            ("add", Some("Adds."))
        );
        assert_incremental_matches_fresh("a.rs", &versions);
    }

    /// Definitions (start, end, kind, name, unit) and imports, in a canonical order.
    type Canonical = (
        Vec<(usize, usize, SymbolKind, String, usize)>,
        Vec<(usize, String)>,
    );

    /// What the Rust walk and the query find in `source`, each in a canonical order.
    fn walk_and_query(source: &[u8]) -> [Canonical; 2] {
        let mut parser = Parser::new();
        parser.set_language(&Lang::Rust.grammar()).expect("grammar");
        let tree = parser.parse(source, None).expect("parsed");
        let root = tree.root_node();
        let mut walker = root.walk();
        let children: Vec<Node<'_>> = root.children(&mut walker).collect();
        let canonical = |(found, mut imports): Found<'_>| {
            let mut defs: Vec<_> = found
                .into_iter()
                .map(|(d, unit)| (d.node.start_byte(), d.node.end_byte(), d.kind, d.name, unit))
                .collect();
            defs.sort_by(|a, b| (a.0, b.1, a.2 as u8, &a.3).cmp(&(b.0, a.1, b.2 as u8, &b.3)));
            imports.sort();
            (defs, imports)
        };
        [
            canonical(walk_rust(root, source, &children)),
            canonical(query_matches(
                Lang::Rust,
                query(Lang::Rust),
                root,
                source,
                &children,
            )),
        ]
    }

    #[test]
    fn the_rust_walk_finds_what_the_rust_query_finds() {
        let mut sources: Vec<Vec<u8>> = [
            "fixtures/code/block_table.rs",
            "fixtures/repo-src/tokenizer.v1.rs",
            "fixtures/repo-src/tokenizer.v2.rs",
        ]
        .iter()
        .map(|p| fixture(p))
        .collect();
        sources.push(
            b"mod a { pub mod b { fn f() { fn g() {} struct S; impl<T> Tr for S<T> {} } } }\n\
              extern \"C\" { fn ext(x: u32); static N: u8; }\n\
              union U { a: u32 }\nconst C: u8 = 1;\nstatic mut M: u8 = 2;\n\
              trait T { fn sig(&self); const K: u8; }\nuse std::{fmt, io::Read as R};\n\
              macro_rules! m { () => { fn hidden() {} } }\nfn r#type() {}\n"
                .to_vec(),
        );
        // Broken versions: spans cut out at spread positions, so that error recovery leaves
        // ERROR and MISSING nodes in and around definitions.
        let mut broken = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for source in &sources {
            for _ in 0..40 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let at = (seed >> 33) as usize % source.len();
                let len = 1 + (seed >> 17) as usize % 24;
                let mut cut = source.clone();
                cut.drain(at..(at + len).min(source.len()));
                broken.push(cut);
            }
        }
        let mut defs = 0;
        for (i, source) in sources.iter().chain(&broken).enumerate() {
            let [walked, queried] = walk_and_query(source);
            assert_eq!(
                walked,
                queried,
                "source {i}: {}",
                String::from_utf8_lossy(source)
            );
            defs += walked.0.len();
        }
        assert!(defs > 1_000, "the sources define {defs} symbols");
    }

    /// The same check on every Rust blob of a real history, run by hand:
    /// `LORE_ORACLE_REPO=path/to/repo cargo test --lib rust_walk_on_a_history -- --ignored`.
    #[test]
    #[ignore = "needs a git repository in LORE_ORACLE_REPO"]
    fn the_rust_walk_finds_what_the_rust_query_finds_on_a_history() {
        use std::io::{BufRead, Read, Write};
        use std::process::{Command, Stdio};
        let repo = std::env::var("LORE_ORACLE_REPO").expect("LORE_ORACLE_REPO");
        let listed = Command::new("git")
            .args(["-C", &repo, "rev-list", "--objects", "--all"])
            .output()
            .expect("git rev-list");
        let mut ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, path)| path.ends_with(".rs"))
            .map(|(id, _)| id.to_string())
            .collect();
        ids.sort();
        ids.dedup();
        let mut cat = Command::new("git")
            .args(["-C", &repo, "cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git cat-file");
        let mut input = cat.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            for id in ids {
                writeln!(input, "{id}").expect("write");
            }
        });
        let mut output = std::io::BufReader::new(cat.stdout.take().expect("stdout"));
        let (mut blobs, mut defs) = (0, 0);
        let mut header = String::new();
        while output.read_line(&mut header).expect("read") > 0 {
            let size: usize = header
                .trim_end()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let mut source = vec![0; size + 1];
            output.read_exact(&mut source).expect("blob");
            source.pop();
            let [walked, queried] = walk_and_query(&source);
            assert_eq!(walked, queried, "{}", header.trim_end());
            blobs += 1;
            defs += walked.0.len();
            header.clear();
        }
        writer.join().expect("writer");
        assert!(cat.wait().expect("git cat-file").success());
        eprintln!("{blobs} Rust blobs, {defs} definitions: the walk and the query agree");
        assert!(blobs > 0);
    }

    #[test]
    fn the_longest_line_is_measured_without_its_line_end() {
        for text in [
            "",
            "\n",
            "abc",
            "abc\n",
            "a\nbcd\nef",
            "ab\n\nabcde\n",
            "x\r\nyy",
        ] {
            let oracle = text.split('\n').map(str::len).max().unwrap_or(0);
            assert_eq!(longest_line(text.as_bytes()), oracle, "{text:?}");
        }
    }

    #[test]
    fn changes_cover_exactly_the_changed_bytes() {
        let ranges = |old: &[u8], new: &[u8]| -> Vec<_> {
            changes(old, new)
                .into_iter()
                .map(|c| (c.old, c.new))
                .collect()
        };
        let old = b"a\nb\nc\nd\ne\n";
        assert_eq!(
            ranges(old, b"a\nB\nc\nd\nE\nf\n"),
            vec![(2..3, 2..3), (8..9, 8..11)]
        );
        assert!(changes(old, old).is_empty());
        // A changed line's indentation and the text it shares with the old line are not part
        // of the change.
        assert_eq!(
            ranges(
                b"fn a() {\n    let x = 1;\n    drop(x);\n}\n",
                b"fn a() {\n    let x = 1;\n    std::mem::drop(x);\n}\n"
            ),
            vec![(28..28, 28..38)]
        );
    }
}
