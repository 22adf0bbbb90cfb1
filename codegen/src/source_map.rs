//! A map from the emitted WGSL back to the kernel's Rust lines, so that a shader error a
//! browser reports (WGSL line:column) can be traced to the kernel statement that wrote it.
//!
//! naga's WGSL writer keeps no spans, so the written text is parsed back with naga's own
//! WGSL frontend, which does: the statements of both modules (everything but `Emit`) come in
//! the same tree order (but `Emit`, `return` and what the frontend adds), and each pair gives one WGSL line and one
//! Rust location.

use crate::lower::Spans;
use naga::{Block, Module, Span, Statement};
use webdit_dsl::ir::Loc;

/// `(WGSL line, kernel location)` pairs, lines increasing; a WGSL line belongs to the last
/// entry at or before it.
pub type SourceMap = Vec<(u32, Loc)>;

fn statements<'a>(block: &'a Block, out: &mut Vec<(&'a Statement, Span)>) {
    for (s, span) in block.span_iter() {
        // naga's frontend adds `return`s at the ends of blocks, and statements that yield a
        // value (calls, atomics, subgroup operations) sit inside a `let` line: leave them out
        // on both sides.
        if matches!(
            s,
            Statement::Emit(_)
                | Statement::Return { .. }
                | Statement::Call { .. }
                | Statement::Atomic { .. }
                | Statement::SubgroupCollectiveOperation { .. }
                | Statement::SubgroupGather { .. }
                | Statement::SubgroupBallot { .. }
        ) {
            continue;
        }
        out.push((s, *span));
        match s {
            Statement::If { accept, reject, .. } => {
                statements(accept, out);
                statements(reject, out);
            }
            Statement::Loop {
                body, continuing, ..
            } => {
                statements(body, out);
                statements(continuing, out);
            }
            Statement::Block(b) => statements(b, out),
            _ => {}
        }
    }
}

/// The map for `wgsl`, written from `module` (lowered with `spans`); empty where the two do
/// not line up (never for the registry's kernels: tested).
pub(crate) fn build(module: &Module, spans: &Spans, wgsl: &str) -> SourceMap {
    let Ok(parsed) = naga::front::wgsl::parse_str(wgsl) else {
        return vec![];
    };
    let (Some(ours), Some(theirs)) = (module.entry_points.first(), parsed.entry_points.first())
    else {
        return vec![];
    };
    let (mut a, mut b) = (vec![], vec![]);
    statements(&ours.function.body, &mut a);
    statements(&theirs.function.body, &mut b);
    // naga's frontend also turns `a && b` into an `if` with stores, spanned at the operands
    // inside a line: only statements that start their line are the written ones.
    b.retain(|(_, span)| {
        span.to_range().is_some_and(|r| {
            let before = &wgsl[..r.start];
            before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .all(char::is_whitespace)
        })
    });
    let kind = |s: &Statement| std::mem::discriminant(s);
    if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| kind(x.0) != kind(y.0)) {
        return vec![];
    }
    let pairs = a.iter().zip(&b).map(|(x, y)| (x.1, y.1));
    let mut map: SourceMap = vec![];
    for (ours, theirs) in pairs {
        let (Some(loc), true) = (spans.loc(ours), theirs.is_defined()) else {
            continue;
        };
        let line = theirs.location(wgsl).line_number;
        match map.last() {
            Some((_, last)) if *last == loc => {}
            Some((l, _)) if *l >= line => {}
            _ => map.push((line, loc)),
        }
    }
    map
}

/// The kernel location of WGSL line `line`.
pub fn lookup(map: &SourceMap, line: u32) -> Option<Loc> {
    map.iter()
        .take_while(|(l, _)| *l <= line)
        .last()
        .map(|(_, loc)| *loc)
}
