#!/bin/bash
# Which lines no test runs, listed by template instance where a function has several (a line a
# kernel's float instance runs but its bf16 or channels-last instance never does counts as never
# run in that instance). Each line listed is a test to write or a path to explain (an error that
# needs a failing GPU or library, a helper only the benchmarks call).
#
#   scripts/coverage.sh gpu   # the CUDA backend's .cu files and the headers they include, under the
#                             # GPU tests on the CUDA emulator (docs/cuda-emulator.md):
#                             # build-emulate-coverage/never-run.txt
#   scripts/coverage.sh cpu   # the CPU library's and the apps' .cpp files and the headers they
#                             # include, under every test (the apps' runs included):
#                             # build-coverage/never-run.txt
#
# gpu: the counters replace the race checker's instrumentation (make emulate keeps that), in
# unoptimised kernels: the gpu suite and the emulator's own tests (but its race checker's) take
# about twice as long as make emulate's, about 4 minutes with the build on 2 cores; the apps'
# runs (scripts/emulate_apps.sh) are not counted. cpu: a CPU-only build at -O1 with gcov's
# counters; build and tests take about 8 minutes on 2 cores; tests that need data run when
# CIFAR10_DIR and HYMENOPTERA_DIR are set. Either links ./apps with its build; the next plain
# `make` links them back.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  gpu)
    BUILD=build-emulate-coverage what="the CUDA backend's .cu files and their headers" tests="the GPU tests"
    make_args=(EMU=1 CUDA=0 MPI=0 COVERAGE=1 BUILD=$BUILD "TEST_ARGS=-ts=gpu,emulator -sfe=*race_check*" test)
    data_files=(-name '*.cu.gcda' -not -path "$BUILD/tests/*")
    skipped='^(emu|tests)/' ;;
  cpu)
    BUILD=build-coverage what="the CPU library's and the apps' sources and their headers" tests="the tests"
    make_args=(CUDA=0 MPI=0 COVERAGE=1 BUILD=$BUILD all test)
    data_files=(-name '*.gcda')  # the tests' objects too: the headers' inline code they run
    skipped='^(emu|tests|bench|fuzz)/' ;;
  *) echo "usage: $0 gpu|cpu" >&2; exit 2 ;;
esac
find "$BUILD" -name '*.gcda' -delete 2>/dev/null
mkdir -p "$BUILD"
echo "building $BUILD and running $tests there (log: $BUILD/run.log)"
make --no-print-directory "${make_args[@]}" > "$BUILD/run.log" 2>&1
tested=$?
tail -n 1 "$BUILD/run.log"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# gcov's reports on standard output, one per source file an object includes (a header once per
# object that includes it), each headed by its Source line.
for data in $(find "$BUILD" "${data_files[@]}"); do
  gcov -t -r -o "$data" "${data%.gcda}.o" 2> /dev/null
done > "$work/reports"

# Each report line "count: line: code" counts for its source line, and inside a template's
# section ("mangled name:" lines, sections split by dashes) for that instance too. A key (file,
# line, instance) never run in any object is listed; the summary counts source lines.
awk -v skipped="$skipped" '
  /^ +-: +0:Source:/ { source = substr($0, index($0, "Source:") + 7); instance = ""; next }
  source == "" || source ~ skipped || source ~ /^\// { next }
  /^-+$/ { instance = ""; next }
  /^[^ ].*:$/ { instance = substr($0, 1, length($0) - 1); next }
  {
    split($0, field, ":")
    count = field[1]; gsub(/[ *]/, "", count)
    if (count == "-") next
    line = field[2] + 0
    text = substr($0, index($0, field[2] ":") + length(field[2]) + 1)
    if (line == 0 || text ~ /^[ \t]*}[ \t]*$/) next  # a closing brace: where unwinding after a throw starts
    key = source SUBSEP line SUBSEP instance
    ran = count ~ /^[0-9]/ && count + 0 > 0
    if (!(key in seen) || ran) seen[key] = ran
    code[source SUBSEP line] = text
  }
  END {
    for (key in seen) {
      split(key, k, SUBSEP)
      if (k[3] == "") { lines[k[1]]++; never[k[1]] += !seen[key] }
      if (seen[key]) continue
      # An instance is listed where the line ran in another: a kernel or path that one element
      # type, layout or option never took (the error messages built by tensor/check.h aside).
      if (k[3] != "" && (!seen[k[1] SUBSEP k[2] SUBSEP ""] || k[1] == "tensor/check.h")) continue
      print k[1] "\t" k[2] "\t" k[3] "\t" code[k[1] SUBSEP k[2]]
    }
    for (f in lines) printf "%s\t%d\t%d\n", f, lines[f], never[f] + 0 > "/dev/stderr"
  }' "$work/reports" 2> "$work/summary" | sort -t$'\t' -k1,1 -k2,2n -k3,3 > "$work/never"

{
  echo "Lines of $what that $tests never ran"
  echo "(commit $(git log -1 --format=%h 2>/dev/null)); a line another template instance ran names the instance that did not."
  echo
  cut -f3 "$work/never" | c++filt | sed -E 's/qnn::cuda::|\(anonymous namespace\)::|qnn:://g' |
    paste "$work/never" - | awk -F'\t' '{ printf "%s:%s\t%s\n", $1, $2, $4; if ($3 != "") printf "\t\tnot in %s\n", $5 }'
} > "$BUILD/never-run.txt"

printf '%-40s %8s %10s\n' file lines "never run"
sort "$work/summary" | awk -F'\t' '$3 > 0 { printf "%-40s %8d %10d\n", $1, $2, $3 } { l += $2; n += $3 }
  END { printf "%-40s %8d %10d\n", "all of them", l, n }'
echo "the lines, by instance: $BUILD/never-run.txt"
[ "$tested" -eq 0 ] || echo "($tests failed: make's exit status $tested)"
exit "$tested"
