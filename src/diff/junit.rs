//! `plg diff --junit FILE`: the report as JUnit XML, one test case per process, connection and
//! packet flow, so that CI systems show drift in their test view. A capture that is not
//! complete adds a failing `capture` test case.

use super::report::*;
use std::fmt::Write as _;

pub fn to_xml(r: &Report) -> String {
    let mut cases: Vec<(String, String, Option<String>, bool)> = Vec::new();
    for (c, label) in [(&r.a, "first"), (&r.b, "second")] {
        let fail = (!c.complete).then(|| {
            c.damage
                .clone()
                .unwrap_or_else(|| format!("{} is truncated (no summary at its end)", c.path))
        });
        cases.push((
            "capture".into(),
            format!("{label} capture {}", c.path),
            fail,
            false,
        ));
    }
    for p in &r.processes {
        let name =
            p.a.as_ref()
                .or(p.b.as_ref())
                .map_or(String::new(), |x| x.name.clone());
        let fail = p.verdict.is_difference().then(|| match p.verdict {
            Verdict::Missing => format!("process {} missing from {}", p.index, r.b.path),
            Verdict::Extra => format!("process {} only in {}", p.index, r.b.path),
            _ => p.problems.join("; "),
        });
        cases.push(("process".into(), format!("{} {name}", p.index), fail, false));
    }
    for c in &r.conns {
        let fail = c.verdict.is_difference().then(|| conn_failure(r, c));
        cases.push((
            "connection".into(),
            c.label.clone(),
            fail,
            c.verdict == Verdict::Ignored,
        ));
    }
    for f in &r.flows {
        let fail = f.verdict.is_difference().then(|| match f.verdict {
            Verdict::Missing => format!("flow missing from {}", r.b.path),
            Verdict::Extra => format!("flow only in {}", r.b.path),
            _ => format!(
                "{} of {} differ, first at packet {}",
                f.diffs.len(),
                crate::ui::count(f.packets_a.max(f.packets_b), "packet"),
                f.diffs.first().map_or(0, |d| d.index)
            ),
        });
        cases.push((
            "flow".into(),
            f.label.clone(),
            fail,
            f.verdict == Verdict::Ignored,
        ));
    }
    let failures = cases.iter().filter(|c| c.2.is_some()).count();
    let skipped = cases.iter().filter(|c| c.3).count();
    let suite = format!("plg diff {} {}", r.a.path, r.b.path);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"plg diff\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        cases.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        esc(&suite),
        cases.len()
    );
    for (class, name, fail, skip) in &cases {
        let _ = write!(
            x,
            "    <testcase classname=\"plg.diff.{class}\" name=\"{}\"",
            esc(name)
        );
        match (fail, skip) {
            (Some(msg), _) => {
                let first = msg.lines().next().unwrap_or("");
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"drift\">{}</failure>\n    </testcase>",
                    esc(first),
                    esc(msg)
                );
            }
            (None, true) => {
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"ignored by a rule\"/>\n    </testcase>"
                );
            }
            (None, false) => x.push_str("/>\n"),
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn conn_failure(r: &Report, c: &ConnVerdict) -> String {
    match c.verdict {
        Verdict::Missing => return format!("connection missing from {}", r.b.path),
        Verdict::Extra => return format!("connection only in {}", r.b.path),
        _ => {}
    }
    let mut lines = Vec::new();
    for p in &c.problems {
        lines.push(match p {
            Problem::Outcome { a, b } => {
                format!("outcome {}, then {}", outcome_name(*a), outcome_name(*b))
            }
            Problem::Close { dir, a, b } => format!(
                "{} close {}, then {}",
                dir_name(*dir),
                close_name(*a),
                close_name(*b)
            ),
            Problem::Timing {
                what,
                a_ns,
                b_ns,
                pct,
            } => format!("{what} {a_ns} ns, then {b_ns} ns ({pct:.0}%)"),
        });
    }
    for d in &c.dirs {
        for s in &d.result.diffs {
            lines.push(format!(
                "{} differs at byte {} (second capture: byte {}): {:?} vs {:?}",
                dir_name(d.dir),
                s.a_offset,
                s.b_offset,
                String::from_utf8_lossy(&s.a[..s.a.len().min(80)]),
                String::from_utf8_lossy(&s.b[..s.b.len().min(80)])
            ));
        }
    }
    lines.join("\n")
}

/// Escapes text for an XML attribute or element; drops characters XML 1.0 cannot hold.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}
