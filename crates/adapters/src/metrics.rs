//! Metrics protocol (`docs/adapters.md`, "Jobs"): a job reports metrics by printing `METRIC <name>=<number>`
//! lines on stdout or stderr and/or by writing a JSON object `{name: number}` to
//! `$AUTORESEARCH_RUN_DIR/metrics.json`. The last value of a name wins; sources are read in the
//! order `stdout.log`, `stderr.log`, `metrics.json`, so later sources win.
//!
//! A value that is not a finite number (`METRIC score=nan`, `"score": "fast"`) is not kept but
//! remembered in [`Metrics::rejected`], so a missing primary metric can be explained. At most
//! [`MAX_METRIC_NAMES`] names are kept (the primary metric always is); the others are counted in
//! [`Metrics::dropped`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use crate::model::MAX_METRIC_NAMES;

/// Lines longer than this (in bytes) are skipped without being buffered whole.
const MAX_LINE: usize = 64 * 1024;
/// Largest `metrics.json` read.
const MAX_METRICS_JSON: u64 = 64 << 20;
/// Rejected values remembered (for messages).
const MAX_REJECTED: usize = 16;
/// Longest rejected value text kept.
const MAX_REJECTED_TEXT: usize = 40;

/// The metrics of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Name → value (the last finite value of each name).
    pub values: BTreeMap<String, f64>,
    /// Distinct names seen beyond [`MAX_METRIC_NAMES`], not kept.
    pub dropped: u64,
    /// Names whose value was not a finite number, with that value's text (the last one; at
    /// most 16 names).
    pub rejected: BTreeMap<String, String>,
}

/// Collects metrics under the name cap.
struct Sink<'a> {
    out: Metrics,
    keep: &'a str,
    dropped: std::collections::HashSet<String>,
}

impl<'a> Sink<'a> {
    fn new(keep: &'a str) -> Self {
        Sink {
            out: Metrics::default(),
            keep,
            dropped: Default::default(),
        }
    }

    fn insert(&mut self, name: &str, value: f64) {
        if let Some(v) = self.out.values.get_mut(name) {
            *v = value;
            return;
        }
        if self.out.values.len() >= MAX_METRIC_NAMES && name != self.keep {
            if self.dropped.len() < 1 << 20 {
                self.dropped.insert(name.to_string());
            } else if !self.dropped.contains(name) {
                // Past a million distinct names, count without remembering.
                self.out.dropped += 1;
            }
            return;
        }
        self.out.values.insert(name.to_string(), value);
    }

    fn reject(&mut self, name: &str, raw: &str) {
        if self.out.rejected.len() >= MAX_REJECTED && !self.out.rejected.contains_key(name) {
            return;
        }
        let text: String = raw.trim().chars().take(MAX_REJECTED_TEXT).collect();
        self.out.rejected.insert(name.to_string(), text);
    }

    fn finish(mut self) -> Metrics {
        self.out.dropped += self.dropped.len() as u64;
        self.out
    }
}

/// Errors of reading a run's metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A log or `metrics.json` exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `metrics.json` is not a JSON object.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was expected and found (with line and column for syntax errors).
        message: String,
    },
}

/// Parses one `METRIC <name>=<number>` line (leading and trailing whitespace and spaces
/// around `=` allowed). Returns `None` for other lines, names outside `[A-Za-z0-9_.:/-]+`,
/// and values that are not finite numbers.
pub fn parse_metric_line(line: &str) -> Option<(&str, f64)> {
    let (name, raw) = parse_metric_raw(line)?;
    let value: f64 = raw.trim().parse().ok()?;
    value.is_finite().then_some((name, value))
}

/// The name and the raw value text of a `METRIC <name>=<value>` line, whatever the value.
pub fn parse_metric_raw(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix("METRIC")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let (name, value) = rest.trim_start().split_once('=')?;
    let name = name.trim_end();
    crate::config::is_metric_name(name).then_some((name, value))
}

