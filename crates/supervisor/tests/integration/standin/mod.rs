//! The stand-in coding agent (`autoresearch-standin-agent`, a real program of the adapters
//! crate) for the tests of `report --agent` and `ask`: found next to the `supervisor` binary,
//! built there with cargo when a narrower `cargo test -p` did not build it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The stand-in agent's path (built on first use if missing).
pub(crate) fn standin() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
        let path = supervisor.with_file_name("autoresearch-standin-agent");
        if !path.is_file() {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args([
                "build",
                "-p",
                "autoresearch-adapters",
                "--bin",
                "autoresearch-standin-agent",
            ]);
            if supervisor
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "release")
            {
                cmd.arg("--release");
            }
            let status = cmd
                .status()
                .expect("running cargo to build the stand-in agent");
            assert!(
                status.success() && path.is_file(),
                "could not build the stand-in agent at {}; run `cargo build -p \
                 autoresearch-adapters --bins` first",
                path.display()
            );
        }
        path.display().to_string()
    })
}
