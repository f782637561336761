//! Outputs that appear whole or not at all: written under a temporary name beside the
//! destination, renamed into place by [`Staged::commit`], removed if dropped uncommitted (an
//! error, Ctrl-C unwinding through `main`, a filter that matched nothing).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Why an output cannot be staged (before anything was written).
#[derive(Debug)]
pub enum StageError {
    /// The destination exists and `--force` was not given.
    Exists(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageError::Exists(p) => write!(
                f,
                "{}: already exists (use --force to replace it)",
                p.display()
            ),
            StageError::Io(p, e) => write!(f, "failed to create {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StageError {}

/// A file or directory being written under a temporary name.
#[derive(Debug)]
pub struct Staged {
    dest: PathBuf,
    tmp: PathBuf,
    is_dir: bool,
    committed: bool,
}

fn tmp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    dest.with_file_name(format!(".{name}.plg-tmp.{}", std::process::id()))
}

impl Staged {
    fn check(dest: &Path, force: bool) -> Result<(), StageError> {
        if !force && fs::symlink_metadata(dest).is_ok() {
            return Err(StageError::Exists(dest.to_path_buf()));
        }
        Ok(())
    }

    /// Creates the temporary file for `dest`.
    pub fn file(dest: &Path, force: bool) -> Result<(Staged, File), StageError> {
        Self::check(dest, force)?;
        let tmp = tmp_name(dest);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StageError::Io(dest.to_path_buf(), e))?;
        let staged = Staged {
            dest: dest.to_path_buf(),
            tmp,
            is_dir: false,
            committed: false,
        };
        Ok((staged, file))
    }

    /// Creates the temporary directory for `dest` and returns its path.
    pub fn dir(dest: &Path, force: bool) -> Result<(Staged, PathBuf), StageError> {
        Self::check(dest, force)?;
        let tmp = tmp_name(dest);
        fs::create_dir(&tmp).map_err(|e| StageError::Io(dest.to_path_buf(), e))?;
        let staged = Staged {
            dest: dest.to_path_buf(),
            tmp: tmp.clone(),
            is_dir: true,
            committed: false,
        };
        Ok((staged, tmp))
    }

    /// Moves the output into place, replacing what was there (checked against `--force`
    /// when staged).
    pub fn commit(mut self) -> io::Result<()> {
        if self.is_dir {
            if let Ok(meta) = fs::symlink_metadata(&self.dest) {
                // A directory cannot be renamed over a non-empty one: move the old one aside
                // first, then remove it once the new one is in place.
                let old = tmp_name(&self.dest).with_extension("old");
                fs::rename(&self.dest, &old)?;
                fs::rename(&self.tmp, &self.dest)?;
                self.committed = true;
                if meta.is_dir() {
                    fs::remove_dir_all(&old)?;
                } else {
                    fs::remove_file(&old)?;
                }
                return Ok(());
            }
        }
        fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = if self.is_dir {
                fs::remove_dir_all(&self.tmp)
            } else {
                fs::remove_file(&self.tmp)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plg-staged-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn dropped_output_leaves_nothing() {
        let d = scratch("drop");
        let (s, _f) = Staged::file(&d.join("out.pcap"), false).unwrap();
        drop(s);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        let (s, _) = Staged::dir(&d.join("streams"), false).unwrap();
        drop(s);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn existing_output_needs_force() {
        let d = scratch("force");
        let dest = d.join("out.pcap");
        fs::write(&dest, b"old").unwrap();
        assert!(matches!(
            Staged::file(&dest, false),
            Err(StageError::Exists(_))
        ));
        let (s, f) = Staged::file(&dest, true).unwrap();
        drop(f);
        s.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"");
        let sd = d.join("streams");
        fs::create_dir(&sd).unwrap();
        fs::write(sd.join("x"), b"1").unwrap();
        let (s, tmp) = Staged::dir(&sd, true).unwrap();
        fs::write(tmp.join("y"), b"2").unwrap();
        s.commit().unwrap();
        assert!(sd.join("y").exists() && !sd.join("x").exists());
        assert_eq!(fs::read_dir(&d).unwrap().count(), 2);
        fs::remove_dir_all(&d).unwrap();
    }
}
