#!/usr/bin/env bash
# Creates the agent-demo git repository at DIR from app/ (one commit, fixed identity, so it
# works without any git configuration).
#
#   bash make-repo.sh DIR
set -euo pipefail
dir=${1:?usage: make-repo.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
if [ -e "$dir/.git" ]; then
  echo "make-repo.sh: $dir is already a git repository; leaving it as it is" >&2
  exit 0
fi
mkdir -p "$dir"
cp "$here/app/slow.py" "$here/app/run_bench.sh" "$dir/"
printf '__pycache__/\n' > "$dir/.gitignore"
cd "$dir"
export GIT_AUTHOR_NAME=agent-demo GIT_AUTHOR_EMAIL=agent-demo@localhost
export GIT_COMMITTER_NAME=agent-demo GIT_COMMITTER_EMAIL=agent-demo@localhost
git init -q -b main .
git add -A
git -c commit.gpgsign=false commit -q -m "agent-demo: the slow program and its evaluator"
git rev-parse HEAD
