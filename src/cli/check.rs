//! `lore check`

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use lore::kb::Kb;
use lore::store::check::{CheckReport, RedbState};

#[derive(Args)]
pub struct CheckArgs {
    /// Recover a file a killed writer left behind (only after the check has shown, on a copy,
    /// that recovery gives a whole file; a damaged file is left as it is).
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit status when the file is whole but a writer left it unclosed (readers refuse it until
/// it is recovered).
const NEEDS_RECOVERY: u8 = 3;

pub fn run(path: &Path, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut report = Kb::check(path)?;
    let mut repaired = false;
    if args.repair && report.redb == RedbState::NeedsRecovery && report.problem_count == 0 {
        report.redb = Kb::repair(path)?;
        repaired = true;
    }
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["whole"] = report.is_whole().into();
        value["repaired"] = repaired.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_report(&report, repaired, args.repair);
    }
    Ok(match &report.redb {
        _ if !report.is_whole() => ExitCode::FAILURE,
        RedbState::NeedsRecovery => ExitCode::from(NEEDS_RECOVERY),
        _ => ExitCode::SUCCESS,
    })
}

fn print_report(report: &CheckReport, repaired: bool, asked_to_repair: bool) {
    let path = report.path.display();
    match &report.redb {
        RedbState::Intact if repaired => println!("redb: recovered to its last commit; every page verified"),
        RedbState::Intact => println!("redb: intact (every page checksum verified)"),
        RedbState::NeedsRecovery => println!(
            "redb: the file is not closed: a writer ended without closing it (recovery to its last commit succeeds on a copy), or one is writing it now (lore serve, watch, ingest); check it when no writer runs"
        ),
        RedbState::Damaged(why) => println!("redb: DAMAGED: {why}"),
    }
    if !report.rows.is_empty() {
        let rows: Vec<String> = report
            .rows
            .iter()
            .map(|(table, n)| format!("{table} {n}"))
            .collect();
        println!("read: {}", rows.join(", "));
    }
    if report.problem_count > 0 {
        println!("lore invariants: {} broken", report.problem_count);
        for p in &report.problems {
            println!("  {p}");
        }
        if report.problem_count > report.problems.len() as u64 {
            println!(
                "  … and {} more",
                report.problem_count - report.problems.len() as u64
            );
        }
    } else if !matches!(report.redb, RedbState::Damaged(_)) {
        println!("lore invariants: all hold (edges and their reverses, counters, strings, lookups, index segments)");
    }
    if report.is_whole() {
        match &report.redb {
            RedbState::NeedsRecovery => println!(
                "{path}: whole, but not closed; run `lore check --repair` (or any command that writes) to recover it"
            ),
            _ => println!("{path}: whole"),
        }
    } else {
        println!(
            "{path}: DAMAGED{}; nothing was changed. Restore it from a copy, or build it again with `lore ingest` and `lore import`",
            if asked_to_repair { " beyond what redb's recovery repairs" } else { "" }
        );
    }
}
