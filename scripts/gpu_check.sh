#!/usr/bin/env bash
# The CUDA backend's whole check on a machine with a GPU, as one run whose stages share a time
# budget, with every log kept:
#   tests        every GPU test case in a process of its own (a CUDA fault is sticky: it would fail
#                every later case of its process), JOBS at a time, each required to run and pass
#                exactly one case; a failing case is run again with CUDA_LAUNCH_BLOCKING=1, which
#                names the kernel that faulted
#   bench        bench/gpu.sh: qnn against PyTorch in one invocation, appended to bench/results-gpu.md
#   train        30 epochs of ResNet-20 on CIFAR-10 (the README's recipe), seconds per epoch
#   hooks        each gradient quantizer's cost inside the captured ResNet-20 step
#   train-quant  the 30 epochs with gradients quantized (exponential, bucket 51200)
#   memcheck     compute-sanitizer's memcheck over a few ./apps/cifar steps, captured and eager
#   profile      the time per kernel of the replayed step, NCHW and channels-last
#                (bench/gpu_profile.sh; ncu's CSV kept beside the tables)
# and, only when named, the 30 epochs in the fastest configurations:
#   train-cl     channels-last activations (--channels-last)
#   train-bf16   channels-last in bf16 (--channels-last --precision bf16)
#
#   scripts/gpu_check.sh [STAGE...]           (default: the first seven stages, in the order above)
#
# Build first (`make -j all build/qnn_tests`, with CUDNN_INCLUDE and CUDNN_LIB where cuDNN is not
# in the CUDA toolkit). Environment: OUT, the logs' folder (default /tmp/qnn-gpu-check); BUDGET,
# seconds for the whole run: each stage's time limit is cut to what is left, and a stage that
# would have under 20 s is skipped (default: no budget); CIFAR10_DIR, the CIFAR-10 binary folder
# (memcheck and the train stages skip without it); JOBS, test processes at once (default 8);
# STEPS, bench/gpu.sh's timed steps (default 200); PYTHON, the interpreter with PyTorch.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/qnn-gpu-check} JOBS=${JOBS:-8}
mkdir -p "$OUT"
start=$SECONDS

# The time limit of a stage that wants `want` seconds: cut to what the budget has left.
limit() {
  local want=$1 left
  [ -z "${BUDGET:-}" ] && { echo "$want"; return; }
  left=$((BUDGET - (SECONDS - start)))
  echo $((left < want ? left : want))
}
# stage NAME WANT: prints the stage's heading and returns non-zero when it has under 20 s.
stage() {
  echo "== $1 ($((SECONDS - start)) s in)"
  [ "$(limit "$2")" -ge 20 ] || { echo "$1: skipped, the budget is spent"; return 1; }
}
need_cifar() {
  [ -n "${CIFAR10_DIR:-}" ] && [ -d "$CIFAR10_DIR" ] && return 0
  echo "$1: skipped: set CIFAR10_DIR to a CIFAR-10 binary folder"
  return 1
}

run_tests() {
  stage tests 600 || return
  local names
  source scripts/test_case_filters.sh
  mapfile -t names < <(test_case_filters ./build/qnn_tests -ts=gpu)
  [ "${#names[@]}" -gt 0 ] || { echo "tests: ./build/qnn_tests lists no GPU test case (is it built?)"; return; }
  mkdir -p "$OUT/tests"
  local each
  each=$(limit 300)
  export OUT each
  for i in "${!names[@]}"; do printf '%s\t%s\n' "$i" "${names[i]}"; done |
    xargs -r -d '\n' -P "$JOBS" -n 1 bash -c '
      i=${1%%$'"'"'\t'"'"'*} name=${1#*$'"'"'\t'"'"'}
      if timeout "$each" ./build/qnn_tests -ts=gpu "-tc=$name" > "$OUT/tests/$i.log" 2>&1 &&
        grep -Eq "test cases: +1 \| +1 passed" "$OUT/tests/$i.log"; then
        echo "ok ${name//\\,/,}"
      else
        CUDA_LAUNCH_BLOCKING=1 timeout "$each" ./build/qnn_tests -ts=gpu "-tc=$name" > "$OUT/tests/$i.blocking.log" 2>&1
        echo "FAILED ${name//\\,/,} (logs: $OUT/tests/$i.log, $i.blocking.log)"
      fi' _ > "$OUT/tests.log"
  grep FAILED "$OUT/tests.log"
  echo "GPU tests: $(grep -c '^ok ' "$OUT/tests.log") of ${#names[@]} passed, each in its own process"
}

run_memcheck() {
  stage memcheck 600 && need_cifar memcheck || return
  local small="--device cuda --deterministic --epochs 1 --limit-train 64 --limit-test 32 --batch-size 32"
  for mode in "" --no-graph; do
    timeout "$(limit 300)" compute-sanitizer --tool memcheck --error-exitcode 9 \
      ./apps/cifar $small $mode > "$OUT/memcheck${mode}.log" 2>&1
    echo "memcheck ${mode:-captured}: exit status $? ($(grep -m1 'ERROR SUMMARY' "$OUT/memcheck${mode}.log"))"
  done
}

run_bench() {
  stage bench 600 || return
  timeout "$(limit 600)" bench/gpu.sh "${STEPS:-200}" 128 512 2>&1 | tee "$OUT/bench.log"
  echo "bench: exit status ${PIPESTATUS[0]}"
}

run_profile() {
  stage profile 300 || return
  for layout in "" --channels-last; do
    RAW="$OUT/profile-$([ -n "$layout" ] && echo channels-last || echo nchw).csv" timeout "$(limit 150)" bench/gpu_profile.sh 20 128 $layout 2>&1 |
      tee -a "$OUT/profile.log"
    echo "profile ${layout:-NCHW}: exit status ${PIPESTATUS[0]}"
  done
}

run_hooks() {
  stage hooks 300 || return
  timeout "$(limit 300)" ./build/bench/train_step --device cuda --steps 200 \
    --quant standard,exponential,hadamard,smart,qsgd,qinf,nuq,trn,alq,alq_nb,amq,amq_nb 2>&1 | tee "$OUT/hooks.log"
  echo "hooks: exit status ${PIPESTATUS[0]}"
}

# train NAME [FLAGS...]: the 30-epoch recipe with FLAGS; the last epochs' lines.
train() {
  local name=$1
  shift
  stage "$name" 900 && need_cifar "$name" || return
  timeout "$(limit 900)" ./apps/cifar --device cuda --data "$CIFAR10_DIR" --epochs 30 --schedule onecycle --lr 0.1 \
    --wd 1e-4 --batch-size 128 --log "$OUT/$name.csv" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit status $?"
  tail -n 3 "$OUT/$name.log"
}

{ nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
  "${CXX:-g++}" --version | head -1
  "$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")" --version | tail -1
  git log -1 --format='commit %h %s' 2>/dev/null; date -u; } 2>&1 | tee "$OUT/env.log"
stages=${*:-tests bench train hooks train-quant memcheck profile}
for s in $stages; do
  case "$s" in
    tests) run_tests ;;
    memcheck) run_memcheck ;;
    bench) run_bench ;;
    hooks) run_hooks ;;
    train) train train ;;
    train-quant) train train-quant --quant exponential --bucket-size 51200 ;;
    profile) run_profile ;;
    train-cl) train train-cl --channels-last ;;
    train-bf16) train train-bf16 --channels-last --precision bf16 ;;
    *) echo "unknown stage '$s' (stages: tests bench train hooks train-quant memcheck profile train-cl train-bf16)"; exit 2 ;;
  esac
done
echo "== done after $((SECONDS - start)) s; logs in $OUT"