/// All metrics in `text` (see [`parse_metric_line`]); the last value of a name wins.
pub fn parse_metric_lines(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.split(['\n', '\r']) {
        if let Some((name, value)) = parse_metric_line(line) {
            out.insert(name.to_string(), value);
        }
    }
    out
}

/// The metrics of a run: `METRIC` lines of `stdout.log`, then `stderr.log`, then the numbers of
/// `metrics.json`; later sources win. Missing files are skipped; a `metrics.json` that is not a
/// JSON object is an error naming the file (an empty one counts as no metrics). Values that are
/// not finite numbers are not kept but listed in [`Metrics::rejected`]. At most
/// [`MAX_METRIC_NAMES`] names are kept, `keep` (the primary metric) always.
pub fn collect(run_dir: &Path, keep: &str) -> Result<Metrics, MetricsError> {
    let mut sink = Sink::new(keep);
    for log in ["stdout.log", "stderr.log"] {
        scan_log(&run_dir.join(log), &mut sink)?;
    }
    read_metrics_json(&run_dir.join("metrics.json"), &mut sink)?;
    Ok(sink.finish())
}

/// Streams a log line by line (`\n` or `\r` ends a line), keeping the metric lines.
/// Lines that are not UTF-8 or longer than [`MAX_LINE`] are skipped.
fn scan_log(path: &Path, out: &mut Sink) -> Result<(), MetricsError> {
    let io_err = |source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    // Bytes of the current line when it spans buffer refills.
    let mut partial: Vec<u8> = Vec::new();
    // The current line is too long and is being skipped.
    let mut skipping = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if buf.is_empty() {
            if !skipping {
                scan_line(&partial, out);
            }
            return Ok(());
        }
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = start + pos;
            if partial.is_empty() {
                if !skipping {
                    scan_line(&buf[start..end], out);
                }
            } else {
                if !skipping && partial.len() + (end - start) <= MAX_LINE {
                    partial.extend_from_slice(&buf[start..end]);
                    scan_line(&partial, out);
                }
                partial.clear();
            }
            skipping = false;
            start = end + 1;
        }
        let rest = &buf[start..];
        if !skipping {
            if partial.len() + rest.len() > MAX_LINE {
                skipping = true;
                partial.clear();
            } else {
                partial.extend_from_slice(rest);
            }
        }
        let consumed = buf.len();
        reader.consume(consumed);
    }
}

/// Opens a log for reading without following a link and without blocking on a FIFO; anything
/// but a regular file is an error naming it.
fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                autoresearch_engine::nofollow::link_error(path)
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

fn scan_line(line: &[u8], out: &mut Sink) {
    let trimmed = line.trim_ascii_start();
    if !trimmed.starts_with(b"METRIC") {
        return;
    }
    if let Ok(text) = std::str::from_utf8(trimmed)
        && let Some((name, raw)) = parse_metric_raw(text)
    {
        match raw.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => out.insert(name, v),
            _ => out.reject(name, raw),
        }
    }
}

