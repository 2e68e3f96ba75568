#!/usr/bin/env bash
# One prepared GPU check (issue 15), for a machine with a CUDA GPU and its own torch + triton (no network).
# Every step runs under its own time limit and writes its log under $OUT (default: ./gpu-out); the script goes on
# after a failed step and exits non-zero if any failed. About 8 minutes on one H200, most of it the build and the
# trainer benchmark.
#
#   steps: build    pip install --no-build-isolation --no-deps -e .  (against the machine's torch)
#          kernels  the Triton kernel tests and tests/test_gpu.py compiled for the GPU (TRITON_INTERPRET=0)
#          check    benchmarks/gpu_check.py: fused op vs eager and torch.compile, GB/s against the measured copy
#          trainer  benchmarks/bench_trainer.py on CUDA: SimLabel + Confidence epoch vs Skip epoch
#          compare  a short simlabel compare --device cuda on music_genre (skipped without the data)
#
# Data: the trainer and compare steps read ../shared/data/music_genre. On a machine that lacks it, copy it first
# into an ignored folder of the checkout (`mkdir -p .gpu-shared/data && cp -r ../shared/data/music_genre
# .gpu-shared/data/`, `echo /.gpu-shared/ >> .git/info/exclude`) and carry .gpu-shared: this script links it in.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 MAX_JOBS="${MAX_JOBS:-16}"
PY="${PYTHON:-python3}"
failed=()

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name: rc=$rc in $((SECONDS - start))s"
    tail -n 25 "$OUT/$name.log"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_run: no CUDA device here')" || exit 2
if [ -d .gpu-shared/data ] && [ ! -d ../shared/data ]; then
    mkdir -p ../shared && ln -s "$PWD/.gpu-shared/data" ../shared/data
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } \
    | tee "$OUT/machine.txt"

step build 240 "$PY" -m pip install -q --no-build-isolation --no-deps --no-index -e .
step kernels 150 "$PY" -m pytest -q -p no:cacheprovider --benchmark-disable \
    tests/test_triton_kernels.py tests/test_gpu.py
step check 120 "$PY" benchmarks/gpu_check.py --json "$OUT/gpu_check.json"
step trainer 150 "$PY" -m pytest -q -p no:cacheprovider benchmarks/bench_trainer.py --benchmark-only \
    --benchmark-json "$OUT/bench_trainer.json"
if [ -f ../shared/data/music_genre/music_genre_mturk.csv ]; then
    step compare 120 "$PY" -c "import sys; from simlabel_ext.cli import main; sys.exit(main())" compare --dataset music --data-dir ../shared/data/music_genre --device cuda --seeds 0 \
        --no-plots --no-progress --out "$OUT/compare"
fi

if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "all steps passed"
