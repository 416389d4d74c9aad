#!/usr/bin/env bash
# bench/gpu.py as run on a CUDA machine without network access, from the repository root:
#
#   OUT=/some/folder bash bench/gpu_run.sh
#
# .whl/ holds the wheels that machine lacks (diffusers; requests and its dependencies, which
# diffusers imports); they are installed into /tmp/site, ahead of the system packages. The run
# keeps to a 420 s budget counted from its start (bench/gpu.py writes $OUT/gpu.md after every
# row); `timeout` stops it at 470 s whatever happens, and the table is printed either way.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/sdenhance-gpu}"
mkdir -p "$OUT" /tmp/site
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl ||
    for w in .whl/*.whl; do python3 -m zipfile -e "$w" /tmp/site; done
fi
export PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || true
timeout -k 10 470 python3 bench/gpu.py --out "$OUT/gpu.md" --time-budget 420
rc=$?
echo "---- $OUT/gpu.md (exit status $rc) ----"
cat "$OUT/gpu.md" 2>/dev/null || echo "(no table was written)"
exit "$rc"
