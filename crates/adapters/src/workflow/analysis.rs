//! Analysis of a node's runs: how each run ended and what it reported, the node's value (the
//! aggregate of its runs) and spread, and the judging of that value against the best, under
//! the ledger's lock, exactly once per node (see `docs/noise.md`).
//!
//! - A run that failed fails the node, named in the message (`run 2 of 3: …`).
//! - A value that beats the best by less than the noise (or always, per `objective.confirm`)
//!   is not counted yet: `engine/nodes/<id>/confirm.json` records the decision (under the
//!   lock, once: a node with that file is never judged that way again), the node goes back to
//!   `running` for its confirmation runs, and is judged again on the aggregate of all its
//!   runs. Only then is it recorded, `improved` or `unconfirmed`.
//! - Recording writes `runs/<id>/analysis.md`, `result.json` and `status.txt = planning`,
//!   then `state.json` (its `recorded` list makes it happen once across crashes).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::events::NodeEvent;
use super::jobs::JobEnding;
use super::jobs::JobRun;
use super::nodes::NodeError;
use super::repeats::CONFIRM_FILE;
use super::stop::{Fail, Stop, tail};
use super::{ExperimentWorkflow, Notice, now_millis};
use crate::metrics::MetricsError;
use crate::model::{Confirmation, FailureKind, JobRecord, NodeResult, NodeSpec, NodeStatus};
use crate::noise::{self, Candidate, Verdict};

/// What analysing a node led to.
pub(crate) enum Analyzed {
    /// Its result is recorded; it goes on to planning.
    Recorded,
    /// Runs are still to be made (confirmation runs): back to `running`.
    MoreRuns,
}

/// What one run left.
struct RunOutcome {
    metrics: BTreeMap<String, f64>,
    dropped: u64,
    exit_code: Option<i32>,
    duration_s: f64,
    /// Why the run failed, if it did.
    failure: Option<Fail>,
}

impl ExperimentWorkflow {
    /// Reads every run of the node, aggregates, judges and records the result (or sends the
    /// node to confirmation).
    pub(crate) fn analyze(&self, spec: &NodeSpec) -> Result<Analyzed, Stop> {
        let id = spec.node_id.as_str();
        let metric = &self.config.objective.metric;
        let plan = self.run_plan(id)?;
        let total = plan.total();
        let mut runs: Vec<RunOutcome> = Vec::new();
        for k in 1..=total {
            let run = self.job_run(spec, k);
            if k > 1 && self.written_ending(&run.dir)?.is_none() {
                return Ok(Analyzed::MoreRuns);
            }
            let mut outcome = self.read_run(&run, total)?;
            if let Some(fail) = outcome.failure.take() {
                let partial = NodeResult {
                    metrics: outcome.metrics,
                    primary: None,
                    improved: false,
                    duration_s: runs.iter().map(|r| r.duration_s).sum::<f64>() + outcome.duration_s,
                    exit_code: outcome.exit_code,
                    children: Vec::new(),
                    analysis: String::new(),
                    metrics_dropped: outcome.dropped,
                    samples: runs
                        .iter()
                        .filter_map(|r| r.metrics.get(metric).copied())
                        .collect(),
                    ..NodeResult::default()
                };
                self.nodes.write_result(id, &partial)?;
                return Err(Stop::Fail(fail));
            }
            runs.push(outcome);
        }
        let samples: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.metrics.get(metric).copied())
            .collect();
        let aggregate = self.config.objective.aggregate;
        let Some(value) = noise::aggregate(aggregate, &samples) else {
            return Err(Stop::Env(format!("{id}: no run left a value to aggregate")));
        };
        let mut names: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for r in &runs {
            for (name, v) in &r.metrics {
                names.entry(name).or_default().push(*v);
            }
        }
        let metrics: BTreeMap<String, f64> = names
            .into_iter()
            .filter_map(|(name, vs)| Some((name.to_string(), noise::aggregate(aggregate, &vs)?)))
            .collect();
        let dropped = runs.iter().map(|r| r.dropped).max().unwrap_or(0);
        if dropped > 0 {
            tracing::warn!(
                node = id,
                dropped,
                "the job reported more than {} metric names; the others are not kept",
                crate::metrics::MAX_METRIC_NAMES
            );
        }

