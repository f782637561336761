//! `plg diff --learn`: from captures of one scenario taken with no code change, find what
//! differs between runs (dates, ids, nonces) and write the tightest rules that ignore it.
//!
//! Each difference found by comparing the first capture with each other one becomes a
//! field-like pattern: a header value (`Date: [^\r\n]*`), or a literal anchor taken from the
//! text just before the field followed by the shape of the field (`id=[0-9a-f]+`,
//! `[0-9]+:[0-9]+:[0-9]+`), or for binary data an anchor followed by `.{n,m}`. The comparison
//! is then run again with the rules; up to [`ROUNDS`] rounds learn what the previous rules
//! uncovered. Connections that still differ in ways no byte pattern can fix (missing, extra,
//! closed differently) are left out with an `ignore-conn` rule, reported as such.

use super::compare::{compare, Options};
use super::index::{BlockSource, Index};
use super::report::{Report, Verdict};
use super::rules::{compile, ConnSpec};
use super::stream::{compare_streams, Limits, Piece, StreamDiff, PLACEHOLDER};
use super::textdiff::{after_placeholder, align, around_lines, is_text, split_lines};

pub const ROUNDS: usize = 3;

/// One rule learned, with what it explained.
#[derive(Debug, Clone)]
pub struct LearnedRule {
    /// `ignore` pattern or `ignore-conn` spec.
    pub directive: &'static str,
    pub value: String,
    pub kind: &'static str,
    pub hits: usize,
    pub example: String,
}

#[derive(Debug, Clone, Default)]
pub struct Learned {
    pub rules: Vec<LearnedRule>,
    /// Comparisons made (first capture against each other one).
    pub pairs: usize,
    /// Differences seen before any learned rule.
    pub differences: usize,
    /// Reports of the final run, with every learned rule in force.
    pub remaining: Vec<Report>,
}

impl Learned {
    pub fn all_explained(&self) -> bool {
        self.remaining.iter().all(|r| !r.differs())
    }

    /// The rules file text (format: docs/DIFF-RULES.md).
    pub fn rules_file(&self, paths: &[String], given: &Options) -> String {
        let mut s = format!(
            "# plg diff rules, learned by plg {} from {} captures of one scenario:\n",
            env!("CARGO_PKG_VERSION"),
            paths.len()
        );
        for p in paths {
            s.push_str(&format!("#   {p}\n"));
        }
        s.push_str("# Use: plg diff --rules THIS_FILE golden.traffic new.traffic\n");
        if !given.rules.is_empty() {
            s.push_str("\n# given\n");
            for p in &given.rules.ignores {
                s.push_str(&format!("ignore {}\n", p.pattern));
            }
            for c in &given.rules.conns {
                s.push_str(&format!("ignore-conn {}\n", c.text));
            }
            for p in &given.rules.ports {
                s.push_str(&format!("ignore-port {p}\n"));
            }
        }
        for r in &self.rules {
            s.push_str(&format!(
                "\n# {}: {} difference{}, e.g. {}\n{} {}\n",
                r.kind,
                r.hits,
                if r.hits == 1 { "" } else { "s" },
                r.example.replace('\n', " "),
                r.directive,
                r.value
            ));
        }
        s
    }
}

