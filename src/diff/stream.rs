//! Byte-stream comparison: walk two streams in step and describe where they differ.
//!
//! Pure: the streams come in as [`Piece`]s from a [`PieceSource`] (raw capture bytes, or bytes
//! already normalized by the ignore rules), and the result is a list of [`StreamDiff`]s. Memory
//! is bounded by the comparison window, never by the stream length.
//!
//! How a difference is delimited: at the first byte where the streams disagree, both are looked
//! at `WINDOW` bytes ahead and the nearest realignment point is searched, the pair of offsets
//! (i, j) with the smallest i + j after which both streams agree for `ANCHOR` bytes (or both end
//! with the same tail). The bytes before it are the difference (a changed byte gives i = j = 1,
//! an insertion i = 0); the walk goes on from there. When no realignment point exists within
//! the window, the streams are said to diverge and the walk stops.

use std::collections::{HashMap, VecDeque};

/// How far ahead of a mismatch a realignment point is searched.
pub const WINDOW: usize = 16 * 1024;
/// How many equal bytes make a realignment point.
pub const ANCHOR: usize = 32;
/// The longest run of differing bytes kept (per side) in a [`StreamDiff`].
pub const SNIPPET: usize = 1024;

/// Stands in, in a normalized stream, for a byte range an ignore rule matched. The bytes are
/// chosen so that they do not occur in real protocol text.
pub const PLACEHOLDER: &[u8] = b"\x00\x1b[plg:ignored]\x1b\x00";

/// A run of stream bytes, tagged with its offset in the original (captured) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes compared as they are.
    Bytes { orig: u64, bytes: Vec<u8> },
    /// `len` original bytes that an ignore rule matched; compared as [`PLACEHOLDER`].
    Ignored { orig: u64, len: u64 },
}

/// Yields one stream's pieces in order; `Ok(None)` at the end.
pub trait PieceSource {
    fn next_piece(&mut self) -> anyhow::Result<Option<Piece>>;
}

impl PieceSource for std::vec::IntoIter<Piece> {
    fn next_piece(&mut self) -> anyhow::Result<Option<Piece>> {
        Ok(self.next())
    }
}

/// One place where two streams differ.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamDiff {
    /// Offset of the first differing byte in each original stream.
    pub a_offset: u64,
    pub b_offset: u64,
    /// Length of the differing range in each original stream (0: nothing there, the other
    /// side has extra bytes).
    pub a_len: u64,
    pub b_len: u64,
    /// Bytes both streams have just before the difference (at most the context asked for).
    pub before: Vec<u8>,
    /// The differing bytes, at most [`SNIPPET`] each (ignored ranges appear as
    /// [`PLACEHOLDER`]).
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    /// Bytes following the difference on each side (at most the context asked for).
    pub a_after: Vec<u8>,
    pub b_after: Vec<u8>,
}

/// What comparing two streams found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamResult {
    pub diffs: Vec<StreamDiff>,
    /// The walk stopped at the difference limit: more may follow.
    pub more: bool,
    /// The streams did not realign within [`WINDOW`] bytes of the last difference: nothing
    /// after it was compared.
    pub diverged: bool,
    /// Ignored ranges seen on each side.
    pub ignored_a: u64,
    pub ignored_b: u64,
}

impl StreamResult {
    pub fn same(&self) -> bool {
        self.diffs.is_empty() && !self.more && !self.diverged
    }
}

/// Limits of one comparison.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop after this many differences (0: no limit).
    pub max_diffs: usize,
    /// Bytes of context kept before and after each difference.
    pub context: usize,
    /// Keep the bytes of differences (false: offsets and lengths only, to bound memory).
    pub snippets: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_diffs: 5,
            context: 256,
            snippets: true,
        }
    }
}

