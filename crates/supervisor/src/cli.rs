//! Command-line definition (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// List, bump or drop queued experiments (live or offline).
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
    /// Write report.md (best configuration, how to reproduce it, path from the baseline).
    Report {
        /// The workdir.
        workdir: PathBuf,
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
    #[arg(long, default_value_t = 10.0)]
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
    /// maximize or minimize.
    #[arg(long)]
    pub direction: Option<String>,
    /// Smallest relative improvement that counts (default 0.01).
    #[arg(long)]
    pub min_improvement: Option<f64>,
    /// A parameter: `name=1,2,4,8` (choices) or `name=16..4096[:log][:int]` (range). Repeatable.
    #[arg(long = "param", value_name = "NAME=SPEC")]
    pub params: Vec<String>,
    /// Baseline value of a parameter, `name=value` (default: first choice or minimum). Repeatable.
    #[arg(long = "baseline", value_name = "NAME=VALUE")]
    pub baseline: Vec<String>,
    /// Working directory of the job (default: the current directory).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Job time limit in seconds.
    #[arg(long)]
    pub timeout_s: Option<f64>,
    /// Planner: search, none.
    #[arg(long)]
    pub planner: Option<String>,
    /// Executor: local, slurm.
    #[arg(long)]
    pub executor: Option<String>,
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
    /// Total wall time in seconds (over all resumes).
    #[arg(long)]
    pub time_budget_s: Option<f64>,
    /// Experiments running at once.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
}