/// One difference to explain: the two differing lines (text) or byte ranges with a little
/// context (binary), and the rules that would explain it.
struct Case {
    a: Vec<u8>,
    b: Vec<u8>,
    candidates: Vec<(String, &'static str)>,
    example: String,
}

/// At most this many differences are considered per round.
const MAX_CASES: usize = 5000;

/// Learns rules from `caps` (at least two), on top of the rules in `base`.
pub fn learn(
    caps: &mut [(Index, Box<dyn BlockSource + Send>)],
    base: &Options,
) -> anyhow::Result<Learned> {
    anyhow::ensure!(caps.len() >= 2, "--learn needs at least two captures");
    let mut out = Learned {
        pairs: caps.len() - 1,
        ..Default::default()
    };
    let mut opts = base.clone();
    opts.limits = Limits {
        max_diffs: 200,
        context: 256,
        snippets: true,
    };
    let mut reports = run_all(caps, &opts)?;
    out.differences = reports.iter().map(count_differences).sum();
    for _ in 0..ROUNDS {
        let cases = cases(&reports)?;
        if cases.is_empty() {
            break;
        }
        if choose(&cases, &mut out, &mut opts) == 0 {
            break;
        }
        reports = run_all(caps, &opts)?;
    }
    // What no byte pattern explains: leave the connection out, and say so.
    let mut conns = 0;
    for r in &reports {
        for c in &r.conns {
            if c.verdict.is_difference() {
                let spec = format!(
                    "{}->{}:{}#{}",
                    c.key.client, c.key.server, c.key.port, c.key.ordinal
                );
                let why = match c.verdict {
                    Verdict::Missing => "missing from a later run",
                    Verdict::Extra => "only in a later run",
                    _ => "differs in a way no byte pattern covers",
                };
                conns += add(
                    &mut out,
                    &mut opts,
                    "ignore-conn",
                    spec,
                    "whole connection",
                    &format!("{} {why}", c.label),
                );
            }
        }
    }
    if conns > 0 {
        reports = run_all(caps, &opts)?;
    }
    out.remaining = reports;
    Ok(out)
}

/// The differences of a round as cases to explain.
fn cases(reports: &[Report]) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for r in reports {
        for c in &r.conns {
            for d in &c.dirs {
                for sd in &d.result.diffs {
                    let ex = format!(
                        "{} {} at byte {}: {:?} vs {:?}",
                        c.label,
                        super::report::dir_name(d.dir),
                        sd.a_offset,
                        shown(&sd.a),
                        shown(&sd.b)
                    );
                    cases_of(sd, &ex, &mut cases);
                }
            }
        }
        for f in &r.flows {
            for pd in &f.diffs {
                let (Some(a), Some(b)) = (&pd.a, &pd.b) else {
                    continue;
                };
                let ex = format!("{} packet {}", f.label, pd.index);
                for sd in payload_diffs(a, b)? {
                    cases_of(&sd, &ex, &mut cases);
                }
            }
        }
        if cases.len() >= MAX_CASES {
            break;
        }
    }
    Ok(cases)
}

fn cases_of(d: &StreamDiff, example: &str, out: &mut Vec<Case>) {
    if is_text(&[&d.before, &d.a, &d.b, &d.a_after, &d.b_after]) {
        for (a, b) in line_pairs(d) {
            let candidates = derive_line(&a, &b);
            out.push(Case {
                a,
                b,
                candidates,
                example: example.to_string(),
            });
        }
    } else {
        let ctx = |body: &[u8], after: &[u8]| {
            let mut v = d.before[d.before.len().saturating_sub(8)..].to_vec();
            v.extend_from_slice(body);
            v.extend_from_slice(&after[..after.len().min(8)]);
            v
        };
        out.push(Case {
            a: ctx(&d.a, &d.a_after),
            b: ctx(&d.b, &d.b_after),
            candidates: derive_binary(d),
            example: example.to_string(),
        });
    }
}

