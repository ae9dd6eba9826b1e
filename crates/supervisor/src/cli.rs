//! Command-line definition (clap).

use std::path::PathBuf;

use autoresearch_adapters::config::{Direction, ExecutorKind, PlannerKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Autoresearch: run experiments on a program, keep every result, plan follow-ups, resume
/// after any interruption. `supervisor <workdir>` opens the interactive session.
#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Subcommand; without one, the interactive session on WORKDIR.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Workdir of the interactive session.
    pub workdir: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine headless in the foreground (resumes when the workdir has a checkpoint).
    Run(Box<RunArgs>),
    /// Show status, counts, best result and running jobs.
    Status {
        /// The workdir.
        workdir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show everything known about one experiment: spec, result, failure, job and, in a run
    /// with a `workspace`, its commit and code diffs against its parent and the baseline.
    Show {
        /// The workdir.
        workdir: PathBuf,
        /// The experiment's node id (e.g. `004_closed_form`).
        id: String,
    },
    /// List, bump, drop or add queued experiments (live or offline).
    Queue {
        /// The workdir.
        workdir: PathBuf,
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<QueueAction>,
    },
    /// Interrupt the running engine gracefully and wait until it is `interrupted`.
    Stop {
        /// The workdir.
        workdir: PathBuf,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
    /// Write report.md (best configuration, how to reproduce it, path from the baseline); with
    /// --agent also final_report.md, synthesised by the coding agent.
    Report {
        /// The workdir.
        workdir: PathBuf,
        /// Also ask the coding agent for final_report.md: what was learned, what worked and
        /// why, what did not, what to try next, citing node ids (the run's planner.agent, or
        /// the --agent-* flags; an --agent-* flag implies --agent).
        #[arg(long)]
        agent: bool,
        /// Which agent (default: the run's planner.agent).
        #[command(flatten)]
        agent_flags: crate::commands::agent_call::AgentFlags,
    },
    /// Ask the coding agent a question about the run (it reads the run's files only); queue
    /// changes it proposes are applied only with --yes.
    Ask {
        /// The workdir.
        workdir: PathBuf,
        /// The question, e.g. "why did 014 fail?" (the files of the experiments it names are
        /// given to the agent).
        question: String,
        /// Apply the proposed queue actions (bump, drop, add) without asking.
        #[arg(long)]
        yes: bool,
        /// Which agent (default: the run's planner.agent).
        #[command(flatten)]
        agent_flags: crate::commands::agent_call::AgentFlags,
    },
    /// Re-render master_table.tsv, summary.md, progress.png, hypothesis_tree.png, params.png
    /// and parallel.png.
    Render {
        /// The workdir.
        workdir: PathBuf,
    },
    /// Export the table of experiments (one column per parameter) as CSV or JSON.
    Export {
        /// The workdir.
        workdir: PathBuf,
        /// csv (a header line, RFC 4180 quoting) or json (an array of objects, typed values).
        #[arg(long, value_enum, default_value = "csv")]
        format: crate::commands::export::Format,
        /// Write to this file (atomically) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run failed experiments again, as new experiments with the same parameters (and code
    /// change), linked to the failed ones (which stay failed). Each counts against
    /// max_experiments.
    Retry {
        /// The workdir.
        workdir: PathBuf,
        /// Failed experiments to retry (node ids).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<String>,
        /// Retry every failed experiment that is not retried already.
        #[arg(long)]
        all_failed: bool,
    },
    /// Re-read every finished experiment's metrics from its run files, optionally with another
    /// primary metric name (objective.metric), judge improvements again and rebuild state.json
    /// and the views. Refused while an engine runs.
    Reanalyze {
        /// The workdir.
        workdir: PathBuf,
        /// The new objective.metric (as the job prints it: `METRIC <name>=<number>`); default:
        /// the current one.
        #[arg(long)]
        metric: Option<String>,
    },
    /// Rebuild engine/checkpoint.json and engine/tree.json from the node files.
    Repair {
        /// The workdir.
        workdir: PathBuf,
        /// Only report what would be rebuilt.
        #[arg(long)]
        dry_run: bool,
    },
    /// List workdirs under a folder with their status.
    List {
        /// The folder (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Live web dashboard of a workdir, or of every workdir under a folder (read-only unless
    /// --allow-control).
    Serve {
        /// A workdir, or a folder of workdirs (default: the current directory).
        path: Option<PathBuf>,
        /// Address to listen on; anything but a loopback address makes every request need the
        /// token printed at start.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Port (0: any free port).
        #[arg(long, default_value_t = crate::serve::server::DEFAULT_PORT)]
        port: u16,
        /// Let the page bump, drop and stop (with the token printed at start).
        #[arg(long)]
        allow_control: bool,
    },
}

/// `queue` actions.
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Show the queue in run order.
    List,
    /// Set the priority of a queued experiment (lower runs first).
    Bump {
        /// Node id.
        id: String,
        /// New priority.
        #[arg(allow_negative_numbers = true)]
        priority: f64,
    },
    /// Remove a queued experiment.
    Drop {
        /// Node id.
        id: String,
    },
    /// Add an experiment by hand: `add NAME param=value …` (parameters left out take the
    /// baseline's value). Refused if an experiment with these parameters exists.
    Add(AddArgs),
}

/// `queue add` (and the session's `add`) arguments.
#[derive(Debug, Clone, Args, PartialEq)]
pub struct AddArgs {
    /// The experiment's name (its id is `add-<time>-<name>`).
    pub name: String,
    /// Parameter values, `param=value`, each read like `--baseline`.
    #[arg(value_name = "PARAM=VALUE")]
    pub params: Vec<String>,
    /// Queue priority, lower runs first (default -100: after the baseline, before the
    /// planner's proposals).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<f64>,
    /// The experiment it follows from (a node id), shown as its parent in the tree.
    #[arg(long)]
    pub parent: Option<String>,
    /// Why it is worth running (default "added by hand").
    #[arg(long)]
    pub hypothesis: Option<String>,
}

impl AddArgs {
    /// The request `queue add` carries out.
    pub fn request(&self) -> crate::commands::queue_add::AddRequest {
        crate::commands::queue_add::AddRequest {
            name: self.name.clone(),
            assignments: self.params.clone(),
            priority: self.priority,
            parent: self.parent.clone(),
            hypothesis: self.hypothesis.clone(),
        }
    }
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workdir (created on the first run).
    pub workdir: PathBuf,
    /// Configuration and limits.
    #[command(flatten)]
    pub config: ConfigFlags,
    /// Seconds running experiments get to persist their phase after an interrupt.
    #[arg(long, default_value_t = 10.0, value_parser = non_negative, allow_negative_numbers = true)]
    pub grace_s: f64,
    /// Do not re-render the views during the run.
    #[arg(long)]
    pub no_render: bool,
}

/// Flags that make or override a configuration. On resume only limits and Slurm settings may
/// change.
#[derive(Debug, Args, Default, Clone)]
pub struct ConfigFlags {
    /// Configuration file (.json or .toml) for a new run.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Command to run, with {param} placeholders.
    #[arg(long)]
    pub command: Option<String>,
    /// Primary metric name (printed by the job as `METRIC <name>=<number>`).
    #[arg(long)]
    pub metric: Option<String>,
    /// Which way the metric is better: maximize (higher is better) or minimize (lower is
    /// better); `max` and `min` also work. Required for a new run.
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// Smallest relative improvement that counts (default 0.01).
    #[arg(long, value_parser = non_negative, allow_negative_numbers = true)]
    pub min_improvement: Option<f64>,
    /// A parameter (repeatable, each name once): `NAME=1,2,4` gives choices (numbers are
    /// searched in order, strings unordered; add `:ordered` or `:unordered`; quote an item to make
    /// it a string); `NAME=MIN..MAX` gives a range, an int range when both ends are integers
    /// (`1..8`) and a float range otherwise (`0.5..2`), linear unless `:log`; add `:int` or
    /// `:float` to choose the type. Examples: `workers=1,2,4,8`, `chunk=16..4096:log`,
    /// `lr=1e-4..0.1:log`, `opt=adam,sgd`.
    #[arg(long = "param", value_name = "NAME=SPEC")]
    pub params: Vec<String>,
    /// Baseline value of a parameter, `name=value` (default: first choice or minimum). Repeatable.
    #[arg(long = "baseline", value_name = "NAME=VALUE")]
    pub baseline: Vec<String>,
    /// Working directory of the job, an existing folder (default: the current directory).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Job time limit in seconds (a number > 0).
    #[arg(long, value_parser = positive_seconds, allow_negative_numbers = true)]
    pub timeout_s: Option<f64>,
    /// Who proposes follow-up experiments.
    #[arg(long, value_enum)]
    pub planner: Option<PlannerArg>,
    /// Where jobs run.
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorArg>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm account.
    #[arg(long)]
    pub account: Option<String>,
    /// Extra sbatch argument (repeatable).
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Kill running jobs when the engine is interrupted (default: they keep running).
    #[arg(long)]
    pub cancel_jobs_on_stop: bool,
    /// Total experiments (over all resumes).
    #[arg(long)]
    pub max_experiments: Option<u64>,
    /// Experiments in a row without improvement before stopping.
    #[arg(long)]
    pub patience: Option<u32>,
    /// Total wall time in seconds (over all resumes; a number > 0).
    #[arg(long, value_parser = positive_seconds, allow_negative_numbers = true)]
    pub time_budget_s: Option<f64>,
    /// Experiments running at once.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
}

/// `--direction`: which way the primary metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Higher is better (also `max`).
    #[value(alias = "max")]
    Maximize,
    /// Lower is better (also `min`).
    #[value(alias = "min")]
    Minimize,
}

impl DirectionArg {
    /// The configuration's direction.
    pub fn direction(self) -> Direction {
        match self {
            DirectionArg::Maximize => Direction::Maximize,
            DirectionArg::Minimize => Direction::Minimize,
        }
    }
}

/// `--planner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlannerArg {
    /// The built-in search (default).
    Search,
    /// Run the baseline and seeds only.
    None,
    /// A coding-agent CLI.
    Agent,
}

impl PlannerArg {
    /// The configuration's planner kind.
    pub fn kind(self) -> PlannerKind {
        match self {
            PlannerArg::Search => PlannerKind::Search,
            PlannerArg::None => PlannerKind::None,
            PlannerArg::Agent => PlannerKind::Agent,
        }
    }
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// Detached local processes (default).
    Local,
    /// A Slurm cluster through sbatch.
    Slurm,
}

impl ExecutorArg {
    /// The configuration's executor kind.
    pub fn kind(self) -> ExecutorKind {
        match self {
            ExecutorArg::Local => ExecutorKind::Local,
            ExecutorArg::Slurm => ExecutorKind::Slurm,
        }
    }
}

/// A number of seconds > 0 (not NaN, not infinite).
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!(
            "expected a number of seconds > 0 (such as 600 or 0.5), found {text:?}"
        )),
    }
}

/// A finite number ≥ 0.
fn non_negative(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("expected a finite number ≥ 0, found {text:?}")),
    }
}
