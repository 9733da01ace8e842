#!/usr/bin/env bash
# CPU training throughput, qnn against PyTorch in the same invocation: ResNet-20, batch 128,
# fp32, forward + backward + SGD. Prints images/s, peak memory (max RSS from /usr/bin/time -v)
# and qnn's ratio to PyTorch's faster layout.
#   bench/cpu.sh [steps] [batch]     (needs `make` first, and Debian's python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}; batch=${2:-128}
threads=$(nproc)
run() {  # prints "<images/s> <peak MiB> <line>"
  local out; out=$( { /usr/bin/time -v "$@" 2>&1; } )
  local line rate rss
  line=$(echo "$out" | grep -E '^(qnn|torch) ')
  rate=$(echo "$line" | sed -E 's/.*: ([0-9.]+) images\/s.*/\1/')
  rss=$(echo "$out" | awk '/Maximum resident set size/ {printf "%.0f", $6/1024}')
  echo "$rate $rss $line"
}
q=$(OMP_NUM_THREADS=$threads OMP_PROC_BIND=true run ./build/bench/train_step --batch-size "$batch" --steps "$steps")
t1=$(OMP_NUM_THREADS=$threads run /usr/bin/python3 bench/train_step_torch.py --batch-size "$batch" --steps "$steps")
t2=$(OMP_NUM_THREADS=$threads run /usr/bin/python3 bench/train_step_torch.py --batch-size "$batch" --steps "$steps" --channels-last)
for r in "$q" "$t1" "$t2"; do set -- $r; printf '%-9s img/s  %6s MiB peak  | %s\n' "$1" "$2" "${*:3}"; done
best=$(printf '%s\n%s\n' "${t1%% *}" "${t2%% *}" | sort -g | tail -1)
awk -v q="${q%% *}" -v b="$best" 'BEGIN { printf "ratio qnn / best PyTorch layout: %.2fx\n", q / b }'
