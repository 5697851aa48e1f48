//! `lore show file` and `lore show symbol`.

use anyhow::bail;
use lore::kb::Kb;
use lore::store::records::{BlobStatus, EdgeDetail};
use lore::store::{hex, Rel};
use serde_json::json;

use super::render;

pub fn file(kb: &Kb, path: &str, json_out: bool) -> anyhow::Result<()> {
    let read = kb.read()?;
    let Some(file) = read.file_by_path(path)? else {
        bail!("no file {path} in {}", kb.path().display())
    };
    let Some(blob) = read.head_blob(file)? else {
        bail!("{path} is not a parsed source file at HEAD (deleted, not code, or ingested with --no-code)")
    };
    let record = read.blob(blob)?;
    // Imports that name a file of the repository, and files that import this one.
    let mut resolved = std::collections::HashMap::new();
    for e in read.edges_from(file, Rel::Imports)? {
        if let Some(import) = e.meta.evidence {
            resolved.insert(import, read.string(read.file(e.dst)?.path)?);
        }
    }
    let mut importers = Vec::new();
    for e in read.edges_to(file, Rel::Imports)? {
        importers.push(read.string(read.file(e.src)?.path)?);
    }
    importers.sort();
    // `from package import name` is listed only where the name is a module of the package;
    // otherwise the package's own import says it.
    let imports: Vec<&String> = record
        .imports
        .iter()
        .filter(|i| {
            resolved.contains_key(*i) || lore::ingest::code::imports::python_from(i).is_none()
        })
        .collect();
    if json_out {
        let value = json!({
            "path": path,
            "blob": hex(&record.sha),
            "lang": record.lang,
            "status": format!("{:?}", record.status),
            "imports": imports.iter().map(|i| json!({"import": i, "file": resolved.get(*i)})).collect::<Vec<_>>(),
            "imported_by": importers,
            "symbols": record.symbols.iter().map(|s| json!({
                "kind": s.kind.name(), "name": s.name, "qualified_name": s.qualified_name,
                "start_line": s.start_line, "end_line": s.end_line,
                "signature": s.signature, "doc": s.doc,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{path}  ({}, blob {})",
        record.lang.as_deref().unwrap_or("?"),
        &hex(&record.sha)[..12]
    );
    if let BlobStatus::Skipped { reason } = &record.status {
        println!("not parsed: {reason}");
    }
    if !imports.is_empty() {
        let shown: Vec<String> = imports
            .iter()
            .map(|i| match resolved.get(*i) {
                Some(path) => format!("{i} ({path})"),
                None => i.to_string(),
            })
            .collect();
        println!("imports: {}", shown.join(", "));
    }
    if !importers.is_empty() {
        println!("imported by: {}", importers.join(", "));
    }
    for s in &record.symbols {
        let depth = std::iter::successors(s.parent, |p| record.symbols[*p as usize].parent).count();
        println!(
            "{:>5}-{:<5} {:<9} {}{}",
            s.start_line,
            s.end_line,
            s.kind.name(),
            "  ".repeat(depth),
            s.signature
        );
    }
    Ok(())
}

pub fn symbol(kb: &Kb, name: &str, json_out: bool) -> anyhow::Result<()> {
    let read = kb.read()?;
    let found = read.symbols_named(name)?;
    if found.is_empty() {
        bail!("no symbol named {name} in {}", kb.path().display());
    }
    // A symbol that lives on in a renamed file is shown once, under its newest file.
    let mut covered = std::collections::HashSet::new();
    let mut lineages = Vec::new();
    for (id, _) in &found {
        let lineage = read.symbol_lineage(*id)?;
        covered.extend(lineage.iter().skip(1).copied());
        lineages.push(lineage);
    }
    let mut values = Vec::new();
    let mut entries = Vec::new();
    for ((id, node), lineage) in found.into_iter().zip(lineages) {
        if covered.contains(&id) {
            continue;
        }
        let path = read.string(read.file(node.file)?.path)?;
        let qualified = read.string(node.qualified_name)?;
        let definition = match read.head_blob(node.file)? {
            Some(blob) => read.blob(blob)?.definition(&qualified).cloned(),
            None => None,
        };
        let mut history = Vec::new();
        for edge in lineage
            .iter()
            .map(|s| read.edges_to(*s, Rel::Modifies))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
        {
            let commit = read.commit(edge.src)?;
            let change = match edge.meta.detail {
                EdgeDetail::Modify { change } => change.name(),
                _ => "?",
            };
            history.push((
                commit.committer.time,
                hex(&commit.sha),
                change,
                commit.message.lines().next().unwrap_or("").to_string(),
                commit.committer.tz_offset,
            ));
        }
        history.sort();
        entries.push((node.kind.name(), qualified, path, definition, history));
    }
    // The symbols defined at HEAD first, then those that live only in the history.
    entries.sort_by_key(|(_, _, _, definition, _)| definition.is_none());
    for (kind, qualified, path, definition, history) in entries {
        if json_out {
            values.push(json!({
                "qualified_name": qualified,
                "kind": kind,
                "file": path,
                "definition": definition.as_ref().map(|d| json!({
                    "start_line": d.start_line, "end_line": d.end_line, "signature": d.signature, "doc": d.doc,
                })),
                "history": history.iter().map(|(t, sha, change, title, _)| json!({
                    "time": t, "commit": sha, "change": change, "title": title,
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        println!("{kind} {qualified}  ({path})");
        match &definition {
            Some(d) => {
                println!("  {path}:{}-{}", d.start_line, d.end_line);
                println!("  {}", d.signature);
                if let Some(doc) = &d.doc {
                    for line in doc.lines() {
                        println!("    {line}");
                    }
                }
            }
            None => println!("  not defined at HEAD"),
        }
        println!("  history ({} commits):", history.len());
        for (t, sha, change, title, tz) in &history {
            println!(
                "    {}  {}  {:<8} {title}",
                &render::time(*t, *tz)[..10],
                &sha[..10],
                change
            );
        }
        println!();
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&values)?);
    }
    Ok(())
}
