#!/usr/bin/env bash
# CPU training and inference steps of torchvision's ImageNet ResNets, qnn against PyTorch in the
# same invocation. For each architecture and mode it runs bench/imagenet_step.cpp, then
# bench/imagenet_step_torch.py in NCHW, then in channels-last, one after the other, and prints
# each one's images/s, its process's maximum RSS (/usr/bin/time -v) and its line, then qnn's
# ratio to the faster PyTorch layout: of the mean images/s, and of the fastest single steps
# (less disturbed by other work on the machine). The load average is printed before and after:
# on a busy machine the figures say little.
#   bench/imagenet_cpu.sh          (needs `make` first, and Debian's python3-torch and
#                                   python3-torchvision for /usr/bin/python3)
# Settings, as environment variables (defaults in brackets):
#   ARCHS ["resnet18 resnet50"]  MODES ["train infer"]  IMAGE [224]
#   TRAIN_BATCH [16]  TRAIN_STEPS [5]  TRAIN_WARMUP [2]
#   INFER_BATCH [32]  INFER_STEPS [10]  INFER_WARMUP [2]
#   THREADS [every core]  ROUNDS [1]: runs of the three, in turn; each one's best run is shown
#   PRECISION [fp32]: bf16 runs qnn with --precision bf16 and PyTorch under bf16 autocast
# e.g. ARCHS=resnet18 MODES=train TRAIN_STEPS=20 bench/imagenet_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
archs=${ARCHS:-resnet18 resnet50}; modes=${MODES:-train infer}; image=${IMAGE:-224}
threads=${THREADS:-$(nproc)}; rounds=${ROUNDS:-1}; precision=${PRECISION:-fp32}
case "$precision" in
  fp32) qnn_precision=(); torch_precision=() ;;
  bf16) qnn_precision=(--precision bf16); torch_precision=(--bf16) ;;
  *) echo "imagenet_cpu.sh: PRECISION must be fp32 or bf16, got '$precision'" >&2; exit 2 ;;
esac
[ -x build/bench/imagenet_step ] || { echo "imagenet_cpu.sh: build/bench/imagenet_step is missing; run make first" >&2; exit 1; }

run() {  # prints "<images/s> <max RSS MiB> <line>"
  local out; out=$( { /usr/bin/time -v "$@" 2>&1; } ) || { echo "imagenet_cpu.sh: failed: $*" >&2; echo "$out" >&2; exit 1; }
  local line rate rss
  line=$(echo "$out" | grep -E '^(qnn|torch) ')
  rate=$(echo "$line" | sed -E 's/.*: ([0-9.]+) images\/s.*/\1/')
  rss=$(echo "$out" | awk '/Maximum resident set size/ {printf "%.0f", $6/1024}')
  echo "$rate $rss $line"
}

faster() { if [ -z "$1" ] || awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { exit !(b > a) }'; then echo "$2"; else echo "$1"; fi; }
fastest() { echo "$1" | sed -E 's/.*fastest ([0-9.]+) ms.*/\1/'; }  # a run's fastest step, ms

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $threads threads, $(nproc) cores"
for arch in $archs; do
  for mode in $modes; do
    if [ "$mode" = train ]; then
      batch=${TRAIN_BATCH:-16}; steps=${TRAIN_STEPS:-5}; warmup=${TRAIN_WARMUP:-2}
    else
      batch=${INFER_BATCH:-32}; steps=${INFER_STEPS:-10}; warmup=${INFER_WARMUP:-2}
    fi
    args=(--arch "$arch" --mode "$mode" --batch-size "$batch" --image-size "$image" --steps "$steps" --warmup "$warmup")
    q=; t1=; t2=
    for ((round = 1; round <= rounds; ++round)); do  # each peer's run with the most images/s is kept
      q=$(faster "$q" "$(OMP_NUM_THREADS=$threads OMP_PROC_BIND=true run ./build/bench/imagenet_step "${args[@]}" ${qnn_precision[@]+"${qnn_precision[@]}"})")
      t1=$(faster "$t1" "$(OMP_NUM_THREADS=$threads run /usr/bin/python3 bench/imagenet_step_torch.py "${args[@]}" ${torch_precision[@]+"${torch_precision[@]}"})")
      t2=$(faster "$t2" "$(OMP_NUM_THREADS=$threads run /usr/bin/python3 bench/imagenet_step_torch.py "${args[@]}" --channels-last ${torch_precision[@]+"${torch_precision[@]}"})")
    done
    echo "== $arch $mode $precision, batch $batch, ${image}x${image}, $steps steps after $warmup warm-up, best of $rounds round(s)"
    for r in "$q" "$t1" "$t2"; do set -- $r; printf '%8s img/s  %6s MiB max RSS  | %s\n' "$1" "$2" "${*:3}"; done
    best=$(printf '%s\n%s\n' "${t1%% *}" "${t2%% *}" | sort -g | tail -1)
    fast=$(printf '%s\n%s\n' "$(fastest "$t1")" "$(fastest "$t2")" | sort -g | head -1)
    awk -v q="${q%% *}" -v b="$best" -v qf="$(fastest "$q")" -v bf="$fast" -v a="$arch" -v m="$mode" \
      'BEGIN { printf "ratio %s %s qnn / best PyTorch layout: %.2fx (fastest steps: %.2fx)\n", a, m, q / b, bf / qf }'
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
