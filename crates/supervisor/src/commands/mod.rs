//! The subcommands of `supervisor`, each in its own module. Functions return values or
//! messages; printing and exit codes are decided in `main.rs`.

pub mod agent_call;
pub mod ask;
pub mod export;
pub mod final_report;
pub mod launch;
pub mod list;
pub mod next_step;
pub mod queue;
pub mod queue_add;
pub mod reanalyze;
pub mod repair;
pub mod retry;
pub mod run;
pub mod run_brief;
pub mod status;
pub mod stop;
pub mod table;
pub mod tree;

use std::path::Path;

use anyhow::{Result, bail};

/// Fails with a clear message unless `workdir` looks like an autoresearch workdir.
pub fn require_workdir(workdir: &Path) -> Result<()> {
    if !workdir.exists() {
        bail!(
            "{} does not exist: start a run there first (`supervisor run {} --config FILE`)",
            workdir.display(),
            workdir.display()
        );
    }
    if !workdir.join("config.json").is_file() && !workdir.join("engine").is_dir() {
        bail!(
            "{} is not an autoresearch workdir (no config.json or engine/ inside)",
            workdir.display()
        );
    }
    Ok(())
}
