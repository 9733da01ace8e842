#!/bin/bash
# Every GPU path of the apps, run for a few steps on the CUDA emulator (docs/cuda-emulator.md):
# the twelve gradient quantizers, QAT and its export, --no-cudnn, --no-graph, bf16,
# channels-last, emulated workers, checkpoints and resume, --evaluate, the variance measure, and
# ./apps/imagenet. The emulator closes device memory to host code and watches every access of the
# kernels, so a path that reads a CUDA tensor from the CPU, hands a kernel a host pointer or runs
# a kernel with a race between its threads stops here (emu/race_check.h). Each run must exit 0
# and reach its epoch line.
#
#   scripts/emulate_apps.sh                   # CIFAR-10 from $CIFAR10_DIR, ImageNet layout from $HYMENOPTERA_DIR
#   ONLY=quant scripts/emulate_apps.sh        # the runs whose name holds "quant"
#
# It links ./apps with the emulator (build-emulate/); the next plain `make` links them back.
# About 10 minutes on 2 cores.
set -u
cd "$(dirname "$0")/.."
: "${CIFAR10_DIR:?set CIFAR10_DIR to a CIFAR-10 binary folder (scripts/fetch_cifar10.sh writes one)}"
make --no-print-directory -j"$(nproc)" EMU=1 CUDA=0 MPI=0 BUILD=build-emulate apps/cifar apps/imagenet > /dev/null || exit 1

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0 ran=0
small=(--device cuda --epochs 1 --limit-train 96 --limit-test 32 --batch-size 32)

# run NAME EXPECTED COMMAND...: runs COMMAND, which must exit 0 and print a line holding EXPECTED.
run() {
  local name=$1 expected=$2
  shift 2
  [[ -n "${ONLY:-}" && "$name" != *"$ONLY"* ]] && return
  ran=$((ran + 1))
  local start=$SECONDS
  if "$@" > "$out/$name.log" 2>&1 && grep -q -- "$expected" "$out/$name.log"; then
    printf '%-28s ok   %4d s\n' "$name" $((SECONDS - start))
  else
    failed=$((failed + 1))
    printf '%-28s FAILED (exit status or no "%s" line): %s\n' "$name" "$expected" "$*"
    tail -n 15 "$out/$name.log" | sed 's/^/    /'
  fi
}

for q in standard exponential hadamard smart qsgd qinf nuq trn alq alq_nb amq amq_nb; do
  run "quant-$q" "epoch 1/1" ./apps/cifar "${small[@]}" --quant "$q" --bucket-size 4096
done
run quant-per-layer "epoch 1/1" ./apps/cifar "${small[@]}" --quant exponential --quant-per-layer
run workers "epoch 1/1" ./apps/cifar "${small[@]}" --quant standard --workers 2
run no-graph "epoch 1/1" ./apps/cifar "${small[@]}" --no-graph
run no-cudnn "epoch 1/1" ./apps/cifar "${small[@]}" --no-cudnn
run bf16 "epoch 1/1" ./apps/cifar "${small[@]}" --precision bf16
run channels-last "epoch 1/1" ./apps/cifar "${small[@]}" --channels-last --quant exponential
run bf16-channels-last "epoch 1/1" ./apps/cifar "${small[@]}" --precision bf16 --channels-last
run deterministic "epoch 1/1" ./apps/cifar "${small[@]}" --deterministic
for q in linear lsq pact dorefa wrpn; do
  run "qat-$q" "epoch 1/1" ./apps/cifar "${small[@]}" --qat "$q" --checkpoint "$out/qat-$q"
done
run qat-fold-bn "epoch 1/1" ./apps/cifar "${small[@]}" --qat lsq --fold-bn
run qat-export "export" ./apps/cifar --device cuda --resume "$out/qat-lsq/last.safetensors" --export-qat "$out/lsq.safetensors"
run checkpoint "epoch 1/1" ./apps/cifar "${small[@]}" --checkpoint "$out/float" --log "$out/float.csv"
run resume "epoch 2/2" ./apps/cifar --device cuda --resume "$out/float/last.safetensors" --epochs 2
run evaluate "test" ./apps/cifar --device cuda --resume "$out/float/last.safetensors" --evaluate
run variance "variance" ./apps/cifar "${small[@]}" --variance-steps 2 --variance-out "$out/variance"
if [ -n "${HYMENOPTERA_DIR:-}" ]; then
  run imagenet "epoch 1/1" ./apps/imagenet --data "$HYMENOPTERA_DIR" --device cuda --arch resnet18 --epochs 1 \
    --image-size 64 --batch-size 8 --limit-train 16 --limit-test 8
else
  echo "imagenet                     skipped: set HYMENOPTERA_DIR to an ImageNet-layout folder"
fi

echo "emulated app runs: $((ran - failed)) of $ran passed"
[ "$failed" -eq 0 ]
