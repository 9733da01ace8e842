// quant/bucket_loop.h: every bucket runs exactly once on either schedule, each thread's scratch
// is its own, and sum_over_buckets adds in bucket order whatever the threads.
#include <doctest.h>

#include <vector>

#include "quant/bucket_loop.h"

using namespace qnn;

TEST_CASE("for_each_bucket: every bucket once, on both schedules, with and without threads") {
  for (BucketSchedule schedule : {BucketSchedule::contiguous, BucketSchedule::balanced})
    for (bool threads : {false, true}) {
      std::vector<int> runs(1001, 0);
      for_each_bucket(1001, threads, [&](int64_t b) { ++runs[size_t(b)]; }, schedule);
      for (int r : runs) REQUIRE(r == 1);
      // A scratch buffer written whole by each bucket and read back: another thread writing the
      // same buffer would show up as a wrong value.
      std::vector<int64_t> seen(1001, -1);
      const auto make_scratch = [] { return std::vector<int64_t>(64); };
      for_each_bucket_with_scratch(1001, threads, make_scratch, [&](int64_t b, std::vector<int64_t>& s) {
        for (int64_t& v : s) v = b;
        int64_t agree = 0;
        for (int64_t v : s) agree += v == b;
        seen[size_t(b)] = agree == 64 ? b : -1;
      }, schedule);
      for (int64_t b = 0; b < 1001; ++b) REQUIRE(seen[size_t(b)] == b);
    }
}

TEST_CASE("sum_over_buckets: the sum in bucket order, bit for bit") {
  // Terms whose sum depends on the order: 1e16 absorbs the ones that come after it.
  std::vector<double> terms(4000);
  for (size_t i = 0; i < terms.size(); ++i)
    terms[i] = i % 1000 == 0 ? (i % 2000 ? -1e16 : 1e16) : 1.0 + 1e-3 * double(i);
  double in_order = 0;
  for (double t : terms) in_order += t;
  for (BucketSchedule schedule : {BucketSchedule::contiguous, BucketSchedule::balanced}) {
    const double sum = sum_over_buckets(int64_t(terms.size()), true, [] { return 0; },
                                        [&](int64_t b, int) { return terms[size_t(b)]; }, schedule);
    CHECK(sum == in_order);
  }
  CHECK(sum_over_buckets(0, true, [] { return 0; }, [](int64_t, int) { return 1.0; }) == 0.0);
}
