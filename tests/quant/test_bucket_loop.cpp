// quant/bucket_loop.h: every bucket runs once on either schedule with a scratch buffer no other
// thread touches meanwhile, and sum_over_buckets adds in bucket order whatever the threads.
#include <doctest.h>

#include <algorithm>
#include <vector>

#include "quant/bucket_loop.h"

using namespace qnn;

TEST_CASE("bucket loop: every bucket once with its own scratch; sums in bucket order") {
  // Terms whose sum depends on the order: 1e16 absorbs the small ones that come after it.
  std::vector<double> terms(4000);
  for (size_t i = 0; i < terms.size(); ++i) terms[i] = i % 1000 ? 1.0 + 1e-3 * double(i) : (i % 2000 ? -1e16 : 1e16);
  double in_order = 0;
  for (double t : terms) in_order += t;
  const auto make_scratch = [] { return std::vector<int64_t>(64); };
  for (BucketSchedule schedule : {BucketSchedule::contiguous, BucketSchedule::balanced})
    for (bool threads : {false, true}) {
      std::vector<int> runs(terms.size(), 0);
      for_each_bucket(int64_t(terms.size()), threads, [&](int64_t b) { ++runs[size_t(b)]; }, schedule);
      CHECK(std::count(runs.begin(), runs.end(), 1) == int64_t(terms.size()));
      const double sum = sum_over_buckets(int64_t(terms.size()), threads, make_scratch, [&](int64_t b, auto& s) {
        for (int64_t& v : s) v = b;  // another thread writing the same buffer would show here
        return std::count(s.begin(), s.end(), b) == 64 ? terms[size_t(b)] : 0.0;
      }, schedule);
      CHECK(sum == in_order);
    }
  CHECK(sum_over_buckets(0, true, [] { return 0; }, [](int64_t, int) { return 1.0; }) == 0.0);
}
