//! `show <id>` and `logs <id> [lines]`: everything known about one node (in a run with a
//! `workspace`, its code change against its parent and the baseline), and the end of its output.
//! `supervisor show WORKDIR ID` prints the same as the session's `show`.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use autoresearch_adapters::config::{format_number, value_to_raw};
use autoresearch_adapters::model::{Failure, JobRecord, NodeResult, NodeSpec};
use autoresearch_adapters::workdir::Workdir;

use super::local_time;

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// `show <id>`: everything known about one node.
pub fn show(workdir: &Path, id: &str) -> Result<String> {
    let wd = Workdir::new(workdir);
    if !wd.node_dir(id).is_dir() {
        bail!("there is no node {id} (`table` lists them; Tab completes ids)");
    }
    let spec: Option<NodeSpec> = read_json(&wd.node_spec(id));
    let status = std::fs::read_to_string(wd.node_status(id))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let result: Option<NodeResult> = read_json(&wd.node_result(id));
    let failure: Option<Failure> = read_json(&wd.node_failure(id));
    let job: Option<JobRecord> = read_json(&wd.run_dir(id).join("job.json"));
    let metric = read_json::<serde_json::Value>(&wd.config())
        .and_then(|c| c["objective"]["metric"].as_str().map(str::to_string))
        .unwrap_or_else(|| "primary".into());

    let mut out = String::new();
    let name = spec.as_ref().map(|s| s.name.as_str()).unwrap_or("?");
    let _ = writeln!(out, "{id} ({name}): {status}");
    let mut field = |k: &str, v: &str| {
        if !v.is_empty() {
            let _ = writeln!(out, "  {k:<11} {v}");
        }
    };
    if let Some(s) = &spec {
        field("parent", s.parent_id.as_deref().unwrap_or("(root)"));
        let params: Vec<String> = s
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_raw(v)))
            .collect();
        field("params", &params.join(" "));
        field("command", &s.command);
        field("hypothesis", &s.hypothesis);
        if let Some(c) = &s.changes {
            field("changes", c);
        }
        field("priority", &format_number(s.priority));
        field("created", &local_time::datetime(&s.created_at));
    }
    if let Some(r) = &result {
        let value = r.primary.map(format_number).unwrap_or_else(|| "?".into());
        let best = if r.improved {
            " (improved on the best)"
        } else {
            ""
        };
        let exit = r
            .exit_code
            .map(|c| format!(", exit {c}"))
            .unwrap_or_default();
        field(
            "result",
            &format!("{metric}={value}{best} in {:.1}s{exit}", r.duration_s),
        );
        let others: Vec<String> = r
            .metrics
            .iter()
            .filter(|(k, _)| **k != metric)
            .map(|(k, v)| format!("{k}={}", format_number(*v)))
            .collect();
        field("metrics", &others.join(" "));
        field("children", &r.children.join(" "));
        field("analysis", r.analysis.lines().next().unwrap_or(""));
    }
    if let Some(f) = &failure {
        field(
            "failure",
            &format!("{} in {}: {}", f.kind.as_str(), f.phase, f.message),
        );
    }
    if let Some(j) = &job {
        let attempt = if j.attempt > 1 {
            format!(" (attempt {})", j.attempt)
        } else {
            String::new()
        };
        field(
            "job",
            &format!(
                "{} on {}, started {}{attempt}",
                j.job_id,
                j.host,
                local_time::datetime(&j.started_at)
            ),
        );
    }
    let run_dir = wd.run_dir(id);
    if run_dir.is_dir() {
        field("run dir", &run_dir.display().to_string());
    }
    // In a run with a workspace: its commit and its diffs against its parent and the baseline.
    match crate::render::code::load(workdir, id) {
        Ok(Some(d)) => {
            let parent = spec.as_ref().and_then(|s| s.parent_id.as_deref());
            crate::render::code::write_text(&d, parent, &mut out);
        }
        Ok(None) => {}
        Err(e) => field("code", &format!("unreadable: {e}")),
    }
    Ok(out)
}

/// `logs <id> [lines]`: the last lines of the node's stdout and stderr.
pub fn logs(workdir: &Path, id: &str, lines: usize) -> Result<String> {
    let wd = Workdir::new(workdir);
    let run_dir = wd.run_dir(id);
    if !run_dir.is_dir() {
        if wd.node_dir(id).is_dir() {
            bail!("{id} has not run yet: no {}", run_dir.display());
        }
        bail!("there is no node {id} (`table` lists them; Tab completes ids)");
    }
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        let path: PathBuf = run_dir.join(name);
        match tail_lines(&path, lines) {
            Ok(tail) if tail.is_empty() => {
                let _ = writeln!(out, "── {name}: empty");
            }
            Ok(tail) => {
                let _ = writeln!(out, "── {name} (last {} lines)", tail.len());
                for l in tail {
                    let _ = writeln!(out, "{l}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = writeln!(out, "── {name}: not written yet");
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    Ok(out)
}

/// The last `n` lines of a file, reading at most its last 256 KiB.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    const WINDOW: u64 = 256 * 1024;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        all.remove(0); // probably cut in the middle
    }
    let from = all.len().saturating_sub(n);
    Ok(all[from..].iter().map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_a_node_and_its_logs() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Workdir::new(dir.path());
        std::fs::create_dir_all(wd.node_dir("001_a")).unwrap();
        std::fs::create_dir_all(wd.run_dir("001_a")).unwrap();
        std::fs::write(
            wd.config(),
            r#"{"objective":{"metric":"score","direction":"maximize"}}"#,
        )
        .unwrap();
        std::fs::write(
            wd.node_spec("001_a"),
            r#"{"node_id":"001_a","name":"a","parent_id":"000_baseline","hypothesis":"more is better","params":{"x":4},"changes":null,"command":"run --x 4","priority":-3,"created_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        std::fs::write(wd.node_status("001_a"), "completed\n").unwrap();
        std::fs::write(
            wd.node_result("001_a"),
            r#"{"metrics":{"score":7,"mem":3},"primary":7,"improved":true,"duration_s":1.5,"exit_code":0,"children":["002_b"],"analysis":"fine"}"#,
        )
        .unwrap();
        let text = show(dir.path(), "001_a").unwrap();
        for want in [
            "001_a (a): completed",
            "parent      000_baseline",
            "params      x=4",
            "command     run --x 4",
            "score=7 (improved on the best) in 1.5s, exit 0",
            "metrics     mem=3",
            "children    002_b",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(show(dir.path(), "009_nope").is_err());

        let lines: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(wd.run_dir("001_a").join("stdout.log"), lines).unwrap();
        let text = logs(dir.path(), "001_a", 3).unwrap();
        assert!(
            text.contains("stdout.log (last 3 lines)\nline 28\nline 29\nline 30\n"),
            "{text}"
        );
        assert!(text.contains("stderr.log: not written yet"), "{text}");
    }
}
