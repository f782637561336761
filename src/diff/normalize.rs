//! Applying ignore patterns to a stream as it goes by, in bounded memory.
//!
//! A [`Normalizer`] wraps the raw pieces of one stream and hands on the same bytes with every
//! match of the ignore pattern replaced by a [`Piece::Ignored`] (which the comparison sees as
//! one placeholder). Two streams that differ only inside matched ranges thus compare equal,
//! even when the matched ranges have different lengths.
//!
//! Streaming limit: the pattern runs over a sliding buffer. A match is only accepted once at
//! least [`LOOKAHEAD`] bytes after its start are buffered (or the stream has ended), so a match
//! longer than that is cut at about `LOOKAHEAD` bytes. [`HISTORY`] bytes before the buffer are
//! kept as look-behind, so `(?m)^`, `$` and `\b` see the real neighbouring bytes; `\A` only
//! matches at the very start of the stream.

use super::stream::{Piece, PieceSource};
use regex::bytes::Regex;

/// Bytes after a match start that must be seen before the match is accepted.
pub const LOOKAHEAD: usize = 64 * 1024;
/// Bytes kept before the unprocessed part, as look-behind for anchors.
pub const HISTORY: usize = 256;

/// Wraps a source of raw bytes and replaces ranges matching `re` by ignored pieces.
pub struct Normalizer<S> {
    src: S,
    re: Regex,
    /// `buf[..keep]` is look-behind already handed on; the rest is pending.
    buf: Vec<u8>,
    keep: usize,
    /// Original offset of `buf[0]`.
    orig: u64,
    eof: bool,
    out: std::collections::VecDeque<Piece>,
}

impl<S: PieceSource> Normalizer<S> {
    pub fn new(src: S, re: Regex) -> Self {
        Normalizer {
            src,
            re,
            buf: Vec::new(),
            keep: 0,
            orig: 0,
            eof: false,
            out: Default::default(),
        }
    }

    /// Reads until enough is buffered, then turns the safe part of the buffer into pieces.
    fn step(&mut self) -> anyhow::Result<()> {
        while !self.eof && self.buf.len() - self.keep < 2 * LOOKAHEAD {
            match self.src.next_piece()? {
                None => self.eof = true,
                Some(Piece::Bytes { orig, bytes }) => {
                    if self.buf.len() == self.keep && self.keep == 0 {
                        self.orig = orig;
                    }
                    self.buf.extend_from_slice(&bytes);
                }
                Some(Piece::Ignored { .. }) => {
                    anyhow::bail!("internal: a normalizer was given normalized input")
                }
            }
        }
        let safe_end = if self.eof {
            self.buf.len()
        } else {
            self.buf.len() - LOOKAHEAD
        };
        let mut lit = self.keep;
        let mut at = self.keep;
        while at <= self.buf.len() {
            let Some(m) = self.re.find_at(&self.buf, at) else {
                break;
            };
            if m.start() >= safe_end {
                break;
            }
            if m.is_empty() {
                at = m.start() + 1;
                continue;
            }
            if m.start() > lit {
                self.out.push_back(Piece::Bytes {
                    orig: self.orig + lit as u64,
                    bytes: self.buf[lit..m.start()].to_vec(),
                });
            }
            self.out.push_back(Piece::Ignored {
                orig: self.orig + m.start() as u64,
                len: m.len() as u64,
            });
            lit = m.end();
            at = m.end();
        }
        if safe_end > lit {
            self.out.push_back(Piece::Bytes {
                orig: self.orig + lit as u64,
                bytes: self.buf[lit..safe_end].to_vec(),
            });
            lit = safe_end;
        }
        // Keep some look-behind before the first byte not handed on yet.
        let drop = lit.saturating_sub(HISTORY);
        self.buf.drain(..drop);
        self.orig += drop as u64;
        self.keep = lit - drop;
        Ok(())
    }
}

