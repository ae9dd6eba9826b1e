//! Atomic file replacement: temp file in the same folder, fsync, rename, fsync of the folder.
//! A crash leaves either the old or the new file, never a torn one.
//!
//! Temp files are named `.<name>.tmp.<pid>.<n>` and created with `O_EXCL | O_NOFOLLOW`, so a
//! planted file or link at the temp name is never written through; the rename replaces a link
//! at the destination rather than following it. [`remove_stale_temps`] deletes temp files that
//! a process which died mid-write left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of concurrent writes from one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Replaces `path` atomically with what `fill` writes into a buffered temp file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut created = false;
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        created = true;
        {
            let mut w = io::BufWriter::with_capacity(1 << 20, &file);
            fill(&mut w)?;
            w.flush()?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() && created {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Deletes the temp files of [`write_atomic`] in `dir` whose writing process is gone (a crash
/// mid-write leaves them). Returns how many were removed. Only the folder's single writer
/// should call it (the engine does, under its lock).
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = temp_owner(&name.to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The pid in a temp file name `.<name>.tmp.<pid>[.<n>]`.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp.")?;
    let pid = tail.split('.').next()?;
    pid.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Writes JSON (pretty) atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and parents) and fsyncs its parent so the new entry is durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_of_dead_writers_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // pid 0x7fff_fff0 is above any real pid_max.
        fs::write(d.join(".checkpoint.json.tmp.2147483632.3"), b"torn").unwrap();
        fs::write(d.join(".state.json.tmp.2147483632"), b"torn").unwrap();
        let own = format!(".x.tmp.{}.0", std::process::id());
        fs::write(d.join(&own), b"mine").unwrap();
        fs::write(d.join("checkpoint.json"), b"{}").unwrap();
        assert_eq!(remove_stale_temps(d).unwrap(), 2);
        assert!(d.join(&own).exists());
        assert!(d.join("checkpoint.json").exists());
    }

    #[test]
    fn a_link_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        fs::write(&target, b"keep").unwrap();
        let dest = dir.path().join("state.json");
        std::os::unix::fs::symlink(&target, &dest).unwrap();
        write_atomic(&dest, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(
            !fs::symlink_metadata(&dest)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&dest).unwrap(), b"new");
    }
}
