#!/usr/bin/env bash
# Where qnn's captured ResNet-20 training step spends its GPU time: Nsight Compute (ncu) times
# every kernel of a few replayed steps, and this prints, per kernel name, the mean microseconds
# per step, the share of the step's kernel time and the launches per step, largest first, then
# the total. Only the timed steps are profiled: build/bench/train_step brackets them with
# cudaProfilerStart/Stop and ncu runs with --profile-from-start off, so the start-up and cuDNN's
# algorithm search (minutes under ncu) are not. Clocks are left to the GPU (--clock-control none)
# so that the times are the ones a training run sees.
#   bench/gpu_profile.sh [steps] [batch] [train_step flags...]   (default: 20 steps, batch 128, NCHW)
#   bench/gpu_profile.sh 20 128 --channels-last
#   RAW=file keeps ncu's CSV there (the table is parsed from it, by column name)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
batch=${2:-128}
shift 2 || shift $#
ncu=$(command -v ncu || echo "${CUDA_HOME:-/usr/local/cuda}/bin/ncu")
[ -x "$ncu" ] || { echo "bench/gpu_profile.sh: ncu (Nsight Compute) is not on the PATH nor in ${CUDA_HOME:-/usr/local/cuda}/bin"; exit 1; }
raw=${RAW:-$(mktemp)}
[ -n "${RAW:-}" ] || trap 'rm -f "$raw"' EXIT

echo "== where qnn's step goes (ncu, batch $batch${*:+, $*}, mean over $steps graph replays)"
if ! "$ncu" --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    ./build/bench/train_step --device cuda --batch-size "$batch" --steps "$steps" --warmup 5 "$@" > "$raw" 2>&1; then
  echo "bench/gpu_profile.sh: ncu failed (permission to read the GPU's counters?); its last lines:"
  tail -5 "$raw"
  exit 1
fi
# ncu's CSV: a header row naming the columns, then one row per kernel launch and metric. The
# columns are found by name, so that a change in their order or number does not shift them.
awk -v n="$steps" '
  function field(line, i,   f) { split(line, f, /","/); gsub(/^"|"$/, "", f[i]); return f[i] }
  !header && /"Kernel Name"/ {
    header = 1; count = split($0, names, /","/)
    for (i = 1; i <= count; ++i) { gsub(/^"|"$/, "", names[i]); column[names[i]] = i }
    next
  }
  header && /^"/ && field($0, column["Metric Name"]) == "gpu__time_duration.sum" {
    name = field($0, column["Kernel Name"]); ns = field($0, column["Metric Value"])
    gsub(/,/, "", ns); t[name] += ns; c[name]++; total += ns
  }
  END {
    if (!header || total == 0) { print "bench/gpu_profile.sh: no kernel times in ncu'"'"'s output"; exit 1 }
    for (k in t) printf "%9.1f us %5.1f%% %5.1f/step  %s\n", t[k] / 1000 / n, 100 * t[k] / total, c[k] / n, substr(k, 1, 100) | "sort -rn"
    close("sort -rn")
    printf "%9.1f us per step inside kernels (floor: about 12 TFLOP and 0.4 TB of activations per epoch)\n", total / 1000 / n
  }' "$raw"
