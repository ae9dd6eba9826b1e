#!/usr/bin/env bash
# The project's test command: does all set-up on a fresh machine, then runs every test.
#
#   bash scripts/test.sh            # all tests, with a local single-node Slurm
#
# - starts a local Slurm (scripts/slurm-local.sh up: installs slurm-wlm + munge with apt-get if
#   missing; needs root), and stops it again at the end;
# - runs every test, the `#[ignore = "needs slurm"]` ones included (`--include-ignored`): they
#   fail when Slurm is not usable. Set AUTORESEARCH_SKIP_SLURM=1 to run without Slurm (then the
#   Slurm tests are left out: `cargo test` lists them as ignored; the browser tests still run).
# - installs with apt-get what is missing (needs root): git and python3 (the workspace tests
#   make real git worktrees; the agent-demo example, crates/supervisor/tests/integration/agent_demo.rs, runs
#   a Python program); Debian's chromium and chromium-driver, for the dashboard's browser tests
#   (`#[ignore = "needs chromium"]`, run here by --include-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || {
    echo "test.sh: ${missing[*]} missing and apt-get is not available: install them first" >&2
    exit 1
  }
  echo "test.sh: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

started_slurm=0
if [ "${AUTORESEARCH_SKIP_SLURM:-0}" != 1 ]; then
  if ! bash scripts/slurm-local.sh status >/dev/null 2>&1; then
    bash scripts/slurm-local.sh up
    started_slurm=1
  fi
fi
cleanup() {
  if [ "$started_slurm" = 1 ]; then
    bash scripts/slurm-local.sh down || true
  fi
}
trap cleanup EXIT

if [ "${AUTORESEARCH_SKIP_SLURM:-0}" = 1 ]; then
  cargo test --workspace --all-targets -- --test-threads=2
  # Without Slurm the browser tests still run (they are the other ignored kind).
  cargo test -p autoresearch-supervisor --test integration serve_browser:: -- --test-threads=2 --include-ignored
else
  cargo test --workspace --all-targets -- --test-threads=2 --include-ignored
fi
# `--all-targets` skips doctests: run them too.
cargo test --workspace --doc -- --test-threads=2
# The search benchmark's modes run too (a few seconds at this size; the figures in
# docs/performance.md come from full runs): in-process from the listed and a random baseline
# (with the pooled table), and real jobs through the engine.
bench_dir=$(mktemp -d)
cargo run -q -p autoresearch-adapters --example search_bench -- \
  --functions branin,mixed --seeds 2 --budget 12 --baseline 0,1
cargo run -q -p autoresearch-adapters --example search_bench -- engine \
  --functions branin --seeds 1 --budget 6 --slots 2 --dir "$bench_dir"
rm -rf "$bench_dir"
