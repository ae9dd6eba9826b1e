//! `autoresearch-adapters`: the experiment workflow that plugs into the engine, and the
//! capabilities it uses — executors (local, Slurm), planners (built-in search, none),
//! metrics parsing, configuration, and the workdir's node files.

pub mod agent;
pub mod config;
pub mod executor;
pub mod metrics;
pub mod model;
pub mod noise;
pub mod planner;
pub mod reanalyze;
pub mod repair;
pub mod session;
pub mod workdir;
pub mod workflow;
pub mod workspace;
