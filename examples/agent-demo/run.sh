#!/usr/bin/env bash
# Runs the whole agent-demo flow offline: creates the demo repository next to WORKDIR
# (WORKDIR.repo), writes the run's configuration (WORKDIR.config.json, the stand-in agent as the
# coding agent), runs it with `supervisor run`, and prints the baseline, the best experiment and
# its commit. Every experiment's code is a commit under refs/autoresearch/<run>/ of the demo
# repository. Running it again on the same WORKDIR resumes (or reports) that run.
#
#   examples/agent-demo/run.sh WORKDIR      (supervisor and autoresearch-standin-agent on PATH,
#                                            or built in target/debug or target/release)
#
# Needs git, python3 and sh. Tested in CI (crates/supervisor/tests/integration/agent_demo.rs).
set -euo pipefail
wd=${1:?usage: run.sh WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
find_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  for p in "$root/target/release/$1" "$root/target/debug/$1"; do
    if [ -x "$p" ]; then echo "$p"; return; fi
  done
  echo "run.sh: $1 not found: put it on PATH or build it (cargo build --workspace)" >&2
  exit 1
}
supervisor=$(find_bin supervisor)
agent=$(find_bin autoresearch-standin-agent)
mkdir -p "$wd"
wd=$(cd "$wd" && pwd)
repo="$wd.repo"
bash "$here/make-repo.sh" "$repo" >/dev/null
config="$wd.config.json"
python3 - "$here/config.example.json" "$config" "$agent" "$here/ideas.json" "$repo" <<'PY'
import json, sys
src, dst, agent, ideas, repo = sys.argv[1:]
c = json.load(open(src))
c["planner"]["agent"]["command"] = [agent, "--ideas", ideas]
c["workspace"]["repo"] = repo
json.dump(c, open(dst, "w"), indent=2)
PY
if [ -f "$wd/config.json" ]; then
  "$supervisor" run "$wd"
else
  "$supervisor" run "$wd" --config "$config"
fi
"$supervisor" report "$wd" >/dev/null
run=$(cat "$wd/engine/run_id")
best=$(python3 - "$wd/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"baseline {s.get('baseline_node')}: seconds = {s.get('baseline_value')}", file=sys.stderr)
print(f"best     {s.get('best_node')}: seconds = {s.get('best_value')}", file=sys.stderr)
print(s.get('best_node') or "")
PY
)
if [ -n "$best" ]; then
  echo "the best commit (refs/autoresearch/$run/$best):"
  git -C "$repo" log -1 --stat --format='  %h %s' "refs/autoresearch/$run/$best"
fi
echo "every experiment's commit: git -C $repo for-each-ref refs/autoresearch/$run/"
echo "report: $wd/report.md"
