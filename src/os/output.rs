//! Opening outputs safely: the one place that decides what plg may write over, and how.
//!
//! A user's files are theirs. The rules, for every file plg writes (capture, export, report):
//! - `-` is standard output (and, for inputs, standard input: [`open_input`]).
//! - A character device, FIFO or socket is written straight into: never renamed over, never
//!   removed. (`/dev/null`, `/dev/stdout`, a named pipe.)
//! - A symlink is followed: its target is the output, and the link itself stays.
//! - Only a regular file is ever replaced, and only when the caller says so (`--force`, or
//!   `record -f`, whose contract is to write that file): the new content is written beside it
//!   under no name (or a hidden temporary one) and moved over it in one `rename`, so the old
//!   file survives anything that fails before [`Output::commit`].
//! - A new file appears only at `commit`; a failure, or plg being killed, before then leaves
//!   nothing behind (with `O_TMPFILE` the file has no name until then; on filesystems without
//!   it a hidden `.NAME.plg-tmp.PID` is removed on drop).
//! - An output that is the same file as an input (device and inode) is refused before anything
//!   is written.
//! - A block device is refused: writing into one destroys a filesystem.
//! - A directory output must be new or empty ([`OutputDir`]); it is filled under a hidden name
//!   and renamed into place.
//! - Nothing is removed that plg did not create.

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Whether an existing regular file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Refuse ("already exists (use --force to replace it)").
    No,
    /// Replace it atomically at commit (`--force`, or `record -f`).
    Yes,
}

/// Why an output cannot be opened (nothing was written, nothing was touched).
#[derive(Debug)]
pub enum OutputError {
    /// A regular file is there and `Replace::No` was given.
    Exists(PathBuf),
    /// The output is the same file as an input.
    SameAsInput(PathBuf, PathBuf),
    /// A kind of file this output cannot be (a block device, a directory, a FIFO for a
    /// capture...): the reason is the text.
    Refused(PathBuf, String),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputError::Exists(p) => write!(
                f,
                "{}: already exists (use --force to replace it)",
                p.display()
            ),
            OutputError::SameAsInput(p, input) => write!(
                f,
                "{}: is the input {}: refusing to write over it",
                p.display(),
                input.display()
            ),
            OutputError::Refused(p, why) => write!(f, "{}: {why}", p.display()),
            OutputError::Io(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for OutputError {}

/// What a path names, following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stdout,
    Missing,
    Regular,
    /// Character device, FIFO or socket: written into, never replaced.
    Stream,
    Directory,
    BlockDevice,
}

fn kind_of(meta: &Metadata) -> Kind {
    let t = meta.file_type();
    if t.is_file() {
        Kind::Regular
    } else if t.is_dir() {
        Kind::Directory
    } else if t.is_block_device() {
        Kind::BlockDevice
    } else {
        Kind::Stream
    }
}

/// What `path` names (symlinks followed; a dangling symlink is an error, not Missing, so that
/// plg never creates a file somewhere the user did not see).
pub fn kind(path: &Path) -> Result<Kind, OutputError> {
    if path == Path::new("-") {
        return Ok(Kind::Stdout);
    }
    match fs::metadata(path) {
        Ok(m) => Ok(kind_of(&m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(path).is_ok() {
                Err(OutputError::Refused(
                    path.to_path_buf(),
                    "is a symlink to a file that does not exist".into(),
                ))
            } else {
                Ok(Kind::Missing)
            }
        }
        Err(e) => Err(OutputError::Io(path.to_path_buf(), e)),
    }
}

/// The device and inode of each input that exists (`-` is standard input).
fn same_file(out: &Metadata, inputs: &[&Path]) -> Option<PathBuf> {
    inputs.iter().find_map(|i| {
        let m = if *i == Path::new("-") {
            stdin_meta()
        } else {
            fs::metadata(i).ok()
        }?;
        (m.dev() == out.dev() && m.ino() == out.ino()).then(|| i.to_path_buf())
    })
}

fn stdin_meta() -> Option<Metadata> {
    fs::metadata("/proc/self/fd/0").ok()
}

/// The target of a path whose symlinks are followed, so a replaced file is the link's target
/// and the link stays a link.
fn resolve(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or(path.into()),
        _ => path.to_path_buf(),
    }
}

enum How {
    /// Written straight into (stdout, a device, a FIFO): nothing to move.
    Direct,
    /// An unnamed `O_TMPFILE` in the destination's directory, linked in at commit (this fd is
    /// kept so the file exists until then, whatever the caller did with its `File`).
    Unnamed { fd: OwnedFd },
    /// A hidden file beside the destination, renamed at commit, removed if dropped.
    Named { tmp: PathBuf },
}

/// An output file being written; see the module header for the rules.
pub struct Output {
    /// As the user gave it, for messages.
    shown: PathBuf,
    /// Where the content goes at commit (symlinks resolved).
    dest: PathBuf,
    how: How,
    replace: Replace,
    /// Device and inode of the file being written, to check at commit and before removing.
    id: (u64, u64),
    committed: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Output({})", self.shown.display())
    }
}

