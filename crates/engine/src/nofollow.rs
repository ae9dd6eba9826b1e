//! Files and folders under a trusted root (the workdir) that are never reached through a
//! symbolic link the engine did not create.
//!
//! Whoever can write inside a workdir must not be able to make the engine write outside it: a
//! link planted at `engine/lock`, `engine/events.jsonl` or `runs/<id>/` would otherwise redirect
//! the engine's writes. The root itself may be a link (the user chose it); below it, every
//! component is checked with `lstat`, and the last component of a file is opened with
//! `O_NOFOLLOW`, so a link is refused with a [`link_error`] naming it.
//!
//! [`is_transient`] tells the environment's temporary failures (disk full, I/O error, too many
//! open files) apart from everything else: those are retried, never blamed on the work.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path};

/// The error for a symbolic link found where the engine expects a real file or folder.
pub fn link_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link: links inside the workdir are never followed; \
             remove it (or replace it with a real file or folder) and start again",
            path.display()
        ),
    )
}

/// Whether `e` is a temporary failure of the environment (disk full, quota, I/O error, too many
/// open files, out of memory) rather than a fault of what was being done: retry it later.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::EDQUOT
                | libc::EIO
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOMEM
                | libc::EAGAIN
                | libc::EINTR
        )
    ) || matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::OutOfMemory | io::ErrorKind::Interrupted
    )
}

/// Checks that no existing component of `path` below `root` is a symbolic link. Components
/// that do not exist yet are fine (they will be created as real files or folders). `path` must
/// be `root` or below it.
pub fn check_under(root: &Path, path: &Path) -> io::Result<()> {
    let rel = relative(root, path)?;
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(link_error(&at)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents below `root`, never following a symbolic link, and
/// fsyncs the parent of every folder it creates so the new entries are durable.
pub fn create_dir_under(root: &Path, dir: &Path) -> io::Result<()> {
    let rel = relative(root, dir)?;
    let mut at = root.to_path_buf();
    for part in rel.components() {
        let parent = at.clone();
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(link_error(&at)),
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists but is not a folder", at.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match fs::create_dir(&at) {
            Ok(()) => crate::atomic::sync_dir(&parent)?,
            // Created concurrently: check it is a real folder on the next pass.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !fs::symlink_metadata(&at)?.is_dir() {
                    return Err(link_error(&at));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens `path` for appending, creating it if missing; a symbolic link there is refused.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| refine(path, e))
}

/// Opens `path` for reading and writing without truncating, creating it if missing; a symbolic
/// link there is refused (for lock files).
pub fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| refine(path, e))
}

/// Reads a regular file of at most `max_len` bytes. `Ok(None)` when it does not exist. A
/// symbolic link, a FIFO, a device or a folder at `path` is an error naming it (opening never
/// blocks on a FIFO), and so is a file larger than `max_len`.
pub fn read_regular(path: &Path, max_len: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refine(path, e)),
    };
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {what}: expected a regular file; replace it",
                path.display()
            ),
        ));
    }
    if meta.len() > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, more than the {max_len} bytes allowed for it",
                path.display(),
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take` guards against a file that grows while it is read.
    file.take(max_len + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} grew past the {max_len} bytes allowed for it",
                path.display()
            ),
        ));
    }
    Ok(Some(bytes))
}

/// `O_NOFOLLOW` on a link fails with `ELOOP`: say what happened instead.
fn refine(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        link_error(path)
    } else {
        e
    }
}

fn relative<'a>(root: &Path, path: &'a Path) -> io::Result<&'a Path> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not inside {}", path.display(), root.display()),
        )
    })?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} leaves {} (`..` or `.` components)",
                path.display(),
                root.display()
            ),
        ));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_below_the_root_are_refused_and_nothing_is_written_through_them() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        symlink(outside.path(), r.join("runs")).unwrap();
        let err = create_dir_under(r, &r.join("runs/001_a")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!outside.path().join("001_a").exists());
        assert!(check_under(r, &r.join("runs/001_a/x")).is_err());

        fs::write(outside.path().join("target"), b"keep").unwrap();
        symlink(outside.path().join("target"), r.join("events.jsonl")).unwrap();
        let err = open_append(&r.join("events.jsonl")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(open_rw(&r.join("events.jsonl")).is_err());
        assert!(read_regular(&r.join("events.jsonl"), 100).is_err());
        assert_eq!(fs::read(outside.path().join("target")).unwrap(), b"keep");
    }

    #[test]
    fn real_folders_are_created_and_regular_files_read_within_their_cap() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        create_dir_under(r, &r.join("a/b/c")).unwrap();
        create_dir_under(r, &r.join("a/b/c")).unwrap();
        assert!(r.join("a/b/c").is_dir());
        assert!(create_dir_under(r, &r.join("a/../x")).is_err());
        assert!(create_dir_under(r, Path::new("/elsewhere")).is_err());
        fs::write(r.join("f"), b"hello").unwrap();
        assert_eq!(read_regular(&r.join("f"), 5).unwrap().unwrap(), b"hello");
        assert!(read_regular(&r.join("f"), 4).is_err());
        assert!(read_regular(&r.join("missing"), 4).unwrap().is_none());
        assert!(read_regular(&r.join("a"), 4).is_err());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("checkpoint.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn disk_full_and_io_errors_are_transient_but_not_found_is_not() {
        assert!(is_transient(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::EACCES)));
    }
}
