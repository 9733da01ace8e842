// The `smart` quantizer (IST-DASLab/smart-quantizer): sampled candidates with forced min/max endpoints,
// variance-optimal levels by the divide-and-conquer DP, unbiased stochastic rounding between
// adjacent levels, Var = sum (x - l)(r - x). Buckets are independent, so they run in parallel
// (OpenMP); every bucket writes only its own slots, so the output does not depend on threads.
// A bucket holding NaN or an infinity is not fitted: its levels are NaN, its indices 0, its
// variance NaN, and it decodes to NaN throughout (quant/quantizer.h, "Non-finite input").
#include "quant/smart.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "quant/bucket_loop.h"
#include "quant/bucket_math.h"
#include "quant/bucketing.h"
#include "quant/float_sort.h"
#include "quant/level_dp.h"
#include "quant/pack_parallel.h"
#include "quant/rounding.h"
#include "tensor/check.h"
#include "tensor/random.h"
#include "tensor/random_block.h"

namespace qnn {

namespace {

constexpr int64_t kMinCandidates = 512;  // smart-quantizer's floor on the candidate count

// Buckets run on several threads only when there is enough work to repay waking them.
bool worth_threads(int64_t n, int64_t buckets) { return buckets > 1 && n >= 16384; }

void check_input(const float* x, int64_t n) {
  QNN_CHECK(n >= 0, "gradient length must be >= 0, got ", n);
  QNN_CHECK(n == 0 || x != nullptr, "null gradient pointer with length ", n);
}

}  // namespace

int64_t smart_candidate_count(int64_t d, double sample_fraction) {
  QNN_CHECK(d >= 1, "bucket length must be >= 1, got ", d);
  QNN_CHECK(sample_fraction > 0.0 && sample_fraction <= 1.0, "sample_fraction must be in (0, 1], got ",
            sample_fraction);
  const int64_t c = std::max(int64_t(std::floor(sample_fraction * double(d))), kMinCandidates);
  return std::min(c, d);
}

namespace {

// Per-thread buffers of one bucket's fit: after the first bucket a thread allocates nothing.
struct BucketScratch {
  std::vector<float> candidates;
  std::vector<int32_t> order;
  std::vector<uint32_t> sort_keys;
  std::vector<int64_t> points;
  std::vector<float> uniforms;   // the bucket's rounding draws
  std::vector<int32_t> interval;  // each coordinate's interval between adjacent levels
  std::vector<float> levels;    // the bucket's levels, where the caller keeps none
  LevelDpScratch dp;
};

BucketScratch& thread_scratch() {
  thread_local BucketScratch scratch;
  return scratch;
}

// smart_candidates into w.candidates.
void candidates_into(const float* values, int64_t d, int64_t start, double sample_fraction,
                     uint64_t seed, uint64_t step, BucketScratch& w) {
  const int64_t c = smart_candidate_count(d, sample_fraction);
  std::vector<float>& a = w.candidates;
  a.resize(size_t(c));
  if (c == d) {
    std::copy(values, values + d, a.begin());
    sort_floats(a.data(), c, w.sort_keys);
    return;  // endpoints already the min and max
  }
  // Partial Fisher-Yates: after r swaps, order[0..r) is a uniform sample of r distinct indices.
  // Draw r picks uniformly from the d - r indices not yet taken (64 random bits modulo the
  // range: bias below 2^-40 for any bucket that fits in memory).
  std::vector<int32_t>& order = w.order;
  order.resize(size_t(d));
  std::iota(order.begin(), order.end(), 0);
  const uint64_t stream = smart_sample_stream(step);
  for (int64_t r = 0; r < c; ++r) {
    const Philox4 word = random_words(seed, stream, uint64_t(start + r));
    const uint64_t bits = (uint64_t(word.v[0]) << 32) | word.v[1];
    const int64_t pick = r + int64_t(bits % uint64_t(d - r));
    std::swap(order[size_t(r)], order[size_t(pick)]);
    a[size_t(r)] = values[order[size_t(r)]];
  }
  sort_floats(a.data(), c, w.sort_keys);
  const auto [lo, hi] = std::minmax_element(values, values + d);
  a.front() = *lo;
  a.back() = *hi;
}

// Each coordinate's interval between adjacent levels, interval_index(levels, count, x_i)
// (quant/rounding.h), into w.interval without branches: the number of inner levels <= x_i, which
// is what the binary search finds in sorted levels (no NaN here). Vectorized over coordinates.
const int32_t* interval_indices(const float* levels, int count, const float* x, int64_t len,
                                BucketScratch& w) {
  w.interval.assign(size_t(len), 0);
  int32_t* j = w.interval.data();
  for (int k = 1; k <= count - 2; ++k) {
    const float level = levels[k];
    for (int64_t i = 0; i < len; ++i) j[i] += level <= x[i];
  }
  return j;
}

// stochastic_round(levels, count, x_i, u_i) for the coordinates x[0, len) of one bucket,
// u_i = random_uniform(seed, stream, first + i), without branches: the draws first, sixteen at a
// time (tensor/random_block.h), then the same comparisons in the same float arithmetic as
// stochastic_round, so the same index for every coordinate.
void round_bucket(const float* levels, int count, const float* x, int64_t len, const int32_t* j,
                  uint64_t seed, uint64_t stream, uint64_t first, uint32_t* index,
                  BucketScratch& w) {
  w.uniforms.resize(size_t(len));
  float* u = w.uniforms.data();
  random_uniforms(seed, stream, first, len, u);
  const float bottom = levels[0], top = levels[count - 1];
  for (int64_t i = 0; i < len; ++i) {
    const float r = x[i], low = levels[j[i]], high = levels[j[i] + 1];
    const bool up = high > low && u[i] * (high - low) < r - low;
    uint32_t k = uint32_t(j[i]) + uint32_t(up);
    k = r >= top ? uint32_t(count - 1) : k;
    k = r <= bottom ? 0u : k;  // checked first in stochastic_round, so it wins
    index[i] = k;
  }
}

// sum_i rounding_variance(levels, count, x_i) over one bucket, summed in coordinate order as the
// plain loop does. Outside (levels[0], levels[count-1]) the term is 0: multiplying by 0 or 1
// (exact, also if the compiler fuses it with the add) keeps every partial sum the plain loop's.
double bucket_variance(const float* levels, int count, const float* x, int64_t len,
                       const int32_t* j) {
  const float bottom = levels[0], top = levels[count - 1];
  double sum = 0.0;
  for (int64_t i = 0; i < len; ++i) {
    const float r = x[i];
    const double term = (double(r) - levels[j[i]]) * (double(levels[j[i] + 1]) - r);
    sum += term * double(r > bottom && r < top);
  }
  return sum;
}

}  // namespace

std::vector<float> smart_candidates(const float* values, int64_t d, int64_t start,
                                    double sample_fraction, uint64_t seed, uint64_t step) {
  BucketScratch w;
  candidates_into(values, d, start, sample_fraction, seed, step, w);
  return w.candidates;
}

SmartQuantizer::SmartQuantizer(QuantizerOptions options) : GradientQuantizer(std::move(options)) {
  QNN_CHECK(options_.levels >= 2, "smart needs levels >= 2, got ", options_.levels);
  QNN_CHECK(options_.levels <= (1 << 16), "smart levels must be <= 65536, got ", options_.levels);
  QNN_CHECK(options_.bucket_size >= 1, "bucket_size must be >= 1, got ", options_.bucket_size);
  QNN_CHECK(options_.bucket_size <= std::numeric_limits<int32_t>::max(),
            "bucket_size must be < 2^31, got ", options_.bucket_size);
  QNN_CHECK(options_.sample_fraction > 0.0 && options_.sample_fraction <= 1.0,
            "sample_fraction must be in (0, 1], got ", options_.sample_fraction);
  QNN_CHECK(options_.quantize_tail,
            "smart quantizes the partial last bucket as a bucket of its own (smart-quantizer); "
            "quantize_tail = false is not supported");
}

bool SmartQuantizer::fit_bucket(const float* x, int64_t start, int64_t d, uint64_t seed,
                                uint64_t step, float* levels) const {
  if (!all_finite(x + start, d)) {
    std::fill(levels, levels + options_.levels, bucket_nan());
    return false;
  }
  BucketScratch& w = thread_scratch();
  candidates_into(x + start, d, start, options_.sample_fraction, seed, step, w);
  const int intervals = options_.levels - 1;
  w.points.resize(size_t(intervals) + 1);
  optimal_level_points_into(w.candidates.data(), int64_t(w.candidates.size()), intervals, w.dp,
                            w.points.data());
  for (int k = 0; k <= intervals; ++k) levels[k] = w.candidates[size_t(w.points[size_t(k)])];
  return true;
}

Payload SmartQuantizer::encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const {
  return encode_slice_with_variance(x, n, first, seed, step, nullptr);
}

// Randomness keyed by the index within the slice, as encode_slice: `first` is not used.
Payload SmartQuantizer::encode_slice_with_variance(const float* x, int64_t n, int64_t, uint64_t seed,
                                                   uint64_t step, double* variance) const {
  check_input(x, n);
  const Buckets split(n, options_.bucket_size, true);  // smart quantizes the tail
  const int64_t buckets = split.count, bucket = split.size;
  const int count = options_.levels;
  Payload p = bucketed_payload(name(), x, n, 0, split, index_bits_for(count), 0, seed, step);
  p.levels.resize(size_t(buckets) * size_t(count));
  std::vector<uint32_t> index(static_cast<size_t>(n));
  std::vector<double> per_bucket(variance ? size_t(buckets) : 0, 0.0);
  const uint64_t stream = quant_stream(step);
  for_each_bucket(buckets, worth_threads(n, buckets), [&](int64_t b) {
    const int64_t start = b * bucket, end = std::min(n, start + bucket);
    float* levels = p.levels.data() + b * count;
    if (!fit_bucket(x, start, end - start, seed, step, levels)) {  // NaN levels: decodes to NaN
      std::fill(index.begin() + start, index.begin() + end, 0u);
      if (variance) per_bucket[size_t(b)] = std::numeric_limits<double>::quiet_NaN();
      return;
    }
    BucketScratch& w = thread_scratch();
    const int32_t* j = interval_indices(levels, count, x + start, end - start, w);
    round_bucket(levels, count, x + start, end - start, j, seed, stream, uint64_t(start),
                 index.data() + start, w);
    if (variance) per_bucket[size_t(b)] = bucket_variance(levels, count, x + start, end - start, j);
  }, BucketSchedule::balanced);
  pack_indices_parallel(index.data(), n, p.index_bits, p.indices);
  // Summed in bucket order, as variance() does: the same result for any thread count.
  if (variance) *variance = std::accumulate(per_bucket.begin(), per_bucket.end(), 0.0);
  return p;
}

void SmartQuantizer::decode(const Payload& p, float* out) const {
  const int count = options_.levels;
  QNN_CHECK(p.scheme == name(), "payload is from scheme '", p.scheme, "', expected 'smart'");
  QNN_CHECK(p.size == 0 || p.bucket_size >= 1, "payload bucket_size must be >= 1, got ",
            p.bucket_size);
  const int64_t n = p.size, bucket = std::max<int64_t>(p.bucket_size, 1);
  const int64_t buckets = (n + bucket - 1) / bucket;
  QNN_CHECK(p.index_bits == index_bits_for(count), "payload has ", p.index_bits,
            "-bit indices, expected ", index_bits_for(count), " for ", count, " levels");
  QNN_CHECK(int64_t(p.levels.size()) == buckets * count, "payload has ", p.levels.size(),
            " levels, expected ", buckets * count, " (", buckets, " buckets x ", count, ")");
  QNN_CHECK(int64_t(p.indices.size()) * 64 >= n * p.index_bits, "payload has ", p.indices.size(),
            " index words, too few for ", n, " coordinates");
  QNN_CHECK(p.passthrough.empty(), "smart payloads carry no passthrough values, got ",
            p.passthrough.size());
  for_each_bucket(buckets, worth_threads(n, buckets), [&](int64_t b) {
    const float* levels = p.levels.data() + b * count;
    const int64_t end = std::min(n, (b + 1) * bucket);
    for (int64_t i = b * bucket; i < end; ++i) {
      const uint32_t k = read_index(p.indices.data(), i, p.index_bits);
      out[i] = levels[std::min<uint32_t>(k, uint32_t(count - 1))];
    }
  });
}

std::vector<std::vector<float>> SmartQuantizer::bucket_levels_slice(const float* x, int64_t n, int64_t,
                                                                    uint64_t seed, uint64_t step) const {
  check_input(x, n);
  const int64_t buckets = Buckets(n, options_.bucket_size, true).count, bucket = options_.bucket_size;
  std::vector<std::vector<float>> levels(static_cast<size_t>(buckets));
  for_each_bucket(buckets, worth_threads(n, buckets), [&](int64_t b) {
    const int64_t start = b * bucket, end = std::min(n, start + bucket);
    levels[size_t(b)].resize(size_t(options_.levels));
    fit_bucket(x, start, end - start, seed, step, levels[size_t(b)].data());
  }, BucketSchedule::balanced);
  return levels;
}

double SmartQuantizer::variance_slice(const float* x, int64_t n, int64_t, uint64_t seed, uint64_t step) const {
  check_input(x, n);
  const int64_t buckets = Buckets(n, options_.bucket_size, true).count, bucket = options_.bucket_size;
  const int count = options_.levels;
  const auto no_scratch = [] { return 0; };  // fit_bucket's buffers are thread_scratch()
  return sum_over_buckets(buckets, worth_threads(n, buckets), no_scratch, [&](int64_t b, int) {
    const int64_t start = b * bucket, end = std::min(n, start + bucket);
    BucketScratch& w = thread_scratch();
    w.levels.resize(size_t(count));
    if (!fit_bucket(x, start, end - start, seed, step, w.levels.data()))
      return std::numeric_limits<double>::quiet_NaN();
    const int32_t* j = interval_indices(w.levels.data(), count, x + start, end - start, w);
    return bucket_variance(w.levels.data(), count, x + start, end - start, j);
  }, BucketSchedule::balanced);
}

std::unique_ptr<GradientQuantizer> make_smart_quantizer(const QuantizerOptions& options) {
  return std::make_unique<SmartQuantizer>(options);
}

}  // namespace qnn
