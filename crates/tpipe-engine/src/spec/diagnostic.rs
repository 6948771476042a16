//! Errors in a pipeline file, each pointing at the text that caused it.

use std::fmt;
use std::path::PathBuf;

use super::source_map::Location;

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub location: Location,
    /// The node the problem belongs to, if any.
    pub node: Option<String>,
    /// Lowercase, names in backticks, no trailing period.
    pub message: String,
    /// What would be valid, when we can tell.
    pub hint: Option<String>,
    /// The offending line of the file, for the caret display.
    pub source_line: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "error: {}", self.message)?;
        if let Some(node) = &self.node {
            write!(formatter, " (in node `{node}`)")?;
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

/// Every problem found in a pipeline file; validation does not stop at the first.
#[derive(Debug, thiserror::Error)]
pub struct SpecErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
                writeln!(formatter)?;
            }
            write!(formatter, "{diagnostic}")?;
        }
        let count = self.diagnostics.len();
        write!(
            formatter,
            "\n\n{count} error{} in the pipeline file",
            if count == 1 { "" } else { "s" }
        )
    }
}
