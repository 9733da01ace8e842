// A frozen copy of the smart quantizer as it was before its speed-up (IST-DASLab/smart-quantizer): candidates by
// partial Fisher-Yates over the counter-based generator, the divide-and-conquer level DP over
// prefix sums, and stochastic rounding between adjacent levels. The optimised code in quant/ must
// reproduce it bit for bit (tests/quant/test_smart_pinned.cpp): same expressions, same order,
// so the compiler turns them into the same floating-point operations on both sides.
// Slow and plain on purpose; not for production use.
// One deliberate change since it was frozen: candidates sort by candidate_less, the total order of
// quant/float_sort.h (-0 before +0), where they sorted by std::sort's operator<, which leaves the
// order of -0 and +0 to the library. Only buckets holding both zeros can differ, in zero signs.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "quant/rounding.h"
#include "quant/smart.h"
#include "tensor/random.h"

namespace qnn::testing::reference {

// err(i, j) = -(j-i+1) a_i a_j + (a_i + a_j)(S_{j+1} - S_i) - (SS_{j+1} - SS_i), shifted values.
struct Cost {
  std::vector<double> a, s, ss;
  Cost(const float* sorted, int64_t count)
      : a(size_t(count)), s(size_t(count) + 1, 0.0), ss(size_t(count) + 1, 0.0) {
    const double shift = 0.5 * (double(sorted[0]) + double(sorted[count - 1]));
    for (int64_t t = 0; t < count; ++t) {
      a[t] = double(sorted[t]) - shift;
      s[t + 1] = s[t] + a[t];
      ss[t + 1] = ss[t] + a[t] * a[t];
    }
  }
  double operator()(int64_t i, int64_t j) const {
    const double ai = a[i], aj = a[j];
    return -double(j - i + 1) * ai * aj + (ai + aj) * (s[j + 1] - s[i]) - (ss[j + 1] - ss[i]);
  }
};

struct Row {
  const double *a, *c, *x, *z, *base;
};

inline void best_split(const Row& row, int64_t m, int64_t first, int64_t last, double& best, int64_t& best_j) {
  const double xm = row.x[m], am = row.a[m];
  double low = std::numeric_limits<double>::infinity();
  best_j = first;
  for (int64_t j = first; j <= last; ++j) {
    const double v = row.base[j] + row.a[j] * xm + row.c[j] * am;
    if (v < low) low = v, best_j = j;
  }
  best = low + row.z[m];
}

inline void solve_rows(const Row& row, double* cur, int32_t* arg, int64_t lo, int64_t hi, int64_t opt_lo,
                       int64_t opt_hi) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    int64_t best_j = 0;
    best_split(row, mid, opt_lo, std::min(mid, opt_hi), cur[mid], best_j);
    arg[mid] = int32_t(best_j);
    solve_rows(row, cur, arg, lo, mid, opt_lo, best_j);
    lo = mid + 1;
    opt_lo = best_j;
  }
}

// The K+1 chosen candidate indices and their summed cost.
inline std::pair<std::vector<int64_t>, double> level_points(const float* sorted, int64_t count, int intervals) {
  const Cost err(sorted, count);
  const size_t c = size_t(count);
  std::vector<int32_t> arg((size_t(intervals) + 1) * c, 0);
  std::vector<double> a(c), cj(c), xm(c), zm(c), base(c), prev(c), cur(c);
  for (int64_t t = 0; t < count; ++t) {
    a[t] = err.a[t];
    cj[t] = double(t) * err.a[t] - err.s[t];
    xm[t] = err.s[t + 1] - double(t + 1) * err.a[t];
    zm[t] = err.a[t] * err.s[t + 1] - err.ss[t + 1];
    prev[t] = err(0, t);
  }
  const Row row{a.data(), cj.data(), xm.data(), zm.data(), base.data()};
  for (int k = 2; k <= intervals; ++k) {
    for (int64_t j = 0; j < count; ++j) base[j] = prev[j] - err.a[j] * err.s[j] + err.ss[j];
    const int64_t first_row = k == intervals ? count - 1 : 0;
    solve_rows(row, cur.data(), &arg[size_t(k) * c], first_row, count, 0, count - 1);
    prev.swap(cur);
  }
  std::vector<int64_t> index(size_t(intervals) + 1);
  index[size_t(intervals)] = count - 1;
  for (int k = intervals; k >= 1; --k) index[size_t(k) - 1] = arg[size_t(k) * c + size_t(index[size_t(k)])];
  double cost = 0.0;
  for (int k = 1; k <= intervals; ++k) cost += err(index[size_t(k) - 1], index[size_t(k)]);
  return {index, cost};
}

// The candidates' order: value order, -0 before +0 (the deliberate change; was operator<).
inline bool candidate_less(float x, float y) { return x < y || (x == y && std::signbit(x) && !std::signbit(y)); }

inline std::vector<float> candidates(const float* values, int64_t d, int64_t start, double fraction, uint64_t seed,
                                     uint64_t step) {
  const int64_t c = smart_candidate_count(d, fraction);
  std::vector<float> a(size_t(c), 0.0f);
  if (c == d) {
    std::copy(values, values + d, a.begin());
    std::sort(a.begin(), a.end(), candidate_less);
    return a;
  }
  std::vector<int32_t> order(static_cast<size_t>(d));
  std::iota(order.begin(), order.end(), 0);
  const uint64_t stream = smart_sample_stream(step);
  for (int64_t r = 0; r < c; ++r) {
    const Philox4 w = random_words(seed, stream, uint64_t(start + r));
    const uint64_t bits = (uint64_t(w.v[0]) << 32) | w.v[1];
    const int64_t pick = r + int64_t(bits % uint64_t(d - r));
    std::swap(order[size_t(r)], order[size_t(pick)]);
    a[size_t(r)] = values[order[size_t(r)]];
  }
  std::sort(a.begin(), a.end(), candidate_less);
  const auto [lo, hi] = std::minmax_element(values, values + d);
  a.front() = *lo;
  a.back() = *hi;
  return a;
}

struct Result {
  std::vector<std::vector<float>> levels;  // per bucket
  std::vector<uint32_t> index;             // per coordinate
  double variance = 0.0;                   // summed per bucket, then in bucket order
};

// What SmartQuantizer computed for x[0, n): levels, rounding indices and variance.
inline Result smart(const float* x, int64_t n, const QuantizerOptions& o, uint64_t seed, uint64_t step) {
  Result r;
  const int64_t bucket = o.bucket_size, buckets = (n + bucket - 1) / bucket;
  const int count = o.levels;
  const uint64_t stream = quant_stream(step);
  r.index.resize(size_t(n));
  for (int64_t b = 0; b < buckets; ++b) {
    const int64_t start = b * bucket, end = std::min(n, start + bucket);
    const std::vector<float> a = candidates(x + start, end - start, start, o.sample_fraction, seed, step);
    const auto points = level_points(a.data(), int64_t(a.size()), count - 1).first;
    std::vector<float> levels(points.size());
    for (size_t k = 0; k < levels.size(); ++k) levels[k] = a[size_t(points[k])];
    double sum = 0.0;
    for (int64_t i = start; i < end; ++i) {
      r.index[size_t(i)] =
          uint32_t(stochastic_round(levels.data(), count, x[i], random_uniform(seed, stream, uint64_t(i))));
      sum += rounding_variance(levels.data(), count, x[i]);
    }
    r.variance += sum;
    r.levels.push_back(std::move(levels));
  }
  return r;
}

}  // namespace qnn::testing::reference
