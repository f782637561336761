//! Disk space reserved ahead of the capture writer: with the space already allocated, a write
//! into it cannot fail with "no space left", so the relay can stop before it passes on a byte
//! the capture could not hold (see `engine`'s recorder).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Allocates the file's blocks from byte `from` up to byte `to` without changing its size
/// (`fallocate(FALLOC_FL_KEEP_SIZE)`). `Ok(false)` where the filesystem cannot do it.
///
/// Only the new range: the kernel walks every page of the range it is given, even pages
/// already allocated, so reserving from 0 each time made recording quadratic in the
/// capture's size (measured on tmpfs: 40% of the relay thread's time after a few GB).
pub fn reserve(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let from = from.min(i64::MAX as u64);
    let to = to.clamp(from, i64::MAX as u64);
    if to == from {
        return Ok(true);
    }
    // SAFETY: fallocate only acts on an fd kept open by `file` for the call.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            from as libc::off_t,
            (to - from) as libc::off_t,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL | libc::ENODEV) => Ok(false),
        _ => Err(e),
    }
}

/// Frees what `reserve` allocated beyond the file's end (a finished capture keeps no unused
/// blocks). Best effort.
pub fn release_tail(file: &File, reserved: u64) {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return;
    };
    if reserved <= len {
        return;
    }
    // A truncate to the current size frees blocks allocated past the end (ext4, tmpfs); a
    // hole punched there does it where that is not enough (xfs).
    let _ = file.set_len(len);
    // SAFETY: as above; punching a hole past the end only frees blocks.
    unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            len as libc::off_t,
            (reserved - len) as libc::off_t,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn reserve_keeps_the_size_and_release_frees_the_tail() {
        let path = std::env::temp_dir().join(format!("plg-reserve-{}", std::process::id()));
        let f = File::create(&path).unwrap();
        if reserve(&f, 0, 1 << 20).unwrap() {
            let m = f.metadata().unwrap();
            assert_eq!(m.len(), 0);
            assert!(m.blocks() * 512 >= 1 << 20);
            // The next range only, adjacent to the first: the two together are allocated.
            assert!(reserve(&f, 1 << 20, 3 << 20).unwrap());
            assert!(f.metadata().unwrap().blocks() * 512 >= 3 << 20);
            assert!(reserve(&f, 3 << 20, 3 << 20).unwrap());
            release_tail(&f, 3 << 20);
            assert!(f.metadata().unwrap().blocks() * 512 < 1 << 20);
        }
        std::fs::remove_file(&path).unwrap();
    }
}