/// Compares two streams; see the module header for how differences are delimited.
pub fn compare_streams(
    a: &mut dyn PieceSource,
    b: &mut dyn PieceSource,
    limits: Limits,
) -> anyhow::Result<StreamResult> {
    let history = limits.context.max(ANCHOR);
    let mut ca = Cursor::new(a, history);
    let mut cb = Cursor::new(b, history);
    let mut result = StreamResult::default();
    const STEP: usize = 256 * 1024;
    loop {
        ca.fill(STEP)?;
        cb.fill(STEP)?;
        let (sa, sb) = (ca.avail(), cb.avail());
        let n = common_prefix(sa, sb);
        let (la, lb) = (sa.len(), sb.len());
        ca.advance(n);
        cb.advance(n);
        let mismatch = if n < la.min(lb) {
            true
        } else if la == n && lb == n {
            if ca.eof && cb.eof {
                break;
            }
            false
        } else {
            // One side ran out of buffered bytes: a difference only if it has no more.
            (la == n && ca.eof) || (lb == n && cb.eof)
        };
        if !mismatch {
            continue;
        }
        if limits.max_diffs != 0 && result.diffs.len() >= limits.max_diffs {
            result.more = true;
            break;
        }
        ca.fill(WINDOW)?;
        cb.fill(WINDOW)?;
        let aw = &ca.avail()[..ca.avail().len().min(WINDOW)];
        let bw = &cb.avail()[..cb.avail().len().min(WINDOW)];
        let a_end = ca.eof && ca.avail().len() <= WINDOW;
        let b_end = cb.eof && cb.avail().len() <= WINDOW;
        let found = resync(aw, bw, a_end, b_end);
        let (i, j) = found.unwrap_or((aw.len(), bw.len()));
        let mut d = StreamDiff {
            a_offset: ca.orig_at(ca.offset()),
            b_offset: cb.orig_at(cb.offset()),
            ..Default::default()
        };
        d.a_len = ca.orig_at(ca.offset() + i as u64) - d.a_offset;
        d.b_len = cb.orig_at(cb.offset() + j as u64) - d.b_offset;
        if found.is_none() {
            // Diverged: the differing ranges run to the end of what was looked at.
            d.a_len = d.a_len.max(ca.orig_len_hint().saturating_sub(d.a_offset));
            d.b_len = d.b_len.max(cb.orig_len_hint().saturating_sub(d.b_offset));
        }
        if limits.snippets {
            d.before = ca.history(limits.context).to_vec();
            d.a = aw[..i.min(SNIPPET)].to_vec();
            d.b = bw[..j.min(SNIPPET)].to_vec();
            d.a_after = aw[i..(i + limits.context).min(aw.len())].to_vec();
            d.b_after = bw[j..(j + limits.context).min(bw.len())].to_vec();
        }
        result.diffs.push(d);
        if found.is_none() {
            result.diverged = true;
            break;
        }
        ca.advance(i);
        cb.advance(j);
    }
    result.ignored_a = ca.ignored;
    result.ignored_b = cb.ignored;
    Ok(result)
}

/// Length of the common prefix of two slices, compared a block at a time.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The realignment point nearest to a mismatch at `aw[0]` / `bw[0]`: the (i, j) such that
/// `aw[i..i + ANCHOR] == bw[j..j + ANCHOR]`, or, when both windows reach the end of their
/// streams, such that the remaining tails are equal (possibly empty). Nearest means the
/// smallest max(i, j), then a substitution (i == j) before an insertion or deletion (repetitive
/// data makes both possible), then the smallest i + j.
pub fn resync(aw: &[u8], bw: &[u8], a_end: bool, b_end: bool) -> Option<(usize, usize)> {
    type Cand = Option<(usize, usize)>;
    let key = |c: Cand| {
        c.map_or((usize::MAX, 1, usize::MAX), |(i, j)| {
            (i.max(j), usize::from(i != j), i + j)
        })
    };
    let mut best: Cand = None;
    if a_end && b_end {
        let t = common_suffix(aw, bw);
        best = Some((aw.len() - t, bw.len() - t));
    }
    if aw.len() < ANCHOR || bw.len() < ANCHOR {
        return best;
    }
    let (amax, bmax) = (aw.len() - ANCHOR, bw.len() - ANCHOR);
    let anchored =
        |i: usize, j: usize| i <= amax && j <= bmax && aw[i..i + ANCHOR] == bw[j..j + ANCHOR];
    // Nearby realignments (changed bytes, short insertions) are found without an index.
    const NEAR: usize = 64;
    for m in 1..NEAR {
        if key(Some((m, m))) >= key(best) && key(Some((0, m))) >= key(best) {
            break;
        }
        let mut cands = vec![(m, m)];
        for k in 0..m {
            cands.push((k, m));
            cands.push((m, k));
        }
        for (i, j) in cands {
            if key(Some((i, j))) < key(best) && anchored(i, j) {
                best = Some((i, j));
            }
        }
        if best.is_some_and(|(i, j)| i.max(j) <= m) {
            return best;
        }
    }
    // Farther ones: index the anchors of one side, scan the other.
    let mut first: HashMap<&[u8], usize> = HashMap::with_capacity(bmax + 1);
    for j in 0..=bmax {
        first.entry(&bw[j..j + ANCHOR]).or_insert(j);
    }
    for i in 0..=amax {
        if i > key(best).0 {
            break;
        }
        if let Some(&j) = first.get(&aw[i..i + ANCHOR]) {
            if key(Some((i, j))) < key(best) {
                best = Some((i, j));
            }
            // A substitution at the same distance beats what the first occurrence gave.
            if j < i && anchored(i, i) && key(Some((i, i))) < key(best) {
                best = Some((i, i));
            }
        }
    }
    best
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Where a run of normalized bytes came from.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// Normalized offset of its first byte.
    norm: u64,
    /// Original offset of its first byte.
    orig: u64,
    /// For an ignored range: its original length (the span is a placeholder).
    ignored: Option<u64>,
}

