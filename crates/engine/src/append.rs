//! Appending whole lines to `engine/events.jsonl`, never leaving a torn line in the middle.
//!
//! A failed or partial append (disk full) leaves bytes after the last complete line; before the
//! next append the file is truncated back to that line, so the retried lines follow whole lines.
//! A torn tail left by a crash is cut the same way when the file is opened.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An append-only log of whole lines.
#[derive(Debug)]
pub(crate) struct Appender {
    path: PathBuf,
    file: Option<File>,
    /// Length of the file up to its last complete line.
    good_len: u64,
    /// Bytes after `good_len` may be a torn line of a failed append.
    dirty: bool,
}

impl Appender {
    pub(crate) fn new(path: PathBuf) -> Self {
        Appender {
            path,
            file: None,
            good_len: 0,
            dirty: false,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` (whole lines, each ending in a newline) and syncs them.
    pub(crate) fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let mut f = crate::nofollow::open_append(&self.path)?;
            if !f.metadata()?.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a regular file", self.path.display()),
                ));
            }
            self.good_len = complete_len(&mut f)?;
            self.dirty = true;
            self.file = Some(f);
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if self.dirty {
            if f.metadata()?.len() != self.good_len {
                f.set_len(self.good_len)?;
            }
            self.dirty = false;
        }
        self.dirty = true;
        write_all(f, lines, &self.path)?;
        f.sync_data()?;
        self.good_len += lines.len() as u64;
        self.dirty = false;
        Ok(())
    }
}

/// Writes `lines`; in tests a planted fault can cut it short.
fn write_all(f: &mut File, lines: &[u8], path: &Path) -> io::Result<()> {
    #[cfg(test)]
    if let Some(keep) = crate::faults::partial(path) {
        f.write_all(&lines[..keep.min(lines.len())])?;
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    let _ = path;
    f.write_all(lines)
}

/// The length of `f` up to and including its last newline (0 when it has none).
fn complete_len(f: &mut File) -> io::Result<u64> {
    let len = f.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_and_a_partial_append_never_ends_up_mid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("torn-events.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").unwrap();
        let mut log = Appender::new(path.clone());
        log.append(b"{\"c\":3}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"c\":3}\n");
        crate::faults::plant_partial("torn-events.jsonl", 4);
        let err = log.append(b"{\"d\":4}\n{\"e\":5}\n").unwrap_err();
        assert!(crate::nofollow::is_transient(&err));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"a\":1}\n{\"c\":3}\n{\"d\"",
            "the failed append left a torn line"
        );
        log.append(b"{\"d\":4}\n{\"e\":5}\n").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"a\":1}\n{\"c\":3}\n{\"d\":4}\n{\"e\":5}\n"
        );
    }

    #[test]
    fn a_file_without_any_newline_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, vec![b'x'; 200_000]).unwrap();
        let mut log = Appender::new(path.clone());
        log.append(b"{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
    }
}
