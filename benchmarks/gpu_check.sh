#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU, CuPy and (optionally) CUDA PyTorch:
#   1. the whole test suite on the CUDA kernels:  python -m pytest -q --backend cupy tests/ (spread with pytest-xdist when present)
#   2. the CUDA-specific tests again, with their skip reasons shown (tests/test_cuda_*.py)
#   3. python -m benchmarks --suite models --suite kernels --frameworks deepbreadth,torch
#      --device cuda, with short time budgets
# all within GPU_CHECK_SECONDS (default 470 s, under 8 minutes). Results go to
# benchmarks/results/ with the card's name in the file names (latest_models_<card>.json,
# .md, .png; same for kernels), and the test logs beside them. If $OUT names a folder,
# everything written is copied there too.
#
#   bash benchmarks/gpu_check.sh
#
# Exit status: non-zero if a step failed or ran out of time (the later steps still run
# while time is left).
set -uo pipefail
cd "$(dirname "$0")/.."

TOTAL=${GPU_CHECK_SECONDS:-470}
START=$SECONDS
STATUS=0
RESULTS=benchmarks/results
mkdir -p "$RESULTS"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or failing); nothing to check" >&2
    exit 2
fi
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
TAG=$(echo "$CARD" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9\n' '-' | tr -s '-' | sed 's/^-//; s/-$//')
echo "gpu_check: $CARD (tag $TAG), $TOTAL s in all"
python -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" \
    || echo "gpu_check: cupy does not import: deepbreadth's cupy backend will be skipped" >&2
python -c "import torch; print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available())" 2>/dev/null \
    || echo "gpu_check: torch not installed: deepbreadth only" >&2

# Run from the checkout: if deepbreadth is not installed here, a link stands in for the
# installed subpackage deepbreadth.kernels (setup.py maps the top-level kernels/ there).
if ! python -c "import deepbreadth.kernels" 2>/dev/null; then
    ln -sfn ../kernels deepbreadth/kernels
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# The GPU machines have many cores: spread the tests over processes when pytest-xdist is there.
PARALLEL=""
if python -c "import xdist" 2>/dev/null; then
    PARALLEL="-n 8"
fi

# step NAME CAP_SECONDS COMMAND...: runs COMMAND with at most min(CAP, time left).
step() {
    local name=$1 cap=$2
    shift 2
    local left=$(( TOTAL - (SECONDS - START) ))
    local limit=$(( cap < left ? cap : left ))
    if (( limit < 10 )); then
        echo "gpu_check: no time left for $name" >&2
        STATUS=1
        return
    fi
    echo "=== $name (at most ${limit} s)"
    local began=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local code=$?
    if (( code == 124 || code == 137 )); then
        echo "gpu_check: $name ran out of time after $(( SECONDS - began )) s" >&2
        STATUS=1
    elif (( code != 0 )); then
        echo "gpu_check: $name failed (exit $code) after $(( SECONDS - began )) s" >&2
        STATUS=1
    else
        echo "=== $name passed in $(( SECONDS - began )) s"
    fi
}

# The tests first: they also fill CuPy's kernel cache, so the benchmark processes
# do not pay the NVRTC compilation again.
step "tests on the cupy backend" 270 \
    bash -c "set -o pipefail; python -m pytest -q $PARALLEL -rf --backend cupy tests/ 2>&1 | tee '$RESULTS/gpu_check_tests_$TAG.log'"
CUDA_TESTS=$(ls tests/test_cuda_*.py 2>/dev/null)
if [ -n "$CUDA_TESTS" ]; then
    step "CUDA-specific tests" 60 \
        bash -c "set -o pipefail; python -m pytest -q -rs --backend cupy $CUDA_TESTS 2>&1 | tee '$RESULTS/gpu_check_cuda_tests_$TAG.log'"
fi
# Short budgets: ~0.5 s of timed steps per workload and phase, one thread count
# (CPU threads only launch GPU work here).
step "benchmarks (models, kernels) on cuda" 240 \
    python -m benchmarks --suite models --suite kernels --frameworks deepbreadth,torch \
        --device cuda --threads 1 --budget 0.5 --min-reps 3 --max-reps 300 --warmup 3 \
        --timeout 120 --tag "$TAG"

if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$RESULTS"/*"$TAG"* "$OUT"/ 2>/dev/null || true
fi
echo "gpu_check: done in $(( SECONDS - START )) s, status $STATUS; results: $RESULTS/*$TAG*"
exit $STATUS
