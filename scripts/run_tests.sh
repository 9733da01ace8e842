#!/usr/bin/env bash
# Runs the doctest binary in JOBS processes at once, each on a share of the test cases, so that a
# run whose cases take one core each (the CUDA emulator's kernels, code under AddressSanitizer)
# uses every core. The binary lists the cases that pass ARGS' filters, in its order; case i goes to
# process i mod JOBS, which runs its share in that order. Each process keeps OpenMP's parallel
# paths (at least 2 threads) within its share of the cores, unless OMP_NUM_THREADS is set, and
# its idle threads sleep (OMP_WAIT_POLICY=passive, unless set): threads that spin while waiting
# for work take the cores the other processes need (on 2 cores, 2 processes ran the CPU tests in
# 143 s spinning and 72 s sleeping, one process in 111 s).
#
#   scripts/run_tests.sh JOBS LOG BINARY [ARGS...]
#
# Prints the processes' output one after the other (each as it would be alone, also in LOG), then
# one line that sums them up, "tests: N passed, N failed, N skipped", and exits non-zero when any
# process did. With JOBS=1, or ARGS that list, count, report or pick cases by position, the binary
# runs once, as it is.
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: $0 JOBS LOG BINARY [ARGS...]" >&2; exit 2; }
jobs=$1 log=$2 binary=$3
shift 3
case "$jobs" in '' | *[!0-9]* | 0) echo "$0: JOBS must be a positive number, got '$jobs'" >&2; exit 2 ;; esac

# "tests: N passed, N failed, N skipped" from doctest's "test cases:" lines, one per process. Each
# process counts the others' cases as skipped; what none ran is the total less what all ran.
summarize() {
  awk '/test cases:/ { gsub(/\|/, " "); ran += $4; passed += $5; failed += $7; total = $4 + $9; n++ }
       END { if (n) { skipped = total - ran; print "tests: " passed " passed, " failed " failed, " skipped " skipped" } }' "$@"
}

# The arguments each process gets: ARGS less the case-name filters, which the listing applied.
shard_args=()
for arg in "$@"; do
  case "$arg" in
    -f=* | --first* | -l=* | --last* | -c | --count* | -ltc | -lts | -lr | --list* | -r=* | --reporters* | -o=* | \
      --out* | -h | -\? | --help | -v | --version) jobs=1 ;;
    -tc=* | --test-case=*) ;;
    *) shard_args+=("$arg") ;;
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
echo "tests: ${#names[@]} cases in $jobs processes of $threads OpenMP threads each; their output follows when all are done"
pids=() logs=()
for ((j = 0; j < jobs; ++j)); do
  share=""
  for ((i = j; i < ${#names[@]}; i += jobs)); do share+="${share:+,}${names[i]}"; done
  logs+=("$log.$j")
  {
    start=$SECONDS
    OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} "$binary" "${shard_args[@]}" "-tc=$share" > "${logs[j]}" 2>&1
    status=$?
    echo "== process $((j + 1)) of $jobs: exit status $status after $((SECONDS - start)) s" > "${logs[j]}.head"
    exit $status
  } &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
for ((j = 0; j < jobs; ++j)); do
  cat "${logs[j]}.head" "${logs[j]}"
  rm -f "${logs[j]}.head"
done > "$log"
cat "$log"
summarize "${logs[@]}"
rm -f "${logs[@]}"
exit "$rc"
