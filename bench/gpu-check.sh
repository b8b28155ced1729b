#!/usr/bin/env bash
# Every GPU check in one run, for a machine with an NVIDIA GPU (the device tool's):
# fast paths against the generic path, syncs per forward, the unit tests and the
# conformance corpus on CuPy, torch CUDA and JAX GPU, then bench/gpu_probe.py.
#
#   bash bench/gpu-check.sh            # writes logs and JSON under $OUT (default ./gpu-out)
#   STEPS="per_channel unit" bash bench/gpu-check.sh   # only these steps (names below)
#
# Needs numpy, pytest, hypothesis, torch (CUDA), cupy and jax (CUDA) installed;
# array-api-compat may come as a wheel in .whl/. That machine's torch need not be
# 2.13.0: tests comparing with live torch.ao then run against its version
# (ARRAYOBS_REFERENCE_TORCH), while conformance compares with the stored
# torch 2.13.0 numbers. Each step has its own time limit; a failing step does
# not stop the others. All steps take about ten minutes: more than one device
call allows, so split them with STEPS across two calls.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/arrayobs-site .whl/*.whl
    export PYTHONPATH=/tmp/arrayobs-site
fi
export PYTHONPATH="$PWD/src:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export ARRAYOBS_BACKENDS=${ARRAYOBS_BACKENDS:-cupy,torch:cuda,jax:gpu}
export ARRAYOBS_REFERENCE_TORCH="$(python3 -c 'import torch; print(torch.__version__.split("+")[0])')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import sys, numpy, torch, cupy, jax; print(sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__, "cupy", cupy.__version__, "jax", jax.__version__, jax.devices())' | tee -a "$OUT/gpu.txt"

STEPS=${STEPS:-all}
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    if [ "$STEPS" != all ] && [[ " $STEPS " != *" $name "* ]]; then
        return
    fi
    echo "== $name"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - t0)) s; $(tail -n 1 "$OUT/$name.log")"
}
PYTEST=(python3 -m pytest -q -p no:cacheprovider --no-header -rfE)
# XLA compiles float32 division on NVIDIA GPUs as div.full (within 2 ulp, not
# IEEE); this LLVM option restores div.rn. The division step counts both ways.
EXACT_DIV="--xla_backend_extra_options=-nvptx-prec-divf32=2"
step fastpaths 200 "${PYTEST[@]}" tests/test_fastpaths.py tests/test_host_reads.py
step probe 60 python3 bench/gpu_probe.py --out "$OUT/gpu_probe.json"
step division_exact 25 env XLA_FLAGS="$EXACT_DIV" python3 bench/gpu_probe.py --division-only
step corpus 90 env ARRAYOBS_BACKENDS=cupy,torch:cuda "${PYTEST[@]}" conformance/test_corpus.py -k "target_matches"
step corpus_jax 150 env XLA_FLAGS="$EXACT_DIV" ARRAYOBS_BACKENDS=jax:gpu "${PYTEST[@]}" conformance/test_corpus.py -k "target_matches"
step unit 150 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" -x tests/test_reference.py tests/test_special_values.py tests/test_observer_api.py tests/test_state_dict.py
# Per channel (not yet run on a GPU): CuPy takes the generic path there.
step per_channel 120 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" tests/test_per_channel.py
# Fake quantization and torchao's affine primitives (not yet run on a GPU). torch CUDA
# calls torch's own CUDA kernels, which differ from the CPU ones the tests compare with
# (NaN, infinities, the per-channel rounding: README "Quantize and fake-quantize"); the
# failures list exactly where.
step fake_quant 150 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" tests/test_fake_quantize.py tests/test_fake_quantize_fast.py
step fake_quant_corpus 120 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" conformance/test_corpus.py -k "fake_quant"
step affine 150 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" tests/test_affine.py
# HistogramObserver on torch CUDA, CuPy and JAX GPU (the generic histc and re-binning on
# the device; the search on the host after one read of the state), then its corpus section.
# test_functional_jit_transfers_nothing runs the jitted functional update under
# jax.transfer_guard("disallow"): on the GPU that also catches any read back (0 host reads).
step histogram 150 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" tests/test_histogram.py
step histogram_corpus 120 env XLA_FLAGS="$EXACT_DIV" "${PYTEST[@]}" conformance/test_corpus.py -k "histogram"
# Its speed: JAX (class and jitted core) on the GPU, torch.ao and the rest on the CPU.
step histogram_bench 120 env XLA_FLAGS="$EXACT_DIV" python3 -m bench.histogram --quick --out "$OUT/histogram"
