//! Showing a difference to a person: a unified line diff for text, a side-by-side hex dump for
//! binary. Pure functions from bytes to lines of text (colour is applied by the caller).

use super::stream::{StreamDiff, PLACEHOLDER};

/// Whether bytes look like a text protocol: UTF-8 (allowing a character cut at either end) with
/// no control characters other than tab, CR and LF (ignored ranges are allowed).
pub fn is_text(parts: &[&[u8]]) -> bool {
    parts.iter().all(|p| {
        let p = strip_placeholders(p);
        let lossy = String::from_utf8_lossy(&p);
        let bad = lossy.chars().filter(|&c| c == '\u{fffd}').count();
        bad <= 2
            && !lossy
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    })
}

fn strip_placeholders(p: &[u8]) -> Vec<u8> {
    replace_placeholders(p, b"")
}

/// Replaces each placeholder by `with`.
pub fn replace_placeholders(p: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i..].starts_with(PLACEHOLDER) {
            out.extend_from_slice(with);
            i += PLACEHOLDER.len();
        } else {
            out.push(p[i]);
            i += 1;
        }
    }
    out
}

/// One line of a unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// ' ' context, '-' first capture only, '+' second capture only.
    pub tag: char,
    pub text: String,
}

/// Splits bytes into lines, each keeping its line ending.
pub fn split_lines(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            out.push(&b[start..=i]);
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push(&b[start..]);
    }
    out
}

/// Longest-common-subsequence alignment of two short line lists: (tag, index) pairs in order,
/// with index into `a` for ' ' and '-', into `b` for '+'.
pub fn align<T: PartialEq>(a: &[T], b: &[T]) -> Vec<(char, usize)> {
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', i));
            i += 1;
            j += 1;
        } else if i < n && (j == m || l[i + 1][j] >= l[i][j + 1]) {
            out.push(('-', i));
            i += 1;
        } else {
            out.push(('+', j));
            j += 1;
        }
    }
    out
}

/// The lines around a difference, whole lines only, with at most `ctx` lines of context on
/// each side: (first capture's text, second's).
pub fn around_lines(d: &StreamDiff, ctx: usize) -> (Vec<u8>, Vec<u8>) {
    // Start at a line start: the first line of `before` may have been cut by the context
    // window (unless it starts the stream); the last one, unless `before` ends with a line
    // break, is the start of the line the difference is in.
    let before = if d.before.contains(&b'\n') {
        let lines = split_lines(&d.before);
        let first_cut = usize::from(d.a_offset as usize != d.before.len());
        let partial_tail = usize::from(!d.before.ends_with(b"\n"));
        let keep = lines
            .len()
            .saturating_sub(ctx + partial_tail)
            .max(first_cut.min(lines.len()));
        lines[keep..].concat()
    } else {
        d.before.clone()
    };
    let after = |tail: &[u8]| -> Vec<u8> {
        let lines = split_lines(tail);
        lines
            .iter()
            .take(ctx + 1)
            .copied()
            .collect::<Vec<_>>()
            .concat()
    };
    let mut a = before.clone();
    a.extend_from_slice(&d.a);
    a.extend(after(&d.a_after));
    let mut b = before;
    b.extend_from_slice(&d.b);
    b.extend(after(&d.b_after));
    (a, b)
}

/// A unified line diff of a text difference.
pub fn unified(d: &StreamDiff, ctx: usize) -> Vec<DiffLine> {
    let (a, b) = around_lines(d, ctx);
    let (la, lb) = (split_lines(&a), split_lines(&b));
    align(&la, &lb)
        .into_iter()
        .map(|(tag, i)| DiffLine {
            tag,
            text: show_line(if tag == '+' { lb[i] } else { la[i] }),
        })
        .collect()
}

