//! `lore show issue N`

use anyhow::bail;
use lore::kb::Kb;
use lore::store::records::{EdgeDetail, EdgeMeta, IssueRecord};
use lore::store::{hex, NodeId, NodeKind, ReadTx, Rel};
use serde_json::json;

use super::render;

/// One line naming a node: `commit 70a12a0 Fix double free…`, `#7 Double free…`, a path, or
/// `symbol BlockAllocator.free_blocks (minillm/worker/memory_utils.py)`.
pub fn describe(read: &ReadTx, id: NodeId) -> anyhow::Result<String> {
    Ok(match id.kind() {
        Some(NodeKind::Commit) => {
            let c = read.commit(id)?;
            let subject = c.message.lines().next().unwrap_or("");
            format!("commit {} {subject}", &hex(&c.sha)[..10])
        }
        Some(NodeKind::Issue) => {
            let i = read.issue(id)?;
            let kind = if i.is_pr { "PR " } else { "" };
            if i.stub {
                format!("{kind}#{} (not imported)", i.number)
            } else {
                format!("{kind}#{} {}", i.number, i.title)
            }
        }
        Some(NodeKind::File) => format!("file {}", read.string(read.file(id)?.path)?),
        Some(NodeKind::Symbol) => {
            let s = read.symbol(id)?;
            format!(
                "symbol {} ({})",
                read.string(s.qualified_name)?,
                read.string(read.file(s.file)?.path)?
            )
        }
        _ => id.to_string(),
    })
}

fn how(meta: &EdgeMeta) -> String {
    let mut out = format!("{} {:.2}", meta.provenance.name(), meta.confidence);
    if let EdgeDetail::Szz {
        lines, of_lines, ..
    } = &meta.detail
    {
        out.push_str(&format!(", {lines}/{of_lines} lines"));
    }
    out
}

/// (direction, relation, other node, meta) of each link of an issue.
type Link = (&'static str, Rel, NodeId, EdgeMeta);
/// (fix commit, commit it blamed, meta) of each SZZ result.
type Blamed = (NodeId, NodeId, EdgeMeta);

pub fn issue(kb: &Kb, number: &str, json_out: bool) -> anyhow::Result<()> {
    let Ok(n) = number.trim_start_matches('#').parse::<u64>() else {
        bail!("`{number}` is not an issue number (expected e.g. 7 or #7)");
    };
    let read = kb.read()?;
    let Some(id) = read.find_issue(n)? else {
        bail!("no issue or pull request #{n} in {}", kb.path().display());
    };
    let issue = read.issue(id)?;
    let (links, introduced) = links_of(&read, id)?;
    if json_out {
        return print_json(&read, &issue, &links, &introduced);
    }
    print_header(&issue);
    print_links(&read, &links, &introduced)
}

fn links_of(read: &ReadTx, id: NodeId) -> anyhow::Result<(Vec<Link>, Vec<Blamed>)> {
    let mut links: Vec<Link> = Vec::new();
    for rel in [
        Rel::FixedBy,
        Rel::References,
        Rel::DuplicateOf,
        Rel::Mentions,
        Rel::MergedAs,
    ] {
        for e in read.edges_from(id, rel)? {
            links.push(("out", rel, e.dst, e.meta));
        }
    }
    for rel in [Rel::FixedBy, Rel::References, Rel::DuplicateOf] {
        for e in read.edges_to(id, rel)? {
            links.push(("in", rel, e.src, e.meta));
        }
    }
    // SZZ: the commits that introduced what this issue's fixes changed.
    let mut introduced = Vec::new();
    for e in read.edges_from(id, Rel::FixedBy)? {
        if e.dst.kind() == Some(NodeKind::Commit) {
            for b in read.edges_from(e.dst, Rel::IntroducedBy)? {
                introduced.push((e.dst, b.dst, b.meta));
            }
        }
    }
    Ok((links, introduced))
}

fn label(dir: &str, rel: Rel) -> &'static str {
    match (dir, rel) {
        ("out", Rel::FixedBy) => "fixed by",
        ("in", Rel::FixedBy) => "fixes",
        ("out", Rel::References) => "references",
        ("in", Rel::References) => "referenced by",
        ("out", Rel::DuplicateOf) => "duplicate of",
        ("in", Rel::DuplicateOf) => "duplicated by",
        ("out", Rel::Mentions) => "mentions",
        ("out", Rel::MergedAs) => "merged as",
        _ => "linked",
    }
}