impl Output {
    /// Opens `path` for writing, following the module's rules. `inputs` are the files this
    /// command reads: the output may not be one of them. `streams` says whether a device, FIFO
    /// or socket is acceptable (a capture written with `pwrite` needs a regular file).
    pub fn open(
        path: &Path,
        replace: Replace,
        inputs: &[&Path],
        streams: bool,
    ) -> Result<(Output, File), OutputError> {
        let err = |e: io::Error| OutputError::Io(path.to_path_buf(), e);
        let refused = |why: &str| Err(OutputError::Refused(path.to_path_buf(), why.to_string()));
        let kind = kind(path)?;
        if !streams && matches!(kind, Kind::Stdout | Kind::Stream) {
            return refused(
                "is not a regular file (a FIFO, device or socket): a capture is written to a \
                 regular file (for a pipe, record to a file, then `plg export --pcap - FILE`)",
            );
        }
        match kind {
            Kind::Directory => return refused("is a directory"),
            Kind::BlockDevice => return refused("is a block device: refusing to write into it"),
            Kind::Regular if replace == Replace::No => {
                return Err(OutputError::Exists(path.to_path_buf()))
            }
            _ => {}
        }
        let direct = |file: File| -> Result<(Output, File), OutputError> {
            let meta = file.metadata().map_err(err)?;
            if meta.is_file() || kind == Kind::Stream {
                if let Some(input) = same_file(&meta, inputs) {
                    return Err(OutputError::SameAsInput(path.to_path_buf(), input));
                }
            }
            let out = Output {
                shown: path.to_path_buf(),
                dest: path.to_path_buf(),
                how: How::Direct,
                replace,
                id: (meta.dev(), meta.ino()),
                committed: false,
            };
            Ok((out, file))
        };
        match kind {
            Kind::Stdout => {
                let fd = io::stdout().as_fd().try_clone_to_owned().map_err(err)?;
                return direct(File::from(fd));
            }
            Kind::Stream => {
                // No O_TRUNC, no O_CREAT: whatever is there stays what it is.
                let file = File::options().write(true).open(path).map_err(err)?;
                return direct(file);
            }
            _ => {}
        }
        if kind == Kind::Regular {
            let meta = fs::metadata(path).map_err(err)?;
            if let Some(input) = same_file(&meta, inputs) {
                return Err(OutputError::SameAsInput(path.to_path_buf(), input));
            }
        }
        let dest = resolve(path);
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (how, file) = match open_unnamed(&dir) {
            Ok(fd) => {
                let file = File::from(fd.try_clone().map_err(err)?);
                (How::Unnamed { fd }, file)
            }
            Err(_) => {
                let tmp = tmp_name(&dest);
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(err)?;
                (How::Named { tmp }, file)
            }
        };
        let meta = file.metadata().map_err(err)?;
        let out = Output {
            shown: path.to_path_buf(),
            dest,
            how,
            replace,
            id: (meta.dev(), meta.ino()),
            committed: false,
        };
        Ok((out, file))
    }

    /// Whether the output is written straight into (stdout, a device, a FIFO).
    pub fn is_direct(&self) -> bool {
        matches!(self.how, How::Direct)
    }

