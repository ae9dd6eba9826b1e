//! The job wrapper shared by all executors: a small POSIX shell script, written into the run dir,
//! that records the job's pid first and its exit code last, each by an atomic rename, so the
//! result of a job is known even if no engine was alive when it ended.
//!
//! Files it writes into the run dir: `pid`, `stdout.log`, `stderr.log`, `exit_code`.

use std::path::{Path, PathBuf};

/// File name of the wrapper inside the run dir.
pub const WRAPPER_NAME: &str = "wrapper.sh";

/// The wrapper script. Usage: `sh wrapper.sh <run_dir> <cwd>`; runs `<run_dir>/command.sh`.
pub const WRAPPER_SCRIPT: &str = r#"#!/bin/sh
# autoresearch job wrapper: records the pid first and the exit code last.
run_dir="$1"
job_cwd="$2"
printf '%s\n' "$$" > "$run_dir/.pid.tmp" && mv -f "$run_dir/.pid.tmp" "$run_dir/pid"
cd "$job_cwd" || { printf '%s\n' 127 > "$run_dir/.exit_code.tmp"; mv -f "$run_dir/.exit_code.tmp" "$run_dir/exit_code"; exit 127; }
/bin/sh "$run_dir/command.sh" > "$run_dir/stdout.log" 2> "$run_dir/stderr.log" < /dev/null
code=$?
printf '%s\n' "$code" > "$run_dir/.exit_code.tmp" && mv -f "$run_dir/.exit_code.tmp" "$run_dir/exit_code"
exit "$code"
"#;

/// Writes the wrapper into `run_dir` (atomically) and returns its path.
pub fn write_wrapper(run_dir: &Path) -> std::io::Result<PathBuf> {
    let path = run_dir.join(WRAPPER_NAME);
    autoresearch_engine::atomic::write_atomic(&path, WRAPPER_SCRIPT.as_bytes())?;
    Ok(path)
}
