//! A job's `stdout.log` / `stderr.log`, read in pieces: the last lines first, then whatever was
//! appended since an offset the page gives back. The page asks again while the job runs (a
//! plain request, not a stream: a browser keeps at most six connections to a host, and one is
//! already the page's live feed). Symbolic links are not followed.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

/// Lines of a log sent when a page starts reading it.
pub const TAIL_LINES: usize = 200;
/// Bytes of a log sent at most per request (a faster writer is skipped ahead).
pub const CHUNK: u64 = 256 * 1024;

/// Opens a file of a run folder for reading, refusing symbolic links (the dashboard follows no
/// link inside a workdir).
pub fn open_no_follow(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Reads `path` from `from` to `to` (at most [`CHUNK`] bytes).
fn read_range(path: &Path, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let mut f = open_no_follow(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(to.saturating_sub(from).min(CHUNK))
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The last `lines` lines of a file and the offset just after them: `(text, offset)`.
pub fn tail(path: &Path, lines: usize) -> std::io::Result<(String, u64)> {
    let len = open_no_follow(path)?.metadata()?.len();
    let from = len.saturating_sub(CHUNK);
    let bytes = read_range(path, from, len)?;
    let end = from + bytes.len() as u64;
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.split_inclusive('\n').collect();
    if from > 0 && !all.is_empty() {
        all.remove(0); // probably cut in the middle
    }
    let keep = all.len().saturating_sub(lines);
    Ok((all[keep..].concat(), end))
}

/// `GET /api/w/{key}/nodes/{id}/log/{stdout|stderr}[?offset=N]`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogChunk {
    /// `ok`, `missing` (not written yet) or `error`.
    pub state: &'static str,
    /// `true`: `text` replaces what the page shows (the last lines); `false`: it is appended.
    pub reset: bool,
    /// The text (whole lines, unless one line is longer than a chunk).
    pub text: String,
    /// The offset to ask from next time.
    pub offset: u64,
    /// Why it could not be read (`state = error`).
    pub error: Option<String>,
}

impl LogChunk {
    fn missing() -> LogChunk {
        LogChunk {
            state: "missing",
            reset: true,
            text: String::new(),
            offset: 0,
            error: None,
        }
    }

    fn error(message: String) -> LogChunk {
        LogChunk {
            state: "error",
            reset: true,
            text: String::new(),
            offset: 0,
            error: Some(message),
        }
    }
}

/// Reads the log at `path`: its last [`TAIL_LINES`] lines without an `offset` (also when the
/// file shrank, was replaced, or grew by more than a chunk since `offset`), else the whole lines
/// appended since `offset`.
pub fn read(path: &Path, offset: Option<u64>) -> LogChunk {
    let len = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return LogChunk::error(format!(
                "{} is a symbolic link; the dashboard does not follow links inside a workdir",
                path.display()
            ));
        }
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LogChunk::missing(),
        Err(e) => return LogChunk::error(format!("{}: {e}", path.display())),
    };
    let reset = || match tail(path, TAIL_LINES) {
        Ok((text, end)) => LogChunk {
            state: "ok",
            reset: true,
            text,
            offset: end,
            error: None,
        },
        Err(e) => LogChunk::error(format!("{}: {e}", path.display())),
    };
    let same = |o: u64| LogChunk {
        state: "ok",
        reset: false,
        text: String::new(),
        offset: o,
        error: None,
    };
    match offset {
        None => reset(),
        Some(o) if len < o || len - o > CHUNK => reset(),
        Some(o) if len == o => same(o),
        Some(o) => match read_range(path, o, len) {
            Ok(bytes) => {
                // Whole lines only, unless a single line is already a chunk long.
                let cut = match bytes.iter().rposition(|&b| b == b'\n') {
                    Some(p) => p + 1,
                    None if bytes.len() as u64 >= CHUNK => bytes.len(),
                    None => return same(o),
                };
                LogChunk {
                    state: "ok",
                    reset: false,
                    text: String::from_utf8_lossy(&bytes[..cut]).into_owned(),
                    offset: o + cut as u64,
                    error: None,
                }
            }
            Err(e) => LogChunk::error(format!("{}: {e}", path.display())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tail_then_whole_appended_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stdout.log");
        assert_eq!(read(&p, None).state, "missing");
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&format!("line {i}\n"));
        }
        fs::write(&p, &text).unwrap();
        let first = read(&p, None);
        assert!(first.reset);
        assert_eq!(first.text.lines().count(), TAIL_LINES);
        assert!(first.text.starts_with("line 100\n"));
        assert_eq!(first.offset, text.len() as u64);
        // A torn last line waits for its end.
        text.push_str("line 300\nline 3");
        fs::write(&p, &text).unwrap();
        let next = read(&p, Some(first.offset));
        assert!(!next.reset);
        assert_eq!(next.text, "line 300\n");
        let again = read(&p, Some(next.offset));
        assert_eq!(again.text, "");
        assert_eq!(again.offset, next.offset);
        // A replaced, shorter file starts over.
        fs::write(&p, "new\n").unwrap();
        let over = read(&p, Some(again.offset));
        assert!(over.reset);
        assert_eq!(over.text, "new\n");
    }

    #[test]
    fn refuses_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        fs::write(&target, "secret\n").unwrap();
        let p = dir.path().join("stdout.log");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let r = read(&p, None);
        assert_eq!(r.state, "error");
        assert!(r.text.is_empty());
        assert!(r.error.unwrap().contains("symbolic link"));
    }
}
