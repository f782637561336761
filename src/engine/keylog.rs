//! TLS key logs of a session: every process gets `SSLKEYLOGFILE` naming its own file in a
//! private directory; the session polls those files and hands the new key lines to the
//! capture, which stores them as Decryption Secrets Blocks (Wireshark then decrypts the TLS
//! connections of `plg export --pcapng` with no configuration).
//!
//! Only whole, well-formed NSS key log lines (`LABEL <64 hex> <hex>`) are kept, each once; a
//! line still being written waits for its newline. Memory: the set of lines kept (the key log
//! itself, ~150 bytes per TLS session) plus one partial line per process.

use crate::wire::tls::keylog_line_random;
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The environment variable TLS libraries (OpenSSL 1.1.1+, NSS, GnuTLS, BoringSSL, Python's
/// `ssl`, curl, Node with `--tls-keylog`) read.
pub const ENV: &str = "SSLKEYLOGFILE";

/// Longest line kept while waiting for its newline; longer ones are not key log lines.
const MAX_LINE: usize = 1024;

/// Assembles key log lines from chunks of one file.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
    /// The partial line overflowed: skip to the next newline.
    skipping: bool,
}

impl Lines {
    /// Takes in the next bytes of the file; calls `line` for each complete line.
    pub fn push(&mut self, mut chunk: &[u8], mut line: impl FnMut(&[u8])) {
        while let Some(nl) = chunk.iter().position(|b| *b == b'\n') {
            if !self.skipping {
                self.partial.extend_from_slice(&chunk[..nl]);
                line(&self.partial);
            }
            self.partial.clear();
            self.skipping = false;
            chunk = &chunk[nl + 1..];
        }
        if !self.skipping {
            self.partial.extend_from_slice(chunk);
            if self.partial.len() > MAX_LINE {
                self.partial.clear();
                self.skipping = true;
            }
        }
    }
}

/// Keeps the well-formed lines not seen before, each with a newline, in `out`.
#[derive(Debug, Default)]
pub struct Collector {
    seen: HashSet<Vec<u8>>,
}

impl Collector {
    pub fn take(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if keylog_line_random(line).is_some() && self.seen.insert(line.to_vec()) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
}

/// The key log files of one session, in a directory made for it (removed on drop).
pub struct KeyLogs {
    dir: PathBuf,
    files: Vec<(PathBuf, u64, Lines)>,
    collector: Collector,
}

impl KeyLogs {
    /// Makes a private directory for the session's key logs.
    pub fn new() -> std::io::Result<KeyLogs> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir().join(format!("plg-keys-{}", std::process::id()));
        // A leftover of an earlier plg with the same pid (killed with SIGKILL) goes first.
        let _ = std::fs::remove_dir_all(&base);
        // One we may not remove (another user's, or not a directory) is stepped around, never
        // a reason to fail the session.
        let mut dir = base.clone();
        let mut n = 0;
        loop {
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                    n += 1;
                    dir = base.with_file_name(format!("plg-keys-{}-{n}", std::process::id()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(KeyLogs {
            dir,
            files: Vec::new(),
            collector: Collector::default(),
        })
    }

    /// The key log path for process `index`, to give it as `SSLKEYLOGFILE`.
    pub fn add(&mut self, index: usize) -> PathBuf {
        let path = self.dir.join(format!("{index}.keys"));
        self.files.push((path.clone(), 0, Lines::default()));
        path
    }

    /// New key lines written since the last poll (empty: none).
    pub fn poll(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, offset, lines) in &mut self.files {
            let Ok(chunk) = read_from(path, *offset) else {
                continue;
            };
            *offset += chunk.len() as u64;
            let collector = &mut self.collector;
            lines.push(&chunk, |l| collector.take(l, &mut out));
        }
        out
    }
}

impl Drop for KeyLogs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `path` holds past `offset` (at most 1 MiB per call: the rest comes next poll).
fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(1 << 20).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod test {
    use super::*;

    fn line(label: &str, r: u8) -> String {
        format!(
            "{label} {} {}\n",
            format!("{r:02x}").repeat(32),
            "11".repeat(48)
        )
    }

    #[test]
    fn lines_split_anywhere_are_kept_whole_and_once() {
        let text = format!(
            "# SSL/TLS secrets log file\n{}{}{}",
            line("CLIENT_RANDOM", 1),
            line("CLIENT_TRAFFIC_SECRET_0", 2),
            line("CLIENT_RANDOM", 1)
        );
        for cut in 0..text.len() {
            let (mut lines, mut c, mut out) = (Lines::default(), Collector::default(), Vec::new());
            lines.push(&text.as_bytes()[..cut], |l| c.take(l, &mut out));
            lines.push(&text.as_bytes()[cut..], |l| c.take(l, &mut out));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(
                    "{}{}",
                    line("CLIENT_RANDOM", 1),
                    line("CLIENT_TRAFFIC_SECRET_0", 2)
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_overlong_line_is_dropped_and_the_next_one_kept() {
        let (mut lines, mut c, mut out) = (Lines::default(), Collector::default(), Vec::new());
        lines.push(&[b'A'; 3000], |l| c.take(l, &mut out));
        lines.push(&[b'A'; 3000], |l| c.take(l, &mut out));
        lines.push(format!("\n{}", line("CLIENT_RANDOM", 3)).as_bytes(), |l| {
            c.take(l, &mut out)
        });
        assert_eq!(String::from_utf8(out).unwrap(), line("CLIENT_RANDOM", 3));
    }

    #[test]
    fn files_are_polled_incrementally() {
        // A leftover at the pid's name that cannot be removed (here a file; for an
        // unprivileged plg, root's directory) is stepped around, not a failed session.
        let stale = std::env::temp_dir().join(format!("plg-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&stale);
        std::fs::write(&stale, b"not ours").unwrap();
        let mut logs = KeyLogs::new().unwrap();
        std::fs::remove_file(&stale).unwrap();
        assert_ne!(logs.dir, stale);
        let path = logs.add(0);
        assert!(logs.poll().is_empty(), "no file yet");
        std::fs::write(&path, format!("{}CLIENT_RAN", line("CLIENT_RANDOM", 4))).unwrap();
        assert_eq!(logs.poll(), line("CLIENT_RANDOM", 4).into_bytes());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, &line("CLIENT_RANDOM", 5).as_bytes()[10..]).unwrap();
        assert_eq!(logs.poll(), line("CLIENT_RANDOM", 5).into_bytes());
        assert!(logs.poll().is_empty());
        let dir = path.parent().unwrap().to_path_buf();
        drop(logs);
        assert!(!dir.exists());
    }
}