/// Picks rules greedily: the candidate that explains the most cases not yet explained (on a
/// tie, the tighter kind); returns how many were added.
fn choose(cases: &[Case], out: &mut Learned, opts: &mut Options) -> usize {
    let mut cands: Vec<(String, &'static str)> = cases
        .iter()
        .flat_map(|c| c.candidates.iter().cloned())
        .collect();
    cands.sort();
    cands.dedup_by(|x, y| x.0 == y.0);
    let compiled: Vec<_> = cands.iter().map(|(p, _)| compile(p).ok()).collect();
    let covers: Vec<Vec<bool>> = compiled
        .iter()
        .map(|re| {
            cases
                .iter()
                .map(|c| re.as_ref().is_some_and(|re| explains(re, c)))
                .collect()
        })
        .collect();
    let mut open: Vec<bool> = vec![true; cases.len()];
    let mut added = 0;
    loop {
        let best = (0..cands.len())
            .map(|k| {
                let n = (0..cases.len())
                    .filter(|&i| open[i] && covers[k][i])
                    .count();
                (n, std::cmp::Reverse(kind_rank(cands[k].1)), k)
            })
            .filter(|x| x.0 > 0)
            .max();
        let Some((n, _, k)) = best else { break };
        let first = (0..cases.len())
            .find(|&i| open[i] && covers[k][i])
            .expect("n > 0");
        let example = cases[first].example.clone();
        (0..cases.len()).for_each(|i| open[i] &= !covers[k][i]);
        added += add(
            out,
            opts,
            "ignore",
            cands[k].0.clone(),
            cands[k].1,
            &example,
        );
        if let Some(r) = out.rules.iter_mut().find(|r| r.value == cands[k].0) {
            r.hits = r.hits.max(n);
        }
    }
    added
}

/// Tighter kinds first.
fn kind_rank(kind: &str) -> usize {
    [
        "field",
        "delimited field",
        "header value",
        "rest of line",
        "binary field",
    ]
    .iter()
    .position(|k| *k == kind)
    .unwrap_or(9)
}

/// Whether ignoring `re` makes the two sides of a case equal.
fn explains(re: &regex::bytes::Regex, c: &Case) -> bool {
    re.replace_all(&c.a, PLACEHOLDER) == re.replace_all(&c.b, PLACEHOLDER)
}

fn run_all(
    caps: &mut [(Index, Box<dyn BlockSource + Send>)],
    opts: &Options,
) -> anyhow::Result<Vec<Report>> {
    let (first, rest) = caps.split_first_mut().expect("two captures");
    rest.iter_mut()
        .map(|(ix, src)| compare(&first.0, ix, first.1.as_mut(), src.as_mut(), opts))
        .collect()
}

fn count_differences(r: &Report) -> usize {
    let bytes: usize = r
        .conns
        .iter()
        .flat_map(|c| &c.dirs)
        .map(|d| d.result.diffs.len())
        .sum();
    let packets: usize = r.flows.iter().map(|f| f.diffs.len()).sum();
    let other = r
        .conns
        .iter()
        .filter(|c| c.verdict.is_difference() && c.dirs.iter().all(|d| d.result.same()))
        .count();
    bytes + packets + other
}

/// Adds a rule unless it is already there; returns 1 if added.
fn add(
    out: &mut Learned,
    opts: &mut Options,
    directive: &'static str,
    value: String,
    kind: &'static str,
    example: &str,
) -> usize {
    if let Some(r) = out
        .rules
        .iter_mut()
        .find(|r| r.directive == directive && r.value == value)
    {
        r.hits += 1;
        return 0;
    }
    let ok = match directive {
        "ignore" => opts.rules.add_ignore(&value, "learned").is_ok(),
        _ => match ConnSpec::parse(&value) {
            Ok(s) => {
                opts.rules.conns.push(s);
                true
            }
            Err(_) => false,
        },
    };
    if !ok {
        return 0;
    }
    out.rules.push(LearnedRule {
        directive,
        value,
        kind,
        hits: 1,
        example: example.to_string(),
    });
    1
}

fn shown(b: &[u8]) -> String {
    let b = &b[..b.len().min(40)];
    String::from_utf8_lossy(&super::textdiff::replace_placeholders(b, b"<ignored>")).into_owned()
}

/// The differences inside two packet payloads, as stream differences.
fn payload_diffs(a: &[u8], b: &[u8]) -> anyhow::Result<Vec<StreamDiff>> {
    let p = |x: &[u8]| {
        vec![Piece::Bytes {
            orig: 0,
            bytes: x.to_vec(),
        }]
        .into_iter()
    };
    Ok(compare_streams(
        &mut p(a),
        &mut p(b),
        Limits {
            max_diffs: 50,
            context: 64,
            snippets: true,
        },
    )?
    .diffs)
}

/// The pairs of whole lines that differ in a text difference.
fn line_pairs(d: &StreamDiff) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (ta, tb) = around_lines(d, 0);
    let (la, lb) = (split_lines(&ta), split_lines(&tb));
    let steps = align(&la, &lb);
    let mut out = Vec::new();
    let mut k = 0;
    while k < steps.len() {
        if steps[k].0 == ' ' {
            k += 1;
            continue;
        }
        let (mut del, mut ins) = (Vec::new(), Vec::new());
        while k < steps.len() && steps[k].0 != ' ' {
            if steps[k].0 == '-' {
                del.push(la[steps[k].1]);
            } else {
                ins.push(lb[steps[k].1]);
            }
            k += 1;
        }
        for (x, y) in del.iter().zip(&ins) {
            out.push((x.to_vec(), y.to_vec()));
        }
    }
    out
}