impl<S: PieceSource> PieceSource for Normalizer<S> {
    fn next_piece(&mut self) -> anyhow::Result<Option<Piece>> {
        loop {
            if let Some(p) = self.out.pop_front() {
                return Ok(Some(p));
            }
            if self.eof && self.keep == self.buf.len() {
                return Ok(None);
            }
            self.step()?;
        }
    }
}

/// Replaces every match of `re` in one whole message (a packet payload) by the placeholder.
pub fn normalize_message(re: Option<&Regex>, bytes: &[u8]) -> (Vec<u8>, u64) {
    let Some(re) = re else {
        return (bytes.to_vec(), 0);
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut lit = 0;
    let mut n = 0;
    for m in re.find_iter(bytes) {
        if m.is_empty() {
            continue;
        }
        out.extend_from_slice(&bytes[lit..m.start()]);
        out.extend_from_slice(super::stream::PLACEHOLDER);
        lit = m.end();
        n += 1;
    }
    out.extend_from_slice(&bytes[lit..]);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::stream::{compare_streams, Limits};

    fn source(data: &[u8], chunk: usize) -> std::vec::IntoIter<Piece> {
        data.chunks(chunk.max(1))
            .enumerate()
            .map(|(i, c)| Piece::Bytes {
                orig: (i * chunk) as u64,
                bytes: c.to_vec(),
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn collect(mut n: impl PieceSource) -> Vec<Piece> {
        let mut v = Vec::new();
        while let Some(p) = n.next_piece().unwrap() {
            v.push(p);
        }
        v
    }

    fn re(p: &str) -> Regex {
        regex::bytes::RegexBuilder::new(p)
            .unicode(false)
            .build()
            .unwrap()
    }

    #[test]
    fn replaces_matches_with_ignored_pieces() {
        let data = b"HTTP/1.1 200 OK\r\nDate: Tue\r\nX: y\r\nDate: Wednesday\r\n\r\n";
        let pieces = collect(Normalizer::new(source(data, 7), re(r"Date: [^\r]*")));
        let ignored: Vec<_> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Ignored { orig, len } => Some((*orig, *len)),
                _ => None,
            })
            .collect();
        assert_eq!(ignored, vec![(17, 9), (34, 15)]);
        let text: Vec<u8> = pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Bytes { bytes, .. } => bytes.clone(),
                Piece::Ignored { .. } => b"#".to_vec(),
            })
            .collect();
        assert_eq!(text, b"HTTP/1.1 200 OK\r\n#\r\nX: y\r\n#\r\n\r\n");
    }

    #[test]
    fn matches_across_the_window_are_found() {
        // Many windows' worth of data, with a match straddling every chunk boundary.
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..20_000 {
            a.extend_from_slice(format!("line {i} id={:x};\n", i * 7919).as_bytes());
            b.extend_from_slice(format!("line {i} id={:x};\n", i * 104729).as_bytes());
        }
        let mut na = Normalizer::new(source(&a, 4096), re("id=[0-9a-f]+"));
        let mut nb = Normalizer::new(source(&b, 1000), re("id=[0-9a-f]+"));
        let r = compare_streams(&mut na, &mut nb, Limits::default()).unwrap();
        assert!(r.same(), "{r:?}");
        assert_eq!(r.ignored_a, 20_000);
    }

    #[test]
    fn multiline_anchor_sees_lookbehind() {
        let mut data = vec![b'a'; 3 * LOOKAHEAD];
        data.extend_from_slice(b"\nSet-Cookie: x=1\n");
        let pieces = collect(Normalizer::new(
            source(&data, 5000),
            re(r"(?m)^Set-Cookie: [^\n]*"),
        ));
        assert!(pieces.iter().any(
            |p| matches!(p, Piece::Ignored { orig, .. } if *orig == 3 * LOOKAHEAD as u64 + 1)
        ));
    }

    #[test]
    fn messages_are_normalized_whole() {
        let (out, n) = normalize_message(Some(&re("[0-9]+")), b"seq 12 of 3400");
        assert_eq!(n, 2);
        assert!(out.starts_with(b"seq \x00"));
    }
}
