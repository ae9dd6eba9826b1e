//! Slurm executor (to be implemented).