fn print_json(
    read: &ReadTx,
    issue: &IssueRecord,
    links: &[Link],
    introduced: &[Blamed],
) -> anyhow::Result<()> {
    let mut out_links = Vec::new();
    for (dir, rel, other, meta) in links {
        out_links.push(json!({
            "relation": label(dir, *rel), "target": describe(read, *other)?,
            "provenance": meta.provenance.name(), "confidence": meta.confidence,
            "evidence": meta.evidence,
        }));
    }
    let mut szz = Vec::new();
    for (fix, bug, meta) in introduced {
        szz.push(json!({
            "fix": describe(read, *fix)?, "introduced_by": describe(read, *bug)?,
            "confidence": meta.confidence, "evidence": meta.evidence,
        }));
    }
    let value = json!({
        "number": issue.number, "pull_request": issue.is_pr, "stub": issue.stub,
        "title": issue.title, "state": issue.state.name(), "state_reason": issue.state_reason,
        "author": issue.author, "labels": issue.labels, "created_at": issue.created_at,
        "updated_at": issue.updated_at, "closed_at": issue.closed_at, "merged_at": issue.merged_at,
        "url": issue.url, "key": issue.key, "source": issue.source, "body": issue.body,
        "comments": issue.comments.len(),
        "state_history": issue.state_history.iter().map(|e| json!({"event": e.event, "at": e.at, "actor": e.actor})).collect::<Vec<_>>(),
        "error_types": issue.facets.error_types, "models": issue.facets.models,
        "environment": issue.facets.environment.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "links": out_links, "introduced_by": szz,
    });
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn print_header(issue: &IssueRecord) {
    let kind = if issue.is_pr { "pull request" } else { "issue" };
    if issue.stub {
        println!("#{} ({kind} referenced but not imported)", issue.number);
    } else {
        println!("#{} {}", issue.number, issue.title);
        let reason = issue
            .state_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        println!("{kind}, {}{reason}", issue.state.name());
    }
    let date = |t: Option<i64>| t.map(|t| render::time(t, 0)).unwrap_or_else(|| "?".into());
    if let Some(a) = &issue.author {
        println!("author:  {a}");
    }
    if issue.created_at.is_some() {
        println!("created: {}", date(issue.created_at));
    }
    if issue.closed_at.is_some() {
        println!("closed:  {}", date(issue.closed_at));
    }
    if issue.merged_at.is_some() {
        println!("merged:  {}", date(issue.merged_at));
    }
    for e in &issue.state_history {
        println!(
            "         {} {}{}",
            e.event,
            render::time(e.at, 0),
            e.actor
                .as_deref()
                .map(|a| format!(" by {a}"))
                .unwrap_or_default()
        );
    }
    if !issue.labels.is_empty() {
        println!("labels:  {}", issue.labels.join(", "));
    }
    let f = &issue.facets;
    if !f.error_types.is_empty() {
        println!("errors:  {}", f.error_types.join(", "));
    }
    if !f.models.is_empty() {
        println!("models:  {}", f.models.join(", "));
    }
    if !f.environment.is_empty() {
        let env: Vec<String> = f
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("env:     {}", env.join(" "));
    }
    if !issue.stub {
        println!("comments: {}", issue.comments.len());
    }
}

fn print_links(read: &ReadTx, links: &[Link], introduced: &[Blamed]) -> anyhow::Result<()> {
    let mut last = "";
    for (dir, rel, other, meta) in links {
        let l = label(dir, *rel);
        if l != last {
            println!("\n{l}:");
            last = l;
        }
        println!("  {}  [{}]", describe(read, *other)?, how(meta));
        if let Some(ev) = &meta.evidence {
            println!("      \"{ev}\"");
        }
    }
    if !introduced.is_empty() {
        println!("\nintroduced by (SZZ):");
        for (fix, bug, meta) in introduced {
            let short = |id: NodeId| -> anyhow::Result<String> {
                Ok(hex(&read.commit(id)?.sha)[..10].to_string())
            };
            println!(
                "  {}  [{}; blamed from fix {}]",
                describe(read, *bug)?,
                how(meta),
                short(*fix)?
            );
            if let Some(ev) = &meta.evidence {
                println!("      {ev}");
            }
        }
    }
    Ok(())
}
