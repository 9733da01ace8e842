#!/usr/bin/env bash
# Tests the installed library as a user sees it (docs/embedding.md): `make install` into a
# temporary prefix (the default build, as `make` configures it: after `make` or `make test` it
# compiles nothing again), then, against that prefix only:
#  - every installed header compiles (one C++17 file including all of them) and qnn.h compiles
#    as C99 with -pedantic;
#  - the examples build with pkg-config from a copy outside the source tree;
#  - finetune trains a fresh ResNet-20 on its synthetic task (the loss must fall) and saves it
#    (with $CIFAR10_DIR, it also fine-tunes that checkpoint on CIFAR-10 images);
#  - classify (C) and classify.py (Python ctypes) label the same images identically, and a bad
#    checkpoint is refused with a message; with $CIFAR10_DIR, also 200 test images;
#  - quantize prints payload sizes, and refuses an unknown scheme listing the valid ones;
#  - `make uninstall` leaves no file behind.
# Run from anywhere: examples/test_examples.sh (CI runs it after make test). MAKE_ARGS adds
# make variables (e.g. MAKE_ARGS="PORTABLE=1").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "test_examples: FAILED: $*" >&2; exit 1; }

make --no-print-directory ${MAKE_ARGS:-} install PREFIX="$prefix" | tail -3
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for f in libqnn.a libqnn.so pkgconfig/qnn.pc pkgconfig/qnn-static.pc; do
  [ -e "$prefix/lib/$f" ] || fail "make install did not install lib/$f"
done
[ -f "$prefix/include/qnn/qnn.h" ] && [ -f "$prefix/include/qnn/tensor/tensor.h" ] || fail "headers not installed"
[ ! -e "$prefix/include/qnn/tensor/cuda_runtime.h" ] || fail "an implementation header was installed"

# The headers compile from the prefix alone.
(cd "$prefix/include/qnn" && find . -name '*.h' ! -name qnn.h | sort | sed 's|^\./\(.*\)|#include "\1"|') > "$tmp/all.cpp"
echo '#include "qnn.h"' >> "$tmp/all.cpp"
g++ -std=c++17 -fsyntax-only -Wall -Wextra $(pkg-config --cflags qnn) "$tmp/all.cpp" || fail "installed headers"
echo '#include "qnn.h"' | gcc -std=c99 -pedantic -Werror -Wall -Wextra -fsyntax-only $(pkg-config --cflags qnn) -x c - \
  || fail "qnn.h as C99"
echo "test_examples: $(grep -c include "$tmp/all.cpp") installed headers compile; qnn.h is C99"

# The examples, from a copy outside the source tree.
mkdir "$tmp/examples"
cp examples/Makefile examples/*.c examples/*.cpp examples/*.py "$tmp/examples/"
make --no-print-directory -C "$tmp/examples" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "building the examples"; }
cd "$tmp/examples"

./finetune resnet20 "$tmp/fine.safetensors" 15 | tee "$tmp/finetune.log"
awk '/^loss: first/ { gsub(",", ""); fell = $5 < $3 } END { exit !fell }' "$tmp/finetune.log" \
  || fail "finetune's loss did not fall"

# Two 32x32 images: mid grey, and pure red.
{ printf 'P6\n# grey\n32 32\n255\n'; head -c 3072 /dev/zero | tr '\0' '\200'; } > "$tmp/grey.ppm"
{ printf 'P6\n32 32\n255\n'; for _ in $(seq 1024); do printf '\377\000\000'; done; } > "$tmp/red.ppm"
./classify "$tmp/fine.safetensors" "$tmp/grey.ppm" "$tmp/red.ppm" | tee "$tmp/c.out"
[ "$(grep -c 'ppm: ' "$tmp/c.out")" = 2 ] || fail "classify printed no classes"
if ./classify "$tmp/missing.safetensors" "$tmp/grey.ppm" 2> "$tmp/err"; then fail "classify took a missing file"; fi
grep -q "missing.safetensors" "$tmp/err" || fail "classify's error does not name the file: $(cat "$tmp/err")"

python=$(command -v /usr/bin/python3 || command -v python3 || true)
if [ -n "$python" ]; then
  "$python" classify.py "$tmp/fine.safetensors" "$tmp/grey.ppm" "$tmp/red.ppm" > "$tmp/py.out"
  diff "$tmp/c.out" "$tmp/py.out" || fail "classify.py and classify disagree"
  echo "test_examples: classify.py ($python, ctypes) prints what classify prints"
else
  echo "test_examples: no python3; classify.py not run"
fi
if [ -n "${CIFAR10_DIR:-}" ] && [ -f "$CIFAR10_DIR/test_batch.bin" ]; then
  # Fine-tuning a checkpoint (not a fresh model) on real images.
  ./finetune "$tmp/fine.safetensors" "$tmp/fine2.safetensors" 3 "$CIFAR10_DIR/data_batch_1.bin" | tail -2
  ./classify "$tmp/fine.safetensors" "$CIFAR10_DIR/test_batch.bin" 200 | tee "$tmp/c200.out"
  if [ -n "$python" ]; then
    "$python" classify.py "$tmp/fine.safetensors" "$CIFAR10_DIR/test_batch.bin" 200 > "$tmp/py200.out"
    diff "$tmp/c200.out" "$tmp/py200.out" || fail "classify.py and classify disagree on CIFAR-10"
  fi
fi

./quantize standard 100000 | tee "$tmp/q.out"
./quantize smart 100000 512 8
grep -q '^payload: [0-9]* bytes' "$tmp/q.out" || fail "quantize printed no payload size"
if ./quantize no-such-scheme 2> "$tmp/err"; then fail "quantize took an unknown scheme"; fi
grep -q "valid: .*standard" "$tmp/err" || fail "quantize's error does not list the schemes: $(cat "$tmp/err")"

cd "$root"
make --no-print-directory ${MAKE_ARGS:-} uninstall PREFIX="$prefix" > /dev/null
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "test_examples: passed"
