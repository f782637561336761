//! The report as a person reads it: one verdict line per process, connection and flow, then
//! for each difference the context needed to understand it.

use super::index::DIRS;
use super::report::*;
use super::stream::{StreamDiff, PLACEHOLDER};
use super::textdiff;
use crate::ui::{count, human_bytes, Style};
use std::io::Write;

/// Lines of context around a text difference.
const CONTEXT_LINES: usize = 2;
/// Rows of a hex dump.
const HEX_ROWS: usize = 6;

pub fn write(out: &mut dyn Write, r: &Report, st: Style) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} with {}",
        st.bold("comparing"),
        describe(&r.a),
        describe(&r.b)
    )?;
    for n in &r.notes {
        writeln!(out, "{} {n}", st.yellow("note:"))?;
    }
    for c in [&r.a, &r.b] {
        for a in &c.anomalies {
            writeln!(out, "{} {}: {a}", st.yellow("note:"), c.path)?;
        }
        if c.anomaly_count > c.anomalies.len() as u64 {
            writeln!(
                out,
                "{} {}: {} more",
                st.yellow("note:"),
                c.path,
                count(c.anomaly_count - c.anomalies.len() as u64, "oddity")
            )?;
        }
    }
    if !r.patterns.is_empty() {
        writeln!(out, "ignoring: {}", r.patterns.join("  "))?;
    }

    for p in &r.processes {
        let name =
            p.a.as_ref()
                .or(p.b.as_ref())
                .map_or(String::new(), |x| x.name.clone());
        let mut line = format!("process {} ({name})  {}", p.index, verdict(st, p.verdict));
        match p.verdict {
            Verdict::Missing => line.push_str(&format!(" from {}", r.b.path)),
            Verdict::Extra => line.push_str(&format!(" in {}", r.b.path)),
            _ => line.push_str(&format!("  {}", exit_name(p.exit_a))),
        }
        writeln!(out, "{line}")?;
        for pr in &p.problems {
            writeln!(out, "    {} {pr}", st.red("exit:"))?;
        }
        for n in &p.notes {
            writeln!(out, "    {} {n}", st.dim("note:"))?;
        }
    }

    for c in &r.conns {
        write_conn(out, r, c, st)?;
    }
    for f in &r.flows {
        write_flow(out, r, f, st)?;
    }

    let (cc, fc, pc) = (r.conn_counts(), r.flow_counts(), r.proc_counts());
    let mut parts = vec![format!(
        "{} of {} the same",
        cc.same,
        count(r.conns.len(), "connection")
    )];
    for (n, what) in [
        (cc.different, "different"),
        (cc.missing, "missing"),
        (cc.extra, "extra"),
        (cc.ignored, "ignored"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if !r.flows.is_empty() {
        parts.push(format!(
            "{} of {} the same",
            fc.same,
            count(r.flows.len(), "packet flow")
        ));
    }
    if pc.differences() > 0 {
        let n = pc.differences();
        parts.push(format!(
            "{} differ{}",
            count(n, "process"),
            if n == 1 { "s" } else { "" }
        ));
    }
    let verdict_text = if !r.differs() {
        st.green("same")
    } else if r.truncated() && cc.differences() + fc.differences() + pc.differences() == 0 {
        st.red("not proven the same: a capture is incomplete")
    } else {
        st.red("different")
    };
    writeln!(out, "result: {}: {}", verdict_text, parts.join(", "))?;
    Ok(())
}

fn describe(c: &CaptureInfo) -> String {
    let mode = match c.mode {
        Some(crate::format::record::Mode::Record) => "recorded",
        Some(crate::format::record::Mode::Replay) => "replayed",
        None => "unknown",
    };
    let mut s = format!(
        "{} ({mode}, {}, {}, {} of stream data",
        c.path,
        count(c.processes, "process"),
        count(c.connections, "connection"),
        human_bytes(c.data_bytes)
    );
    if c.packets > 0 {
        s.push_str(&format!(", {}", count(c.packets, "packet")));
    }
    if !c.complete {
        s.push_str(", TRUNCATED");
    }
    s.push(')');
    s
}

fn verdict(st: Style, v: Verdict) -> String {
    match v {
        Verdict::Same => st.green("same"),
        Verdict::Ignored => st.dim("ignored"),
        Verdict::Different => st.red("DIFFERENT"),
        Verdict::Missing => st.red("MISSING"),
        Verdict::Extra => st.red("EXTRA"),
    }
}

fn write_conn(out: &mut dyn Write, r: &Report, c: &ConnVerdict, st: Style) -> std::io::Result<()> {
    let mut line = format!("conn {}  {}", st.bold(&c.label), verdict(st, c.verdict));
    match c.verdict {
        Verdict::Missing => line.push_str(&format!(" from {}", r.b.path)),
        Verdict::Extra => line.push_str(&format!(" in {}", r.b.path)),
        Verdict::Ignored => line.push_str(&format!(" ({})", c.ignored_by.as_deref().unwrap_or(""))),
        _ => {}
    }
    if let Some(f) = c.a.as_ref().or(c.b.as_ref()) {
        if f.outcome == crate::format::record::Outcome::Established {
            line.push_str(&format!(
                "  (c->s {}, s->c {}, {}/{})",
                human_bytes(f.bytes[0]),
                human_bytes(f.bytes[1]),
                close_name(f.close[0]),
                close_name(f.close[1])
            ));
        } else {
            line.push_str(&format!("  ({})", outcome_name(f.outcome)));
        }
    }
    writeln!(out, "{line}")?;
    for p in &c.problems {
        let text = match p {
            Problem::Outcome { a, b } => {
                format!("outcome: {}, then {}", outcome_name(*a), outcome_name(*b))
            }
            Problem::Close { dir, a, b } => format!(
                "close by the {}: {}, then {}",
                if *dir == DIRS[0] { "client" } else { "server" },
                close_name(*a),
                close_name(*b)
            ),
            Problem::Timing {
                what,
                a_ns,
                b_ns,
                pct,
            } => format!(
                "{what}: {}, then {} ({pct:.0}% drift)",
                crate::ui::human_duration(*a_ns),
                crate::ui::human_duration(*b_ns)
            ),
        };
        writeln!(out, "    {}", st.red(text))?;
    }
    for d in &c.dirs {
        if d.result.same() {
            continue;
        }
        let name = dir_name(d.dir);
        if d.bytes_a != d.bytes_b {
            writeln!(
                out,
                "    {name}: {}, then {}",
                count(d.bytes_a, "byte"),
                count(d.bytes_b, "byte")
            )?;
        }
        for diff in &d.result.diffs {
            write_stream_diff(out, name, diff, st)?;
        }
        if d.result.more {
            writeln!(
                out,
                "    {name}: more differences follow (--max-diffs to see them)"
            )?;
        }
        if d.result.diverged {
            writeln!(
                out,
                "    {name}: the streams do not realign after this difference; the rest was not compared"
            )?;
        }
    }
    Ok(())
}

fn write_stream_diff(
    out: &mut dyn Write,
    name: &str,
    d: &StreamDiff,
    st: Style,
) -> std::io::Result<()> {
    let at = if d.a_offset == d.b_offset {
        format!("byte {}", d.a_offset)
    } else {
        format!("byte {} (second capture: byte {})", d.a_offset, d.b_offset)
    };
    let what = match (d.a_len, d.b_len) {
        (0, n) => format!("{} only in the second capture", count(n, "byte")),
        (n, 0) => format!("{} only in the first capture", count(n, "byte")),
        (x, y) if x == y => format!(
            "{} differ{}",
            count(x, "byte"),
            if x == 1 { "s" } else { "" }
        ),
        (x, y) => format!("{} replaced by {y}", count(x, "byte")),
    };
    writeln!(out, "    {name} at {at}: {what}")?;
    if d.a.is_empty() && d.b.is_empty() && d.before.is_empty() && (d.a_len + d.b_len) > 0 {
        // Stored without its bytes (detail budget exhausted).
        return Ok(());
    }
    if textdiff::is_text(&[&d.before, &d.a, &d.b, &d.a_after, &d.b_after]) {
        writeln!(out, "      {}", st.cyan(format!("@@ {name} {at} @@")))?;
        for l in textdiff::unified(d, CONTEXT_LINES) {
            let text = format!("{}{}", l.tag, l.text);
            let text = match l.tag {
                '-' => st.red(text),
                '+' => st.green(text),
                _ => text,
            };
            writeln!(out, "      {text}")?;
        }
    } else {
        for row in textdiff::hex_rows(d, HEX_ROWS) {
            let side = |s: &Option<(u64, Vec<u8>)>| -> (String, String) {
                match s {
                    None => (" ".repeat(8 + 2 + 3 * textdiff::HEX_WIDTH), String::new()),
                    Some((off, bytes)) => {
                        let (cells, ascii) = textdiff::hex_cells(bytes);
                        let cells: Vec<String> = cells
                            .into_iter()
                            .zip(&row.differs)
                            .map(|(c, &dif)| if dif { st.red(c) } else { c })
                            .collect();
                        (format!("{off:08x}  {} ", cells.join(" ")), ascii)
                    }
                }
            };
            let (ha, aa) = side(&row.a);
            let (hb, ab) = side(&row.b);
            let mark = if row.differs.iter().any(|&x| x) {
                st.red("!")
            } else {
                "|".into()
            };
            writeln!(
                out,
                "      {ha}{:<w$} {mark} {hb}{ab}",
                aa,
                w = textdiff::HEX_WIDTH
            )?;
        }
    }
    Ok(())
}

fn write_flow(out: &mut dyn Write, r: &Report, f: &FlowVerdict, st: Style) -> std::io::Result<()> {
    let mut line = format!("flow {}  {}", st.bold(&f.label), verdict(st, f.verdict));
    match f.verdict {
        Verdict::Missing => line.push_str(&format!(" from {}", r.b.path)),
        Verdict::Extra => line.push_str(&format!(" in {}", r.b.path)),
        Verdict::Ignored => line.push_str(&format!(" ({})", f.ignored_by.as_deref().unwrap_or(""))),
        _ => {}
    }
    line.push_str(&format!("  ({}", count(f.packets_a, "packet")));
    if f.packets_b != f.packets_a {
        line.push_str(&format!(", then {}", f.packets_b));
    }
    line.push(')');
    writeln!(out, "{line}")?;
    for d in &f.diffs {
        let show = |p: &Option<Vec<u8>>| match p {
            None => "(none)".to_string(),
            Some(b) => snippet(b),
        };
        writeln!(out, "    packet {}:", d.index)?;
        writeln!(out, "      {}", st.red(format!("-{}", show(&d.a))))?;
        writeln!(out, "      {}", st.green(format!("+{}", show(&d.b))))?;
    }
    if f.more {
        writeln!(
            out,
            "    more differing packets follow (--max-diffs to see them)"
        )?;
    }
    Ok(())
}

/// A payload on one line: text escaped, binary in hex (an ignored range as `«ignored»`,
/// never as the placeholder's bytes), at most 64 bytes.
fn snippet(b: &[u8]) -> String {
    let cut = &b[..b.len().min(64)];
    let more = if b.len() > 64 { " ..." } else { "" };
    if textdiff::is_text(&[cut]) {
        format!("{:?}{more}", textdiff::show_line(cut))
    } else {
        let mut parts = Vec::new();
        let mut rest = b;
        let mut shown = 0;
        while !rest.is_empty() && shown < 64 {
            if let Some(r) = rest.strip_prefix(PLACEHOLDER) {
                parts.push("«ignored»".to_string());
                rest = r;
                continue;
            }
            parts.push(format!("{:02x}", rest[0]));
            rest = &rest[1..];
            shown += 1;
        }
        let more = if rest.is_empty() { "" } else { " ..." };
        format!("{}{more}", parts.join(" "))
    }
}
