//! Errors printed like rustc's: the kernel's file:line:column, the source line, a caret
//! under the code, the message, and notes pointing at related kernel code.

use std::fmt::{self, Write};
use std::path::{Path, PathBuf};
use webdit_dsl::ir::{Diagnostic, Loc};

/// Finds a `file!()`-style path (relative to the workspace root, or absolute) from the
/// current directory or any directory above it (build scripts run in their package).
fn resolve(file: &str) -> Option<PathBuf> {
    let path = Path::new(file);
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join(path))
        .find(|p| p.exists())
}

fn source_line(loc: Loc) -> Option<String> {
    let text = std::fs::read_to_string(resolve(loc.file)?).ok()?;
    text.lines()
        .nth(loc.line.checked_sub(1)? as usize)
        .map(str::to_string)
}

/// How many characters the caret covers: the identifier or path that starts at the column.
fn token_len(line: &str, column: u32) -> usize {
    let rest: String = line
        .chars()
        .skip(column.saturating_sub(1) as usize)
        .collect();
    let n = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .count();
    n.max(1)
}

/// `--> file:line:col`, the line and carets under the code at `loc`.
fn snippet(out: &mut String, loc: Loc) -> fmt::Result {
    let number = loc.line.to_string();
    let pad = " ".repeat(number.len());
    writeln!(out, "{pad}--> {loc}")?;
    let Some(line) = source_line(loc) else {
        return Ok(());
    };
    let indent: String = line
        .chars()
        .take(loc.column.saturating_sub(1) as usize)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let carets = "^".repeat(token_len(&line, loc.column));
    writeln!(out, "{pad} |")?;
    writeln!(out, "{number} | {line}")?;
    writeln!(out, "{pad} | {indent}{carets}")?;
    Ok(())
}

/// One diagnostic, rendered.
pub fn render(d: &Diagnostic, kernel: &str, params: &str) -> String {
    let mut out = String::new();
    let _ = (|| -> fmt::Result {
        writeln!(out, "error: {}", d.message)?;
        snippet(&mut out, d.loc)?;
        for (loc, note) in &d.notes {
            writeln!(out, "note: {note}")?;
            snippet(&mut out, *loc)?;
        }
        let what = if params.is_empty() {
            format!("kernel `{kernel}`")
        } else {
            format!("kernel `{kernel}` ({params})")
        };
        writeln!(out, "  = note: in {what}")
    })();
    out
}