/// A line for display: line ending dropped, ignored ranges as `«ignored»`, control bytes
/// escaped, invalid UTF-8 shown as U+FFFD.
pub fn show_line(l: &[u8]) -> String {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let l = replace_placeholders(l, "«ignored»".as_bytes());
    String::from_utf8_lossy(&l)
        .chars()
        .map(|c| match c {
            '\t' => "\t".to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The part of `b` after the last placeholder: the real bytes just before a difference, which
/// map one to one onto the original stream (an anchor a rule will meet in a raw stream, or the
/// context of a hex dump). A context that starts inside a placeholder (the context window cut
/// it) loses that piece too.
pub fn after_placeholder(b: &[u8]) -> &[u8] {
    let mut start = 0;
    for i in 0..b.len() {
        if b[..=i].ends_with(PLACEHOLDER) {
            start = i + 1;
        }
    }
    if start == 0 {
        // The longest tail of a placeholder that the context starts with (3 bytes at least:
        // shorter ones are as likely real bytes).
        if let Some(k) = (3..PLACEHOLDER.len())
            .rev()
            .find(|&k| b.starts_with(&PLACEHOLDER[PLACEHOLDER.len() - k..]))
        {
            start = k;
        }
    }
    &b[start..]
}

/// The part of `b` before its first placeholder.
fn before_placeholder(b: &[u8]) -> &[u8] {
    let end = b
        .windows(PLACEHOLDER.len())
        .position(|w| w == PLACEHOLDER)
        .unwrap_or(b.len());
    &b[..end]
}

/// One row of a side-by-side hex dump: each side's offset and bytes (None past its data), and
/// which columns differ.
#[derive(Debug, Clone)]
pub struct HexRow {
    pub a: Option<(u64, Vec<u8>)>,
    pub b: Option<(u64, Vec<u8>)>,
    pub differs: Vec<bool>,
}

pub const HEX_WIDTH: usize = 8;

/// Rows around a binary difference: from the row holding the first context byte shown to the
/// row after the difference, at most `max_rows`.
///
/// Only real bytes are dumped, at their real offsets: the context stops at an ignored range
/// (plg's placeholder is never shown as if it were data), and so does the dump after one.
pub fn hex_rows(d: &StreamDiff, max_rows: usize) -> Vec<HexRow> {
    let before = after_placeholder(&d.before);
    let lead = before
        .len()
        .min(HEX_WIDTH + (d.a_offset as usize % HEX_WIDTH))
        .min(d.a_offset.min(d.b_offset) as usize);
    let side = |off: u64, body: &[u8], after: &[u8]| -> (u64, Vec<u8>) {
        let mut v = before[before.len() - lead..].to_vec();
        let real = before_placeholder(body);
        v.extend_from_slice(real);
        if real.len() == body.len() {
            let after = before_placeholder(after);
            v.extend_from_slice(&after[..after.len().min(HEX_WIDTH)]);
        }
        (off - lead as u64, v)
    };
    let (a0, av) = side(d.a_offset, &d.a, &d.a_after);
    let (b0, bv) = side(d.b_offset, &d.b, &d.b_after);
    let rows = av.len().max(bv.len()).div_ceil(HEX_WIDTH).min(max_rows);
    (0..rows)
        .map(|r| {
            let cut = |v: &[u8]| -> Option<Vec<u8>> {
                let s = r * HEX_WIDTH;
                (s < v.len()).then(|| v[s..(s + HEX_WIDTH).min(v.len())].to_vec())
            };
            let (ra, rb) = (cut(&av), cut(&bv));
            let differs = (0..HEX_WIDTH)
                .map(|i| ra.as_ref().and_then(|x| x.get(i)) != rb.as_ref().and_then(|x| x.get(i)))
                .collect();
            HexRow {
                a: ra.map(|x| (a0 + (r * HEX_WIDTH) as u64, x)),
                b: rb.map(|x| (b0 + (r * HEX_WIDTH) as u64, x)),
                differs,
            }
        })
        .collect()
}

/// `48 54 54 50 ..   HTTP.` for one side of a hex row (fixed width).
pub fn hex_cells(bytes: &[u8]) -> (Vec<String>, String) {
    let hex = (0..HEX_WIDTH)
        .map(|i| bytes.get(i).map_or("  ".into(), |b| format!("{b:02x}")))
        .collect();
    let ascii = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    (hex, ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_of_a_header_line() {
        let d = StreamDiff {
            before: b"junk\r\nHTTP/1.1 200 OK\r\nDate: Tue, 25 Nov 2026 08:5".to_vec(),
            a: b"4:01".to_vec(),
            b: b"5:17".to_vec(),
            a_after: b" GMT\r\nServer: x\r\n\r\nbody".to_vec(),
            b_after: b" GMT\r\nServer: x\r\n\r\nbody".to_vec(),
            ..Default::default()
        };
        let lines = unified(&d, 1);
        let tags: String = lines.iter().map(|l| l.tag).collect();
        assert_eq!(tags, " -+ ");
        assert_eq!(lines[1].text, "Date: Tue, 25 Nov 2026 08:54:01 GMT");
        assert_eq!(lines[2].text, "Date: Tue, 25 Nov 2026 08:55:17 GMT");
        assert_eq!(lines[0].text, "HTTP/1.1 200 OK");
        assert!(is_text(&[&d.before, &d.a]));
        assert!(!is_text(&[b"\x00\x01\x02"]));
    }

    /// Regression: an ignored range just before a binary difference was dumped as bytes
    /// (`ignored]` at offset fffffffffffffff8).
    #[test]
    fn hex_rows_never_show_the_placeholder() {
        let mut before = b"ab".to_vec();
        before.extend_from_slice(PLACEHOLDER);
        let d = StreamDiff {
            a_offset: 2,
            b_offset: 2,
            a_len: 2,
            b_len: 2,
            before,
            a: vec![0xeb, 0x2e],
            b: vec![0xec, 0x0e],
            a_after: vec![1, 0x20],
            b_after: vec![1, 0x20],
        };
        let rows = hex_rows(&d, 4);
        let (off, bytes) = rows[0].a.clone().unwrap();
        assert_eq!(off, 2);
        assert_eq!(bytes, vec![0xeb, 0x2e, 1, 0x20]);
        for r in &rows {
            let a = r.a.as_ref().map(|x| x.1.clone()).unwrap_or_default();
            assert!(
                !a.windows(2).any(|w| w == b"\x1b\x00" || w == b"d]"),
                "{a:?}"
            );
        }
    }

    #[test]
    fn hex_rows_mark_the_changed_byte() {
        let d = StreamDiff {
            a_offset: 20,
            b_offset: 20,
            a_len: 1,
            b_len: 1,
            before: (0u8..20).collect(),
            a: vec![0xaa],
            b: vec![0xbb],
            a_after: vec![1; 16],
            b_after: vec![1; 16],
        };
        let rows = hex_rows(&d, 8);
        let marked: Vec<(u64, usize)> = rows
            .iter()
            .flat_map(|r| {
                let off = r.a.as_ref().unwrap().0;
                r.differs
                    .iter()
                    .enumerate()
                    .filter(|x| *x.1)
                    .map(move |(i, _)| (off, i))
            })
            .collect();
        assert_eq!(marked, vec![(16, 4)]);
        assert_eq!(rows[0].a.as_ref().unwrap().0, 8);
    }
}