    /// Puts the file in place: links the unnamed file in, or renames the hidden one over the
    /// destination. The file may still be written through its `File` afterwards (`record`
    /// commits once its session started, then keeps writing). Calling it twice is harmless.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.committed {
            return Ok(());
        }
        match &self.how {
            How::Direct => {}
            How::Unnamed { fd } => {
                let fd_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                let fd_path = &fd_path;
                let linked = link(fd_path, &self.dest);
                match linked {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if self.replace == Replace::No {
                            return Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                format!(
                                    "{} appeared while plg was writing it",
                                    self.shown.display()
                                ),
                            ));
                        }
                        // Link under a hidden name, then one rename over the old file.
                        let tmp = tmp_name(&self.dest);
                        link(fd_path, &tmp)?;
                        if let Err(e) = fs::rename(&tmp, &self.dest) {
                            let _ = fs::remove_file(&tmp);
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            How::Named { tmp } => {
                if self.replace == Replace::No && fs::symlink_metadata(&self.dest).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} appeared while plg was writing it", self.shown.display()),
                    ));
                }
                fs::rename(tmp, &self.dest)?;
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Output {
    /// An uncommitted hidden file is plg's own: removed, but only if it still is the file plg
    /// created (same device and inode).
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let How::Named { tmp } = &self.how {
            if fs::symlink_metadata(tmp).is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
                let _ = fs::remove_file(tmp);
            }
        }
    }
}

fn open_unnamed(dir: &Path) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666) & !current_umask(),
    )?;
    Ok(fd)
}

/// `O_TMPFILE` takes the mode as given; a file created the usual way has the umask applied.
fn current_umask() -> Mode {
    // The umask can only be read by setting it; set it straight back.
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old
}

/// Gives the unnamed file `fd_path` (`/proc/self/fd/N`) the name `to`; fails if `to` exists.
fn link(fd_path: &Path, to: &Path) -> io::Result<()> {
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        fd_path,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

fn tmp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    dest.with_file_name(format!(".{name}.plg-tmp.{}", std::process::id()))
}

