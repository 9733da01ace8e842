#!/usr/bin/env bash
# The smallest qnn that does a useful job, measured (docs/embedding.md): a CPU-only build without
# OpenMP or libjpeg-turbo (`make CUDA=0 OPENMP=0 TURBOJPEG=`, in build-min/), and
# examples/classify.c linked into one fully static, stripped executable that loads a ResNet-20
# checkpoint and classifies CIFAR-10 images. Prints its size, its peak memory (/usr/bin/time -v)
# classifying one image and classifying N images (100 at a time), its images/s (one thread,
# model load included), then the size of what libtorch needs for the same job, as Debian's
# libtorch1.13 installs it: libtorch, libtorch_cpu and libc10, and with the shared libraries they
# load beyond libc, libm, libstdc++ and libgcc (which every C++ program has).
#
#   bench/embed_size.sh [CHECKPOINT] [N]
# CHECKPOINT: a ResNet-20 qnn checkpoint (default: a fresh one, made by examples/finetune.cpp
# with one step; the weights do not change the figures). Images: $CIFAR10_DIR/test_batch.bin
# when there (the accuracy is printed too), else N random images. N defaults to 2000.
# PORTABLE=1 in the environment builds without -march=native. Sizes are deterministic for a
# given compiler; the timing needs a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${2:-2000}
build=build-min
mkdir -p $build
make --no-print-directory CUDA=0 OPENMP=0 TURBOJPEG= BUILD=$build $build/libqnn.a > $build/make.log 2>&1 \
  || { tail -20 $build/make.log; exit 1; }

gcc -std=c99 -O2 -Wall -Icapi -c examples/classify.c -o $build/classify.o
g++ -static -Wl,--gc-sections $build/classify.o $build/libqnn.a -o $build/classify -pthread -lm
strip -o $build/classify.stripped $build/classify

checkpoint=${1:-}
if [ -z "$checkpoint" ]; then
  g++ -std=c++17 -O2 -I. examples/finetune.cpp $build/libqnn.a -o $build/finetune -pthread
  checkpoint=$build/resnet20.safetensors
  $build/finetune resnet20 "$checkpoint" 1 > /dev/null
fi

images=${CIFAR10_DIR:-data/cifar-10-batches-bin}/test_batch.bin
if [ ! -f "$images" ]; then
  images=$build/random_images.bin
  head -c $((n * 3073)) /dev/urandom > "$images"
  echo "(no CIFAR-10 test_batch.bin: classifying $n random images)"
fi

# One image (a grey one: the memory and time do not depend on the pixels).
{ printf 'P6\n32 32\n255\n'; head -c 3072 /dev/zero | tr '\0' '\200'; } > $build/one.ppm
/usr/bin/time -v $build/classify.stripped "$checkpoint" $build/one.ppm > $build/classify1.out 2> $build/time1.out
cat $build/classify1.out
peak1_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' $build/time1.out)

/usr/bin/time -v $build/classify.stripped "$checkpoint" "$images" "$n" > $build/classify.out 2> $build/time.out
cat $build/classify.out
peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' $build/time.out)
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' $build/time.out)   # [h:]m:ss.ss
seconds=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; ++i) s = s * 60 + $i; print s }')

# libtorch's share for the same job: its libraries and their shared dependencies, each file once.
torch_libs=$(ls /usr/lib/*/libtorch.so.* /usr/lib/*/libtorch_cpu.so.* /usr/lib/*/libc10.so.* 2>/dev/null || true)
torch_bytes=0
torch_files=0
if [ -n "$torch_libs" ]; then
  files=$( { for f in $torch_libs; do readlink -f "$f"; ldd "$f" | awk '$3 ~ /^\// {print $3}'; done; } \
    | xargs -n1 readlink -f | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*|libpthread|libdl|librt)\.so' \
    | sort -u)
  torch_files=$(echo "$files" | wc -l)
  torch_bytes=$(echo "$files" | xargs stat -Lc %s | awk '{s += $1} END {print s}')
  torch_own=$(for f in $torch_libs; do readlink -f "$f"; done | sort -u | xargs stat -Lc %s | awk '{s += $1} END {print s}')
fi

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo
echo "qnn, static and stripped ($build/classify.stripped: CPU, one thread, no OpenMP, no JPEG library):"
echo "  binary size:      $(stat -c %s $build/classify.stripped) bytes ($(mib "$(stat -c %s $build/classify.stripped)"))"
echo "  peak memory:      $peak1_kb KiB ($(mib $((peak1_kb * 1024)))) classifying one image, $peak_kb KiB ($(mib $((peak_kb * 1024)))) classifying $n, 100 at a time"
echo "  images/s:         $(awk -v n="$n" -v s="$seconds" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}') ($n images in $seconds s, model load included; load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  dynamic libraries: $(ldd $build/classify.stripped 2>&1 | head -1 | sed 's/^[[:space:]]*//')"
if [ "$torch_bytes" -gt 0 ]; then
  q=$(stat -c %s $build/classify.stripped)
  echo "libtorch (Debian's libtorch1.13) for the same job:"
  echo "  libtorch, libtorch_cpu, libc10:   $torch_own bytes ($(mib "$torch_own")), $(awk -v t="$torch_own" -v q="$q" 'BEGIN {printf "%.0fx", t / q}') the qnn binary"
  echo "  with their shared dependencies:  $torch_bytes bytes ($(mib "$torch_bytes")) in $torch_files files, $(awk -v t="$torch_bytes" -v q="$q" 'BEGIN {printf "%.0fx", t / q}') the qnn binary"
else
  echo "libtorch: not installed (Debian: apt-get install libtorch1.13), no comparison"
fi
