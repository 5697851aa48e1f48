//! What a symbol's definition says about it beyond its name: its last line, its signature, its
//! doc comment or docstring, and names that depend on the language (Go receivers, constants).

use tree_sitter::Node;

use super::extract::text;
use crate::code::lang::Lang;
use crate::store::records::SymbolKind;

pub(super) fn end_line(node: Node<'_>) -> u32 {
    let (start, end) = (node.start_position(), node.end_position());
    if end.column == 0 && end.row > start.row {
        end.row as u32
    } else {
        end.row as u32 + 1
    }
}

/// The node comments attach to: the definition, or the declaration/export wrapping it.
pub(super) fn doc_anchor(def: Node<'_>) -> Node<'_> {
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

pub(super) fn is_constant_name(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

pub(super) fn symbol_name(
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

pub(super) fn go_receiver(def: Node<'_>, source: &[u8]) -> Option<String> {
    let receiver = def.child_by_field_name("receiver")?;
    let raw = text(receiver, source);
    let inner = raw.trim().trim_start_matches('(').trim_end_matches(')');
    let ty = inner.split_whitespace().last()?;
    let ty = ty.trim_start_matches('*');
    Some(ty.split('[').next().unwrap_or(ty).to_string())
}

pub(super) fn signature(lang: Lang, def: Node<'_>, source: &[u8]) -> String {
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
pub(super) fn doc(lang: Lang, def: Node<'_>, source: &[u8]) -> Option<(String, usize)> {
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

pub(super) fn python_docstring(def: Node<'_>, source: &[u8]) -> Option<String> {
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