/// A directory output (`export --streams DIR`): DIR must be new or empty. It is filled under a
/// hidden name beside it and renamed into place at commit (a rename may replace an empty
/// directory); dropped uncommitted, the hidden directory (plg's own) is removed.
#[derive(Debug)]
pub struct OutputDir {
    shown: PathBuf,
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl OutputDir {
    /// Creates the hidden directory and returns its path to write into.
    pub fn open(path: &Path) -> Result<(OutputDir, PathBuf), OutputError> {
        let refused = |why: &str| Err(OutputError::Refused(path.to_path_buf(), why.to_string()));
        match kind(path)? {
            Kind::Missing => {}
            Kind::Directory => {
                let mut entries =
                    fs::read_dir(path).map_err(|e| OutputError::Io(path.to_path_buf(), e))?;
                if entries.next().is_some() {
                    return refused(
                        "directory is not empty (stream files go into a new or empty directory)",
                    );
                }
            }
            Kind::Stdout => return refused("streams are written into a directory, not stdout"),
            _ => return refused("exists and is not a directory"),
        }
        let dest = resolve(path);
        let tmp = tmp_name(&dest);
        fs::create_dir(&tmp).map_err(|e| OutputError::Io(path.to_path_buf(), e))?;
        let out = OutputDir {
            shown: path.to_path_buf(),
            dest,
            tmp: tmp.clone(),
            committed: false,
        };
        Ok((out, tmp))
    }

    /// Renames the filled directory into place (over an empty directory, or a new name).
    pub fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.dest).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot move the streams into {}: {e}", self.shown.display()),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Whether plg's standard output and standard error are the same open file (one terminal,
/// one pipe, `2>&1`): only then can lines written to them interleave, so only then must the
/// writes of a command's stdout and stderr be serialized. Unknown counts as the same.
pub fn stdout_is_stderr() -> bool {
    let meta = |fd: std::os::fd::BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd)
            .ok()
            .map(|st| (st.st_dev, st.st_ino))
    };
    match (meta(io::stdout().as_fd()), meta(io::stderr().as_fd())) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Opens an input: `-` is standard input (a duplicate of fd 0, so it stays open however the
/// caller uses it).
pub fn open_input(path: &Path) -> io::Result<File> {
    if path == Path::new("-") {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        return Ok(File::from(fd));
    }
    File::open(path)
}

/// Opens an input that is read at any offset (`plg diff` re-reads blocks by offset): a file
/// as it is; `-` is standard input, used in place when it is a regular file (`< FILE`), and
/// otherwise (a pipe) first copied into an unnamed temporary file, which disappears with the
/// returned `File`. The copy is on disk, not in memory, however large the input.
pub fn open_seekable_input(path: &Path) -> io::Result<File> {
    if path != Path::new("-") {
        return File::open(path);
    }
    let stdin = open_input(path)?;
    if stdin.metadata()?.is_file() {
        return Ok(stdin);
    }
    let dir = std::env::temp_dir();
    let mut spool = match open_unnamed(&dir) {
        Ok(fd) => File::from(fd),
        Err(_) => {
            // No O_TMPFILE here: a named file, unlinked at once (it lives on through the fd).
            let tmp = dir.join(format!(".plg-stdin.{}", std::process::id()));
            let f = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            fs::remove_file(&tmp)?;
            f
        }
    };
    // O_TMPFILE was opened write-only: reopen it for reading through /proc.
    io::copy(
        &mut io::BufReader::with_capacity(1 << 20, stdin),
        &mut spool,
    )
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot copy standard input to {}: {e}", dir.display()),
        )
    })?;
    File::open(format!("/proc/self/fd/{}", spool.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plg-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn new_file_appears_only_at_commit() {
        let d = scratch("new");
        let dest = d.join("out");
        let (mut o, mut f) = Output::open(&dest, Replace::No, &[], true).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!dest.exists());
        o.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        let (o, _f) = Output::open(&d.join("dropped"), Replace::No, &[], true).unwrap();
        drop(o);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn existing_file_needs_replace_and_survives_a_drop() {
        let d = scratch("replace");
        let dest = d.join("out");
        fs::write(&dest, b"old").unwrap();
        assert!(matches!(
            Output::open(&dest, Replace::No, &[], true),
            Err(OutputError::Exists(_))
        ));
        let (o, mut f) = Output::open(&dest, Replace::Yes, &[], true).unwrap();
        f.write_all(b"new").unwrap();
        drop(o);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        let (mut o, mut f) = Output::open(&dest, Replace::Yes, &[], true).unwrap();
        f.write_all(b"new").unwrap();
        o.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlink_is_followed_and_stays_a_link() {
        let d = scratch("link");
        let target = d.join("target");
        fs::write(&target, b"old").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink("target", &link).unwrap();
        let (mut o, mut f) = Output::open(&link, Replace::Yes, &[], true).unwrap();
        f.write_all(b"new").unwrap();
        o.commit().unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // A dangling link is refused rather than creating a file out of sight.
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink("nowhere", &dangling).unwrap();
        assert!(Output::open(&dangling, Replace::Yes, &[], true).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn devices_are_written_into_and_kept() {
        let (mut o, mut f) = Output::open(Path::new("/dev/null"), Replace::No, &[], true).unwrap();
        f.write_all(b"x").unwrap();
        o.commit().unwrap();
        drop(o);
        let m = fs::metadata("/dev/null").unwrap();
        assert!(m.file_type().is_char_device());
        // A capture needs a regular file.
        assert!(matches!(
            Output::open(Path::new("/dev/null"), Replace::Yes, &[], false),
            Err(OutputError::Refused(..))
        ));
    }

    #[test]
    fn same_file_as_input_is_refused() {
        let d = scratch("same");
        let input = d.join("in");
        fs::write(&input, b"keep").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        for out in [&input, &link] {
            assert!(matches!(
                Output::open(out, Replace::Yes, &[&input], true),
                Err(OutputError::SameAsInput(..))
            ));
        }
        assert_eq!(fs::read(&input).unwrap(), b"keep");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn directory_must_be_new_or_empty() {
        let d = scratch("dir");
        let full = d.join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("mine"), b"1").unwrap();
        assert!(OutputDir::open(&full).is_err());
        assert!(full.join("mine").exists());
        let empty = d.join("empty");
        fs::create_dir(&empty).unwrap();
        let (o, tmp) = OutputDir::open(&empty).unwrap();
        fs::write(tmp.join("s"), b"2").unwrap();
        o.commit().unwrap();
        assert!(empty.join("s").exists());
        let (o, _) = OutputDir::open(&d.join("new")).unwrap();
        drop(o);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 2);
        fs::remove_dir_all(&d).unwrap();
    }
}
