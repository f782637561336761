//! `--streams DIR`: the bytes of each connection, one file per direction, in the spirit of
//! tcpflow.
//!
//! A file is named `<id>-<sender>-to-<receiver>`, each end as `name_address.port`, e.g.
//! `0003-curl_10.0.0.2.45678-to-web_10.0.0.1.8000` holds what curl sent to the web server on
//! connection 3; the id first makes `ls` list a connection's two files together, in order.
//! An IPv6 address is written with `-` for each `:` (`fd00-706c-67--2`), so a name holds no
//! colon (which scp, make, `PATH`-like lists and Windows shares read as a separator) and the
//! last `.` still separates the port. A direction that carried no byte has no file.
//!
//! Files stay open only while their connection is; past [`MAX_OPEN`] open files the oldest
//! is closed and reopened for appending when needed, so any number of concurrent connections
//! works within the process's file limit and bounded buffer memory.

use crate::format::{CloseKind, ConnId, ConnOpen, Direction, Outcome, ProcIndex, Process, Record};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Most stream files held open at once.
pub const MAX_OPEN: usize = 128;

struct Stream {
    names: [String; 2],
    created: [bool; 2],
    closed: [bool; 2],
}

/// Writes stream files into a directory (which must exist).
pub struct StreamsWriter {
    dir: PathBuf,
    procs: HashMap<ProcIndex, String>,
    conns: HashMap<ConnId, Stream>,
    files: HashMap<(ConnId, usize), BufWriter<File>>,
    /// Open files, oldest first (may hold keys already closed).
    order: VecDeque<(ConnId, usize)>,
    pub files_written: u64,
    /// Sections seen (several captures concatenated: several sessions, ids from 0 again).
    sections: u32,
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// An address as it appears in a file name: IPv4 as usual, IPv6 with `-` for `:`.
fn file_addr(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => a.to_string().replace(':', "-"),
    }
}

/// Keeps a process name safe in a file name.
fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("p{s}")
    } else {
        s
    }
}

impl StreamsWriter {
    pub fn new(dir: &Path) -> Self {
        StreamsWriter {
            dir: dir.to_path_buf(),
            procs: HashMap::new(),
            conns: HashMap::new(),
            files: HashMap::new(),
            order: VecDeque::new(),
            files_written: 0,
            sections: 0,
        }
    }

    fn end_name(&self, p: ProcIndex, addr: std::net::SocketAddr) -> String {
        let name = match self.procs.get(&p) {
            Some(n) => clean(n),
            None if p == crate::format::EXTERNAL => "external".into(),
            None => format!("p{p}"),
        };
        format!("{name}_{}.{}", file_addr(addr.ip()), addr.port())
    }

    /// The file name of each direction of a connection. Connections of the second and later
    /// sections (another session, whose ids start from 0 again) are prefixed `sN-`.
    pub fn file_names(&self, open: &ConnOpen) -> [String; 2] {
        let c = self.end_name(open.client, open.client_addr);
        let s = self.end_name(open.server, open.server_addr);
        let section = if self.sections > 1 {
            format!("s{}-", self.sections)
        } else {
            String::new()
        };
        [
            format!("{section}{:04}-{c}-to-{s}", open.id),
            format!("{section}{:04}-{s}-to-{c}", open.id),
        ]
    }

    pub fn record(&mut self, rec: &Record) -> io::Result<()> {
        match rec {
            Record::Session(_) => {
                // A new section: the last one's streams end here (cut short if still open).
                self.sections += 1;
                for (_, f) in self.files.drain() {
                    f.into_inner().map_err(|e| e.into_error())?;
                }
                self.order.clear();
                self.conns.clear();
                self.procs.clear();
            }
            Record::Process(Process { index, name, .. }) => {
                self.procs.insert(*index, name.clone());
            }
            Record::ConnOpen(open) if open.outcome == Outcome::Established => {
                let names = self.file_names(open);
                self.conns.insert(
                    open.id,
                    Stream {
                        names,
                        created: [false; 2],
                        closed: [false; 2],
                    },
                );
            }
            Record::Data(d) => self.write(d.id, side(d.dir), &d.bytes)?,
            Record::ConnClose(c) => {
                let s = side(c.dir);
                if let Some(f) = self.files.remove(&(c.id, s)) {
                    f.into_inner().map_err(|e| e.into_error())?;
                }
                let done = match self.conns.get_mut(&c.id) {
                    Some(st) => {
                        st.closed[s] = true;
                        c.kind == CloseKind::Rst || st.closed[1 - s]
                    }
                    None => false,
                };
                if done {
                    self.conns.remove(&c.id);
                    if let Some(f) = self.files.remove(&(c.id, 1 - s)) {
                        f.into_inner().map_err(|e| e.into_error())?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn write(&mut self, id: ConnId, s: usize, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Some(f) = self.files.get_mut(&(id, s)) {
            return f.write_all(bytes);
        }
        let Some(st) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        let path = self.dir.join(&st.names[s]);
        let file = if st.created[s] {
            OpenOptions::new().append(true).open(&path)?
        } else {
            st.created[s] = true;
            self.files_written += 1;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?
        };
        while self.files.len() >= MAX_OPEN {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(f) = self.files.remove(&old) {
                f.into_inner().map_err(|e| e.into_error())?;
            }
        }
        let mut f = BufWriter::with_capacity(32 * 1024, file);
        f.write_all(bytes)?;
        self.files.insert((id, s), f);
        self.order.push_back((id, s));
        if self.order.len() > 4 * MAX_OPEN {
            let files = &self.files;
            self.order.retain(|k| files.contains_key(k));
        }
        Ok(())
    }

    /// Flushes and closes every file still open (connections left unfinished).
    pub fn finish(&mut self) -> io::Result<()> {
        for (_, f) in self.files.drain() {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        self.order.clear();
        Ok(())
    }
}