/// A rule for a binary difference: the real bytes just before it (never plg's own
/// placeholder), then the field.
/// - Near the start of a stream or datagram (a DNS id after its length prefix), the field is
///   anchored at the start: `\A` and the exact bytes before it.
/// - A field of ASCII digits on both sides (a pid, a counter written as text) matches any
///   number of digits, and the digits both sides share before it belong to the field, not to
///   the anchor: a rule learned from pids 32145 and 32178 must hold for pid 4101.
/// - Otherwise: up to 8 anchor bytes, then any bytes of the lengths seen.
pub fn derive_binary(d: &StreamDiff) -> Vec<(String, &'static str)> {
    let real = after_placeholder(&d.before);
    let clean_start = real.len() == d.before.len() && d.a_offset == d.before.len() as u64;
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    let whole = d.a.len() as u64 == d.a_len && d.b.len() as u64 == d.b_len;
    if whole && digits(&d.a) && digits(&d.b) {
        let lead = real.iter().rev().take_while(|c| c.is_ascii_digit()).count();
        let anchor = &real[..real.len() - lead];
        let anchor = &anchor[anchor.len().saturating_sub(8)..];
        if !anchor.is_empty() {
            return vec![(
                format!("(?s){}[0-9]+", escape_bytes(anchor)),
                "binary field",
            )];
        }
    }
    let (lo, hi) = (d.a_len.min(d.b_len), d.a_len.max(d.b_len));
    let len = if lo == hi {
        format!("{{{lo}}}")
    } else {
        format!("{{{lo},{hi}}}")
    };
    if clean_start && real.len() <= 8 {
        // With fewer than two bytes before it, `\A.{n}` would match the start of every
        // stream (a DNS id rule learned on datagrams would eat the length prefix of DNS over
        // TCP): the bytes both sides have after the field pin it down.
        let tail: Vec<u8> = d
            .a_after
            .iter()
            .zip(&d.b_after)
            .take_while(|(x, y)| x == y)
            .take(4)
            .map(|(x, _)| *x)
            .collect();
        let tail = if real.len() < 2 { &tail[..] } else { &[][..] };
        return vec![(
            format!("(?s)\\A{}.{len}{}", escape_bytes(real), escape_bytes(tail)),
            "binary field",
        )];
    }
    // Zero bytes both sides share just before the field are most often the high bytes of the
    // same big-endian number (a pid, a key): they belong to the field, or a rule learned from
    // pids 31002 and 31567 would not hold for pid 70001.
    let zeros = real.iter().rev().take(3).take_while(|&&c| c == 0).count();
    let (real, lo, hi) = if real.len() > zeros + 2 {
        (
            &real[..real.len() - zeros],
            lo + zeros as u64,
            hi + zeros as u64,
        )
    } else {
        (real, lo, hi)
    };
    let len = if lo == hi {
        format!("{{{lo}}}")
    } else {
        format!("{{{lo},{hi}}}")
    };
    let anchor = &real[real.len().saturating_sub(8)..];
    if anchor.is_empty() {
        return vec![];
    }
    vec![(
        format!("(?s){}.{len}", escape_bytes(anchor)),
        "binary field",
    )]
}

fn escape_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect()
}

/// Rules that would explain one pair of differing text lines: the header value (for a
/// `Name: value` line) and a field pattern; each checked to explain the pair.
fn derive_line(a: &[u8], b: &[u8]) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    out.extend(header_rule(a, b));
    out.extend(field_rule(a, b));
    let case = Case {
        a: a.to_vec(),
        b: b.to_vec(),
        candidates: vec![],
        example: String::new(),
    };
    out.retain(|(p, _)| compile(p).is_ok_and(|re| explains(&re, &case)));
    out
}

