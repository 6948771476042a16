//! Errors in a pipeline file, each pointing at the text that caused it.

use std::fmt;
use std::path::PathBuf;

use super::source_map::Location;

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub location: Location,
    /// The node the problem belongs to, if any (the first of them, for a problem many share).
    pub node: Option<String>,
    /// Lowercase, names in backticks, no trailing period.
    pub message: String,
    /// What would be valid, when we can tell.
    pub hint: Option<String>,
    /// The offending line of the file, for the caret display.
    pub source_line: Option<String>,
    /// Set when many nodes of one block have this problem at this place: it is said once.
    pub nodes: Option<NodeGroup>,
}

/// The nodes of one block that share a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroup {
    /// How many nodes have it (at least two).
    pub count: u64,
    /// The block's name template.
    pub block: String,
    /// The first few of their names, in the order they are declared.
    pub first: Vec<String>,
}

/// How many node names a grouped diagnostic shows.
pub const NODES_SHOWN: usize = 3;

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "error: {}", self.message)?;
        match (&self.nodes, &self.node) {
            (Some(group), _) => {
                let names: Vec<String> =
                    group.first.iter().map(|name| format!("`{name}`")).collect();
                let more = if group.count > group.first.len() as u64 {
                    ", …"
                } else {
                    ""
                };
                write!(
                    formatter,
                    " (in {} nodes of block `{}`: {}{more})",
                    with_thousands(group.count),
                    group.block,
                    names.join(", ")
                )?;
            }
            (None, Some(node)) => write!(formatter, " (in node `{node}`)")?,
            (None, None) => {}
        }
        let line_number = self.location.line.to_string();
        let gutter = " ".repeat(line_number.len());
        write!(
            formatter,
            "\n{gutter}--> {}:{}:{}",
            self.file.display(),
            self.location.line,
            self.location.column
        )?;
        if let Some(source_line) = &self.source_line {
            let caret_indent = " ".repeat(self.location.column.saturating_sub(1));
            let carets = "^".repeat(token_length(source_line, self.location.column).max(1));
            write!(
                formatter,
                "\n{gutter} |\n{line_number} | {source_line}\n{gutter} | {caret_indent}{carets}"
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(formatter, "\n{gutter} = hint: {hint}")?;
        }
        Ok(())
    }
}

/// `4799952` as `4,799,952`.
pub fn with_thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The length of the word that starts at `column` (from 1), to underline it whole.
fn token_length(line: &str, column: usize) -> usize {
    let rest: String = line.chars().skip(column.saturating_sub(1)).collect();
    let quoted = rest.starts_with('"') || rest.starts_with('\'');
    if quoted {
        let quote = rest.chars().next().unwrap_or('"');
        return rest[1..]
            .find(quote)
            .map_or(rest.chars().count(), |end| end + 2);
    }
    rest.chars()
        .take_while(|character| {
            !matches!(character, ':' | ',' | '}' | ']' | '#') && !character.is_whitespace()
        })
        .count()
}

/// How many diagnostics are printed in full; the rest are summarised by their lines, so a
/// pipeline with thousands of mistakes still gives a short answer.
pub const DIAGNOSTICS_SHOWN: usize = 20;

/// How many lines the summary of the diagnostics not shown lists.
const LINES_LISTED: usize = 10;

/// Every problem found in a pipeline file; validation does not stop at the first.
#[derive(Debug, thiserror::Error)]
pub struct SpecErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.diagnostics.len().min(DIAGNOSTICS_SHOWN);
        for (index, diagnostic) in self.diagnostics[..shown].iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
                writeln!(formatter)?;
            }
            write!(formatter, "{diagnostic}")?;
        }
        let not_shown = &self.diagnostics[shown..];
        if !not_shown.is_empty() {
            let mut lines: Vec<usize> = not_shown
                .iter()
                .map(|diagnostic| diagnostic.location.line)
                .collect();
            lines.sort_unstable();
            lines.dedup();
            let listed: Vec<String> = lines
                .iter()
                .take(LINES_LISTED)
                .map(ToString::to_string)
                .collect();
            let more = if lines.len() > LINES_LISTED {
                ", …"
            } else {
                ""
            };
            write!(
                formatter,
                "\n\n… and {} more error{} not shown, at line{} {}{more} (fix the ones above first)",
                with_thousands(not_shown.len() as u64),
                if not_shown.len() == 1 { "" } else { "s" },
                if lines.len() == 1 { "" } else { "s" },
                listed.join(", ")
            )?;
        }
        let count = self.diagnostics.len();
        write!(
            formatter,
            "\n\n{} error{} in the pipeline file",
            with_thousands(count as u64),
            if count == 1 { "" } else { "s" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(with_thousands(0), "0");
        assert_eq!(with_thousands(999), "999");
        assert_eq!(with_thousands(1_000), "1,000");
        assert_eq!(with_thousands(4_799_952), "4,799,952");
    }
}
