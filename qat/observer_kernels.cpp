// CPU kernels of the range observers (see qat/observer_kernels.h and qat/observer_math.h).
#include "qat/observer_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qat/channel_reduce.h"
#include "qat/observer_math.h"
#include "tensor/device.h"

namespace qnn {

namespace {

struct MinMaxAcc {
  float lo, hi;
};

void check_range_tensors(const char* op, const Tensor& a, const Tensor& b, const char* what_a, const char* what_b) {
  if (!a.defined() || !b.defined() || a.numel() != b.numel() || a.numel() == 0 || a.device() != b.device())
    throw Error(str("[", op, "] ", what_a, " and ", what_b, " must be non-empty tensors of one size on one device, found ",
                    a.defined() ? shape_str(a.shape()) : "undefined", " and ",
                    b.defined() ? shape_str(b.shape()) : "undefined"));
}

// The range of p[0 .. n), NaN at both ends if any element is NaN. An OpenMP simd reduction keeps
// several partial minima and maxima in vector lanes (x < lo ? x : lo is one vector min
// instruction) and counts unordered elements beside them. Minima and maxima are exact, so how the
// lanes group the elements does not change the result (beyond the sign of a zero).
MinMaxAcc min_max_of(const float* p, int64_t n) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  int unordered = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi) reduction(+ : unordered)
  for (int64_t i = 0; i < n; ++i) {
    lo = p[i] < lo ? p[i] : lo;
    hi = p[i] > hi ? p[i] : hi;
    unordered += p[i] != p[i];
  }
  if (unordered) lo = hi = std::numeric_limits<float>::quiet_NaN();
  return {lo, hi};
}

}  // namespace

ChannelRange channel_min_max(const Tensor& x, Granularity granularity) {
  const int64_t channels = qparam_count("channel_min_max", x, granularity);
  QNN_CHECK(x.numel() > 0, "cannot take the range of an empty tensor ", shape_str(x.shape()));
  QNN_ON_CUDA(x, cuda::channel_min_max(x, channels));
  const float* px = x.data();
  const float inf = std::numeric_limits<float>::infinity();
  // Chunks of kReduceChunk elements per channel (qat/channel_reduce.h), each a vectorised pass.
  const int64_t inner = x.numel() / channels;
  const int64_t chunks = (inner + kReduceChunk - 1) / kReduceChunk;
  std::vector<MinMaxAcc> partial(static_cast<size_t>(channels * chunks));
#pragma omp parallel for if (x.numel() >= 2 * kReduceChunk) schedule(static)
  for (int64_t t = 0; t < channels * chunks; ++t) {
    const int64_t c = t / chunks, begin = (t % chunks) * kReduceChunk;
    partial[t] = min_max_of(px + c * inner + begin, std::min(kReduceChunk, inner - begin));
  }
  std::vector<MinMaxAcc> r(static_cast<size_t>(channels), MinMaxAcc{inf, -inf});
  for (int64_t t = 0; t < channels * chunks; ++t) {
    MinMaxAcc& a = r[t / chunks];
    a.lo = min_keep_nan(a.lo, partial[t].lo);
    a.hi = max_keep_nan(a.hi, partial[t].hi);
  }
  ChannelRange out{Tensor({channels}), Tensor({channels})};
  for (int64_t c = 0; c < channels; ++c) {
    if (!std::isfinite(r[c].lo) || !std::isfinite(r[c].hi))
      throw Error(str("[channel_min_max] the tensor ", shape_str(x.shape()), " holds a NaN or an infinity",
                      channels > 1 ? " in channel " + std::to_string(c) : std::string(), " (range ", r[c].lo, " to ",
                      r[c].hi, ")"));
    out.min.data()[c] = r[c].lo;
    out.max.data()[c] = r[c].hi;
  }
  return out;
}

void update_running_range(Tensor& running_min, Tensor& running_max, const ChannelRange& batch, RangeUpdate update,
                          float averaging_constant, bool first) {
  check_range_tensors("update_running_range", running_min, running_max, "running min", "running max");
  check_range_tensors("update_running_range", batch.min, batch.max, "batch min", "batch max");
  if (batch.min.numel() != running_min.numel() || batch.min.device() != running_min.device())
    throw Error(str("[update_running_range] the batch's range has ", batch.min.numel(), " channel(s) on ",
                    device_name(batch.min.device()), ", the running range ", running_min.numel(), " on ",
                    device_name(running_min.device())));
  QNN_ON_CUDA(running_min, cuda::update_running_range(running_min, running_max, batch, update, averaging_constant, first));
  float* lo = running_min.data();
  float* hi = running_max.data();
  const float* blo = batch.min.data();
  const float* bhi = batch.max.data();
  for (int64_t c = 0; c < running_min.numel(); ++c) {
    if (first) {
      lo[c] = blo[c];
      hi[c] = bhi[c];
    } else if (update == RangeUpdate::MinMax) {
      lo[c] = min_keep_nan(blo[c], lo[c]);
      hi[c] = max_keep_nan(bhi[c], hi[c]);
    } else {
      lo[c] = moving_average_step(lo[c], blo[c], averaging_constant);
      hi[c] = moving_average_step(hi[c], bhi[c], averaging_constant);
    }
  }
}

QParams qparams_from_range(const Tensor& min, const Tensor& max, QuantRange range, bool symmetric, float eps) {
  check_quant_range("qparams_from_range", range);
  check_range_tensors("qparams_from_range", min, max, "min", "max");
  QNN_CHECK(std::isfinite(eps) && eps > 0.0f, "eps must be finite and positive, found ", eps);
  QNN_ON_CUDA(min, cuda::qparams_from_range(min, max, range, symmetric, eps));
  QParams p{Tensor(min.shape()), Tensor(min.shape())};
  for (int64_t c = 0; c < min.numel(); ++c) {
    QNN_CHECK(min.data()[c] <= max.data()[c], "min must not exceed max, found ", min.data()[c], " > ",
              max.data()[c], min.numel() > 1 ? " in channel " + std::to_string(c) : std::string());
    const ChannelQParams q = channel_qparams(min.data()[c], max.data()[c], float(range.qmin), float(range.qmax),
                                          symmetric, eps);
    p.scale.data()[c] = q.scale;
    p.zero_point.data()[c] = q.zero_point;
  }
  return p;
}

}  // namespace qnn