fn header_rule(a: &[u8], b: &[u8]) -> Option<(String, &'static str)> {
    let trim = |l: &[u8]| -> Vec<u8> {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        l.strip_suffix(b"\r").unwrap_or(l).to_vec()
    };
    let (a, b) = (trim(a), trim(b));
    let (na, nb) = (header_name(&a)?, header_name(&b)?);
    (na == nb).then(|| {
        (
            format!(
                "{}: [^\\r\\n]*",
                regex::escape(&String::from_utf8_lossy(na))
            ),
            "header value",
        )
    })
}

fn field_rule(a: &[u8], b: &[u8]) -> Option<(String, &'static str)> {
    let trim = |l: &[u8]| -> Vec<u8> {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        l.strip_suffix(b"\r").unwrap_or(l).to_vec()
    };
    let (a, b) = (trim(a), trim(b));
    let mut p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_s = a.len().min(b.len()) - p;
    let s = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_s)
        .take_while(|(x, y)| x == y)
        .count();
    let word = |c: u8| c.is_ascii_alphanumeric();
    while p > 0 && word(a[p - 1]) {
        p -= 1;
    }
    let mut s = s;
    while s > 0 && word(a[a.len() - s]) {
        s -= 1;
    }
    let (sa, sb) = (&a[p..a.len() - s], &b[p..b.len() - s]);
    let anchor = anchor_before(&a[..p]);
    let suffix = &a[a.len() - s..];
    let field = match (shape(sa), shape(sb)) {
        (x, y) if x.len() == y.len() && !x.is_empty() => {
            let mut pat = String::new();
            for (u, v) in x.iter().zip(&y) {
                match (u, v) {
                    (Unit::Lit(c), Unit::Lit(d)) if c == d => {
                        pat.push_str(&regex::escape(&(*c as char).to_string()))
                    }
                    (Unit::Run(c), Unit::Run(d)) => pat.push_str(merge(*c, *d).pattern()),
                    _ => return lazy(anchor, suffix),
                }
            }
            pat
        }
        _ => return lazy(anchor, suffix),
    };
    if anchor.is_empty() && field.len() < 12 {
        // A bare `[0-9]+` would match everywhere: anchor on what follows instead.
        let tail = &suffix[..suffix.len().min(8)];
        if tail.is_empty() {
            return None;
        }
        return Some((format!("{field}{}", lit(tail)), "field"));
    }
    Some((format!("{}{field}", lit_anchor(anchor)), "field"))
}

fn lit(b: &[u8]) -> String {
    regex::escape(&String::from_utf8_lossy(b))
}

/// An anchor as a pattern: literal, except that digit runs match any digits. The text before
/// a varying field often varies itself on a longer scale (the `09:39:` before the seconds of
/// a time): a literal anchor would stop matching a minute later.
fn lit_anchor(b: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str("[0-9]+");
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str(&lit(&b[start..i]));
        }
    }
    out
}

/// `anchor` then anything up to the common suffix (or the end of the line).
fn lazy(anchor: &[u8], suffix: &[u8]) -> Option<(String, &'static str)> {
    if anchor.is_empty() {
        return None;
    }
    let tail = &suffix[..suffix.len().min(8)];
    Some(if tail.is_empty() {
        (format!("{}[^\\r\\n]*", lit_anchor(anchor)), "rest of line")
    } else {
        (
            format!("{}[^\\r\\n]*?{}", lit_anchor(anchor), lit(tail)),
            "delimited field",
        )
    })
}

/// `Name` of a `Name: value` line.
fn header_name(l: &[u8]) -> Option<&[u8]> {
    let colon = l.iter().position(|&c| c == b':')?;
    let name = &l[..colon];
    let ok = !name.is_empty()
        && name[0].is_ascii_alphabetic()
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && l.get(colon + 1) == Some(&b' ');
    ok.then_some(name)
}