        // Decide, write, and count under one lock so concurrent results are judged in order.
        let mut ledger = self.ledger.begin();
        let state = ledger.state().clone();
        let noise_now = state.noise_floor.map(|f| f.relative);
        let objective = &self.config.objective;
        let (improved, confirmation) = match plan.confirmation {
            None => {
                let candidate = Candidate {
                    value,
                    n: samples.len() as u32,
                    best: state.best_value,
                    best_n: state.best_n.unwrap_or(1),
                    noise: noise_now,
                };
                match noise::judge(objective, candidate) {
                    Verdict::Improved => (true, None),
                    Verdict::NotImproved => (false, None),
                    Verdict::Confirm(reason) => {
                        let decision = Confirmation {
                            reason,
                            runs_before: total,
                            runs: objective.confirm_runs,
                            value,
                            best_node: state.best_node.clone(),
                            best_before: state.best_value,
                            noise_floor: noise_now,
                            decided_at: now_millis(),
                            confirmed: None,
                        };
                        self.nodes.write_node_json(id, CONFIRM_FILE, &decision)?;
                        drop(ledger);
                        tracing::info!(
                            node = id,
                            value,
                            best = ?state.best_value,
                            runs = objective.confirm_runs,
                            "beats the best within the noise: confirming it with more runs"
                        );
                        return Ok(Analyzed::MoreRuns);
                    }
                }
            }
            Some(mut c) => {
                let ok = noise::judge_confirmed(objective, value, state.best_value, noise_now);
                c.confirmed = Some(ok);
                (ok, Some(c))
            }
        };
        let unconfirmed = confirmation
            .as_ref()
            .is_some_and(|c| c.confirmed == Some(false));
        let spread = noise::spread(&samples);
        let analysis = analysis_text(
            spec,
            metric,
            value,
            &samples,
            improved,
            state.best_value,
            confirmation.as_ref(),
        );
        let result = NodeResult {
            metrics,
            primary: Some(value),
            improved,
            duration_s: runs.iter().map(|r| r.duration_s).sum(),
            exit_code: runs.last().and_then(|r| r.exit_code),
            children: Vec::new(),
            analysis: analysis.clone(),
            metrics_dropped: dropped,
            samples,
            spread,
            confirmation,
            unconfirmed,
            // The coding agent's analysis, when configured, adds them in the planning phase.
            findings: None,
        };
        let analysis_path = self.wd.run_dir(id).join("analysis.md");
        self.wd
            .check(&analysis_path)
            .map_err(|source| NodeError::Io {
                path: analysis_path.clone(),
                source,
            })?;
        autoresearch_engine::atomic::write_atomic(
            &analysis_path,
            format!("# {id}\n\n{analysis}\n").as_bytes(),
        )
        .map_err(|source| NodeError::Io {
            path: analysis_path,
            source,
        })?;
        self.nodes.write_result(id, &result)?;
        self.nodes.set_status(id, NodeStatus::Planning)?;
        ledger.commit_success(id, &result, &self.config)?;
        drop(ledger);
        self.notify(Notice::Completed {
            id: id.to_string(),
            primary: value,
            improved,
        });
        self.emit(NodeEvent::NodeCompleted {
            id: id.to_string(),
            primary: value,
            improved,
        });
        Ok(Analyzed::Recorded)
    }

    /// How run `run` (of `total`) ended and what it reported.
    fn read_run(&self, run: &JobRun<'_>, total: u32) -> Result<RunOutcome, Stop> {
        let phase = NodeStatus::Analyzing;
        let run_dir = &run.dir;
        self.wd.check(run_dir).map_err(|source| NodeError::Io {
            path: run_dir.clone(),
            source,
        })?;
        let ending = self.read_ending(run_dir)?;
        let duration_s = job_duration(run_dir);
        let metric = &self.config.objective.metric;
        let metrics = match crate::metrics::collect(run_dir, metric) {
            Ok(m) => Ok(m),
            // A log the disk could not give back is not the job's fault.
            Err(MetricsError::Io { path, source })
                if autoresearch_engine::nofollow::is_transient(&source) =>
            {
                return Err(Stop::Env(format!("{}: {source}", path.display())));
            }
            Err(e) => Err(Fail::new(
                FailureKind::MissingMetric,
                phase,
                format!("cannot read the job's metrics: {e}"),
            )),
        };
        let exit_code = match &ending {
            JobEnding::Exited(code) => Some(*code),
            _ => None,
        };
        let (values, dropped) = match &metrics {
            Ok(m) => (m.values.clone(), m.dropped),
            Err(_) => Default::default(),
        };
        // `runs/<id>` or `runs/<id>/repeat-<k>`, for messages.
        let rel = run_dir
            .strip_prefix(&self.wd.root)
            .unwrap_or(run_dir)
            .display()
            .to_string();
        let which = if total > 1 {
            format!("run {} of {total}: ", run.repeat)
        } else {
            String::new()
        };
        let stderr_tail = tail(&run_dir.join("stderr.log"), 10);
        let fail = match &ending {
            JobEnding::TimedOut => Some(
                Fail::new(
                    FailureKind::Timeout,
                    NodeStatus::Running,
                    format!(
                        "{which}the job ran longer than job.timeout_s = {} s; its process group \
                         was killed",
                        self.config.job.timeout_s.unwrap_or_default()
                    ),
                )
                .details(json!({ "stderr_tail": stderr_tail, "run": run.repeat })),
            ),
            JobEnding::Lost(reason) => Some(
                Fail::new(
                    FailureKind::Lost,
                    NodeStatus::Running,
                    format!("{which}the job disappeared without an exit code: {reason}"),
                )
                .details(json!({ "run": run.repeat })),
            ),
            JobEnding::Exited(code) if *code != 0 => Some(
                Fail::new(
                    FailureKind::NonzeroExit,
                    NodeStatus::Running,
                    format!("{which}the job exited with status {code}; see {rel}/stderr.log"),
                )
                .details(
                    json!({ "exit_code": code, "stderr_tail": stderr_tail, "run": run.repeat }),
                ),
            ),
            JobEnding::Exited(_) => None,
        };
        let failure = match (fail, metrics) {
            (Some(fail), _) => Some(fail),
            (None, Err(fail)) => Some(fail),
            (None, Ok(m)) if !m.values.contains_key(metric) => Some(
                Fail::new(
                    FailureKind::MissingMetric,
                    phase,
                    format!("{which}{}", missing_metric(metric, &m)),
                )
                .details(json!({
                    "metrics": m.values,
                    "rejected": m.rejected,
                    "run": run.repeat,
                })),
            ),
            (None, Ok(_)) => None,
        };
        Ok(RunOutcome {
            metrics: values,
            dropped,
            exit_code,
            duration_s,
            failure,
        })
    }
}

