#!/usr/bin/env bash
# Runs the whole agent-demo flow offline: creates the demo repository next to WORKDIR, writes
# the run's configuration (the stand-in agent as the coding agent), runs it with `supervisor`,
# and prints the best commit.
#
#   examples/agent-demo/run.sh WORKDIR      (supervisor and autoresearch-standin-agent on PATH,
#                                            or built in target/debug or target/release)
#
# NOTE: this needs the agent planner wired into the workflow (`planner.kind = "agent"`,
# `workspace`, the apply phase). Until that integration lands, `supervisor run` refuses the
# configuration; the building blocks it uses are tested in crates/adapters/tests/.
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
"$supervisor" run "$wd" --config "$config"
python3 - "$wd/state.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"baseline {s.get('baseline_node')}: {s.get('baseline_value')}")
print(f"best     {s.get('best_node')}: {s.get('best_value')}")
PY
echo "commits of every experiment: git -C $repo for-each-ref refs/autoresearch/"