/// A read position in a normalized stream, with the bytes just before it kept as history and
/// the bytes after it buffered on demand.
struct Cursor<'a> {
    src: &'a mut dyn PieceSource,
    /// Normalized bytes; `buf[0]` is at normalized offset `base`.
    buf: Vec<u8>,
    base: u64,
    /// Index in `buf` of the read position.
    pos: usize,
    spans: VecDeque<Span>,
    eof: bool,
    /// Original offset just past the last piece taken.
    orig_end: u64,
    history: usize,
    ignored: u64,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a mut dyn PieceSource, history: usize) -> Self {
        Cursor {
            src,
            buf: Vec::new(),
            base: 0,
            pos: 0,
            spans: VecDeque::new(),
            eof: false,
            orig_end: 0,
            history,
            ignored: 0,
        }
    }

    /// Buffers at least `need` bytes after the read position, or all that is left.
    fn fill(&mut self, need: usize) -> anyhow::Result<()> {
        while !self.eof && self.buf.len() - self.pos < need {
            match self.src.next_piece()? {
                None => self.eof = true,
                Some(Piece::Bytes { orig, bytes }) => {
                    if bytes.is_empty() {
                        continue;
                    }
                    let norm = self.base + self.buf.len() as u64;
                    self.orig_end = orig + bytes.len() as u64;
                    self.spans.push_back(Span {
                        norm,
                        orig,
                        ignored: None,
                    });
                    self.buf.extend_from_slice(&bytes);
                }
                Some(Piece::Ignored { orig, len }) => {
                    let norm = self.base + self.buf.len() as u64;
                    self.orig_end = orig + len;
                    self.ignored += 1;
                    self.spans.push_back(Span {
                        norm,
                        orig,
                        ignored: Some(len),
                    });
                    self.buf.extend_from_slice(PLACEHOLDER);
                }
            }
        }
        Ok(())
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Normalized offset of the read position.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Up to `n` bytes before the read position.
    fn history(&self, n: usize) -> &[u8] {
        &self.buf[self.pos.saturating_sub(n)..self.pos]
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        // Drop what is no longer needed as history, in large steps so that the copy is cheap.
        let keep = self.history;
        if self.pos > keep + (1 << 20) {
            let drop = self.pos - keep;
            self.buf.drain(..drop);
            self.pos -= drop;
            self.base += drop as u64;
            while self.spans.len() > 1 && self.spans[1].norm <= self.base {
                self.spans.pop_front();
            }
        }
    }

    /// Original offset of normalized offset `norm` (an offset inside a placeholder maps to the
    /// start of the ignored range; the end maps to the end of the stream seen so far).
    fn orig_at(&self, norm: u64) -> u64 {
        let idx = self.spans.partition_point(|s| s.norm <= norm);
        if idx == 0 {
            return self.spans.front().map_or(0, |s| s.orig);
        }
        let s = self.spans[idx - 1];
        let end = self.base + self.buf.len() as u64;
        let next = self.spans.get(idx).map_or(end, |n| n.norm);
        if norm >= next {
            return self.orig_end;
        }
        match s.ignored {
            None => s.orig + (norm - s.norm),
            Some(_) if norm == s.norm => s.orig,
            Some(len) => s.orig + len,
        }
    }

    /// Original offset just past the bytes buffered so far.
    fn orig_len_hint(&self) -> u64 {
        self.orig_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(chunks: &[&[u8]]) -> std::vec::IntoIter<Piece> {
        let mut orig = 0;
        let mut v = Vec::new();
        for c in chunks {
            v.push(Piece::Bytes {
                orig,
                bytes: c.to_vec(),
            });
            orig += c.len() as u64;
        }
        v.into_iter()
    }

    fn cmp(a: &[&[u8]], b: &[&[u8]]) -> StreamResult {
        compare_streams(&mut pieces(a), &mut pieces(b), Limits::default()).unwrap()
    }

    #[test]
    fn equal_streams_chunked_differently() {
        let r = cmp(&[b"hello ", b"world"], &[b"hel", b"lo world"]);
        assert!(r.same());
    }

    #[test]
    fn empty_streams_are_equal() {
        assert!(cmp(&[], &[]).same());
    }

    #[test]
    fn one_changed_byte_gives_its_offset() {
        let mut a = vec![b'x'; 100_000];
        let b0 = a.clone();
        a[70_001] = b'y';
        let r = cmp(&[&b0[..]], &[&a[..50_000], &a[50_000..]]);
        assert_eq!(r.diffs.len(), 1);
        let d = &r.diffs[0];
        assert_eq!(
            (d.a_offset, d.b_offset, d.a_len, d.b_len),
            (70_001, 70_001, 1, 1)
        );
        assert_eq!((d.a.as_slice(), d.b.as_slice()), (&b"x"[..], &b"y"[..]));
        assert!(!r.diverged && !r.more);
    }

    #[test]
    fn insertion_realigns_and_later_changes_are_found() {
        let base: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut b = base.clone();
        b.splice(100..100, b"INSERTED".iter().copied());
        let n = b.len();
        b[n - 10] ^= 0xff;
        let r = cmp(&[&base[..]], &[&b[..]]);
        assert_eq!(r.diffs.len(), 2, "{r:?}");
        assert_eq!((r.diffs[0].a_offset, r.diffs[0].a_len), (100, 0));
        assert_eq!((r.diffs[0].b_offset, r.diffs[0].b_len), (100, 8));
        assert_eq!(r.diffs[1].a_offset, base.len() as u64 - 10);
        assert_eq!(r.diffs[1].b_offset, n as u64 - 10);
    }

    #[test]
    fn truncated_stream_is_a_difference_at_its_end() {
        let r = cmp(&[b"GET / HTTP/1.1\r\n\r\n"], &[b"GET / HTTP/1.1\r\n"]);
        assert_eq!(r.diffs.len(), 1);
        let d = &r.diffs[0];
        assert_eq!((d.a_offset, d.a_len, d.b_len), (16, 2, 0));
    }

    #[test]
    fn limit_stops_the_walk() {
        let a = vec![0u8; 10_000];
        let mut b = a.clone();
        for k in 0..10 {
            b[k * 1000] = 1;
        }
        let r = compare_streams(
            &mut pieces(&[&a]),
            &mut pieces(&[&b]),
            Limits {
                max_diffs: 3,
                ..Limits::default()
            },
        )
        .unwrap();
        assert_eq!(r.diffs.len(), 3);
        assert!(r.more);
    }

    #[test]
    fn unrelated_streams_diverge() {
        let a: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..40_000u32).map(|i| (i * 13 % 253) as u8).collect();
        let r = cmp(&[&a], &[&b]);
        assert!(r.diverged);
        assert_eq!(r.diffs.len(), 1);
    }

    #[test]
    fn ignored_ranges_map_back_to_original_offsets() {
        let a = vec![
            Piece::Bytes {
                orig: 0,
                bytes: b"Date: ".to_vec(),
            },
            Piece::Ignored { orig: 6, len: 29 },
            Piece::Bytes {
                orig: 35,
                bytes: b"\r\nX: 1\r\n".to_vec(),
            },
        ];
        let b = vec![
            Piece::Bytes {
                orig: 0,
                bytes: b"Date: ".to_vec(),
            },
            Piece::Ignored { orig: 6, len: 30 },
            Piece::Bytes {
                orig: 36,
                bytes: b"\r\nX: 2\r\n".to_vec(),
            },
        ];
        let r = compare_streams(&mut a.into_iter(), &mut b.into_iter(), Limits::default()).unwrap();
        assert_eq!(r.diffs.len(), 1);
        assert_eq!((r.diffs[0].a_offset, r.diffs[0].b_offset), (40, 41));
        assert_eq!((r.ignored_a, r.ignored_b), (1, 1));
    }
}
