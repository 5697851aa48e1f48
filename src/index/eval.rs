//! `lore eval locate`: replay history and score bug localization.
//!
//! For every issue (not pull request) with a `fixed_by` commit, [`Locator`] ranks files using
//! only what existed when the issue was opened; the files the fixes touched that already existed
//! then are the answer. Each ranker gets top-1 and top-5 accuracy and the mean reciprocal rank of
//! the first right file.

use crate::progress::Progress;
use std::collections::HashSet;

use serde::Serialize;

use super::locate::{issue_text, Locator, Ranker};
use super::{IndexError, Indexes};
use crate::store::{NodeId, ReadTx, Rel};

/// Which issues to replay.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Only issues opened at or after this time.
    pub since: Option<i64>,
    /// At most this many issues (the most recent ones).
    pub max_issues: Option<usize>,
}

/// One ranker's scores.
#[derive(Debug, Clone, Serialize)]
pub struct RankerScore {
    pub ranker: Ranker,
    pub top1: f64,
    pub top5: f64,
    pub mrr: f64,
}

/// One replayed issue.
#[derive(Debug, Clone, Serialize)]
pub struct IssueEval {
    pub number: u64,
    pub gold: Vec<String>,
    /// Rank of the first right file per ranker (1-based; `None` when not in the top 100).
    pub first_hit: Vec<(Ranker, Option<usize>)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    /// Issues with a `fixed_by` commit in range.
    pub candidates: u64,
    pub scored: u64,
    /// Skipped: no issue creation time.
    pub skipped_no_time: u64,
    /// Skipped: the fixes only touched files created after the issue.
    pub skipped_new_files_only: u64,
    pub scores: Vec<RankerScore>,
    /// Each signal scored alone (a file ranked by nothing counts as a miss).
    pub signals: Vec<SignalScore>,
    pub issues: Vec<IssueEval>,
}

/// One signal's scores.
#[derive(Debug, Clone, Serialize)]
pub struct SignalScore {
    pub signal: String,
    pub top1: f64,
    pub top5: f64,
    pub mrr: f64,
}

const DEPTH: usize = 100;

pub fn eval_locate(
    read: &ReadTx,
    indexes: &Indexes,
    opts: &EvalOptions,
    progress: &dyn Progress,
) -> Result<EvalReport, IndexError> {
    let locator = Locator::new(read, indexes)?;
    let mut report = EvalReport::default();
    let mut chosen = Vec::new();
    for (id, issue) in read.issues()? {
        if issue.is_pr || issue.stub {
            continue;
        }
        let fixes = read.targets_of(id, Rel::FixedBy)?;
        if fixes.is_empty() {
            continue;
        }
        if let (Some(since), Some(created)) = (opts.since, issue.created_at) {
            if created < since {
                continue;
            }
        }
        report.candidates += 1;
        let Some(created) = issue.created_at else {
            report.skipped_no_time += 1;
            continue;
        };
        chosen.push((created, id, issue, fixes));
    }
    chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
    if let Some(max) = opts.max_issues {
        chosen.truncate(max);
    }
    let rankers = if indexes.vectors.active_model()?.is_some() {
        Ranker::ALL.to_vec()
    } else {
        vec![Ranker::Bm25]
    };
    let mut hits1 = vec![0u64; rankers.len()];
    let mut hits5 = vec![0u64; rankers.len()];
    let mut rr = vec![0f64; rankers.len()];
    let mut signal_names: Vec<&'static str> = Vec::new();
    let mut signal_hits: Vec<[f64; 3]> = Vec::new();
    progress.phase("replaying issues", Some(chosen.len() as u64));
    for (created, id, issue, fixes) in chosen {
        progress.advance(1);
        let alive: HashSet<NodeId> = locator
            .timeline()
            .files_at(created)
            .into_iter()
            .map(|f| f.0)
            .collect();
        let mut gold: HashSet<NodeId> = HashSet::new();
        for fix in fixes {
            for f in read.targets_of(fix, Rel::Touches)? {
                if alive.contains(&f) {
                    gold.insert(f);
                }
            }
        }
        if gold.is_empty() {
            report.skipped_new_files_only += 1;
            continue;
        }
        report.scored += 1;
        let signals = locator.signals(&issue_text(&issue), created, Some(id))?;
        for (s, (name, ranking)) in signals.named().iter().enumerate() {
            if signal_names.len() <= s {
                signal_names.push(name);
                signal_hits.push([0.0; 3]);
            }
            if let Some(h) = ranking.iter().take(DEPTH).position(|f| gold.contains(f)) {
                let h = h + 1;
                signal_hits[s][0] += f64::from(u8::from(h == 1));
                signal_hits[s][1] += f64::from(u8::from(h <= 5));
                signal_hits[s][2] += 1.0 / h as f64;
            }
        }
        let mut first_hit = Vec::new();
        for (r, ranker) in rankers.iter().enumerate() {
            let ranking = signals.fuse(*ranker);
            let hit = ranking
                .iter()
                .take(DEPTH)
                .position(|(f, _)| gold.contains(f))
                .map(|p| p + 1);
            if let Some(h) = hit {
                hits1[r] += u64::from(h == 1);
                hits5[r] += u64::from(h <= 5);
                rr[r] += 1.0 / h as f64;
            }
            first_hit.push((*ranker, hit));
        }
        let mut gold_paths: Vec<String> = gold
            .iter()
            .map(|f| read.file(*f).and_then(|r| read.string(r.path)))
            .collect::<Result<_, _>>()?;
        gold_paths.sort();
        report.issues.push(IssueEval {
            number: issue.number,
            gold: gold_paths,
            first_hit,
        });
    }
    progress.done();
    let n = report.scored.max(1) as f64;
    report.scores = rankers
        .iter()
        .enumerate()
        .map(|(r, ranker)| RankerScore {
            ranker: *ranker,
            top1: hits1[r] as f64 / n,
            top5: hits5[r] as f64 / n,
            mrr: rr[r] / n,
        })
        .collect();
    report.signals = signal_names
        .iter()
        .zip(&signal_hits)
        .map(|(name, h)| SignalScore {
            signal: name.to_string(),
            top1: h[0] / n,
            top5: h[1] / n,
            mrr: h[2] / n,
        })
        .collect();
    Ok(report)
}