/// The analysis line of a recorded node: its parameters, value (with its runs' range), the
/// change against the best before it, and the verdict.
pub(crate) fn analysis_text(
    spec: &NodeSpec,
    metric: &str,
    value: f64,
    samples: &[f64],
    improved: bool,
    best: Option<f64>,
    confirmation: Option<&Confirmation>,
) -> String {
    let params = spec
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", super::nodes::plain(v)))
        .collect::<Vec<_>>()
        .join(" ");
    let value_text = match noise::spread(samples) {
        Some(s) => format!(
            "{value} ({} runs, {} … {}, stdev {})",
            s.n,
            s.min,
            s.max,
            crate::config::format_number((s.stdev * 1e6).round() / 1e6)
        ),
        None => value.to_string(),
    };
    let Some(b) = best else {
        return format!("{params}: {metric} = {value_text} (first result)");
    };
    let pct = if b != 0.0 {
        (value - b) / b.abs() * 100.0
    } else {
        0.0
    };
    let verdict = match (confirmation, improved) {
        (Some(c), true) => format!("new best, confirmed by {} more runs", c.runs),
        (Some(c), false) => format!(
            "not confirmed: {} at first, {} over all {} runs",
            c.value,
            value,
            c.runs_before + c.runs
        ),
        (None, true) => "new best".into(),
        (None, false) => "no improvement".into(),
    };
    format!("{params}: {metric} = {value_text} ({pct:+.1}% vs best {b}): {verdict}")
}

/// Why the primary metric is missing, with what the job did report.
pub(crate) fn missing_metric(metric: &str, metrics: &crate::metrics::Metrics) -> String {
    if let Some(raw) = metrics.rejected.get(metric) {
        return format!(
            "the job reported the primary metric `{metric}` as `{raw}`, which is not a finite \
             number: print `METRIC {metric}=<number>` with a finite value"
        );
    }
    let mut seen: Vec<&str> = metrics.values.keys().map(String::as_str).take(20).collect();
    if metrics.values.len() > seen.len() {
        seen.push("…");
    }
    let rejected: Vec<String> = metrics
        .rejected
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut text = format!(
        "the job did not report the primary metric `{metric}`: print a line \
         `METRIC {metric}=<number>` or write it to $AUTORESEARCH_RUN_DIR/metrics.json (metrics \
         seen: {})",
        if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join(", ")
        }
    );
    if !rejected.is_empty() {
        text.push_str(&format!(
            "; values that are not finite numbers were ignored: {}",
            rejected.join(", ")
        ));
    }
    text
}

/// Seconds between the job's `started_at` and its `exit_code` file (or now).
fn job_duration(run_dir: &Path) -> f64 {
    let started = super::nodes::read_json::<JobRecord>(&run_dir.join("job.json"))
        .ok()
        .flatten()
        .and_then(|r| humantime::parse_rfc3339_weak(&r.started_at).ok());
    let ended = std::fs::symlink_metadata(run_dir.join("exit_code"))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| std::time::SystemTime::now());
    started
        .and_then(|s| ended.duration_since(s).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
