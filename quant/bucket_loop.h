// The loop over buckets every CPU quantizer runs (encode, decode, variance), written once.
//
// Buckets are independent: fn(b, scratch) reads bucket b's coordinates and writes only bucket
// b's slots (its scales, levels, indices or decoded values), so the result is the same on any
// thread count and schedule. With `threads` true the buckets are shared among OpenMP threads
// (the callers ask for it only on vectors large enough to repay starting them); each thread
// makes its scratch (work buffers) once with make_scratch() and reuses it for all its buckets.
// BucketSchedule::contiguous gives each thread one range of buckets (OpenMP schedule(static));
// balanced hands them out one at a time (schedule(dynamic)), for buckets of uneven cost.
// Capture the loop-invariant scalars of a hot fn by value: through a reference the compiler may
// have to reload them after every store that could alias them, and loops stop vectorizing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qnn {

enum class BucketSchedule { contiguous, balanced };

template <typename MakeScratch, typename Fn>
void for_each_bucket_with_scratch(int64_t count, bool threads, MakeScratch make_scratch, Fn fn,
                                  BucketSchedule schedule = BucketSchedule::contiguous) {
  (void)threads;  // unused in a build without OpenMP
#pragma omp parallel if (threads)
  {
    auto scratch = make_scratch();
    if (schedule == BucketSchedule::balanced) {
#pragma omp for schedule(dynamic)
      for (int64_t b = 0; b < count; ++b) fn(b, scratch);
    } else {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < count; ++b) fn(b, scratch);
    }
  }
}

// fn(b) for every bucket, with no scratch.
template <typename Fn>
void for_each_bucket(int64_t count, bool threads, Fn fn, BucketSchedule schedule = BucketSchedule::contiguous) {
  for_each_bucket_with_scratch(count, threads, [] { return 0; }, [&fn](int64_t b, int) { fn(b); }, schedule);
}

// The sum over buckets of fn(b, scratch), added in bucket order: the same double on any thread
// count (a variance).
template <typename MakeScratch, typename Fn>
double sum_over_buckets(int64_t count, bool threads, MakeScratch make_scratch, Fn fn,
                        BucketSchedule schedule = BucketSchedule::contiguous) {
  std::vector<double> per_bucket(size_t(count > 0 ? count : 0));
  for_each_bucket_with_scratch(
      count, threads, make_scratch, [&](int64_t b, auto& scratch) { per_bucket[size_t(b)] = fn(b, scratch); },
      schedule);
  double total = 0;
  for (double v : per_bucket) total += v;
  return total;
}

}  // namespace qnn
