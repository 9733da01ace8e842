#!/usr/bin/env bash
# CPU training throughput, qnn against PyTorch in the same invocation: ResNet-20, batch 128,
# forward + backward + SGD with momentum on synthetic images, every core's thread.
#
#   bench/cpu.sh [rounds] [steps] [batch] [precision]    (needs `make` first, and Debian's python3-torch)
#
# precision fp32 (the default) or bf16: qnn's --precision bf16 (bf16 convolution operands, float
# everything else) against PyTorch's forward under torch.autocast('cpu', dtype=torch.bfloat16).
#
# Each round runs the three configurations one after another, in an order that rotates from round
# to round (qnn NCHW, PyTorch NCHW, PyTorch channels-last), so a slow minute of the machine does
# not fall on one of them alone; every run first takes 5 untimed steps (oneDNN picks and caches
# its kernels in them). Printed per configuration: the best and median images/s over the rounds
# and the largest peak resident memory (/usr/bin/time -v). A benchmark shares the cores with
# whatever else runs, and PyTorch's OpenMP threads suffer far more than qnn's from that, so before
# every run the script samples /proc/stat for one second: when other processes used more than 10%
# of the CPU, the machine is busy and the ratio is printed with that warning instead of bare.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; steps=${2:-30}; batch=${3:-128}; precision=${4:-fp32}
threads=$(nproc)
case "$precision" in
  fp32) qnn_flag=""; torch_flag=""; suffix="" ;;
  bf16) qnn_flag=" --precision bf16"; torch_flag=" --bf16"; suffix=" bf16" ;;
  *) echo "bench/cpu.sh: precision must be fp32 or bf16, got '$precision'" >&2; exit 2 ;;
esac
names=("qnn NCHW$suffix" "PyTorch NCHW$suffix" "PyTorch channels-last$suffix")
commands=("./build/bench/train_step --batch-size $batch --steps $steps --warmup 5$qnn_flag"
          "/usr/bin/python3 bench/train_step_torch.py --batch-size $batch --steps $steps --warmup 5$torch_flag"
          "/usr/bin/python3 bench/train_step_torch.py --batch-size $batch --steps $steps --warmup 5 --channels-last$torch_flag")
[ -x build/bench/train_step ] || { echo "bench/cpu.sh: build/bench/train_step not found; run make first" >&2; exit 1; }
/usr/bin/python3 -c 'import torch' 2>/dev/null ||
  { echo "bench/cpu.sh: PyTorch not found for /usr/bin/python3 (apt-get install python3-torch)" >&2; exit 1; }

# Percent of all cores' time spent busy during one second (this script sleeps meanwhile).
busy_percent() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local total=0 idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

results=$(mktemp); trap 'rm -f "$results"' EXIT
max_busy=0
echo "bench/cpu.sh: $rounds rounds of $steps steps, batch $batch, $precision, $threads threads; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < 3; k++)); do
    c=$(( (r + k) % 3 ))
    busy=$(busy_percent); (( busy > max_busy )) && max_busy=$busy
    out=$( { OMP_NUM_THREADS=$threads OMP_PROC_BIND=true /usr/bin/time -v ${commands[$c]} 2>&1; } )
    rate=$(echo "$out" | grep -E '^(qnn|torch) ' | sed -E 's/.*: ([0-9.]+) images\/s.*/\1/')
    rss=$(echo "$out" | awk '/Maximum resident set size/ {printf "%.0f", $6/1024}')
    [ -n "$rate" ] || { echo "bench/cpu.sh: no images/s from '${commands[$c]}':"; echo "$out"; exit 1; }
    printf 'round %d  %-27s %8.1f images/s  %5s MiB peak  (CPU busy before it: %d%%)\n' $((r + 1)) "${names[$c]}" "$rate" "$rss" "$busy"
    echo "$c $rate $rss" >> "$results"
  done
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-27s %10s %10s %10s\n' configuration "best" "median" "peak MiB"
for c in 0 1 2; do
  rss=$(awk -v c=$c '$1 == c && $3 > m { m = $3 } END { print m }' "$results")
  awk -v c=$c '$1 == c { print $2 }' "$results" | sort -g |
    awk -v name="${names[$c]}" -v rss="$rss" '{ rate[++n] = $1 }
      END { med = (n % 2) ? rate[(n + 1) / 2] : (rate[n / 2] + rate[n / 2 + 1]) / 2;
            printf "%-27s %10.1f %10.1f %10s\n", name, rate[n], med, rss }'
done
ratio=$(awk '{ if ($2 > best[$1]) best[$1] = $2 }
  END { t = best[1] > best[2] ? best[1] : best[2]; printf "%.2f", best[0] / t }' "$results")
if (( max_busy > 10 )); then
  echo "ratio qnn / best PyTorch layout (best runs): ${ratio}x -- NOT a quiet-machine figure: other processes used up to ${max_busy}% of the CPU before a run"
else
  echo "ratio qnn / best PyTorch layout (best runs): ${ratio}x (quiet: other processes used at most ${max_busy}% of the CPU before each run)"
fi
