//! The job wrapper shared by all executors: a small POSIX shell script, written into the run dir,
//! that records the job's pid first and its exit code last, each by an atomic rename, so the
//! result of a job is known even if no engine was alive when it ended.
//!
//! Files it writes into the run dir: `pid`, `stdout.log`, `stderr.log`, `exit_code`.
//!
//! - Nothing is written through a link planted in the run dir: every file is removed first and
//!   created with `O_EXCL` (`set -C`), so a link put back in between makes the wrapper fail
//!   rather than write through it; `pid` and `exit_code` are renamed into place (a rename
//!   replaces a link, it does not follow it).
//! - `stdout.log` and `stderr.log` are capped at `job.log_limit_mb` each: the first half of the
//!   limit is written as it comes, the last half when the job's output ends, so the final
//!   `METRIC` lines are always kept. The output goes through two FIFOs made in a private
//!   `mktemp -d` folder (never in the run dir, where a FIFO would hang any tool reading every
//!   file), unlinked as soon as both ends are open.
//! - The local executor hands the wrapper a lock on [`LAUNCH_LOCK`] as fd 9 and the wrapper
//!   holds it until it exits (the job itself does not inherit it): while it is held, a wrapper
//!   for this run dir is alive, and a second launch is refused.

use std::path::{Path, PathBuf};

/// File name of the wrapper inside the run dir.
pub const WRAPPER_NAME: &str = "wrapper.sh";

/// File in the run dir locked (`flock`) by a local job's wrapper for as long as it runs.
pub const LAUNCH_LOCK: &str = "launch.lock";

/// The fd on which the wrapper receives the lock on [`LAUNCH_LOCK`].
pub const LOCK_FD: i32 = 9;

/// The wrapper script. Usage: `sh wrapper.sh <run_dir> <cwd> <attempt> <log_limit_bytes>`; runs
/// `<run_dir>/command.sh`.
pub const WRAPPER_SCRIPT: &str = r#"#!/bin/sh
# autoresearch job wrapper: records the pid first and the exit code last.
# Usage: sh wrapper.sh RUN_DIR CWD ATTEMPT LOG_LIMIT_BYTES
run_dir="$1"
job_cwd="$2"
log_limit="${4:-67108864}"
# Never write through a planted link: files are removed, then created with O_EXCL.
set -C
put() {
  rm -f "$run_dir/.$1.tmp" && printf '%s\n' "$2" > "$run_dir/.$1.tmp" &&
    mv -f "$run_dir/.$1.tmp" "$run_dir/$1"
}
fail() {
  printf 'autoresearch wrapper: %s\n' "$1" >&2
  put exit_code 127
  exit 127
}
put pid "$$" || fail "cannot write $run_dir/pid"
cd "$job_cwd" || fail "cannot enter the job's working directory $job_cwd"
out="$run_dir/stdout.log"
err="$run_dir/stderr.log"
rm -f "$out" "$err" || fail "cannot clear the old logs in $run_dir"
# The output goes through two FIFOs made in a private folder (never in the run dir, where a FIFO
# would hang any tool reading every file) and unlinked as soon as both ends are open.
pipes=$(mktemp -d "${TMPDIR:-/tmp}/autoresearch-pipes.XXXXXX") || fail "cannot create a folder for the log pipes"
mkfifo "$pipes/stdout" "$pipes/stderr" || { rm -rf "$pipes"; fail "cannot create the log pipes in $pipes"; }
half=$((log_limit / 2))
# Each log keeps its first half-limit bytes as they come and its last half-limit bytes.
{ { head -c "$half"; tail -c "$half"; } > "$out" || { printf 'autoresearch wrapper: cannot create %s\n' "$out" >&2; cat > /dev/null; }; } < "$pipes/stdout" 9>&- &
{ { head -c "$half"; tail -c "$half"; } > "$err" || { printf 'autoresearch wrapper: cannot create %s\n' "$err" >&2; cat > /dev/null; }; } < "$pipes/stderr" 9>&- &
exec 5> "$pipes/stdout" 6> "$pipes/stderr"
rm -rf "$pipes"
/bin/sh "$run_dir/command.sh" >&5 2>&6 < /dev/null 5>&- 6>&- 9>&-
code=$?
# Closing the write ends lets the log writers see the end of the output.
exec 5>&- 6>&-
wait
put exit_code "$code"
exit "$code"
"#;

/// Writes the wrapper into `run_dir` (atomically) and returns its path.
pub fn write_wrapper(run_dir: &Path) -> std::io::Result<PathBuf> {
    let path = run_dir.join(WRAPPER_NAME);
    autoresearch_engine::atomic::write_atomic(&path, WRAPPER_SCRIPT.as_bytes())?;
    Ok(path)
}
