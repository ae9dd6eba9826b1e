#!/bin/sh
# The evaluator: runs the program and checks its answer. Protected: the agent may not change
# it (workspace.protected), so a "speed-up" cannot come from weakening the check.
set -eu
out=$(python3 slow.py)
printf '%s\n' "$out"
case "$out" in
  *"checksum=999989"*) ;;
  *) echo "wrong checksum: the change broke the program" >&2; exit 1 ;;
esac
