#!/usr/bin/env bash
# CPU inference throughput of ResNet-20, int8 and fp32, qnn against PyTorch in one invocation:
# qnn's integer engine and float model (build/bench/int8_infer) and PyTorch's FX graph mode int8
# (onednn) and fp32 (bench/int8_infer_torch.py), at batch 1 and 128 on THREADS threads. The peers
# alternate ROUNDS times, each printing its best; the last lines give qnn int8's ratios.
#   bench/int8_cpu.sh [threads=2] [rounds=3] [model.safetensors]   (needs `make` first and
#   Debian's python3-torch; without a model qnn quantizes random weights to linear W8A8)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}; rounds=${2:-3}; model=${3:-}
export OMP_NUM_THREADS=$threads OMP_PROC_BIND=true
log=$(mktemp); trap 'rm -f "$log"' EXIT
for ((r = 1; r <= rounds; ++r)); do
  ./build/bench/int8_infer --rounds 1 ${model:+--model "$model"} | tee -a "$log"
  /usr/bin/python3 bench/int8_infer_torch.py --threads "$threads" --rounds 1 --torchscript | tee -a "$log"
done
echo "best of $rounds rounds, $threads threads:"
for b in 1 128; do
  best() { grep -E "^$1 batch $b:" "$log" | sed -E 's/.*: ([0-9.]+) images.*/\1/' | sort -g | tail -1; }
  qi=$(best "qnn int8"); qf=$(best "qnn fp32"); ti=$(best "torch int8 fx"); tj=$(best "torch int8 torchscript")
  tf=$(best "torch fp32"); tc=$(best "torch fp32 channels-last")
  printf 'batch %4s: qnn int8 %6s  qnn fp32 %6s  torch int8 fx %6s  torch int8 ts %6s  torch fp32 %6s / %6s (channels-last)\n' \
    "$b" "$qi" "$qf" "$ti" "$tj" "$tf" "$tc"
  awk -v qi="$qi" -v qf="$qf" -v ti="$ti" -v tj="$tj" -v b="$b" \
    'BEGIN { printf "batch %4s: qnn int8 / qnn fp32 %.2fx, / torch int8 fx %.2fx, / torch int8 torchscript %.2fx\n", b, qi / qf, qi / ti, qi / tj }'
done
