//! Reading Slurm's output: job ids (`sbatch --parsable`), job states (`squeue`, `scontrol show
//! job -o`), and which states mean the job still exists.

use std::ffi::OsString;

use crate::executor::ExecError;
use crate::model::JobRecord;

/// Job states in which the job still exists on the cluster (it may still write its files).
pub(super) const ACTIVE_STATES: &[&str] = &[
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "STOPPED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
];

/// A Slurm job id as stored in `job.json`'s `slurm_id`: `<id>` or `<id>;<cluster>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlurmJob {
    /// The numeric id (`123` or `123_4` for an array task).
    pub id: String,
    /// The cluster, on a federation.
    pub cluster: Option<String>,
}

impl SlurmJob {
    pub(super) fn parse(s: &str) -> Option<SlurmJob> {
        let s = s.trim();
        let (id, cluster) = match s.split_once(';') {
            Some((id, c)) => (id.trim(), Some(c.trim()).filter(|c| !c.is_empty())),
            None => (s, None),
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        Some(SlurmJob {
            id: id.to_string(),
            cluster: cluster.map(str::to_string),
        })
    }

    pub(super) fn from_record(record: &JobRecord) -> Result<SlurmJob, ExecError> {
        let raw = record
            .slurm_id
            .as_deref()
            .or_else(|| record.job_id.strip_prefix("slurm:"))
            .unwrap_or_default();
        SlurmJob::parse(raw).ok_or_else(|| ExecError::BadRecord {
            path: crate::executor::JOB_RECORD.into(),
            message: format!("job record {:?} has no usable Slurm job id", record.job_id),
        })
    }

    pub(super) fn stored(&self) -> String {
        match &self.cluster {
            Some(c) => format!("{};{}", self.id, c),
            None => self.id.clone(),
        }
    }

    /// `-M <cluster>` when the job lives on a named cluster.
    pub(super) fn cluster_args(&self) -> Vec<OsString> {
        match &self.cluster {
            Some(c) => vec!["-M".into(), c.into()],
            None => Vec::new(),
        }
    }

    /// `squeue` arguments that print just this job's state.
    pub(super) fn squeue_state_args(&self) -> Vec<OsString> {
        let mut args = self.cluster_args();
        args.extend([
            "--noheader".into(),
            format!("--jobs={}", self.id).into(),
            "--format=%T".into(),
        ]);
        args
    }
}

/// What the scheduler says about a job.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Observed {
    /// Queued or running (the state word).
    Active(String),
    /// Finished, or no longer known (`state` is `None` then).
    Gone(SlurmEnd),
}

/// The facts about a finished job that `scontrol show job` still had.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct SlurmEnd {
    /// `JobState`.
    pub state: Option<String>,
    /// `ExitCode` (`code:signal`).
    pub exit_code: Option<String>,
    /// `Reason`, unless `None`.
    pub reason: Option<String>,
}

/// Parses `sbatch --parsable` output: `<id>` or `<id>;<cluster>` (the last non-empty line).
pub(super) fn parse_sbatch_output(stdout: &str) -> Option<SlurmJob> {
    stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .and_then(SlurmJob::parse)
}

/// Reads `JobState`, `ExitCode` and `Reason` from `scontrol show job -o` output.
pub(super) fn parse_scontrol(out: &str) -> SlurmEnd {
    let field = |key: &str| -> Option<String> {
        out.split_whitespace()
            .find_map(|tok| tok.strip_prefix(key))
            .map(str::to_string)
            .filter(|v| !v.is_empty())
    };
    SlurmEnd {
        state: field("JobState="),
        exit_code: field("ExitCode="),
        reason: field("Reason=").filter(|r| r != "None"),
    }
}

/// `CANCELLED by 0` → `CANCELLED`.
pub(super) fn base_state(s: &str) -> &str {
    s.split_whitespace()
        .next()
        .unwrap_or(s)
        .trim_end_matches('+')
}

pub(super) fn is_active_state(s: &str) -> bool {
    ACTIVE_STATES.contains(&base_state(s))
}

/// The highest numeric job id.
pub(super) fn newest(ids: impl Iterator<Item = String>) -> Option<String> {
    ids.max_by_key(|id| {
        id.split('_')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_output_parsing() {
        assert_eq!(
            parse_sbatch_output("123\n").map(|j| j.stored()),
            Some("123".into())
        );
        assert_eq!(
            parse_sbatch_output("42;clusterA\n").map(|j| (j.id, j.cluster)),
            Some(("42".into(), Some("clusterA".into())))
        );
        assert_eq!(parse_sbatch_output(""), None);
        assert_eq!(parse_sbatch_output("Submitted batch job 5"), None);
    }

    #[test]
    fn scontrol_parsing() {
        let e = parse_scontrol(
            "JobId=7 JobName=x JobState=NODE_FAIL Reason=NodeDown Dependency=(null) \
             ExitCode=0:0 Comment=autoresearch a b",
        );
        assert_eq!(e.state.as_deref(), Some("NODE_FAIL"));
        assert_eq!(e.exit_code.as_deref(), Some("0:0"));
        assert_eq!(e.reason.as_deref(), Some("NodeDown"));
        assert!(is_active_state("RUNNING"));
        assert!(!is_active_state("CANCELLED"));
        assert_eq!(base_state("CANCELLED by 0"), "CANCELLED");
    }

    #[test]
    fn newest_id() {
        assert_eq!(
            newest(["9", "10", "2"].into_iter().map(String::from)),
            Some("10".into())
        );
    }
}
