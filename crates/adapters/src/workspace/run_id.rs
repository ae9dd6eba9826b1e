//! The run id in `refs/autoresearch/<run>/<node>`: made once per workdir from the time the
//! workspace was first opened plus a random suffix (e.g. `20261201T143005-3fa9`), stored in
//! `engine/run_id`, and read from there on every resume, so it stays stable for the run's life
//! and distinct between runs on the same repository.

use std::io;
use std::path::{Path, PathBuf};

/// `engine/run_id` of `workdir`.
pub fn run_id_path(workdir: &Path) -> PathBuf {
    workdir.join("engine").join("run_id")
}

/// Whether `id` can be a ref path component here: `[A-Za-z0-9_-]` plus inner dots, 1–64.
pub fn is_valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && !id.ends_with('.')
        && !id.contains("..")
        && !id.ends_with(".lock")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Reads the workdir's run id, making and storing it on first use.
pub fn load_or_create(workdir: &Path) -> io::Result<String> {
    let path = run_id_path(workdir);
    match autoresearch_engine::nofollow::read_regular(&path, 1024) {
        Ok(Some(bytes)) => {
            let text = String::from_utf8_lossy(&bytes);
            let id = text.trim();
            if is_valid_run_id(id) {
                Ok(id.to_string())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: expected a run id ([A-Za-z0-9._-], at most 64), found {id:?}; \
                         restore it (refs/autoresearch/<run>/ in the repository name it)",
                        path.display()
                    ),
                ))
            }
        }
        Ok(None) => {
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace(['-', ':'], "")
                .trim_end_matches('Z')
                .to_string();
            let id = format!("{stamp}-{:04x}", fastrand::u16(..));
            if let Some(dir) = path.parent() {
                autoresearch_engine::nofollow::create_dir_under(workdir, dir)?;
            }
            autoresearch_engine::atomic::write_atomic(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_stable() {
        let tmp = tempfile::tempdir().unwrap();
        let a = load_or_create(tmp.path()).unwrap();
        assert!(is_valid_run_id(&a), "{a}");
        assert_eq!(load_or_create(tmp.path()).unwrap(), a);
        std::fs::write(run_id_path(tmp.path()), "../x\n").unwrap();
        assert!(load_or_create(tmp.path()).is_err());
    }
}
