#!/usr/bin/env bash
# Everything to run on a machine with a GPU, in phases of at most ten minutes each:
#   scripts/gpu_session.sh build     make -j16 (and the test runner) with the cuDNN and stb
#                                    locations below
#   scripts/gpu_session.sh test      the GPU tests first (every CUDA op against its CPU twin, the
#                                    training step, the captured graph), then the whole suite
#   scripts/gpu_session.sh bench     bench/gpu.sh at batch 128 and 512 (with ncu's per-kernel
#                                    profile), build/bench/quant_cuda, and each quantization
#                                    hook's cost inside the captured ResNet-20 batch-128 step
#   scripts/gpu_session.sh train N   N epochs of the one-cycle recipe on CIFAR-10 (for example 30)
# Environment: STB_INCLUDE (a copy of /usr/include/stb brought along), CIFAR10_SRC (a folder holding a
# CIFAR-10 pack and its make-bin.sh, unpacked into /tmp/cifar), CUDNN_HOME (default: the
# cuDNN that PyTorch's wheel installed), PYTHON (PyTorch 2.11's python3), OUT (where logs go).
set -euo pipefail
cd "$(dirname "$0")/.."
CUDNN_HOME=${CUDNN_HOME:-/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn}
STB_INCLUDE=${STB_INCLUDE:-$PWD/third/stb}
OUT=${OUT:-/tmp/qnn-gpu}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$CUDNN_HOME/lib:${LD_LIBRARY_PATH:-}"
case "${1:-}" in
  build)
    nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
    make -j16 CUDNN_INCLUDE="$CUDNN_HOME/include" CUDNN_LIB="$CUDNN_HOME/lib" STB_INCLUDE="$STB_INCLUDE" \
      all build/qnn_tests 2>&1 | tail -5 ;;
  test)
    ./build/qnn_tests -tc='*cuda*,*CUDA*,*gpu*,*GPU*,*device*,*training step*,*graph*' 2>&1 | tee "$OUT/gpu_tests.log" | tail -40
    ./build/qnn_tests 2>&1 | tail -4 ;;
  bench)
    PROFILE=1 PYTHON=${PYTHON:-python3} bench/gpu.sh 200 128 512 2>&1 | tee "$OUT/bench_gpu.log"
    ./build/bench/quant_cuda 2>&1 | tee "$OUT/bench_quant_cuda.log"
    for bucket in 512 51200; do
      ./build/bench/train_step --device cuda --steps 200 --bucket-size $bucket \
        --quant standard,exponential,hadamard,smart,qsgd,qinf,nuq,trn,alq,alq_nb,amq,amq_nb
    done 2>&1 | tee "$OUT/bench_quant_step.log" ;;
  train)
    [ -d /tmp/cifar ] || STB_INCLUDE="$STB_INCLUDE" sh "${CIFAR10_SRC:?set CIFAR10_SRC to the cifar10 folder}/make-bin.sh" /tmp/cifar
    ./apps/cifar --device cuda --data /tmp/cifar --epochs "${2:-30}" --schedule onecycle --lr 0.1 --wd 1e-4 \
      --batch-size 128 --log "$OUT/train.csv" 2>&1 | tee "$OUT/train.log" ;;
  *)
    sed -n '2,12p' "$0"; exit 2 ;;
esac
