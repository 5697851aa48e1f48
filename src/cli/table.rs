//! Query results as aligned tables, JSON, JSON lines or CSV.

use std::io::Write;

use lore::query::Rows;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Jsonl,
    Csv,
}

impl OutputFormat {
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        match name {
            "table" => Some(OutputFormat::Table),
            "json" => Some(OutputFormat::Json),
            "jsonl" => Some(OutputFormat::Jsonl),
            "csv" => Some(OutputFormat::Csv),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
        }
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The terminal width, or 120 when output is not a terminal.
pub fn width() -> usize {
    let term = console::Term::stdout();
    if term.is_term() {
        term.size().1 as usize
    } else {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(120)
    }
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn write(
    out: &mut impl Write,
    result: &Rows,
    format: OutputFormat,
    max_width: usize,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => {
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
                .rows
                .iter()
                .map(|r| {
                    result
                        .columns
                        .iter()
                        .cloned()
                        .zip(r.iter().cloned())
                        .collect()
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)
        }
        OutputFormat::Jsonl => {
            for r in &result.rows {
                let obj: serde_json::Map<String, serde_json::Value> = result
                    .columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect();
                writeln!(out, "{}", serde_json::to_string(&obj)?)?;
            }
            Ok(())
        }
        OutputFormat::Csv => {
            let esc = |s: String| {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            };
            writeln!(
                out,
                "{}",
                result
                    .columns
                    .iter()
                    .cloned()
                    .map(esc)
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
            for r in &result.rows {
                writeln!(
                    out,
                    "{}",
                    r.iter().map(|v| esc(text(v))).collect::<Vec<_>>().join(",")
                )?;
            }
            Ok(())
        }
        OutputFormat::Table => {
            let cells: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|r| r.iter().map(|v| text(v).replace('\n', " ")).collect())
                .collect();
            let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
            for r in &cells {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
            // Shrink the widest columns until the table fits.
            let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
            while total(&widths) > max_width {
                let (i, w) = widths
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, w)| **w)
                    .map(|(i, w)| (i, *w))
                    .unwrap_or((0, 0));
                if w <= 8 {
                    break;
                }
                widths[i] = w - 1;
            }
            let line = |vals: &[String]| -> String {
                vals.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let v = cut(v, widths[i]);
                        if i + 1 == vals.len() {
                            v
                        } else {
                            format!("{v:<w$}", w = widths[i])
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            writeln!(out, "{}", line(&result.columns))?;
            writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "─".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            )?;
            for r in &cells {
                writeln!(out, "{}", line(r).trim_end())?;
            }
            let n = result.rows.len();
            writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })
        }
    }
}
