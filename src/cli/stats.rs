//! `lore stats`

use lore::kb::Kb;
use serde_json::json;

pub fn run(kb: &Kb, json_out: bool, storage: bool) -> anyhow::Result<()> {
    if storage {
        return print_storage(kb, json_out);
    }
    let stats = kb.read()?.stats()?;
    let index = kb.indexes()?.stats()?;
    let size = std::fs::metadata(kb.path())?.len();
    if json_out {
        let value = json!({
            "file": kb.path(),
            "file_size": size,
            "schema_version": stats.schema_version,
            "nodes": stats.nodes,
            "edges": stats.edges,
            "counters": stats.counters,
            "watermarks": stats.watermarks,
            "index": index,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{} ({}, schema v{})",
        kb.path().display(),
        super::render::bytes(size),
        stats.schema_version
    );
    println!("nodes");
    for (k, v) in &stats.nodes {
        println!("  {k:<20} {v:>10}");
    }
    println!("edges");
    for (k, v) in &stats.edges {
        println!("  {k:<20} {v:>10}");
    }
    if !stats.counters.is_empty() {
        println!("counters");
        for (k, v) in &stats.counters {
            println!("  {k:<28} {v:>10}");
        }
    }
    println!("index");
    println!(
        "  {:<20} {:>10}  ({})",
        "text documents",
        index.text_documents,
        super::render::bytes(index.text_index_bytes)
    );
    println!(
        "  {:<20} {:>10}  ({})",
        "vectors",
        index.vectors,
        index.embedder.as_deref().unwrap_or("no embedder yet")
    );
    println!("watermarks ({})", stats.watermarks.len());
    for (k, v) in stats.watermarks.iter().take(20) {
        println!("  {k:<40} {}", &v[..12.min(v.len())]);
    }
    if stats.watermarks.len() > 20 {
        println!("  … {} more (see --json)", stats.watermarks.len() - 20);
    }
    Ok(())
}

fn print_storage(kb: &Kb, json_out: bool) -> anyhow::Result<()> {
    let tables = kb.store().storage()?;
    let size = std::fs::metadata(kb.path())?.len();
    let in_tables: u64 = tables.iter().map(|t| t.total_bytes()).sum();
    let unaccounted = size.saturating_sub(in_tables);
    if json_out {
        let value = json!({
            "file": kb.path(),
            "file_size": size,
            "tables": tables,
            "outside_tables": unaccounted,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let b = super::render::bytes;
    println!("{} ({})", kb.path().display(), b(size));
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "table", "entries", "total", "stored", "metadata", "fragmented"
    );
    for t in &tables {
        println!(
            "  {:<22} {:>10} {:>10} {:>10} {:>10} {:>10}",
            t.table,
            t.entries,
            b(t.total_bytes()),
            b(t.stored_bytes),
            b(t.metadata_bytes),
            b(t.fragmented_bytes)
        );
    }
    println!(
        "  {:<22} {:>10} {:>10}   (free pages, redb's own trees, headers; `lore compact` returns free space)",
        "outside tables",
        "",
        b(unaccounted)
    );
    Ok(())
}

/// `lore compact`
pub fn compact(path: &std::path::Path) -> anyhow::Result<()> {
    let report = lore::kb::Kb::compact(path)?;
    super::ingest::print_compact(path, &report);
    Ok(())
}
