//! Faults planted by unit tests in the engine's own file writes (disk full, partial appends),
//! so the retry and repair paths are tested without a full disk.

use std::path::Path;
use std::sync::Mutex;

static PARTIAL: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
static ERRORS: Mutex<Vec<(String, i32, u32)>> = Mutex::new(Vec::new());

/// The next append to a file whose path ends with `suffix` writes only `keep` bytes, then fails
/// with ENOSPC.
pub(crate) fn plant_partial(suffix: &str, keep: usize) {
    if let Ok(mut all) = PARTIAL.lock() {
        all.push((suffix.to_string(), keep));
    }
}

/// The next `times` writes of a file whose path ends with `suffix` fail with `errno`.
pub(crate) fn plant_errors(suffix: &str, errno: i32, times: u32) {
    if let Ok(mut all) = ERRORS.lock() {
        all.push((suffix.to_string(), errno, times));
    }
}

pub(crate) fn partial(path: &Path) -> Option<usize> {
    let mut all = PARTIAL.lock().ok()?;
    let p = path.to_string_lossy();
    let i = all.iter().position(|(s, _)| p.ends_with(s.as_str()))?;
    Some(all.remove(i).1)
}

/// Fails when a fault is planted for `path`.
pub(crate) fn check(path: &Path) -> std::io::Result<()> {
    let Ok(mut all) = ERRORS.lock() else {
        return Ok(());
    };
    let p = path.to_string_lossy();
    if let Some(i) = all.iter().position(|(s, _, _)| p.ends_with(s.as_str())) {
        let errno = all[i].1;
        all[i].2 -= 1;
        if all[i].2 == 0 {
            all.remove(i);
        }
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    Ok(())
}

/// Removes the faults planted for `suffix`.
pub(crate) fn clear(suffix: &str) {
    if let Ok(mut all) = ERRORS.lock() {
        all.retain(|(s, _, _)| s != suffix);
    }
}
