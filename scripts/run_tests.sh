#!/usr/bin/env bash
# Runs the doctest binary in JOBS processes at once that deal its test cases out among themselves:
# each process takes the next case of the list whenever it has finished one (QNN_TEST_QUEUE,
# tests/main.cpp), so a few long cases (the CUDA emulator's, code under AddressSanitizer) do not
# leave one process working long after the others have stopped. Each process keeps OpenMP's
# parallel paths (at least 2 threads) within its share of the cores, unless OMP_NUM_THREADS is
# set, and its idle threads sleep (OMP_WAIT_POLICY=passive, unless set): threads that spin while
# waiting for work take the cores the other processes need (on 2 cores, 2 processes ran the CPU
# tests in 143 s spinning and 72 s sleeping, one process in 111 s).
#
#   scripts/run_tests.sh JOBS LOG BINARY [ARGS...]
#
# Prints the processes' output one after the other when all are done (doctest's banner and the
# summaries of the cases that passed left out), also in LOG, then one line that sums them up,
# "tests: N passed, N failed, N skipped", and exits non-zero when any process did. With JOBS=1,
# or ARGS that list, count, report or pick cases by position, the binary runs once, as it is.
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: $0 JOBS LOG BINARY [ARGS...]" >&2; exit 2; }
jobs=$1 log=$2 binary=$3
shift 3
case "$jobs" in '' | *[!0-9]* | 0) echo "$0: JOBS must be a positive number, got '$jobs'" >&2; exit 2 ;; esac

# "tests: N passed, N failed, N skipped" from doctest's "test cases:" lines, one per case run.
# Each run counts the cases it did not run as skipped; what none ran is the total less what all
# ran.
summarize() {
  awk '/test cases:/ { gsub(/\|/, " "); ran += $4; passed += $5; failed += $7; total = $4 + $9; n++ }
       END { if (n) { skipped = total - ran; print "tests: " passed " passed, " failed " failed, " skipped " skipped" } }' "$@"
}

# The arguments each process gets: ARGS less the case-name filters, which the listing applied.
case_args=()
for arg in "$@"; do
  case "$arg" in
    -f=* | --first* | -l=* | --last* | -c | --count* | -ltc | -lts | -lr | --list* | -r=* | --reporters* | -o=* | \
      --out* | -h | -\? | --help | -v | --version) jobs=1 ;;
    -tc=* | --test-case=*) ;;
    *) case_args+=("$arg") ;;
  esac
done

names=()
if [ "$jobs" -gt 1 ]; then
  source "$(dirname "$0")/test_case_filters.sh"
  mapfile -t names < <(test_case_filters "$binary" "$@")
  [ "${#names[@]}" -lt "$jobs" ] && jobs=${#names[@]}
fi
if [ "$jobs" -le 1 ]; then
  "$binary" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  summarize "$log"
  exit "$rc"
fi

threads=${OMP_NUM_THREADS:-$(( $(nproc) / jobs > 2 ? $(nproc) / jobs : 2 ))}
echo "tests: ${#names[@]} cases dealt out to $jobs processes of $threads OpenMP threads each, the next case to" \
  "whichever process is free; their output follows when all are done"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '%s\n' "${names[@]}" > "$dir/cases"
pids=()
for ((j = 0; j < jobs; ++j)); do
  {
    start=$SECONDS
    QNN_TEST_QUEUE=$dir OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} \
      "$binary" "${case_args[@]}" > "$dir/out.$j" 2>&1
    status=$?
    echo "== process $((j + 1)) of $jobs: exit status $status after $((SECONDS - start)) s," \
      "$(grep -c "test cases:" "$dir/out.$j") cases" > "$dir/head.$j"
    exit $status
  } &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done

# Each process's output, less doctest's banner and the summaries of cases that passed (the
# failures' stay), and less blank and separator lines.
for ((j = 0; j < jobs; ++j)); do
  cat "$dir/head.$j"
  grep -Ev '^(\[doctest\] (doctest version is|run with "--help"|Status: SUCCESS|(test cases|assertions): .*\| +0 failed).*|=*)$' \
    "$dir/out.$j"
done > "$log"
cat "$log"
summarize "$dir"/out.*
exit "$rc"
