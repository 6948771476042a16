//! Plain-text tables for plans, run summaries and kinds.

use std::io::Write;

use crate::exec::{NodeStatus, RunSummary};
use crate::kind::KindRegistry;
use crate::plan::{Plan, PlanStatus};

fn width(rows: &[Vec<String>], column: usize) -> usize {
    rows.iter()
        .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
        .max()
        .unwrap_or(0)
}

/// Writes aligned columns; the last column is not padded.
pub(super) fn write_rows(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(|column| width(rows, column)).collect();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes aligned columns (the last not padded) from rows made twice, once to measure the
/// columns and once to write them, so a table of a million rows is never held whole.
/// `rows` calls its argument once per row.
fn write_table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: impl Fn(&mut dyn FnMut([&str; N]) -> std::io::Result<()>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut widths = header.map(|cell| cell.chars().count());
    rows(&mut |cells| {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
        Ok(())
    })?;
    let mut line = String::new();
    let mut write_line = |cells: [&str; N]| {
        line.clear();
        for (column, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < N {
                let padding = widths[column] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', padding));
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    write_line(header)?;
    rows(&mut write_line)
}

pub fn write_plan(out: &mut impl Write, plan: &Plan) -> std::io::Result<()> {
    write_table(out, ["node", "kind", "status", "why"], |row| {
        let mut why = String::new();
        for node in &plan.nodes {
            let status = match node.status {
                PlanStatus::Cached => "cached",
                PlanStatus::WillRun => "will run",
                PlanStatus::MayRun => "may run",
                PlanStatus::Error => "error",
            };
            why.clear();
            match &node.error {
                Some(error) => why.push_str(error),
                None => {
                    for (index, reason) in node.reasons.iter().enumerate() {
                        if index > 0 {
                            why.push_str("; ");
                        }
                        let _ = std::fmt::Write::write_fmt(&mut why, format_args!("{reason}"));
                    }
                }
            }
            row([&node.name, node.kind, status, &why])?;
        }
        Ok(())
    })?;
    writeln!(
        out,
        "\n{} cached, {} will run, {} may run (after an upstream node), {} with errors",
        plan.count(PlanStatus::Cached),
        plan.count(PlanStatus::WillRun),
        plan.count(PlanStatus::MayRun),
        plan.count(PlanStatus::Error)
    )
}

pub fn format_seconds(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1000.0)
    } else if seconds < 120.0 {
        format!("{seconds:.1}s")
    } else {
        format!(
            "{}m{:02}s",
            (seconds / 60.0) as u64,
            (seconds % 60.0) as u64
        )
    }
}

pub fn write_summary(out: &mut impl Write, summary: &RunSummary) -> std::io::Result<()> {
    write_table(out, ["node", "kind", "status", "time", "result"], |row| {
        for node in &summary.nodes {
            let status = match &node.status {
                NodeStatus::Fetched { remote } => format!("fetched from {remote}"),
                other => other.word().to_string(),
            };
            let result = match &node.status {
                NodeStatus::Failed { error } => {
                    error.lines().next().unwrap_or_default().to_string()
                }
                NodeStatus::Skipped { after } => format!("needs `{after}`"),
                NodeStatus::Submitted { job } => format!("job {job}"),
                NodeStatus::Deferred { after } => {
                    format!("builds here after `{after}` (a later `run` does it)")
                }
                _ => node.headline.clone().unwrap_or_default(),
            };
            let time = format_seconds(node.seconds);
            row([&node.name, node.kind, &status, &time, &result])?;
        }
        Ok(())
    })?;
    let words = [
        "built",
        "cached",
        "fetched",
        "submitted",
        "deferred",
        "failed",
        "skipped",
        "cancelled",
    ];
    let counts: Vec<String> = words
        .iter()
        .map(|word| (word, summary.count(word)))
        .filter(|(_, count)| *count > 0)
        .map(|(word, count)| format!("{count} {word}"))
        .collect();
    writeln!(
        out,
        "\n{}",
        if counts.is_empty() {
            "nothing to do".to_string()
        } else {
            counts.join(", ")
        }
    )?;
    for node in &summary.nodes {
        if let NodeStatus::Failed { error } = &node.status {
            writeln!(
                out,
                "\nnode `{}` failed:\n  {}",
                node.name,
                error.replace('\n', "\n  ")
            )?;
        }
    }
    Ok(())
}

pub fn write_kinds(out: &mut impl Write, registry: &KindRegistry) -> std::io::Result<()> {
    for name in registry.names() {
        let kind = registry.get(name).expect("listed");
        writeln!(out, "{name} (version {}): {}", kind.version(), kind.about())?;
        for slot in kind.inputs() {
            // What the build may read of each input node, which is also what its key covers.
            let reads = if slot.reads.is_empty() {
                "every output".to_string()
            } else {
                slot.reads.join(", ")
            };
            let names = if slot.names_in_key {
                "; its node names (in the key)"
            } else {
                ""
            };
            writeln!(
                out,
                "  input  {:<22} {} [reads: {reads}{names}]",
                slot.name, slot.doc
            )?;
        }
        for param in kind.params() {
            let default = param
                .default
                .as_ref()
                .map(|value| format!(" [default: {value}]"))
                .unwrap_or_else(|| " [required]".into());
            writeln!(
                out,
                "  param  {:<22} {} — {}{default}",
                param.name,
                param.doc,
                param.ty.describe()
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