/// The literal text just before a field: back to a separator, at least 3 bytes when the line
/// has them, at most 24.
fn anchor_before(prefix: &[u8]) -> &[u8] {
    let prefix = after_placeholder(prefix);
    let start = prefix.len().saturating_sub(24);
    let window = &prefix[start..];
    let sep = |c: u8| c.is_ascii_whitespace() || b"{,;&?([<>".contains(&c);
    let mut cut = window.len();
    while cut > 0 && !sep(window[cut - 1]) {
        cut -= 1;
    }
    if window.len() - cut < 3 {
        // Too short (e.g. right after a space): take the previous word too.
        let mut c2 = cut.saturating_sub(1);
        while c2 > 0 && !sep(window[c2 - 1]) {
            c2 -= 1;
        }
        cut = c2;
    }
    &window[cut..]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Digits,
    HexLower,
    HexUpper,
    Hex,
    Alpha,
    Alnum,
}

impl Class {
    fn of(run: &[u8]) -> Class {
        if run.iter().all(u8::is_ascii_digit) {
            Class::Digits
        } else if run
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        {
            Class::HexLower
        } else if run
            .iter()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
        {
            Class::HexUpper
        } else if run.iter().all(u8::is_ascii_alphabetic) {
            Class::Alpha
        } else {
            Class::Alnum
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Class::Digits => "[0-9]+",
            Class::HexLower => "[0-9a-f]+",
            Class::HexUpper => "[0-9A-F]+",
            Class::Hex => "[0-9a-fA-F]+",
            Class::Alpha => "[A-Za-z]+",
            Class::Alnum => "[A-Za-z0-9]+",
        }
    }
}

