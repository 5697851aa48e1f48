//! Turn a file's bytes into symbols and imports with its language's tree-sitter query.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, Parser, Query, QueryCursor};

use super::lang::{blank_cuda, Lang};
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
    languages: HashMap<Lang, (Parser, Query)>,
}

impl CodeParser {
    pub fn new(limits: ParseLimits) -> CodeParser {
        CodeParser {
            limits,
            languages: HashMap::new(),
        }
    }

    /// Parse `content` of the file at `path`.
    pub fn parse(&mut self, path: &str, content: &[u8]) -> Result<ParsedFile, Skip> {
        let lang = Lang::detect(path, content).ok_or(Skip::UnknownLanguage)?;
        if content.len() > self.limits.max_bytes {
            return Err(Skip::TooLarge);
        }
        if content
            .split(|&b| b == b'\n')
            .any(|line| line.len() > self.limits.max_line_bytes)
        {
            return Err(Skip::LongLines);
        }
        let blanked;
        let source: &[u8] = if Lang::is_cuda(path) {
            blanked = blank_cuda(content);
            &blanked
        } else {
            content
        };
        let (parser, query) = self.languages.entry(lang).or_insert_with(|| {
            let grammar = lang.grammar();
            let mut parser = Parser::new();
            parser
                .set_language(&grammar)
                .expect("bundled grammars match the tree-sitter version");
            let query = Query::new(&grammar, lang.query_source()).expect("bundled queries compile");
            (parser, query)
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
        let tree = parser
            .parse_with_options(
                &mut |offset, _| if offset < len { &source[offset..] } else { &[] },
                None,
                Some(options),
            )
            .ok_or(Skip::Timeout)?;
        parser.reset();

        let root = tree.root_node();
        let error_bytes = error_bytes(root);
        if !source.is_empty()
            && error_bytes as f32 / source.len() as f32 > self.limits.max_error_share
        {
            return Err(Skip::MostlyErrors);
        }
        let (symbols, imports) = extract(lang, query, root, source);
        Ok(ParsedFile {
            lang,
            symbols,
            imports,
            error_bytes,
            has_errors: root.has_error(),
        })
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

fn text<'s>(node: Node<'_>, source: &'s [u8]) -> std::borrow::Cow<'s, str> {
    String::from_utf8_lossy(&source[node.start_byte()..node.end_byte()])
}

fn extract(
    lang: Lang,
    query: &Query,
    root: Node<'_>,
    source: &[u8],
) -> (Vec<SymbolRecord>, Vec<String>) {
    let names = query.capture_names();
    let mut defs: Vec<Def<'_>> = Vec::new();
    let mut imports = Vec::new();
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(query, root, source);
    while let Some(m) = matches.next() {
        let mut def: Option<(SymbolKind, Node<'_>)> = None;
        let mut name: Option<Node<'_>> = None;
        for capture in m.captures() {
            let capture_name = names[capture.index as usize];
            if let Some(kind) = capture_name.strip_prefix("def.") {
                def = SymbolKind::from_capture(kind).map(|k| (k, capture.node));
            } else if capture_name == "name" {
                name = Some(capture.node);
            } else if capture_name == "import" {
                imports.push(text(capture.node, source).trim().to_string());
            }
        }
        if let (Some((kind, node)), Some(name)) = (def, name) {
            let name = symbol_name(lang, kind, name, node, source);
            if name.is_empty()
                || (kind == SymbolKind::Constant
                    && lang == Lang::Python
                    && !is_constant_name(&name))
            {
                continue;
            }
            defs.push(Def { kind, node, name });
        }
    }
    imports.sort();
    imports.dedup();

    // Outer definitions first, so a parent always comes before its children.
    defs.sort_by_key(|d| (d.node.start_byte(), std::cmp::Reverse(d.node.end_byte())));
    defs.dedup_by(|a, b| a.node.id() == b.node.id());
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
    (symbols, imports)
}

/// 1-based last line, not counting a trailing newline that ends the node.
fn end_line(node: Node<'_>) -> u32 {
    let (start, end) = (node.start_position(), node.end_position());
    if end.column == 0 && end.row > start.row {
        end.row as u32
    } else {
        end.row as u32 + 1
    }
}

/// The node comments attach to: the definition, or the declaration/export wrapping it.
fn doc_anchor(def: Node<'_>) -> Node<'_> {
    let mut anchor = def;
    while let Some(parent) = anchor.parent() {
        let wraps = matches!(
            parent.kind(),
            "export_statement"
                | "template_declaration"
                | "lexical_declaration"
                | "variable_declaration"
                | "type_declaration"
                | "const_declaration"
        );
        if wraps && parent.named_child_count() <= 2 {
            anchor = parent;
        } else {
            break;
        }
    }
    anchor
}

fn is_constant_name(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn symbol_name(
    lang: Lang,
    kind: SymbolKind,
    name: Node<'_>,
    _def: Node<'_>,
    source: &[u8],
) -> String {
    let raw = text(name, source);
    let raw = raw.trim();
    if lang == Lang::Rust && kind == SymbolKind::Impl {
        // `Scheduler<T>` -> `Scheduler`, `crate::x::Y` -> `Y`
        let base = raw.split('<').next().unwrap_or(raw).trim();
        return base.rsplit("::").next().unwrap_or(base).to_string();
    }
    raw.to_string()
}

fn go_receiver(def: Node<'_>, source: &[u8]) -> Option<String> {
    let receiver = def.child_by_field_name("receiver")?;
    let raw = text(receiver, source);
    let inner = raw.trim().trim_start_matches('(').trim_end_matches(')');
    let ty = inner.split_whitespace().last()?;
    let ty = ty.trim_start_matches('*');
    Some(ty.split('[').next().unwrap_or(ty).to_string())
}

fn signature(lang: Lang, def: Node<'_>, source: &[u8]) -> String {
    let end = def
        .child_by_field_name("body")
        .map(|b| b.start_byte())
        .unwrap_or_else(|| {
            let start = def.start_byte();
            source[start..def.end_byte()]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(def.end_byte(), |i| start + i)
        });
    let start = match (lang, def.parent()) {
        (Lang::Go, Some(p))
            if matches!(p.kind(), "type_declaration" | "const_declaration")
                && p.named_child_count() == 1 =>
        {
            p.start_byte()
        }
        _ => def.start_byte(),
    };
    let head = String::from_utf8_lossy(&source[start..end.max(start)]);
    let mut sig = head.split_whitespace().collect::<Vec<_>>().join(" ");
    sig = sig.trim_end_matches('{').trim_end().to_string();
    if lang == Lang::Python {
        sig = sig.trim_end_matches(':').to_string();
    }
    if sig.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| sig.is_char_boundary(i))
            .unwrap_or(0);
        sig.truncate(cut);
        sig.push('…');
    }
    sig
}

/// The doc text and the 0-based row where the leading comments start.
fn doc(lang: Lang, def: Node<'_>, source: &[u8]) -> Option<(String, usize)> {
    if lang == Lang::Python {
        return python_docstring(def, source).map(|d| (d, def.start_position().row));
    }
    // Comments directly above the definition (or above its export/template wrapper),
    // skipping attributes such as `#[derive(...)]`.
    let anchor = doc_anchor(def);
    let mut lines: Vec<String> = Vec::new();
    let mut next_row = anchor.start_position().row;
    let mut sibling = anchor.prev_sibling();
    while let Some(node) = sibling {
        let kind = node.kind();
        if kind == "attribute_item" {
            next_row = node.start_position().row;
            sibling = node.prev_sibling();
            continue;
        }
        if !kind.contains("comment") || node.end_position().row + 1 < next_row {
            break;
        }
        let raw = text(node, source);
        if lang == Lang::Rust && !(raw.starts_with("///") || raw.starts_with("/**")) {
            break;
        }
        lines.push(raw.into_owned());
        next_row = node.start_position().row;
        sibling = node.prev_sibling();
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    let cleaned: Vec<String> = lines
        .iter()
        .flat_map(|c| c.lines().map(str::to_string).collect::<Vec<_>>())
        .map(|l| {
            let l = l.trim();
            let l = l
                .trim_start_matches("/**")
                .trim_start_matches("///")
                .trim_start_matches("//!")
                .trim_start_matches("//")
                .trim_start_matches("/*")
                .trim_end_matches("*/");
            let l = l.trim_start();
            l.strip_prefix("* ")
                .or_else(|| l.strip_prefix('*'))
                .unwrap_or(l)
                .trim_end()
                .to_string()
        })
        .collect();
    let joined = cleaned.join("\n").trim().to_string();
    (!joined.is_empty()).then_some((joined, next_row))
}

fn python_docstring(def: Node<'_>, source: &[u8]) -> Option<String> {
    let body = def.child_by_field_name("body")?;
    let first = body.named_child(0)?;
    if first.kind() != "expression_statement" {
        return None;
    }
    let string = first.named_child(0).filter(|n| n.kind() == "string")?;
    let raw = text(string, source);
    let raw = raw.trim_start_matches(|c: char| "rRbBuUfF".contains(c));
    let inner = ["\"\"\"", "'''", "\"", "'"]
        .iter()
        .find_map(|q| raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)))?;
    let lines: Vec<&str> = inner.lines().map(str::trim).collect();
    let doc = lines.join("\n").trim().to_string();
    (!doc.is_empty()).then_some(doc)
}
