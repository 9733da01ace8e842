#!/usr/bin/env bash
# GPU training throughput, qnn against PyTorch in the same invocation: ResNet-20, fp32 (TF32
# convolutions allowed, PyTorch's default), forward + backward + SGD with momentum, synthetic
# inputs resident on the GPU. For each batch size: qnn with its CUDA graph (NCHW, channels-last
# with KRSC filters, channels-last with the KCRS weights themselves: which cuDNN runs faster) and
# eagerly; PyTorch eager (NCHW) and with the whole step as one CUDA graph (NCHW and
# channels-last), with cudnn.benchmark on, as qnn times cuDNN's algorithms; then images/s,
# seconds per 50k-image epoch, peak GPU memory of the timed steps and the ratio of qnn's best to
# PyTorch's best. Then bf16 mixed precision: qnn's graph with --precision bf16 (bf16 activations,
# both layouts) against PyTorch's bf16 autocast graph (channels-last), and its ratio. With
# PROFILE=1 it also prints the time per kernel of 20 replayed qnn steps in each layout
# (bench/gpu_profile.sh, Nsight Compute). Everything it prints is also appended to the results
# log, bench/results-gpu.md, under the date, commit and GPU, so that each GPU run starts from
# what the last one saw (RESULTS_LOG=file writes elsewhere, RESULTS_LOG= writes none).
#   bench/gpu.sh [steps] [batch sizes...]     (after `make -j16` on a machine with a GPU)
#   PYTHON=/opt/torch/.venv/bin/python3 (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-200}; shift || true
batches=${*:-128 512}
py=${PYTHON:-python3}
rate() { sed -nE 's/.*: ([0-9.]+) images\/s.*/\1/p'; }
# One configuration: its result line, or a line saying it failed and how, so that one failing
# configuration does not cost the others' figures.
one() {
  local out
  if out=$("$@" 2>&1); then printf '%s\n' "$out" | tail -1
  else echo "FAILED (exit $?): $* -- $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"; fi
}
# q / b as "N.NNx", or "n/a" when either side has no figure.
ratio() { awk -v q="$2" -v b="$3" -v what="$1" 'BEGIN { if (q > 0 && b > 0) printf "ratio %s: %.2fx\n", what, q / b;
  else printf "ratio %s: n/a (a side failed)\n", what }'; }
probe=$(./build/bench/train_step --device cuda --steps 1 --warmup 0 2>&1 || true)
case "$probe" in
  *skipped*) echo "bench/gpu.sh: $probe"; exit 0 ;;
  *images/s*) ;;
  *) echo "bench/gpu.sh: the probe step failed: $probe"; exit 1 ;;
esac
# The figures, printed.
measure() {
  local qnn=./build/bench/train_step torch="$py bench/train_step_torch.py"
  for b in $batches; do
    echo "== ResNet-20, batch $b, $steps timed steps"
    local common="--device cuda --batch-size $b --steps $steps"
    q=$(one $qnn $common --warmup 5)
    qc=$(one $qnn $common --warmup 5 --channels-last)
    qk=$(one $qnn $common --warmup 5 --channels-last --kcrs-filters)
    qe=$(one $qnn $common --warmup 5 --no-graph)
    te=$(one $torch $common --warmup 10)
    tg=$(one $torch $common --warmup 10 --graph)
    tc=$(one $torch $common --warmup 10 --graph --channels-last)
    printf '%s\n' "$q" "$qc" "$qk" "$qe" "$te" "$tg" "$tc"
    ratio "qnn best graph / best PyTorch" "$(printf '%s\n' "$q" "$qc" "$qk" | rate | sort -g | tail -1)" \
      "$(printf '%s\n' "$te" "$tg" "$tc" | rate | sort -g | tail -1)"
    echo "== ResNet-20, batch $b, $steps timed steps, bf16 mixed precision"
    q16=$(one $qnn $common --warmup 5 --precision bf16)
    qc16=$(one $qnn $common --warmup 5 --precision bf16 --channels-last)
    tc16=$(one $torch $common --warmup 10 --graph --channels-last --bf16)
    printf '%s\n' "$q16" "$qc16" "$tc16"
    ratio "qnn best bf16 graph / PyTorch bf16 channels-last graph" \
      "$(printf '%s\n' "$q16" "$qc16" | rate | sort -g | tail -1)" "$(printf '%s\n' "$tc16" | rate)"
  done
  if [ "${PROFILE:-0}" = 1 ]; then
    # 20 replays of the captured step in each layout, timed per kernel (bench/gpu_profile.sh).
    for layout in "" --channels-last; do
      bench/gpu_profile.sh 20 128 $layout || true
    done
  fi
}

report=$(mktemp)
trap 'rm -f "$report"' EXIT
measure | tee "$report"
log=${RESULTS_LOG-bench/results-gpu.md}
if [ -n "$log" ]; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)
  if commit=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD || commit="$commit, with uncommitted changes"
  else
    commit="unknown (no git)"
  fi
  { printf '\n## %s, commit %s\n\n%s; `bench/gpu.sh %s %s`%s\n\n```\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit" \
      "${gpu:-GPU unknown (no nvidia-smi)}" "$steps" "$batches" "$([ "${PROFILE:-0}" = 1 ] && echo ' with PROFILE=1')"
    cat "$report"
    printf '```\n'; } >> "$log"
  echo "bench/gpu.sh: appended to $log"
fi