fn merge(a: Class, b: Class) -> Class {
    use Class::*;
    match (a.min(b), a.max(b)) {
        (x, y) if x == y => x,
        (Digits, HexLower) => HexLower,
        (Digits, HexUpper) => HexUpper,
        (Digits | HexLower | HexUpper, Hex) | (HexLower, HexUpper) => Hex,
        _ => Alnum,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Run(Class),
    Lit(u8),
}

/// Runs of letters and digits become classes; other bytes stay literal.
fn shape(b: &[u8]) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            let s = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Unit::Run(Class::of(&b[s..i])));
        } else {
            out.push(Unit::Lit(b[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tightest rule for a line pair.
    fn line(a: &str, b: &str) -> Option<String> {
        let mut c = derive_line(a.as_bytes(), b.as_bytes());
        c.sort_by_key(|x| kind_rank(x.1));
        c.into_iter().next().map(|x| x.0)
    }

    #[test]
    fn header_values() {
        // A date keeps its shape: the tight rule is the shape, not the whole header.
        assert_eq!(
            line(
                "Date: Tue, 25 Nov 2026 08:54:01 GMT\r\n",
                "Date: Wed, 26 Nov 2026 09:01:13 GMT\r\n"
            )
            .unwrap(),
            "Date: [A-Za-z]+, [0-9]+ [A-Za-z]+ [0-9]+ [0-9]+:[0-9]+:[0-9]+"
        );
        // A value of another shape each time: the header value.
        assert_eq!(
            line("X-Trace: a b c\r\n", "X-Trace: lorem-ipsum;dolor\r\n").unwrap(),
            "X\\-Trace: [^\\r\\n]*"
        );
    }

    #[test]
    fn tokens_get_their_class_and_an_anchor() {
        assert_eq!(
            line(
                "{\"id\":\"9f8e7d\",\"n\":1}",
                "{\"id\":\"0a1b2c3d\",\"n\":1}"
            )
            .unwrap(),
            "\"id\":\"[0-9a-f]+"
        );
        assert_eq!(line("seq=17 ok", "seq=2045 ok").unwrap(), "seq=[0-9]+");
        assert_eq!(
            line("at 08:54:01 done", "at 09:10:22 done").unwrap(),
            "at [0-9]+:[0-9]+:[0-9]+"
        );
    }

    #[test]
    fn learned_patterns_match_both_sides() {
        for (a, b) in [
            ("token=AbC123xyz; path=/", "token=zz9Q; path=/"),
            ("nonce: 5f3a in flight", "nonce: 9 in flight"),
            ("x <b>12.5</b>", "x <b>7.25</b>"),
        ] {
            let p = line(a, b).unwrap();
            let re = compile(&p).unwrap();
            let na = re.replace_all(a.as_bytes(), &b"#"[..]);
            let nb = re.replace_all(b.as_bytes(), &b"#"[..]);
            assert_eq!(na, nb, "pattern {p}");
        }
    }

    #[test]
    fn binary_fields() {
        let d = StreamDiff {
            a_offset: 12,
            b_offset: 12,
            a_len: 4,
            b_len: 4,
            before: vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            a: vec![0xde, 0xad, 0xbe, 0xef],
            b: vec![1, 2, 3, 4],
            a_after: vec![0; 8],
            b_after: vec![0; 8],
        };
        let r = derive_binary(&d);
        assert_eq!(r[0].0, "(?s)\\x04\\x05\\x06\\x07\\x08\\x09\\x0a\\x0b.{4}");
    }

    fn bin(before: &[u8], a: &[u8], b: &[u8], offset: u64) -> StreamDiff {
        StreamDiff {
            a_offset: offset,
            b_offset: offset,
            a_len: a.len() as u64,
            b_len: b.len() as u64,
            before: before.to_vec(),
            a: a.to_vec(),
            b: b.to_vec(),
            a_after: vec![0; 4],
            b_after: vec![0; 4],
        }
    }

    /// Regression: rules were anchored on the tail of plg's placeholder (`nored\x5d\x1b\x00`),
    /// which never occurs in a raw stream.
    #[test]
    fn a_binary_anchor_never_holds_placeholder_bytes() {
        let mut before = b"xx".to_vec();
        before.extend_from_slice(PLACEHOLDER);
        before.extend_from_slice(b"\x01\x02");
        let r = derive_binary(&bin(&before, b"\xaa", b"\xbb", 40));
        assert_eq!(r[0].0, "(?s)\\x01\\x02.{1}");
        // The context window cut a placeholder: its tail is not an anchor either.
        let mut before = PLACEHOLDER[6..].to_vec();
        before.extend_from_slice(b"\x05\x06\x07");
        let r = derive_binary(&bin(&before, b"\xaa", b"\xbb", 40));
        assert_eq!(r[0].0, "(?s)\\x05\\x06\\x07.{1}");
        for (p, _) in &r {
            assert!(!p.contains("nored") && !p.contains("x1b"), "{p}");
        }
    }

    /// Regression: a pid written as digits learned as "starts with 32".
    #[test]
    fn digits_generalise_to_any_number_of_digits() {
        let r = derive_binary(&bin(b"\x00\x05pid=321", b"45", b"78", 20));
        assert_eq!(r[0].0, "(?s)\\x00\\x05pid\\x3d[0-9]+");
        let re = compile(&r[0].0).unwrap();
        for pid in ["pid=32145", "pid=4101", "pid=7"] {
            let mut s = b"\x00\x05".to_vec();
            s.extend_from_slice(pid.as_bytes());
            assert_eq!(re.find(&s).map(|m| m.end()), Some(s.len()), "{pid}");
        }
    }

    /// PostgreSQL's BackendKeyData: the pid's shared high zero bytes belong to the field.
    #[test]
    fn shared_zero_bytes_before_a_binary_field_belong_to_it() {
        let r = derive_binary(&bin(
            b"\x00K\x00\x00\x00\x0c\x00\x00",
            b"\x79\x55",
            b"\x0f\xa0",
            20,
        ));
        assert_eq!(r[0].0, "(?s)\\x00K\\x00\\x00\\x00\\x0c.{4}");
    }

    /// A DNS id over TCP (after a two-byte length) or in a datagram: anchored at the start,
    /// not on one byte that occurs anywhere.
    #[test]
    fn a_field_near_the_start_is_anchored_there() {
        let r = derive_binary(&bin(b"\x001", b"\xab\xcd", b"\x12\x34", 2));
        assert_eq!(r[0].0, "(?s)\\A\\x001.{2}");
        let mut d = bin(b"", b"\xab\xcd", b"\x12\x34", 0);
        d.a_after = b"\x01\x20\x00\x01\x00".to_vec();
        d.b_after = b"\x01\x20\x00\x01\x07".to_vec();
        let r = derive_binary(&d);
        assert_eq!(r[0].0, "(?s)\\A.{2}\\x01\\x20\\x00\\x01");
    }
}
