//! What to do after a run stopped, as a command the user can type: a fail-fast verdict gets the
//! fix for its failure kind (a wrong metric name: `supervisor reanalyze WD --metric NAME`), a
//! reached limit the `supervisor run WD --<limit> N` that raises it, a planner with nothing left
//! the way to add experiments by hand. `supervisor run` prints it at the end, `supervisor
//! status` with the stop reason.

use std::path::Path;

use autoresearch_adapters::config::{Config, shell_word};
use autoresearch_adapters::model::{FailFast, FailureKind, RunState};

use crate::interactive::limits::reached_limits;

/// The next step after a run that stopped (not interrupted) with `state`, if there is one.
pub fn after_stop(workdir: &Path, config: Option<&Config>, state: &RunState) -> Option<String> {
    let wd = shell_word(&workdir.display().to_string());
    if let Some(f) = &state.fail_fast {
        return Some(fail_fast(&wd, f));
    }
    let reached = config.map(|c| reached_limits(c, state)).unwrap_or_default();
    if !reached.is_empty() {
        let flags: Vec<String> = reached
            .iter()
            .map(|r| format!("{} {}", r.flag(), r.raise_to))
            .collect();
        let what: Vec<&str> = reached.iter().map(|r| r.what.as_str()).collect();
        return Some(format!(
            "{}: to go on, raise it: `supervisor run {wd} {}`",
            what.join("; "),
            flags.join(" ")
        ));
    }
    let reason = state.stop_reason.as_deref().unwrap_or("");
    if reason.starts_with("planner:") || reason.starts_with("queue drained") {
        return Some(format!(
            "nothing is left to run: add an experiment of your own with `supervisor queue {wd} \
             add NAME param=value …`, then `supervisor run {wd}` (a wider search space needs a \
             new workdir)"
        ));
    }
    None
}

/// The fix for a fail-fast verdict, by failure kind.
pub fn fail_fast(wd: &str, f: &FailFast) -> String {
    let id = f.nodes.last().map(String::as_str).unwrap_or("NODE");
    let retry = format!("then `supervisor retry {wd} --all-failed` and `supervisor run {wd}`");
    let metric = &f.metric;
    match f.kind {
        FailureKind::MissingMetric => {
            let seen = format!("[{}]", f.metrics_seen.join(", "));
            match (&f.suggested_metric, f.metrics_seen.is_empty()) {
                (Some(m), _) => format!(
                    "the job did not report `{metric}`; metrics seen: {seen}: fix \
                     `objective.metric` with `supervisor reanalyze {wd} --metric {m}` (it \
                     re-reads the finished runs), then `supervisor run {wd}` goes on"
                ),
                (None, true) => format!(
                    "the job reported no metric at all (see {wd}/runs/{id}/stdout.log): make it \
                     print `METRIC {metric}=<number>`, {retry}"
                ),
                (None, false) => format!(
                    "the job did not report `{metric}`; metrics seen: {seen}: if one of them is \
                     the metric, `supervisor reanalyze {wd} --metric NAME`; otherwise make the \
                     job print `METRIC {metric}=<number>`, {retry}"
                ),
            }
        }
        FailureKind::NonzeroExit => format!(
            "the job exits with an error: see {wd}/runs/{id}/stderr.log; fix the program (a \
             wrong job.command needs a new workdir), {retry}"
        ),
        FailureKind::Timeout => format!(
            "the job runs longer than job.timeout_s, which cannot change on resume: make it \
             faster, {retry}; or start a new workdir with a larger --timeout-s"
        ),
        FailureKind::Launch => format!(
            "the job cannot be started: check job.command and job.cwd in {wd}/config.json \
             ({wd}/engine/nodes/{id}/failure.json says why); fix the cause, {retry}"
        ),
        FailureKind::Lost => format!(
            "the jobs disappear without an exit code (killed by the system? out of memory?): \
             see {wd}/runs/{id}/; {retry}"
        ),
        _ => format!("see {wd}/engine/nodes/{id}/failure.json; fix the cause, {retry}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(kind: FailureKind, seen: &[&str], suggested: Option<&str>) -> FailFast {
        FailFast {
            kind,
            nodes: vec!["000_baseline".into()],
            baseline: true,
            metric: "thruput".into(),
            message: String::new(),
            metrics_seen: seen.iter().map(|s| s.to_string()).collect(),
            suggested_metric: suggested.map(str::to_string),
        }
    }

    #[test]
    fn a_wrong_metric_name_gets_the_reanalyze_command() {
        let h = fail_fast(
            "wd",
            &verdict(
                FailureKind::MissingMetric,
                &["throughput"],
                Some("throughput"),
            ),
        );
        assert!(
            h.contains("the job did not report `thruput`; metrics seen: [throughput]"),
            "{h}"
        );
        assert!(
            h.contains("`supervisor reanalyze wd --metric throughput`"),
            "{h}"
        );
        let h = fail_fast("wd", &verdict(FailureKind::MissingMetric, &[], None));
        assert!(
            h.contains("no metric at all") && h.contains("retry wd --all-failed"),
            "{h}"
        );
        let h = fail_fast(
            &shell_word("my wd"),
            &verdict(FailureKind::NonzeroExit, &[], None),
        );
        assert!(h.contains("'my wd'/runs/000_baseline/stderr.log"), "{h}");
    }
}