fn read_metrics_json(path: &Path, out: &mut Sink) -> Result<(), MetricsError> {
    let bytes = match autoresearch_engine::nofollow::read_regular(path, MAX_METRICS_JSON) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(()),
        Err(source) => {
            return Err(MetricsError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if bytes.trim_ascii().is_empty() {
        return Ok(());
    }
    let malformed = |message: String| MetricsError::Malformed {
        path: path.to_path_buf(),
        message,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        malformed(format!(
            "expected a JSON object of metric name → number: {e}"
        ))
    })?;
    let Value::Object(map) = value else {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        return Err(malformed(format!(
            "expected a JSON object of metric name → number, found {kind}"
        )));
    };
    for (name, value) in map {
        match value.as_f64() {
            Some(x) if x.is_finite() => out.insert(&name, x),
            _ => {
                tracing::warn!(
                    file = %path.display(),
                    metric = %name,
                    "ignoring a metric whose value is not a finite number"
                );
                out.reject(&name, &value.to_string());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let text = "noise\n  METRIC a=1\nMETRIC b = 2.5e3 \r\nMETRICc=3\nMETRIC a=4\n\
                    METRIC bad name=1\nMETRIC n=nan\nMETRIC i=inf\nMETRIC x=12ms\n\tMETRIC y=-.5";
        let m = parse_metric_lines(text);
        assert_eq!(
            m,
            BTreeMap::from([
                ("a".to_string(), 4.0),
                ("b".to_string(), 2500.0),
                ("y".to_string(), -0.5)
            ])
        );
    }

    #[test]
    fn long_lines_and_split_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Vec::new();
        log.extend(std::iter::repeat_n(b'x', 200_000));
        log.extend_from_slice(b" METRIC hidden=1\n");
        log.extend_from_slice(b"\xff\xfe METRIC bin=1\n");
        // A metric line straddling the 64 KiB buffer boundary.
        log.extend(std::iter::repeat_n(b'y', 65_536 - (log.len() % 65_536) - 5));
        log.extend_from_slice(b"\nMETRIC straddle=7\nprogress 1%\rMETRIC cr=2");
        std::fs::write(dir.path().join("stdout.log"), &log).unwrap();
        let m = collect(dir.path(), "cr").unwrap().values;
        assert_eq!(
            m,
            BTreeMap::from([("cr".to_string(), 2.0), ("straddle".to_string(), 7.0)])
        );
    }

    #[test]
    fn sources_in_order_later_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            collect(dir.path(), "a").unwrap().values.is_empty(),
            "no files, no metrics"
        );
        std::fs::write(
            dir.path().join("stdout.log"),
            "METRIC a=1\nMETRIC b=1\nMETRIC c=1\nMETRIC a=1.5\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("stderr.log"),
            "warn\nMETRIC b=2\nMETRIC c=2\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("metrics.json"),
            r#"{"c": 3, "d": 4e2, "note": "text", "nested": {"x": 1}}"#,
        )
        .unwrap();
        let m = collect(dir.path(), "a").unwrap();
        assert_eq!(m.rejected.get("note").map(String::as_str), Some("\"text\""));
        let m = m.values;
        assert_eq!(
            m,
            BTreeMap::from([
                ("a".to_string(), 1.5),
                ("b".to_string(), 2.0),
                ("c".to_string(), 3.0),
                ("d".to_string(), 400.0),
            ])
        );
    }

    #[test]
    fn malformed_metrics_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        std::fs::write(&path, "{\"a\": 1,").unwrap();
        let err = collect(dir.path(), "a").unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(&path, "[1, 2]").unwrap();
        let err = collect(dir.path(), "a").unwrap_err().to_string();
        assert!(
            err.contains("metrics.json") && err.contains("an array"),
            "{err}"
        );
        std::fs::write(&path, "  \n").unwrap();
        assert!(
            collect(dir.path(), "a").unwrap().values.is_empty(),
            "an empty file is no metrics"
        );
    }

    #[test]
    fn non_finite_values_are_remembered_for_the_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stdout.log"),
            "METRIC score=nan\nMETRIC other=1\nMETRIC speed=inf\nMETRIC speed=2\n",
        )
        .unwrap();
        let m = collect(dir.path(), "score").unwrap();
        assert_eq!(m.values.get("score"), None);
        assert_eq!(m.rejected.get("score").map(String::as_str), Some("nan"));
        assert_eq!(
            m.values.get("speed"),
            Some(&2.0),
            "a later finite value is kept"
        );
    }

    #[test]
    fn metric_names_are_capped_but_the_primary_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = String::new();
        for i in 0..100_000 {
            log.push_str(&format!("METRIC m{i}=1\n"));
        }
        log.push_str("METRIC m5=2\nMETRIC score=3\n");
        std::fs::write(dir.path().join("stdout.log"), &log).unwrap();
        let m = collect(dir.path(), "score").unwrap();
        assert_eq!(m.values.len(), MAX_METRIC_NAMES + 1);
        assert_eq!(m.values.get("score"), Some(&3.0));
        assert_eq!(m.values.get("m5"), Some(&2.0));
        assert_eq!(m.dropped, 100_000 - MAX_METRIC_NAMES as u64);
    }
}
