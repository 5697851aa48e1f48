//! Store diffed commits, one transaction per batch, parents before children.

use super::diff::{DiffPool, DiffedCommit, RawSignature};
use super::walk::{Plan, WATERMARK_PREFIX};
use super::GitIngestReport;
use crate::ingest::provenance::Inline;
use crate::ingest::IngestError;
use crate::progress::Progress;
use crate::store::records::{
    CommitRecord, EdgeDetail, EdgeMeta, Provenance, Signature, TouchStats, Watermark,
};
use crate::store::{Rel, Store, StoreError, WriteTx};

/// The most diffed commits waiting for the writer.
const MAX_AHEAD: usize = 16_384;

pub fn write_all(
    store: &Store,
    plan: &Plan,
    pool: &DiffPool,
    batch_size: usize,
    progress: &dyn Progress,
    report: &mut GitIngestReport,
) -> Result<(), IngestError> {
    progress.phase("diffing and storing commits", Some(plan.order.len() as u64));
    let mut inline = match pool.provenance() {
        true => Some(store.write(|tx| Inline::start(tx))?),
        false => None,
    };
    let mut batch: Vec<DiffedCommit> = Vec::with_capacity(batch_size.min(plan.order.len()));
    // Workers diff up to two batches ahead, so they are not held up while a batch is stored
    // (at most `MAX_AHEAD` commits: the channel holds that many slots from the start).
    pool.run(
        &plan.order,
        batch_size.saturating_mul(2).min(MAX_AHEAD),
        |commit| {
            batch.push(commit);
            if batch.len() >= batch_size {
                store_batch(store, &batch, None, inline.as_mut(), report)?;
                progress.advance(batch.len() as u64);
                batch.clear();
            }
            Ok(())
        },
    )?;
    store_batch(store, &batch, Some(plan), inline.as_mut(), report)?;
    progress.advance(batch.len() as u64);
    progress.done();
    if let Some(inline) = inline {
        report.provenance = Some(inline.report);
    }
    Ok(())
}

fn is_bot(name: &str, email: &str) -> bool {
    name.ends_with("[bot]") || email.contains("[bot]@")
}

fn signature(tx: &mut WriteTx<'_>, sig: &RawSignature) -> Result<Signature, StoreError> {
    Ok(Signature {
        name: tx.intern(&sig.name)?,
        email: tx.intern(&sig.email)?,
        time: sig.time,
        tz_offset: sig.tz_offset,
    })
}

/// Store `batch` in one transaction; with `finish`, also move the watermarks.
fn store_batch(
    store: &Store,
    batch: &[DiffedCommit],
    finish: Option<&Plan>,
    mut inline: Option<&mut Inline>,
    report: &mut GitIngestReport,
) -> Result<(), IngestError> {
    let mut added = GitIngestReport::default();
    store.write(|tx| -> Result<(), StoreError> {
        for c in batch {
            if tx.commit_id(c.id.as_bytes())?.is_some() {
                continue;
            }
            let id = store_commit(tx, c, &mut added)?;
            if let Some(inline) = inline.as_deref_mut() {
                let parents: &[gix::ObjectId] = if c.shallow_boundary { &[] } else { &c.parents };
                inline.store(tx, id, parents, &c.origins)?;
            }
        }
        if let Some(inline) = inline {
            inline.finish_batch(tx, tx.commit_count()?)?;
        }
        tx.bump("ingest.stats_unknown", added.stats_unknown);
        tx.bump("ingest.diffs_failed", added.diffs_failed);
        tx.bump("git.merge_commits", added.merges_added);
        if let Some(plan) = finish {
            let now = jiff::Timestamp::now().as_second();
            for tip in &plan.tips {
                let mark = Watermark {
                    sha: tip.id.as_bytes().to_vec(),
                    recorded_at: now,
                };
                tx.set_watermark(&format!("{WATERMARK_PREFIX}{}", tip.name), &mark)?;
            }
            for name in &plan.vanished_refs {
                tx.remove_watermark(&format!("{WATERMARK_PREFIX}{name}"))?;
            }
        }
        Ok(())
    })?;
    report.commits_added += added.commits_added;
    report.merges_added += added.merges_added;
    report.touches_added += added.touches_added;
    report.stats_unknown += added.stats_unknown;
    report.diffs_failed += added.diffs_failed;
    Ok(())
}

fn store_commit(
    tx: &mut WriteTx<'_>,
    c: &DiffedCommit,
    added: &mut GitIngestReport,
) -> Result<crate::store::NodeId, StoreError> {
    let (lines_added, lines_removed) = c.files.iter().fold((0u64, 0u64), |(a, r), f| {
        (
            a + f.added.unwrap_or(0) as u64,
            r + f.removed.unwrap_or(0) as u64,
        )
    });
    let record = CommitRecord {
        sha: c.id.as_bytes().to_vec(),
        tree: c.tree.as_bytes().to_vec(),
        parents: c.parents.iter().map(|p| p.as_bytes().to_vec()).collect(),
        author: signature(tx, &c.author)?,
        committer: signature(tx, &c.committer)?,
        message: c.message.clone(),
        is_merge: c.parents.len() > 1,
        shallow_boundary: c.shallow_boundary,
        files_changed: c.files.len() as u32,
        lines_added,
        lines_removed,
        stats_unknown: c.stats_unknown,
    };
    let id = tx.insert_commit(&record)?;
    added.commits_added += 1;
    added.merges_added += u64::from(record.is_merge);
    added.stats_unknown += u64::from(c.stats_unknown);
    added.diffs_failed += u64::from(c.diff_error.is_some());

    for (position, parent) in c.parents.iter().enumerate() {
        if let Some(pid) = tx.commit_id(parent.as_bytes())? {
            let meta = EdgeMeta::certain(
                Provenance::GitParent,
                EdgeDetail::Parent {
                    position: position as u16,
                },
            );
            tx.add_edge(id, Rel::Parent, pid, &meta)?;
        }
    }

    let (name, email) = &c.canonical_author;
    let author = tx.author(name, email, is_bot(name, email))?;
    tx.add_edge(
        id,
        Rel::AuthoredBy,
        author,
        &EdgeMeta::certain(Provenance::GitAuthor, EdgeDetail::None),
    )?;

    for f in &c.files {
        let (file, _) = tx.file(&f.path)?;
        let old_path = match &f.old_path {
            Some(old) => {
                let (old_file, old_sid) = tx.file(old)?;
                let meta = EdgeMeta {
                    provenance: Provenance::GitRename,
                    confidence: 1.0,
                    evidence: Some(format!("{} renamed {old} -> {}", c.id, f.path)),
                    detail: EdgeDetail::None,
                };
                tx.add_edge(file, Rel::RenamedFrom, old_file, &meta)?;
                Some(old_sid)
            }
            None => None,
        };
        let stats = TouchStats {
            change: f.change,
            added: f.added,
            removed: f.removed,
            binary: f.binary,
            old_path,
            old_blob: f.old_blob.map(|b| b.as_bytes().to_vec()),
            new_blob: f.new_blob.map(|b| b.as_bytes().to_vec()),
        };
        tx.add_edge(
            id,
            Rel::Touches,
            file,
            &EdgeMeta::certain(Provenance::GitDiff, EdgeDetail::Touch(stats)),
        )?;
        added.touches_added += 1;
    }
    Ok(id)
}
