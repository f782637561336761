//! `plg diff`: compare two captures and report behavioural drift.
//!
//! Owns the comparison of captures and nothing else: it reads captures only through
//! [`source`] (the format layer's reader) and never touches sockets, namespaces or the terminal
//! (the human renderer writes to any `Write`, colour decided by the caller).
//!
//! Two passes, so that connections may interleave differently in the two files and memory
//! stays bounded by the number of connections, not by the bytes:
//! 1. [`index`]: each capture is read once, front to back (both at once, one thread each):
//!    per connection its key, outcome, closes, byte counts, a hash of each direction and the
//!    offsets of its Data blocks.
//! 2. [`compare`]: connections are matched by key (client, server, server port, ordinal); only
//!    directions whose hashes differ are re-read, block by block, and walked in step by
//!    [`stream`], through [`normalize`] when ignore patterns are in force.
//!
//! The [`report::Report`] is then shown by [`human`], [`json`] or [`junit`]; [`learn`] turns
//! the differences between runs of one scenario into [`rules`]. [`replay`] applies the same
//! comparison to a replay's own capture, for `plg replay`'s verdict.

pub mod compare;
pub mod human;
pub mod index;
pub mod json;
pub mod junit;
pub mod learn;
pub mod normalize;
pub mod replay;
pub mod report;
pub mod rules;
pub mod source;
pub mod stream;
pub mod textdiff;

use anyhow::Context;
use index::{BlockSource, Index};
use source::FileSource;
use std::path::{Path, PathBuf};

/// Indexes captures, two at a time in parallel; each comes back with its source, ready for
/// pass 2.
pub fn index_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(Index, FileSource)>> {
    let mut out = Vec::with_capacity(paths.len());
    for pair in paths.chunks(2) {
        let results: Vec<anyhow::Result<(Index, FileSource)>> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|p| s.spawn(move || index_file(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("indexing panicked")))
                })
                .collect()
        });
        for r in results {
            out.push(r?);
        }
    }
    Ok(out)
}

fn index_file(path: &Path) -> anyhow::Result<(Index, FileSource)> {
    let mut src = FileSource::open(path)?;
    let name = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let ix = Index::build(&name, &mut src)?;
    Ok((ix, src))
}

/// Compares two capture files.
pub fn diff_files(a: &Path, b: &Path, opts: &compare::Options) -> anyhow::Result<report::Report> {
    let mut v = index_files(&[a.to_path_buf(), b.to_path_buf()])?;
    let (ib, mut sb) = v.pop().expect("two");
    let (ia, mut sa) = v.pop().expect("two");
    let mut r = compare::compare(&ia, &ib, &mut sa, &mut sb, opts)?;
    if same_file(a, b) {
        r.same_file = true;
        r.notes.insert(0, "both paths name the same file".into());
    }
    Ok(r)
}

/// Learns rules from captures of one scenario.
pub fn learn_files(paths: &[PathBuf], opts: &compare::Options) -> anyhow::Result<learn::Learned> {
    let v = index_files(paths)?;
    let mut caps: Vec<(Index, Box<dyn BlockSource + Send>)> = v
        .into_iter()
        .map(|(ix, s)| (ix, Box::new(s) as Box<dyn BlockSource + Send>))
        .collect();
    learn::learn(&mut caps, opts).context("failed to learn rules")
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
