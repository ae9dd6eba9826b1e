//! The single-writer lock `engine/lock`: an exclusive `flock` held for the engine's life,
//! with the holder's pid written inside for error messages.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::EngineError;
use crate::paths::EnginePaths;

/// A held engine lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct EngineLock {
    file: File,
}

impl Drop for EngineLock {
    /// Unlocks explicitly: a child forked by another thread between our `open` and its `exec`
    /// holds a copy of the descriptor, and closing ours alone would leave the lock held until
    /// that child execs.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes the workdir's lock, or fails with [`EngineError::Locked`] naming the holder's pid.
/// Neither `engine/` nor `engine/lock` is ever reached through a symbolic link.
pub fn acquire(workdir: &Path) -> Result<EngineLock, EngineError> {
    let paths = EnginePaths::new(workdir);
    // The workdir itself may be a link (the user chose it); nothing below it is followed.
    crate::atomic::create_dir_durable(workdir).map_err(|e| EngineError::io(workdir, e))?;
    crate::nofollow::create_dir_under(workdir, &paths.dir)
        .map_err(|e| EngineError::io(&paths.dir, e))?;
    let path = paths.lock();
    let mut file = crate::nofollow::open_rw(&path).map_err(|e| EngineError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(EngineError::Locked {
                path,
                pid: read_pid(&mut file),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(EngineError::io(&path, e)),
    }
    let write = (|| {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()
    })();
    write.map_err(|e| EngineError::io(&path, e))?;
    Ok(EngineLock { file })
}

/// The pid of the engine holding the workdir's lock, or `None` when the lock is free.
pub fn holder(workdir: &Path) -> std::io::Result<Option<u32>> {
    let path = EnginePaths::new(workdir).lock();
    let Some(mut file) = crate::nofollow::open_existing(&path)? else {
        return Ok(None);
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(read_pid(&mut file).unwrap_or(0))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}
